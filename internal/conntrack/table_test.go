package conntrack

import (
	"fmt"
	"strings"
	"testing"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/wire"
)

// fake is a protocol that records what its parsers were fed, one log per
// table.
type fake struct {
	name   string
	prefix string // claims chunks starting with it; "" never claims
	log    *[]string
}

func (f fake) Name() string { return f.name }
func (f fake) Sniff(_ *Conn, ch wire.Chunk) bool {
	return f.prefix != "" && strings.HasPrefix(string(ch.Data), f.prefix)
}
func (f fake) NewParser(c *Conn) Parser { return &fakeParser{f: f, c: c} }

type fakeParser struct {
	f     fake
	c     *Conn
	feeds int
}

// Size: every chunk fed holds 1000 bytes.
func (p *fakeParser) Size() int { return 1000 * p.feeds }

func (p *fakeParser) Feed(ch wire.Chunk) {
	p.feeds++
	ids, ok := p.c.ChunkIDs(ch.Tag)
	*p.f.log = append(*p.f.log, fmt.Sprintf("%s feed %s tag=%d ids=%v/%d", p.f.name, ch.Data, ch.Tag, ok, ids.Span[0]))
}
func (p *fakeParser) Idle(uint64) { *p.f.log = append(*p.f.log, p.f.name+" idle") }
func (p *fakeParser) Close(now uint64) {
	s := fmt.Sprintf("%s close %d", p.f.name, now)
	if p.c.Process() == nil {
		// A span completed at close could not name its process.
		s += " without its process"
	}
	*p.f.log = append(*p.f.log, s)
}

func newFakeTable(log *[]string) *Table {
	return New(Config{Protocols: Protocols{
		Fallback: fake{name: "h1", log: log},
		Sniffed:  []Protocol{fake{name: "h2", prefix: "PRI", log: log}},
	}})
}

func data(pid uint32, conn uint64, t uint64, s string, span byte) *Event {
	ev := &Event{Kind: KindData, PID: pid, Conn: conn, Chunk: wire.Chunk{Time: t, Len: len(s), Data: []byte(s)}}
	if span != 0 {
		ev.IDs = IDs{Span: [8]byte{span}, Made: true}
	}
	return ev
}

func TestTable(t *testing.T) {
	tests := []struct {
		name   string
		events []*Event
		then   func(*Table)
		want   []string
	}{
		{
			name:   "fallback parses from the first chunk, with the kernel's IDs by tag",
			events: []*Event{data(1, 7, 10, "GET", 5), data(1, 7, 20, "200", 0)},
			want:   []string{"h1 feed GET tag=1 ids=true/5", "h1 feed 200 tag=2 ids=false/0"},
		},
		{
			name: "a sniffed protocol takes over and gets the early chunks again",
			events: []*Event{data(1, 7, 10, "SETTINGS", 0), data(1, 7, 20, "PRI *", 3),
				data(1, 7, 30, "HEADERS", 0)},
			want: []string{"h1 feed SETTINGS tag=1 ids=false/0",
				"h2 feed SETTINGS tag=1 ids=false/0", "h2 feed PRI * tag=2 ids=true/3", "h2 feed HEADERS tag=3 ids=false/0"},
		},
		{
			name: "no claim after the early chunks",
			events: []*Event{data(1, 7, 1, "a", 0), data(1, 7, 2, "b", 0), data(1, 7, 3, "c", 0),
				data(1, 7, 4, "d", 0), data(1, 7, 5, "PRI late", 0)},
			want: []string{"h1 feed a tag=1 ids=false/0", "h1 feed b tag=2 ids=false/0", "h1 feed c tag=3 ids=false/0",
				"h1 feed d tag=4 ids=false/0", "h1 feed PRI late tag=5 ids=false/0"},
		},
		{
			name:   "events of an untracked process are parked, not parsed",
			events: []*Event{data(2, 7, 10, "GET", 0)},
			want:   nil,
		},
		{
			name: "Track replays a process's parked events, as they were when they came",
			events: func() []*Event {
				ev := data(2, 7, 10, "GET", 4)
				return []*Event{ev, data(2, 7, 20, "200", 0), {Kind: KindClose, PID: 2, Conn: 7, Chunk: wire.Chunk{Time: 30}}}
			}(),
			then: func(tb *Table) { tb.Track(&probes.Process{PID: 2}) },
			want: []string{"h1 feed GET tag=1 ids=true/4", "h1 feed 200 tag=2 ids=false/0", "h1 close 30"},
		},
		{
			name:   "parked events expire: a process never tracked",
			events: []*Event{data(2, 7, 10, "GET", 0)},
			then: func(tb *Table) {
				tb.ExpireParked(10+parkFor+1, false)
				tb.Track(&probes.Process{PID: 2})
			},
			want: nil,
		},
		{
			name:   "close flushes",
			events: []*Event{data(1, 7, 10, "GET", 0), {Kind: KindClose, PID: 1, Conn: 7, Chunk: wire.Chunk{Time: 99}}},
			want:   []string{"h1 feed GET tag=1 ids=false/0", "h1 close 99"},
		},
		{
			name:   "untrack flushes the process's connections while the process is known",
			events: []*Event{data(1, 7, 10, "GET", 0), data(1, 8, 11, "GET", 0)},
			then: func(tb *Table) {
				tb.Untrack(1, 50)
				if tb.Conns() != 0 {
					panic("connections left")
				}
			},
			want: []string{"h1 feed GET tag=1 ids=false/0", "h1 feed GET tag=1 ids=false/0", "h1 close 50", "h1 close 50"},
		},
		{
			name:   "sweep lets parsers idle, then forgets silent connections",
			events: []*Event{data(1, 7, 10, "GET", 0)},
			then: func(tb *Table) {
				tb.Sweep(20)
				tb.Sweep(10 + forgetAfter + 1)
			},
			want: []string{"h1 feed GET tag=1 ids=false/0", "h1 idle", fmt.Sprintf("h1 close %d", uint64(10+forgetAfter+1))},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			tb := newFakeTable(&log)
			tb.Track(&probes.Process{PID: 1})
			for _, ev := range tc.events {
				tb.Handle(ev)
			}
			if tc.then != nil {
				tc.then(tb)
			}
			if strings.Join(log, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(log, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestParkCopies: a parked event keeps its bytes though the source reuses
// its buffer (the ring-buffer record), and the parking is bounded.
func TestParkCopies(t *testing.T) {
	var log []string
	tb := newFakeTable(&log)
	buf := []byte("GET")
	tb.Handle(&Event{Kind: KindData, PID: 3, Conn: 1, Chunk: wire.Chunk{Time: 1, Len: 3, Data: buf}})
	copy(buf, "XXX")
	for i := range maxParkedEvents + 10 {
		tb.Handle(data(3, 2, uint64(2+i), "x", 0))
	}
	tb.Track(&probes.Process{PID: 3})
	if len(log) == 0 || log[0] != "h1 feed GET tag=1 ids=false/0" {
		t.Fatalf("first replayed: %q", log)
	}
	if got := len(log); got != maxParkedEvents {
		t.Fatalf("%d events replayed, want the bound, %d", got, maxParkedEvents)
	}
	if tb.parkedBytes != 0 || len(tb.parked) != 0 {
		t.Fatalf("after Track: %d bytes, %d processes still parked", tb.parkedBytes, len(tb.parked))
	}
}

// TestIDsRing: IDs are found only for their own tag while the ring holds them.
func TestIDsRing(t *testing.T) {
	var log []string
	tb := newFakeTable(&log)
	tb.Track(&probes.Process{PID: 1})
	for i := range 20 {
		tb.Handle(data(1, 7, uint64(i), "x", byte(i+1)))
	}
	c := tb.conns[connKey{1, 7}]
	if _, ok := c.ChunkIDs(3); ok {
		t.Error("IDs of tag 3 still found after 20 chunks")
	}
	if ids, ok := c.ChunkIDs(20); !ok || ids.Span[0] != 20 {
		t.Errorf("tag 20: %v %v", ok, ids.Span[0])
	}
	if _, ok := c.ChunkIDs(0); ok {
		t.Error("tag 0 has IDs")
	}
}

// TestBounds: past its count or byte bound the table drops the least
// recently active connections, counts them, and a dropped connection's
// next bytes start a mid-stream state.
func TestBounds(t *testing.T) {
	var log []string
	met := metrics.New()
	tb := New(Config{Metrics: met, MaxConns: 3, MaxBytes: 1 << 30, Protocols: Protocols{Fallback: fake{name: "h1", log: &log}}})
	tb.Track(&probes.Process{PID: 1})
	for conn := uint64(1); conn <= 4; conn++ {
		tb.Handle(data(1, conn, conn, "x", 0))
	}
	tb.Handle(data(1, 2, 10, "y", 0)) // 2 is now the most recent; 1 went at 4
	tb.Handle(data(1, 5, 11, "z", 0)) // evicts 3
	if tb.Conns() != 3 {
		t.Fatalf("%d connections, want 3", tb.Conns())
	}
	for _, gone := range []uint64{1, 3} {
		if _, ok := tb.conns[connKey{1, gone}]; ok {
			t.Errorf("connection %d kept", gone)
		}
	}
	if n := met.Value("weft_conntrack_evictions_total", "reason", "count"); n != 2 {
		t.Errorf("%d evictions counted, want 2", n)
	}
	tb.Handle(data(1, 1, 12, "again", 0))
	if c := tb.conns[connKey{1, 1}]; c == nil || !c.MidStream {
		t.Error("an evicted connection's new state is not mid-stream")
	}

	// The byte bound: every chunk fed holds 1000 bytes; 5000 keep five.
	log = nil
	tb = New(Config{Metrics: met, MaxBytes: 5000, Protocols: Protocols{Fallback: fake{name: "b", log: &log}}})
	tb.Track(&probes.Process{PID: 1})
	for conn := uint64(1); conn <= 20; conn++ {
		tb.Handle(data(1, conn, conn, "x", 0))
		if tb.bytes > 5000 && tb.Conns() > 1 {
			t.Fatalf("after %d connections: %d bytes in %d connections", conn, tb.bytes, tb.Conns())
		}
	}
	if met.Value("weft_conntrack_evictions_total", "reason", "bytes") == 0 {
		t.Error("no eviction for bytes counted")
	}
	tb.FlushAll(0)
	if tb.bytes != 0 || tb.lru.next != &tb.lru {
		t.Errorf("after FlushAll: %d bytes, ring not empty", tb.bytes)
	}
}
