package conntrack

import (
	"fmt"
	"strings"
	"testing"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/wire"
)

// orderLog is a protocol whose parsers log each chunk's direction, time,
// bytes and the kernel IDs found by its tag.
type orderLog struct{ log *[]string }

func (orderLog) Name() string                 { return "log" }
func (orderLog) Sniff(*Conn, wire.Chunk) bool { return false }
func (p orderLog) NewParser(c *Conn) Parser   { return &orderParser{p.log, c} }
func (p *orderParser) Idle(uint64)            {}
func (p *orderParser) Size() int              { return 0 }
func (p *orderParser) Close(now uint64)       { *p.log = append(*p.log, fmt.Sprintf("close@%d", now)) }
func (p *orderParser) Feed(ch wire.Chunk)     { *p.log = append(*p.log, p.line(ch)) }
func (p *orderParser) line(ch wire.Chunk) string {
	ids, ok := p.c.ChunkIDs(ch.Tag)
	s := fmt.Sprintf("%s %s@%d", ch.Dir, ch.Data, ch.Time)
	if ok {
		s += fmt.Sprintf(" ids=%d", ids.Span[0])
	}
	return s
}

type orderParser struct {
	log *[]string
	c   *Conn
}

// stamped is a data event of pid 1's connection 7 with its Sent count.
func stamped(dir wire.Dir, t uint64, s string, sent uint32) *Event {
	return &Event{Kind: KindData, PID: 1, Conn: 7, Sent: sent, Stamped: true,
		Chunk: wire.Chunk{Dir: dir, Time: t, Len: len(s), Data: []byte(s)}}
}

func rd(t uint64, s string, sent uint32) *Event { return stamped(wire.DirRead, t, s, sent) }
func wr(t uint64, s string, sent uint32) *Event { return stamped(wire.DirWrite, t, s, sent) }

func TestReorder(t *testing.T) {
	mid := func(ev *Event) *Event { ev.MidStream = true; return ev }
	tls := func(ev *Event) *Event { ev.TLS = true; return ev }
	unstamped := func(ev *Event) *Event { ev.Stamped = false; return ev }
	withIDs := func(span byte, ev *Event) *Event { ev.IDs = IDs{Span: [8]byte{span}, Made: true}; return ev }
	tests := []struct {
		name   string
		events []*Event
		sweep  uint64   // Sweep at this time after the events (0: none)
		then   []*Event // after the sweep
		close  bool
		want   []string
		held   map[string]float64
	}{
		{
			name:   "in order: nothing held",
			events: []*Event{wr(10, "GET", 4), rd(20, "200", 4), wr(30, "GET", 7), rd(40, "200", 7)},
			want:   []string{"write GET@10", "read 200@20", "write GET@30", "read 200@40"},
		},
		{
			name: "a client's response before its request: the request first, at the response's time",
			// The write's event comes after the read's; its bytes (Sent 4) had gone by then.
			events: []*Event{rd(15, "HTTP/1.1 200", 4), rd(16, "body", 4), withIDs(9, wr(20, "GET", 4)), rd(30, "next", 4)},
			want:   []string{"write GET@15 ids=9", "read HTTP/1.1 200@15", "read body@16", "read next@30"},
			held:   map[string]float64{"after_write": 2},
		},
		{
			name: "a keep-alive client: the second exchange's response first",
			events: []*Event{wr(10, "GET1", 5), rd(20, "R1", 5),
				rd(35, "R2", 9), wr(40, "GET2", 9), wr(50, "GET3", 13), rd(60, "R3", 13)},
			want: []string{"write GET1@10", "read R1@20", "write GET2@35", "read R2@35", "write GET3@50", "read R3@60"},
			held: map[string]float64{"after_write": 1},
		},
		{
			name:   "a server reads the next request before its response's event",
			events: []*Event{withIDs(1, rd(10, "REQ1", 1)), withIDs(2, rd(25, "REQ2", 6)), wr(20, "RESP1", 6), wr(30, "RESP2", 11)},
			want:   []string{"read REQ1@10 ids=1", "write RESP1@20", "read REQ2@25 ids=2", "write RESP2@30"},
			held:   map[string]float64{"after_write": 1},
		},
		{
			name: "bytes no event reports (sendfile): the read goes before the next write",
			events: []*Event{rd(10, "REQ1", 1), wr(20, "HEAD1", 6), rd(30, "REQ2", 106), wr(40, "HEAD2", 111),
				rd(50, "REQ3", 111)},
			want: []string{"read REQ1@10", "write HEAD1@20", "read REQ2@30", "write HEAD2@40", "read REQ3@50"},
			held: map[string]float64{"before_write": 1},
		},
		{
			name:   "a write never reported: the read goes on after holdFor, and the next does not wait",
			events: []*Event{wr(10, "GET", 4), rd(20, "R", 9), rd(20+holdFor+1, "S", 9), rd(20+holdFor+2, "T", 9)},
			want:   []string{"write GET@10", "read R@20", "read S@1000000021", "read T@1000000022"},
			held:   map[string]float64{"late": 1},
		},
		{
			name:   "the sweep feeds a read held too long",
			events: []*Event{wr(10, "GET", 4), rd(20, "R", 9)},
			sweep:  30 + holdFor,
			want:   []string{"write GET@10", "read R@20"},
			held:   map[string]float64{"late": 1},
		},
		{
			name:   "a close feeds what is held first",
			events: []*Event{wr(10, "GET", 4), rd(20, "R", 9)},
			close:  true,
			want:   []string{"write GET@10", "read R@20", "close@99"},
			held:   map[string]float64{"late": 1},
		},
		{
			name:   "a FIN is not a write to wait for",
			events: []*Event{wr(10, "GET", 4), rd(20, "R", 5)},
			want:   []string{"write GET@10", "read R@20"},
		},
		{
			name:   "the count wraps",
			events: []*Event{wr(10, "GET", 0xffff_fff0), rd(15, "R", 0x10), wr(20, "POST", 0x10)},
			want:   []string{"write GET@10", "write POST@15", "read R@15"},
			held:   map[string]float64{"after_write": 1},
		},
		{
			name:   "no write yet, traced from the start: a read past the SYN waits",
			events: []*Event{rd(10, "R", 5), wr(20, "GET", 5)},
			want:   []string{"write GET@10", "read R@10"},
			held:   map[string]float64{"after_write": 1},
		},
		{
			name:   "no write yet, found mid-stream: where the count began is unknown",
			events: []*Event{mid(rd(10, "R", 500)), mid(wr(20, "GET", 505))},
			want:   []string{"read R@10", "write GET@20"},
		},
		{
			name:   "no write yet, TLS plaintext: handshake bytes came first",
			events: []*Event{tls(rd(10, "R", 500)), tls(wr(20, "GET", 505))},
			want:   []string{"read R@10", "write GET@20"},
		},
		{
			name:   "a new connection whose only event is a held read is not forgotten by the sweep",
			events: []*Event{rd(700_000_000_000, "R", 5)},
			sweep:  700_000_000_001,
			then:   []*Event{wr(700_000_000_002, "GET", 5)},
			want:   []string{"write GET@700000000000", "read R@700000000000"},
			held:   map[string]float64{"after_write": 1},
		},
		{
			name:   "writes of two threads out of order: the count does not go back",
			events: []*Event{wr(10, "A", 10), wr(30, "C", 30), wr(20, "B", 20), rd(40, "R", 30)},
			want:   []string{"write A@10", "write C@30", "write B@20", "read R@40"},
		},
		{
			name:   "a write without a count after held reads: they came first",
			events: []*Event{wr(10, "GET", 4), rd(20, "R", 9), unstamped(wr(30, "X", 0))},
			want:   []string{"write GET@10", "read R@20", "write X@30"},
			held:   map[string]float64{"before_write": 1},
		},
		{
			name:   "a write whose count has a FIN more than its reads'",
			events: []*Event{wr(10, "GET", 4), rd(20, "R", 9), wr(30, "W", 10)},
			want:   []string{"write GET@10", "write W@20", "read R@20"},
			held:   map[string]float64{"after_write": 1},
		},
		{
			name:   "a source that does not stamp: as they come",
			events: []*Event{unstamped(rd(10, "R", 5)), unstamped(wr(20, "GET", 5))},
			want:   []string{"read R@10", "write GET@20"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			m := metrics.New()
			tb := New(Config{Protocols: Protocols{Fallback: orderLog{&log}}, Metrics: m})
			tb.Track(&probes.Process{PID: 1})
			for _, ev := range tc.events {
				tb.Handle(ev)
			}
			if tc.sweep != 0 {
				tb.Sweep(tc.sweep)
			}
			for _, ev := range tc.then {
				tb.Handle(ev)
			}
			if tc.close {
				tb.Handle(&Event{Kind: KindClose, PID: 1, Conn: 7, Chunk: wire.Chunk{Time: 99}})
			}
			if got, want := strings.Join(log, "\n"), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("fed:\n%s\nwant:\n%s", got, want)
			}
			for _, outcome := range []string{"after_write", "before_write", "late", "full"} {
				if got := float64(m.Value("weft_conntrack_reads_held_total", "outcome", outcome)); got != tc.held[outcome] {
					t.Errorf("%s: %v held, want %v", outcome, got, tc.held[outcome])
				}
			}
		})
	}
}

// TestReorderBounded: a connection holds at most maxHeld reads (and
// maxHeldBytes), then feeds them, in order, without the write.
func TestReorderBounded(t *testing.T) {
	var log []string
	m := metrics.New()
	tb := New(Config{Protocols: Protocols{Fallback: orderLog{&log}}, Metrics: m})
	tb.Track(&probes.Process{PID: 1})
	tb.Handle(wr(1, "GET", 4))
	for i := range maxHeld + 1 {
		tb.Handle(rd(uint64(10+i), fmt.Sprint(i), 9))
	}
	if len(log) != maxHeld+2 || log[1] != "read 0@10" || log[maxHeld+1] != fmt.Sprintf("read %d@%d", maxHeld, 10+maxHeld) {
		t.Errorf("fed %d: %q … %q", len(log), log[1], log[len(log)-1])
	}
	if got := m.Value("weft_conntrack_reads_held_total", "outcome", "full"); got != maxHeld+1 {
		t.Errorf("full = %v, want %d", got, maxHeld+1)
	}
	big := make([]byte, maxHeldBytes/2+1)
	tb.Handle(rd(100, string(big), 20))
	tb.Handle(rd(101, string(big), 20))
	if got := m.Value("weft_conntrack_reads_held_total", "outcome", "full"); got != maxHeld+3 {
		t.Errorf("full = %v after two big reads, want %d", got, maxHeld+3)
	}
	if c := tb.conns[connKey{1, 7}]; len(c.order.held) != 0 || c.order.heldBytes != 0 {
		t.Errorf("still held: %d reads, %d bytes", len(c.order.held), c.order.heldBytes)
	}
}
