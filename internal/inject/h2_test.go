package inject

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/weft-dev/weft/internal/goinspect"
	"github.com/weft-dev/weft/internal/testutil/kernel"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 wire constants the tests build frames with.
const (
	h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

	h2Data         = 0
	h2Headers      = 1
	h2Settings     = 4
	h2Ping         = 6
	h2Continuation = 9

	h2EndStream  = 0x1
	h2EndHeaders = 0x4
	h2Padded     = 0x8
	h2Priority   = 0x20

	// h2_ids flags (bpf/sockio.h)
	ctxSampled    = 2
	h2Injected    = 4
	h2AppHeader   = 8
	h2AppState    = 16
	h2Unchecked   = 32
	h2FieldLength = 69 // INJ_H2_FIELD_LEN
)

var h2Counters = []string{"h2_injected", "h2_no_ctx", "h2_app_header", "h2_split", "h2_too_long", "h2_lost", "h2_repeat"}

// h2Injector is an injector loaded with procs and h2_ids maps the test
// owns, with the test process in procs (its goroutine id offset).
type h2Injector struct {
	*Injector
	procs, ids *ebpf.Map
	member     string // the tracestate member it adds ("" none)
}

func startH2Injector(t *testing.T, h Hook) *h2Injector { return startH2InjectorState(t, h, "") }

// startH2InjectorState starts one that adds tracestate weft=cluster.
func startH2InjectorState(t *testing.T, h Hook, cluster string) *h2Injector {
	t.Helper()
	return startH2InjectorWith(t, h, cluster, 0)
}

// startH2InjectorWith starts one with the BPF object's fault knob set.
func startH2InjectorWith(t *testing.T, h Hook, cluster string, fault uint32) *h2Injector {
	t.Helper()
	kernel.Require(t)
	spec, err := loadInject()
	if err != nil {
		t.Fatal(err)
	}
	maps := map[string]*ebpf.Map{}
	for _, name := range []string{"procs", "h2_ids"} {
		m, err := ebpf.NewMap(spec.Maps[name])
		if err != nil {
			t.Fatalf("creating %s: %v", name, err)
		}
		t.Cleanup(func() { m.Close() })
		maps[name] = m
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := goinspect.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	off, src, err := goinspect.GoidOffset(b)
	b.Close()
	if err != nil || off == 0 {
		t.Fatalf("goid offset of the test binary: %d (%v), %v", off, src, err)
	}
	cfg := injectProcCfg{GoidOffset: off}
	if err := maps["procs"].Put(uint32(os.Getpid()), &cfg); err != nil {
		t.Fatal(err)
	}
	inj := New(nil, "")
	inj.SetHook(h)
	inj.prepare = setFault(fault)
	inj.UseMaps(maps)
	if err := inj.SetTraceState("weft", cluster); err != nil {
		t.Fatal(err)
	}
	if err := inj.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := inj.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	trackSelf(t, inj)
	member := ""
	if cluster != "" {
		member = "weft=" + cluster
	}
	return &h2Injector{Injector: inj, procs: maps["procs"], ids: maps["h2_ids"], member: member}
}

// startRecorder listens for one connection and hands back every byte it
// received once the peer has shut down its write side.
func startRecorder(t *testing.T) (string, <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(got)
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	}()
	return ln.Addr().String(), got
}

// h2Conn is a traced client connection whose every write is made by one
// goroutine, locked to its thread: the goroutine the sk_msg program finds
// at fs:-8, whose id keys the h2_ids entries.
type h2Conn struct {
	c      *net.TCPConn
	cookie uint64
	goid   uint64
	in     chan []byte
	out    chan error
	once   sync.Once
}

// goid parses the calling goroutine's id from its stack trace header.
func goid() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(strings.TrimPrefix(string(buf), "goroutine "))
	id, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		panic(fmt.Sprintf("goroutine id from %q: %v", buf, err))
	}
	return id
}

func dialH2(t *testing.T, inj *h2Injector, addr string) *h2Conn {
	t.Helper()
	h := dialH2Untraced(t, addr)
	if !waitFor(func() bool { return inj.SockhashHas(h.cookie) }) {
		t.Fatal("the traced connection is not in the sockhash")
	}
	return h
}

// dialH2Untraced connects without waiting for the sockhash (a connection
// made while its process is not tracked stays out of it).
func dialH2Untraced(t *testing.T, addr string) *h2Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.(*net.TCPConn)
	tc.SetNoDelay(true)
	h := &h2Conn{c: tc, cookie: cookieOf(t, c), in: make(chan []byte), out: make(chan error)}
	t.Cleanup(func() { h.finish(); c.Close() })
	ready := make(chan uint64)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		ready <- goid()
		for b := range h.in {
			tc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			n, err := tc.Write(b)
			if err == nil && n != len(b) {
				err = fmt.Errorf("wrote %d of %d", n, len(b))
			}
			h.out <- err
		}
	}()
	h.goid = <-ready
	return h
}

// write sends b in one sendmsg, from the connection's goroutine.
func (h *h2Conn) write(t *testing.T, b []byte) {
	t.Helper()
	h.in <- b
	if err := <-h.out; err != nil {
		t.Fatalf("write: %v", err)
	}
}

// finish stops the writer goroutine and shuts down the write side.
func (h *h2Conn) finish() {
	h.once.Do(func() {
		close(h.in)
		h.c.CloseWrite()
	})
}

func h2FrameBytes(typ, flags byte, sid uint32, payload []byte) []byte {
	b := make([]byte, 9, 9+len(payload))
	b[0], b[1], b[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	b[3], b[4] = typ, flags
	binary.BigEndian.PutUint32(b[5:], sid)
	return append(b, payload...)
}

// tpField is the field the injector appends (INJ_H2_FIELD_LEN bytes).
func tpField(value string) []byte {
	b := append([]byte{0x00, 11}, "traceparent"...)
	b = append(b, byte(len(value)))
	return append(b, value...)
}

func tpValue(s injectH2Span) string {
	f := "00"
	if s.Flags&ctxSampled != 0 {
		f = "01"
	}
	return fmt.Sprintf("00-%s-%s-%s", hex.EncodeToString(s.TraceId[:]), hex.EncodeToString(s.SpanId[:]), f)
}

func newSpan(flags uint8) injectH2Span {
	var s injectH2Span
	rand.Read(s.TraceId[:])
	rand.Read(s.SpanId[:])
	rand.Read(s.ParentId[:])
	s.Flags = flags
	return s
}

// h2Frame is one frame of a test connection and what the server must get.
type h2Frame struct {
	typ, flags byte
	sid        uint32
	payload    []byte
	fields     []hpack.HeaderField // HEADERS: the block's fields (ends with END_HEADERS somewhere)
	inject     bool                // HEADERS: the field must be appended
	appState   bool                // HEADERS: without weft's tracestate (the app's seen on the wire)
	// HEADERS whose block the injector rewrites (a forwarded traceparent):
	// the payload the server must get, and the fields it decodes.
	wantPayload []byte
	wantFields  []hpack.HeaderField
}

func (f h2Frame) wire() []byte { return h2FrameBytes(f.typ, f.flags, f.sid, f.payload) }

// h2Case is one connection: the preface, then frames cut into writes.
type h2Case struct {
	name    string
	frames  []h2Frame
	cuts    []int // offsets into the frame bytes (after the preface) where a new write starts
	joined  bool  // the preface shares the first write with the frames
	entries map[uint32]injectH2Span
	other   map[uint32]injectH2Span // entries filed under another goroutine
	want    map[string]uint64       // h2 counter deltas (others: 0)
}

// h2Builder makes frames with one HPACK encoder per connection, so that
// the blocks use (and the decoder must keep) the dynamic table.
type h2Builder struct {
	buf bytes.Buffer
	enc *hpack.Encoder
}

func newH2Builder() *h2Builder {
	b := &h2Builder{}
	b.enc = hpack.NewEncoder(&b.buf)
	return b
}

func (b *h2Builder) block(fields []hpack.HeaderField) []byte {
	b.buf.Reset()
	for _, f := range fields {
		b.enc.WriteField(f)
	}
	return append([]byte(nil), b.buf.Bytes()...)
}

func grpcFields(path string, extra ...hpack.HeaderField) []hpack.HeaderField {
	f := []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path}, {Name: ":authority", Value: "127.0.0.1:50051"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
		{Name: "x-custom", Value: "v-" + path},
	}
	return append(f, extra...)
}

func (b *h2Builder) headers(sid uint32, inject bool, extra ...hpack.HeaderField) h2Frame {
	fields := grpcFields(fmt.Sprintf("/svc/M%d", sid), extra...)
	return h2Frame{typ: h2Headers, flags: h2EndHeaders, sid: sid, payload: b.block(fields), fields: fields, inject: inject}
}

func settingsFrame() h2Frame {
	return h2Frame{typ: h2Settings, payload: []byte{0, 4, 0, 0x10, 0, 0, 0, 5, 0, 0, 0x40, 0}}
}

func dataFrame(sid uint32, n int, flags byte) h2Frame {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + int(sid))
	}
	return h2Frame{typ: h2Data, flags: flags, sid: sid, payload: p}
}

// runH2 sends the case on a new connection and checks every byte the
// server got, the header blocks it decodes, the counters and the entries.
func runH2(t *testing.T, inj *h2Injector, tc h2Case) {
	addr, got := startRecorder(t)
	h := dialH2(t, inj, addr)
	tgid := uint32(os.Getpid())
	var keys []injectH2Key
	for sid, s := range tc.entries {
		k := injectH2Key{Tgid: tgid, StreamId: sid, Goid: h.goid}
		if err := inj.ids.Put(&k, &s); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	for sid, s := range tc.other {
		k := injectH2Key{Tgid: tgid, StreamId: sid, Goid: h.goid + 1}
		if err := inj.ids.Put(&k, &s); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	t.Cleanup(func() {
		for _, k := range keys {
			inj.ids.Delete(&k)
		}
	})

	// What is sent, and what must arrive.
	var sent, want bytes.Buffer
	injected := map[uint32]bool{}
	var blocks [][]hpack.HeaderField
	for _, f := range tc.frames {
		sent.Write(f.wire())
		if f.wantPayload != nil {
			want.Write(h2FrameBytes(f.typ, f.flags, f.sid, f.wantPayload))
			blocks = append(blocks, f.wantFields)
			injected[f.sid] = true
			continue
		}
		if f.inject {
			value := tpValue(tc.entries[f.sid])
			added := tpField(value)
			if inj.member != "" && tc.entries[f.sid].Flags&h2AppState == 0 && !f.appState {
				// As an independent encoder writes it: a literal without
				// indexing, name and value raw.
				added = append(added, 0x00, 10)
				added = append(added, "tracestate"...)
				added = append(append(added, byte(len(inj.member))), inj.member...)
			}
			want.Write(h2FrameBytes(f.typ, f.flags, f.sid, append(append([]byte(nil), f.payload...), added...)))
			injected[f.sid] = true
		} else {
			want.Write(f.wire())
		}
		if f.fields != nil {
			b := append([]hpack.HeaderField(nil), f.fields...)
			if f.inject {
				b = append(b, hpack.HeaderField{Name: "traceparent", Value: tpValue(tc.entries[f.sid])})
				if inj.member != "" && tc.entries[f.sid].Flags&h2AppState == 0 && !f.appState {
					b = append(b, hpack.HeaderField{Name: "tracestate", Value: inj.member})
				}
			}
			blocks = append(blocks, b)
		}
	}
	var writes [][]byte
	stream := sent.Bytes()
	last := 0
	for _, c := range tc.cuts {
		writes = append(writes, stream[last:c])
		last = c
	}
	writes = append(writes, stream[last:])
	if tc.joined {
		writes[0] = append([]byte(h2Preface), writes[0]...)
	} else {
		writes = append([][]byte{[]byte(h2Preface)}, writes...)
	}

	before := inj.Counters()
	for _, w := range writes {
		h.write(t, w)
	}
	after := inj.Counters()
	h.finish()
	var rcvd []byte
	select {
	case rcvd = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("server got no EOF")
	}

	for name := range after {
		d := after[name] - before[name]
		w := tc.want[name]
		if strings.HasPrefix(name, "h2_") || name == "write_fail" || name == "no_ctx" || name == "not_http" ||
			name == "forward_rewritten" {
			if d != w {
				t.Errorf("counter %s grew by %d, want %d", name, d, w)
			}
		}
	}

	wantAll := append([]byte(h2Preface), want.Bytes()...)
	if !bytes.Equal(rcvd, wantAll) {
		t.Errorf("server got %d bytes, want %d; first difference at %d\ngot  %x\nwant %x",
			len(rcvd), len(wantAll), firstDiff(rcvd, wantAll), around(rcvd, firstDiff(rcvd, wantAll)), around(wantAll, firstDiff(rcvd, wantAll)))
	}
	checkBlocks(t, rcvd, blocks)

	for sid, s := range tc.entries {
		var now injectH2Span
		k := injectH2Key{Tgid: tgid, StreamId: sid, Goid: h.goid}
		if err := inj.ids.Lookup(&k, &now); err != nil {
			t.Errorf("stream %d: entry gone: %v", sid, err)
			continue
		}
		wantFlags := s.Flags
		if injected[sid] {
			wantFlags |= h2Injected
		}
		if now.Flags != wantFlags || now.TraceId != s.TraceId || now.SpanId != s.SpanId || now.ParentId != s.ParentId {
			t.Errorf("stream %d: entry flags %#x, want %#x (ids changed: %v)", sid, now.Flags, wantFlags,
				now.TraceId != s.TraceId || now.SpanId != s.SpanId || now.ParentId != s.ParentId)
		}
	}
	for sid, s := range tc.other {
		var now injectH2Span
		k := injectH2Key{Tgid: tgid, StreamId: sid, Goid: h.goid + 1}
		if err := inj.ids.Lookup(&k, &now); err != nil || now.Flags != s.Flags {
			t.Errorf("stream %d: another goroutine's entry: flags %#x, %v", sid, now.Flags, err)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func around(b []byte, i int) []byte { return b[max(0, i-16):min(len(b), i+32)] }

// checkBlocks parses the frames the server received and decodes every
// header block (HEADERS and its CONTINUATIONs) with one decoder, as the
// peer would, comparing each with the fields expected.
func checkBlocks(t *testing.T, rcvd []byte, want [][]hpack.HeaderField) {
	t.Helper()
	if !bytes.HasPrefix(rcvd, []byte(h2Preface)) {
		t.Errorf("no preface at the start")
		return
	}
	b := rcvd[len(h2Preface):]
	dec := hpack.NewDecoder(4096, nil)
	var got [][]hpack.HeaderField
	var block []byte
	for len(b) > 0 {
		if len(b) < 9 {
			t.Errorf("%d bytes after the last frame", len(b))
			return
		}
		n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
		typ, flags := b[3], b[4]
		if len(b) < 9+n {
			t.Errorf("frame type %d of length %d runs past the end (%d left)", typ, n, len(b)-9)
			return
		}
		p := b[9 : 9+n]
		b = b[9+n:]
		switch typ {
		case h2Headers:
			if flags&h2Padded != 0 {
				pad := int(p[0])
				p = p[1 : len(p)-pad]
			}
			if flags&h2Priority != 0 {
				p = p[5:]
			}
			block = append([]byte(nil), p...)
		case h2Continuation:
			block = append(block, p...)
		default:
			continue
		}
		if flags&h2EndHeaders == 0 {
			continue
		}
		fields, err := dec.DecodeFull(block)
		if err != nil {
			t.Errorf("decoding header block %d: %v", len(got), err)
			return
		}
		got = append(got, fields)
	}
	if len(got) != len(want) {
		t.Errorf("server decoded %d header blocks, want %d", len(got), len(want))
		return
	}
	for i := range got {
		if g, w := fmt.Sprint(got[i]), fmt.Sprint(want[i]); g != w {
			t.Errorf("header block %d:\ngot  %s\nwant %s", i, clip(g), clip(w))
		}
	}
}

func clip(s string) string {
	if len(s) > 400 {
		return s[:200] + " ... " + s[len(s)-200:]
	}
	return s
}

func offsets(frames []h2Frame) []int {
	o := []int{0}
	for _, f := range frames {
		o = append(o, o[len(o)-1]+9+len(f.payload))
	}
	return o
}

func TestH2Inject(t *testing.T) { eachHook(t, testH2Inject) }

func testH2Inject(t *testing.T, h Hook) {
	for _, cluster := range []string{"", "aws-us-east-1-shop-01"} {
		t.Run("tracestate="+cluster, func(t *testing.T) { h2InjectCases(t, startH2InjectorState(t, h, cluster)) })
	}
}

func h2InjectCases(t *testing.T, inj *h2Injector) {
	var cases []h2Case

	{ // 1: preface, then SETTINGS + HEADERS + DATA in one write.
		b := newH2Builder()
		cases = append(cases, h2Case{
			name:    "settings headers data",
			frames:  []h2Frame{settingsFrame(), b.headers(1, true), dataFrame(1, 40, h2EndStream)},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled | 1)},
			want:    map[string]uint64{"h2_injected": 1},
		})
	}
	{ // The preface and the frames in one write; not sampled; PRIORITY set.
		b := newH2Builder()
		hf := b.headers(1, true)
		hf.flags |= h2Priority
		hf.payload = append([]byte{0, 0, 0, 0, 15}, hf.payload...)
		cases = append(cases, h2Case{
			name:    "preface joined, priority, unsampled",
			frames:  []h2Frame{settingsFrame(), hf, dataFrame(1, 5, h2EndStream)},
			joined:  true,
			entries: map[uint32]injectH2Span{1: newSpan(0)},
			want:    map[string]uint64{"h2_injected": 1},
		})
	}
	{ // HEADERS as the last frame of a write, then the next request's.
		b := newH2Builder()
		fr := []h2Frame{settingsFrame(), b.headers(1, true), dataFrame(1, 20, h2EndStream), b.headers(3, true)}
		cases = append(cases, h2Case{
			name:    "headers last in write",
			frames:  fr,
			cuts:    []int{offsets(fr)[2]},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled), 3: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 2},
		})
	}
	{ // 2: three requests in one write, entries for two.
		b := newH2Builder()
		cases = append(cases, h2Case{
			name: "three streams one write",
			frames: []h2Frame{
				b.headers(3, true), dataFrame(3, 10, h2EndStream),
				b.headers(5, false), dataFrame(5, 11, h2EndStream),
				b.headers(7, true), dataFrame(7, 12, h2EndStream),
			},
			entries: map[uint32]injectH2Span{3: newSpan(ctxSampled), 7: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 2, "h2_no_ctx": 1},
		})
	}
	{ // The entry is another goroutine's: not this stream's.
		b := newH2Builder()
		cases = append(cases, h2Case{
			name:   "entry of another goroutine",
			frames: []h2Frame{b.headers(1, false), dataFrame(1, 10, h2EndStream)},
			other:  map[uint32]injectH2Span{1: newSpan(ctxSampled)},
			want:   map[string]uint64{"h2_no_ctx": 1},
		})
	}
	{ // 3: a DATA frame's payload spans two writes.
		b := newH2Builder()
		fr := []h2Frame{settingsFrame(), b.headers(1, true), dataFrame(1, 3000, 0), b.headers(3, true), dataFrame(3, 30, h2EndStream)}
		cases = append(cases, h2Case{
			name:    "data split in two",
			frames:  fr,
			cuts:    []int{offsets(fr)[2] + 9 + 1000},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled), 3: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 2},
		})
	}
	{ // A DATA frame over three writes (one wholly inside it), and one
		// that ends exactly where a write does.
		b := newH2Builder()
		fr := []h2Frame{b.headers(1, true), dataFrame(1, 10000, 0), dataFrame(1, 500, 0), b.headers(3, true), dataFrame(3, 7, h2EndStream)}
		o := offsets(fr)
		cases = append(cases, h2Case{
			name:    "data split in three",
			frames:  fr,
			cuts:    []int{o[1] + 100, o[1] + 5000, o[1] + 9 + 9000, o[3]},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled), 3: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 2},
		})
	}
	// 4: a frame header cut by the end of a write, after k bytes.
	for _, k := range []int{1, 4, 8} {
		b := newH2Builder()
		fr := []h2Frame{settingsFrame(), b.headers(1, true), dataFrame(1, 100, 0), b.headers(3, true), dataFrame(3, 9, h2EndStream)}
		cases = append(cases, h2Case{
			name:    fmt.Sprintf("frame header cut after %d", k),
			frames:  fr,
			cuts:    []int{offsets(fr)[2] + k},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled), 3: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 2},
		})
	}
	{ // The cut header's frame runs past the next write too.
		b := newH2Builder()
		fr := []h2Frame{b.headers(1, true), dataFrame(1, 5000, 0), b.headers(3, true)}
		o := offsets(fr)
		cases = append(cases, h2Case{
			name:    "cut header, long frame",
			frames:  fr,
			cuts:    []int{o[1] + 4, o[1] + 9 + 2000},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled), 3: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 2},
		})
	}
	{ // The cut header is a HEADERS frame's: split, the next one gets it.
		b := newH2Builder()
		fr := []h2Frame{dataFrame(1, 10, 0), b.headers(3, false), b.headers(5, true)}
		cases = append(cases, h2Case{
			name:    "cut headers frame header",
			frames:  fr,
			cuts:    []int{offsets(fr)[1] + 5},
			entries: map[uint32]injectH2Span{3: newSpan(ctxSampled), 5: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_split": 1, "h2_injected": 1},
		})
	}
	{ // HEADERS deep in a large write (later scatterlist elements), one
		// straddling 32 KiB, and one at the 16 KiB bound exactly.
		b := newH2Builder()
		fr := []h2Frame{b.headers(1, true), dataFrame(1, 16384, 0), dataFrame(1, 16384-9-30, 0), b.headers(3, true),
			dataFrame(3, 16000, 0), b.headers(5, true)}
		// The last field by hand (literal without indexing, raw string), so
		// that the frame reaches exactly 16384 bytes with the field added.
		edge := b.headers(7, true)
		added := h2FieldLength
		if inj.member != "" {
			added += 2 + len("tracestate") + 1 + len(inj.member)
		}
		n := 16384 - added - len(edge.payload) - 2 - len("x-pad") - 3
		edge.payload = append(edge.payload, 0x00, 5)
		edge.payload = append(edge.payload, "x-pad"...)
		edge.payload = append(edge.payload, 127, byte((n-127)&127|128), byte((n-127)>>7))
		edge.payload = append(edge.payload, strings.Repeat("{", n)...)
		edge.fields = append(edge.fields, hpack.HeaderField{Name: "x-pad", Value: strings.Repeat("{", n)})
		fr = append(fr, edge, dataFrame(7, 100, h2EndStream))
		if n := len(edge.payload) + added; n != 16384 {
			t.Fatalf("edge frame would be %d", n)
		}
		cases = append(cases, h2Case{
			name:    "large write",
			frames:  fr,
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled), 3: newSpan(ctxSampled), 5: newSpan(ctxSampled), 7: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 4},
		})
	}
	{ // A frame header cut over three writes (the middle one shorter than
		// the rest of the header): its bytes are collected until whole,
		// and the frames after it keep their alignment.
		b := newH2Builder()
		fr := []h2Frame{dataFrame(1, 10, 0), dataFrame(1, 10, 0), b.headers(3, true)}
		o := offsets(fr)
		cases = append(cases, h2Case{
			name:    "frame header over three writes",
			frames:  fr,
			cuts:    []int{o[1] + 3, o[1] + 6},
			entries: map[uint32]injectH2Span{3: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 1},
		})
	}
	{ // 5: HEADERS without END_HEADERS, then CONTINUATION.
		b := newH2Builder()
		h1, cont := continued(b.headers(1, false))
		cases = append(cases, h2Case{
			name:    "continuation",
			frames:  []h2Frame{h1, cont, dataFrame(1, 10, h2EndStream), b.headers(3, true)},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled), 3: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_split": 1, "h2_injected": 1},
		})
	}
	{ // A HEADERS frame cut by the end of a write.
		b := newH2Builder()
		fr := []h2Frame{b.headers(1, false), dataFrame(1, 10, h2EndStream), b.headers(3, true)}
		cases = append(cases, h2Case{
			name:    "headers frame cut",
			frames:  fr,
			cuts:    []int{9 + 10},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled), 3: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_split": 1, "h2_injected": 1},
		})
	}
	{ // The application's own traceparent.
		b := newH2Builder()
		appTP := hpack.HeaderField{Name: "traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
		cases = append(cases, h2Case{
			name:    "app header",
			frames:  []h2Frame{b.headers(1, false, appTP), dataFrame(1, 10, h2EndStream), b.headers(3, true)},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled | h2AppHeader), 3: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_app_header": 1, "h2_injected": 1},
		})
	}
	{ // The application's own tracestate (no traceparent): weft's
		// traceparent goes in, its tracestate member does not (HPACK may
		// hold the app's list coded or indexed: no merge, no second list).
		b := newH2Builder()
		appTS := hpack.HeaderField{Name: "tracestate", Value: "congo=t61rcWkgMzE"}
		cases = append(cases, h2Case{
			name:    "app tracestate",
			frames:  []h2Frame{b.headers(1, true, appTS), dataFrame(1, 10, h2EndStream), b.headers(3, true)},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled | h2AppState), 3: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 2},
		})
	}
	{ // Trailers (a second HEADERS on the stream) in a later write.
		b := newH2Builder()
		tr := h2Frame{typ: h2Headers, flags: h2EndHeaders | h2EndStream, sid: 1}
		tr.fields = []hpack.HeaderField{{Name: "grpc-status", Value: "0"}}
		tr.payload = b.block(tr.fields)
		fr := []h2Frame{b.headers(1, true), dataFrame(1, 10, 0), tr}
		cases = append(cases, h2Case{
			name:    "trailers repeat",
			frames:  fr,
			cuts:    []int{offsets(fr)[2]},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 1, "h2_repeat": 1},
		})
	}
	{ // PADDED, and a block that would pass 16 KiB.
		b := newH2Builder()
		pd := b.headers(1, false)
		pd.flags |= h2Padded
		pd.payload = append(append([]byte{3}, pd.payload...), 0, 0, 0)
		big := b.headers(3, false, hpack.HeaderField{Name: "x-big", Value: strings.Repeat("{", 16300)})
		cases = append(cases, h2Case{
			name:    "padded, too long",
			frames:  []h2Frame{pd, big, b.headers(5, true)},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled), 3: newSpan(ctxSampled), 5: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_too_long": 2, "h2_injected": 1},
		})
	}
	{ // An even stream (no client request): ignored.
		b := newH2Builder()
		cases = append(cases, h2Case{
			name:    "even stream",
			frames:  []h2Frame{b.headers(2, false), b.headers(1, true)},
			entries: map[uint32]injectH2Span{2: newSpan(ctxSampled), 1: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 1},
		})
	}
	{ // A burst of small frames in one message (a loopy writer flushing
		// hundreds of concurrent calls): the walk keeps up.
		b := newH2Builder()
		var fr []h2Frame
		for range 300 {
			fr = append(fr, h2Frame{typ: h2Ping, payload: make([]byte, 8)})
		}
		fr = append(fr, b.headers(1, true))
		cases = append(cases, h2Case{
			name:    "300 frames in one message",
			frames:  fr,
			cuts:    []int{offsets(fr)[300]},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled)},
			want:    map[string]uint64{"h2_injected": 1},
		})
	}

	cases = append(cases, uncheckedCases()...)
	cases = append(cases, forwardCases()...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runH2(t, inj, tc) })
	}
	t.Logf("counters: %v", inj.Counters())
}

// continued splits a HEADERS frame's block in two: HEADERS without
// END_HEADERS, then a CONTINUATION with the rest.
func continued(h h2Frame) (first, cont h2Frame) {
	half := len(h.payload) / 2
	cont = h2Frame{typ: h2Continuation, flags: h2EndHeaders, sid: h.sid, payload: h.payload[half:]}
	h.payload, h.flags = h.payload[:half], 0
	return h, cont
}

// uncheckedCases: requests whose probe cannot see their headers (net/http's
// HTTP/2 client files them H2_UNCHECKED). The injector reads the
// connection's own header blocks for a traceparent or tracestate name, as
// Go's encoder writes them (Huffman, then by dynamic-table index) or as
// another writes them (raw), and stays out for good once it saw one, or
// once a block went unread.
func uncheckedCases() []h2Case {
	var cases []h2Case
	tp := hpack.HeaderField{Name: "traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	ts := hpack.HeaderField{Name: "tracestate", Value: "congo=t61rcWkgMzE"}
	{ // No header of the app's: every request gets weft's.
		b := newH2Builder()
		cases = append(cases, h2Case{
			name:    "unchecked, none of the app's",
			frames:  []h2Frame{settingsFrame(), b.headers(1, true), dataFrame(1, 10, h2EndStream), b.headers(3, true)},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled | h2Unchecked), 3: newSpan(h2Unchecked)},
			want:    map[string]uint64{"h2_injected": 2},
		})
	}
	{ // The app's traceparent on the second request and the third (which
		// sends the name by its dynamic-table index) and the fifth (the
		// whole field by index) are left alone; the fourth, without one,
		// gets weft's: the injector follows the encoder's table.
		b := newH2Builder()
		tp2 := tp
		tp2.Value = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
		cases = append(cases, h2Case{
			name: "unchecked, the app's traceparent",
			frames: []h2Frame{b.headers(1, true), b.headers(3, false, tp), b.headers(5, false, tp2),
				b.headers(7, true), b.headers(9, false, tp2)},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled | h2Unchecked), 3: newSpan(ctxSampled | h2Unchecked),
				5: newSpan(ctxSampled | h2Unchecked), 7: newSpan(ctxSampled | h2Unchecked), 9: newSpan(ctxSampled | h2Unchecked)},
			want: map[string]uint64{"h2_injected": 2, "h2_app_header": 3},
		})
	}
	{ // Seen in a request weft has no IDs for, before any it has.
		b := newH2Builder()
		cases = append(cases, h2Case{
			name:    "unchecked, the app's traceparent on a request without IDs",
			frames:  []h2Frame{b.headers(1, false, tp), b.headers(3, true), b.headers(5, false, tp)},
			entries: map[uint32]injectH2Span{3: newSpan(ctxSampled | h2Unchecked), 5: newSpan(ctxSampled | h2Unchecked)},
			want:    map[string]uint64{"h2_no_ctx": 1, "h2_injected": 1, "h2_app_header": 1},
		})
	}
	{ // The app's tracestate last in the block, its value one byte: the
		// name is found though the block ends 10 bytes after it.
		b := newH2Builder()
		short := hpack.HeaderField{Name: "tracestate", Value: "k"}
		f1 := b.headers(1, true, short)
		f1.appState = true
		cases = append(cases, h2Case{
			name:    "unchecked, the app's short tracestate at the block's end",
			frames:  []h2Frame{f1},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled | h2Unchecked)},
			want:    map[string]uint64{"h2_injected": 1},
		})
	}
	{ // The app's tracestate: weft's traceparent goes in, its member not.
		b := newH2Builder()
		f1, f3 := b.headers(1, true, ts), b.headers(3, true, ts)
		f1.appState, f3.appState = true, true
		cases = append(cases, h2Case{
			name:    "unchecked, the app's tracestate",
			frames:  []h2Frame{f1, f3},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled | h2Unchecked), 3: newSpan(ctxSampled | h2Unchecked)},
			want:    map[string]uint64{"h2_injected": 2},
		})
	}
	{ // Names written raw (no Huffman), as some encoders do.
		sensitive := tp
		sensitive.Sensitive = true // never indexed, below
		fields := append(grpcFields("/svc/raw"), sensitive)
		var block []byte
		for _, f := range fields[:len(fields)-1] {
			block = append(block, 0x00, byte(len(f.Name)))
			block = append(block, f.Name...)
			block = append(append(block, byte(len(f.Value))), f.Value...)
		}
		block = append(append(block, 0x10, 11), "traceparent"...) // never indexed
		block = append(append(block, byte(len(tp.Value))), tp.Value...)
		raw := h2Frame{typ: h2Headers, flags: h2EndHeaders, sid: 1, payload: block, fields: fields}
		b := newH2Builder()
		cases = append(cases, h2Case{
			name:    "unchecked, the app's traceparent raw",
			frames:  []h2Frame{raw, b.headers(3, true)},
			entries: map[uint32]injectH2Span{1: newSpan(ctxSampled | h2Unchecked), 3: newSpan(ctxSampled | h2Unchecked)},
			want:    map[string]uint64{"h2_app_header": 1, "h2_injected": 1},
		})
	}
	{ // A block cut between two messages goes unread.
		b := newH2Builder()
		fr := []h2Frame{b.headers(1, false), b.headers(3, false)}
		cases = append(cases, h2Case{
			name:    "unchecked after a block cut between messages",
			frames:  fr,
			cuts:    []int{9 + 10},
			entries: map[uint32]injectH2Span{3: newSpan(ctxSampled | h2Unchecked)},
			want:    map[string]uint64{"h2_split": 1, "h2_unchecked": 1},
		})
	}
	{ // A frame header cut between two messages: its block goes unread.
		b := newH2Builder()
		fr := []h2Frame{b.headers(1, false), b.headers(3, false)}
		cases = append(cases, h2Case{
			name:    "unchecked after a frame header cut between messages",
			frames:  fr,
			cuts:    []int{4},
			entries: map[uint32]injectH2Span{3: newSpan(ctxSampled | h2Unchecked)},
			want:    map[string]uint64{"h2_split": 1, "h2_unchecked": 1},
		})
	}
	{ // A padded block, and a block over the 16 KiB read, go unread.
		b := newH2Builder()
		pd := b.headers(1, false)
		pd.flags |= h2Padded
		pd.payload = append(append([]byte{3}, pd.payload...), 0, 0, 0)
		cases = append(cases, h2Case{
			name:    "unchecked after a padded block",
			frames:  []h2Frame{pd, b.headers(3, false)},
			entries: map[uint32]injectH2Span{3: newSpan(ctxSampled | h2Unchecked)},
			want:    map[string]uint64{"h2_too_long": 1, "h2_unchecked": 1},
		})
		b = newH2Builder()
		long := b.headers(1, false, hpack.HeaderField{Name: "x-long", Value: strings.Repeat("{", 16400)})
		cases = append(cases, h2Case{
			name:    "unchecked after a block over 16 KiB",
			frames:  []h2Frame{long, b.headers(3, false)},
			entries: map[uint32]injectH2Span{3: newSpan(ctxSampled | h2Unchecked)},
			want:    map[string]uint64{"h2_no_ctx": 1, "h2_unchecked": 1},
		})
	}
	{ // A block in CONTINUATION goes unread: the connection's later
		// requests get nothing (the name may be in its table).
		b := newH2Builder()
		h1, cont := continued(b.headers(1, false))
		cases = append(cases, h2Case{
			name:    "unchecked after an unread block",
			frames:  []h2Frame{h1, cont, b.headers(3, false)},
			entries: map[uint32]injectH2Span{3: newSpan(ctxSampled | h2Unchecked)},
			want:    map[string]uint64{"h2_split": 1, "h2_unchecked": 1},
		})
	}
	return cases
}

// TestH2AfterHTTP1: a socket whose first message is not the preface stays
// on the HTTP/1 path, even when a preface and request HEADERS come later.
func TestH2AfterHTTP1(t *testing.T) { eachHook(t, testH2AfterHTTP1) }

func testH2AfterHTTP1(t *testing.T, h Hook) {
	inj := startH2Injector(t, h)
	for _, first := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "PRI * HTTP/2.0\r\n"} {
		addr, got := startRecorder(t)
		h := dialH2(t, inj, addr)
		b := newH2Builder()
		hf := b.headers(1, false)
		k := injectH2Key{Tgid: uint32(os.Getpid()), StreamId: 1, Goid: h.goid}
		s := newSpan(ctxSampled)
		if err := inj.ids.Put(&k, &s); err != nil {
			t.Fatal(err)
		}
		writes := [][]byte{[]byte(first), append([]byte(h2Preface), hf.wire()...), hf.wire()}
		before := inj.Counters()
		for _, w := range writes {
			h.write(t, w)
		}
		after := inj.Counters()
		h.finish()
		rcvd := <-got
		if want := bytes.Join(writes, nil); !bytes.Equal(rcvd, want) {
			t.Errorf("%q first: server got %q, want %q", first, rcvd, want)
		}
		for _, name := range h2Counters {
			if after[name] != before[name] {
				t.Errorf("%q first: %s grew by %d", first, name, after[name]-before[name])
			}
		}
		if d := after["no_ctx"] - before["no_ctx"]; d != uint64(len(writes)) {
			t.Errorf("%q first: no_ctx grew by %d, want %d", first, d, len(writes))
		}
		var now injectH2Span
		if err := inj.ids.Lookup(&k, &now); err != nil || now.Flags != s.Flags {
			t.Errorf("%q first: entry flags %#x, %v", first, now.Flags, err)
		}
		inj.ids.Delete(&k)
	}
}

// TestH2MidLife: an HTTP/2 connection made before its process was tracked
// (an agent restart, tracing switched on for a running pod) enters the
// sockhash through the iterator with its frame boundaries unknown. A
// message that starts inside a frame is left alone; the first one that is
// a run of whole client frames syncs the socket, and from then on a
// probe-checked stream (gRPC) gets the field. A net/http stream (whose
// probe cannot see the app's own header) gets nothing: names the encoder
// sent before the sync are unknown.
func TestH2MidLife(t *testing.T) { eachHook(t, testH2MidLife) }

func testH2MidLife(t *testing.T, hook Hook) {
	inj := startH2Injector(t, hook)
	inj.Untrack(os.Getpid())
	addr, got := startRecorder(t)
	h := dialH2Untraced(t, addr)
	b := newH2Builder()
	data := dataFrame(1, 600, 0).wire()
	var want [][]byte
	send := func(w []byte) { h.write(t, w); want = append(want, w) }
	// Untraced: the preface, a stream, and a DATA frame cut after 100 of
	// its payload bytes.
	send(append([]byte(h2Preface), append(settingsFrame().wire(), b.headers(1, false).wire()...)...))
	send(data[:109])
	if err := inj.Track(os.Getpid(), nil); err != nil {
		t.Fatalf("Track: %v", err)
	}
	if !waitFor(func() bool { return inj.SockhashHas(h.cookie) }) {
		t.Fatal("the older connection is not in the sockhash after Track")
	}
	tgid := uint32(os.Getpid())
	file := func(sid uint32, flags uint8) injectH2Span {
		s := newSpan(flags)
		if err := inj.ids.Put(&injectH2Key{Tgid: tgid, StreamId: sid, Goid: h.goid}, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := inj.Counters()
	// The rest of the DATA frame, then stream 3's HEADERS: the message
	// starts inside a frame, so nothing is added.
	file(3, ctxSampled)
	send(append(data[109:], b.headers(3, false).wire()...))
	// Whole frames: synced; stream 5 (gRPC, checked) gets the field.
	s5 := file(5, ctxSampled)
	h5 := b.headers(5, false)
	h.write(t, append(dataFrame(1, 10, 1).wire(), h5.wire()...))
	withField := append(append([]byte(nil), h5.payload...), tpField(tpValue(s5))...)
	want = append(want, append(dataFrame(1, 10, 1).wire(), h2FrameBytes(h2Headers, h2EndHeaders, 5, withField)...))
	// Stream 7 (net/http's, unchecked): the encoder's earlier names are
	// unknown, nothing is added.
	file(7, ctxSampled|h2Unchecked)
	send(b.headers(7, false).wire())
	after := inj.Counters()
	h.finish()
	rcvd := <-got
	if w := bytes.Join(want, nil); !bytes.Equal(rcvd, w) {
		i := firstDiff(rcvd, w)
		t.Fatalf("server got %d bytes, want %d; first difference at %d: %q, want %q", len(rcvd), len(w), i, around(rcvd, i), around(w, i))
	}
	for name, d := range map[string]uint64{"h2_synced": 1, "h2_injected": 1, "h2_unchecked": 1, "h2_lost": 0, "drop": 0} {
		if after[name]-before[name] != d {
			t.Errorf("%s grew by %d, want %d", name, after[name]-before[name], d)
		}
	}
	if after["iter_add"] < 1 {
		t.Error("iter_add = 0: the older connection was not added by the iterator")
	}
}

// forwardedSpan is a client stream's IDs made for a server span whose
// request came with caller: its trace, and the caller's span as fwd_id.
func forwardedSpan(caller string, flags uint8) injectH2Span {
	s := newSpan(flags | 1) // CTX_LINKED
	f := strings.Split(caller, "-")
	tr, _ := hex.DecodeString(f[1])
	fw, _ := hex.DecodeString(f[2])
	copy(s.TraceId[:], tr)
	copy(s.FwdId[:], fw)
	return s
}

// rewrittenValue is what a forwarded traceparent becomes: the client
// span's ID as parent-id, the flags it came with.
func rewrittenValue(caller string, s injectH2Span) string {
	f := strings.Split(caller, "-")
	return fmt.Sprintf("00-%s-%s-%s", f[1], hex.EncodeToString(s.SpanId[:]), f[3])
}

// forwarded is a request HEADERS frame whose fields end with the
// traceparent tp (the one the request being served came with), as the
// builder's encoder writes it, and what the server must get: the same
// representation with the value raw and its parent-id the stream's span
// (a literal), or, where the encoder sent the field by index (the same
// value again), a literal without indexing, the name by that index.
func (b *h2Builder) forwarded(sid uint32, tp string, s injectH2Span) h2Frame {
	fields := grpcFields(fmt.Sprintf("/svc/F%d", sid))
	head := b.block(fields)
	rep := b.block([]hpack.HeaderField{{Name: "traceparent", Value: tp}})
	nv := rewrittenValue(tp, s)
	var out []byte
	if rep[0]&0x80 != 0 { // indexed: 1xxxxxxx
		idx := int(rep[0] & 0x7f)
		if idx == 0x7f || len(rep) != 1 {
			panic("index past one byte")
		}
		out = append([]byte{0x0f, byte(idx - 15)}, 55)
	} else {
		l := hpack.HuffmanEncodeLength(tp)
		out = append(append([]byte(nil), rep[:len(rep)-1-int(l)]...), 55)
	}
	out = append(out, nv...)
	all := append(append([]hpack.HeaderField(nil), fields...), hpack.HeaderField{Name: "traceparent", Value: tp})
	wantFields := append(append([]hpack.HeaderField(nil), fields...), hpack.HeaderField{Name: "traceparent", Value: nv})
	return h2Frame{typ: h2Headers, flags: h2EndHeaders, sid: sid, payload: append(head, rep...), fields: all,
		wantPayload: append(append([]byte(nil), head...), out...), wantFields: wantFields}
}

// forwardCases: a client that forwards the traceparent of the request it
// serves (a proxy, a gateway, a service copying metadata). Its parent-id
// becomes the client span's; a second request forwarding the same value
// (the encoder sends it by index, and the peer's entry holds the first
// call's span) gets a literal of its own; the app's own span (another
// parent-id) is left alone; and requests without one still get weft's.
func forwardCases() []h2Case {
	var cases []h2Case
	caller := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, flags := range []uint8{ctxSampled, ctxSampled | h2AppHeader, ctxSampled | h2Unchecked} {
		b := newH2Builder()
		s1, s3, s7 := forwardedSpan(caller, flags), forwardedSpan(caller, flags), forwardedSpan(caller, flags)
		own := hpack.HeaderField{Name: "traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"}
		s9 := forwardedSpan(caller, flags)
		plain := newSpan(ctxSampled | (flags & h2Unchecked))
		fr := []h2Frame{settingsFrame(), b.forwarded(1, caller, s1), b.forwarded(3, caller, s3), b.headers(5, true),
			b.forwarded(7, caller, s7), b.headers(9, false, own)}
		cases = append(cases, h2Case{
			name:    fmt.Sprintf("forwarded traceparent, flags %#x", flags),
			frames:  fr,
			entries: map[uint32]injectH2Span{1: s1, 3: s3, 5: plain, 7: s7, 9: s9},
			want:    map[string]uint64{"forward_rewritten": 3, "h2_injected": 1, "h2_app_header": 1},
		})
	}
	{ // A 6 KiB block (a large cookie or token) is read like any other:
		// the table stays known, and the next request's forwarded value
		// (sent by index) is still found.
		b := newH2Builder()
		s1, s3 := forwardedSpan(caller, ctxSampled|h2Unchecked), forwardedSpan(caller, ctxSampled|h2Unchecked)
		// In the order sent: each frame's block uses the table as the ones
		// before left it.
		f1 := b.forwarded(1, caller, s1)
		big := b.headers(5, true, hpack.HeaderField{Name: "cookie", Value: strings.Repeat("k=v; ", 1200)})
		f3 := b.forwarded(3, caller, s3)
		cases = append(cases, h2Case{
			name:    "forwarded traceparent after a 6 KiB block",
			frames:  []h2Frame{f1, big, f3},
			entries: map[uint32]injectH2Span{1: s1, 3: s3, 5: newSpan(ctxSampled | h2Unchecked)},
			want:    map[string]uint64{"forward_rewritten": 2, "h2_injected": 1},
		})
	}
	{ // Written raw (no Huffman): rewritten in place, not a byte more.
		b := newH2Builder()
		s1 := forwardedSpan(caller, ctxSampled|h2AppHeader)
		fields := grpcFields("/svc/raw")
		block := b.block(fields)
		block = append(append(block, 0x00, 11), "traceparent"...)
		block = append(append(block, 55), caller...)
		want := append([]byte(nil), block[:len(block)-55]...)
		want = append(want, rewrittenValue(caller, s1)...)
		f := h2Frame{typ: h2Headers, flags: h2EndHeaders, sid: 1, payload: block,
			wantPayload: want,
			wantFields:  append(append([]hpack.HeaderField(nil), fields...), hpack.HeaderField{Name: "traceparent", Value: rewrittenValue(caller, s1)})}
		cases = append(cases, h2Case{
			name:    "forwarded traceparent raw",
			frames:  []h2Frame{f, b.headers(3, true)},
			entries: map[uint32]injectH2Span{1: s1, 3: newSpan(ctxSampled)},
			want:    map[string]uint64{"forward_rewritten": 1, "h2_injected": 1},
		})
	}
	return cases
}
