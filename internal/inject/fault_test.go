package inject

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/weft-dev/weft/internal/testutil/kernel"
)

// The fault knob of inject.bpf.c: which helper call the program treats as
// failed (without making it). The agent never sets it.
const (
	faultPush  = 1 // FAULT_PUSH: bpf_msg_push_data
	faultWrite = 2 // FAULT_WRITE: the pull over the pushed bytes
	faultUndo  = 4 // FAULT_UNDO: undoing a change (the pop, restoring a frame length)
	faultPush2 = 8 // FAULT_PUSH2: the traceparent push after a tracestate merge
)

// setFault sets the knob in the spec before it is loaded.
func setFault(fault uint32) func(*ebpf.CollectionSpec) error {
	return func(spec *ebpf.CollectionSpec) error {
		v, ok := spec.Variables["fault"]
		if !ok {
			return errors.New("inject BPF object has no fault variable")
		}
		return v.Set(fault)
	}
}

// startFaultInjector starts an injector whose program takes the failure
// paths fault names, with the test process tracked.
func startFaultInjector(t *testing.T, h Hook, fault uint32) *Injector {
	t.Helper()
	kernel.Require(t)
	inj := New(nil, "")
	inj.SetHook(h)
	inj.prepare = setFault(fault)
	if err := inj.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { inj.Shutdown(context.Background()) })
	trackSelf(t, inj)
	return inj
}

// dialRaw connects the traced test process to addr and waits for the
// socket to be in the sockhash.
func dialRaw(t *testing.T, inj *Injector, addr string) (*net.TCPConn, uint64) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tc := c.(*net.TCPConn)
	tc.SetNoDelay(true)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	cookie := cookieOf(t, c)
	if !waitFor(func() bool { return inj.SockhashHas(cookie) }) {
		t.Fatal("the traced connection is not in the sockhash")
	}
	return tc, cookie
}

func received(t *testing.T, got <-chan []byte) []byte {
	t.Helper()
	select {
	case b := <-got:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("the server got no EOF")
		return nil
	}
}

func grew(before, after map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// withHeader is req with the traceparent line inserted after its request
// line, as the injector writes it.
func withHeader(req []byte, x ids) []byte {
	i := bytes.Index(req, []byte("\r\n")) + 2
	return cat(req[:i], []byte("traceparent: "+x.header()+"\r\n"), req[i:])
}

// TestFaultHTTP1: when a helper fails after the program started changing
// a request (forced by the fault knob), the server receives exactly the
// bytes the client wrote, and the failure is counted. Without a fault the
// same requests get their header (the knob is what makes the difference).
func TestFaultHTTP1(t *testing.T) { eachHook(t, testFaultHTTP1) }

func testFaultHTTP1(t *testing.T, h Hook) {
	for _, tc := range []struct {
		name   string
		fault  uint32
		inject bool
		want   map[string]uint64
	}{
		{"no fault", 0, true, map[string]uint64{"injected": 1}},
		{"push fails", faultPush, false, map[string]uint64{"write_fail": 1}},
		// The push succeeded: uninitialised bytes sit in the message until
		// the pop takes them out again.
		{"fill fails, pop undoes the push", faultWrite, false, map[string]uint64{"write_fail": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inj := startFaultInjector(t, h, tc.fault)
			addr, got := startRecorder(t)
			c, cookie := dialRaw(t, inj, addr)
			first := cat(head("POST", "/first", withLen(5), "X-A: b\r\n"), []byte("hello"))
			second := cat(head("POST", "/second", withLen(5), "X-A: c\r\n"), []byte("world"))
			x := newIDs()

			before := inj.Counters()
			if _, err := c.Write(first); err != nil { // no entry: left alone
				t.Fatal(err)
			}
			setCtx(t, inj, cookie, x)
			if _, err := c.Write(second); err != nil {
				t.Fatal(err)
			}
			d := grew(before, inj.Counters())
			c.CloseWrite()
			rcvd := received(t, got)

			want := cat(first, second)
			if tc.inject {
				want = cat(first, withHeader(second, x))
			}
			if !bytes.Equal(rcvd, want) {
				i := firstDiff(rcvd, want)
				t.Errorf("server got %d bytes, want %d; first difference at %d\ngot  %q\nwant %q",
					len(rcvd), len(want), i, around(rcvd, i), around(want, i))
			}
			for _, name := range []string{"injected", "write_fail", "drop"} {
				if d[name] != tc.want[name] {
					t.Errorf("counter %s grew by %d, want %d (all: %v)", name, d[name], tc.want[name], d)
				}
			}
		})
	}
}

// TestFaultHTTP1Drop: when the pushed bytes cannot be taken out again,
// the message is dropped, never sent with them: the writer gets EACCES,
// every later write on the socket fails as well (the stream must not go
// on past the hole), and the server has exactly what came before.
func TestFaultHTTP1Drop(t *testing.T) { eachHook(t, testFaultHTTP1Drop) }

func testFaultHTTP1Drop(t *testing.T, h Hook) {
	inj := startFaultInjector(t, h, faultWrite|faultUndo)
	addr, got := startRecorder(t)
	c, cookie := dialRaw(t, inj, addr)
	first := head("GET", "/first")
	before := inj.Counters()
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	setCtx(t, inj, cookie, newIDs())
	if n, err := c.Write(head("GET", "/second", "X-A: b\r\n")); !errors.Is(err, syscall.EACCES) || n != 0 {
		t.Errorf("write of the dropped request: %d, %v; want 0, EACCES", n, err)
	}
	clearCtx(inj, cookie)
	if n, err := c.Write(head("GET", "/third")); err == nil {
		t.Errorf("a write after the drop went through (%d bytes)", n)
	}
	d := grew(before, inj.Counters())
	c.CloseWrite()
	if rcvd := received(t, got); !bytes.Equal(rcvd, first) {
		t.Errorf("server got %q, want only %q", rcvd, first)
	}
	if d["drop"] < 1 || d["injected"] != 0 || d["write_fail"] != 0 {
		t.Errorf("counters grew by %v; want drop >= 1, no injected, no write_fail", d)
	}
	// 1: the kernel kept the verdict for the later write; 2: the program
	// dropped it.
	t.Logf("drop counted %d times for 2 failed writes", d["drop"])
}

// TestFaultH2: the same for HTTP/2, where the program also rewrites the
// HEADERS frame's length (before the push, so a failure restores it).
// Every byte the server gets is the client's, with the HEADERS frame
// in the middle of a write and ending one (the push then appends).
func TestFaultH2(t *testing.T) { eachHook(t, testFaultH2) }

func testFaultH2(t *testing.T, h Hook) {
	for _, f := range []struct {
		name  string
		fault uint32
	}{
		{"push fails, length restored", faultPush},
		{"fill fails, push popped and length restored", faultWrite},
	} {
		t.Run(f.name, func(t *testing.T) {
			inj := startH2InjectorWith(t, h, "aws-us-east-1-shop-01", f.fault)
			{
				b := newH2Builder()
				runH2(t, inj, h2Case{
					name:    "settings headers data",
					frames:  []h2Frame{settingsFrame(), b.headers(1, false), dataFrame(1, 40, h2EndStream)},
					entries: map[uint32]injectH2Span{1: newSpan(ctxSampled | 1)},
					want:    map[string]uint64{"write_fail": 1},
				})
			}
			{
				b := newH2Builder()
				fr := []h2Frame{settingsFrame(), b.headers(1, false), dataFrame(1, 40, h2EndStream)}
				runH2(t, inj, h2Case{
					name:    "headers ending a write",
					frames:  fr,
					cuts:    []int{offsets(fr)[2]},
					entries: map[uint32]injectH2Span{1: newSpan(ctxSampled)},
					want:    map[string]uint64{"write_fail": 1},
				})
			}
			if d := inj.Counters()["drop"]; d != 0 {
				t.Errorf("drop: %d", d)
			}
		})
	}
}

// TestFaultH2Drop: a change to an HTTP/2 message that cannot be undone
// (the pushed field, or the frame length rewritten first) drops it and
// every later message: the server has the preface and nothing after.
func TestFaultH2Drop(t *testing.T) { eachHook(t, testFaultH2Drop) }

func testFaultH2Drop(t *testing.T, h Hook) {
	for _, f := range []struct {
		name  string
		fault uint32
	}{
		{"push fails, length not restored", faultPush | faultUndo},
		{"fill fails, pop fails", faultWrite | faultUndo},
	} {
		t.Run(f.name, func(t *testing.T) {
			inj := startH2InjectorWith(t, h, "", f.fault)
			addr, got := startRecorder(t)
			h := dialH2(t, inj, addr)
			k := injectH2Key{Tgid: uint32(os.Getpid()), StreamId: 1, Goid: h.goid}
			s := newSpan(ctxSampled)
			if err := inj.ids.Put(&k, &s); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { inj.ids.Delete(&k) })
			b := newH2Builder()
			var req bytes.Buffer
			for _, fr := range []h2Frame{settingsFrame(), b.headers(1, false), dataFrame(1, 40, h2EndStream)} {
				req.Write(fr.wire())
			}
			before := inj.Counters()
			send := func(p []byte) error { h.in <- p; return <-h.out }
			if err := send([]byte(h2Preface)); err != nil {
				t.Fatal(err)
			}
			if err := send(req.Bytes()); !errors.Is(err, syscall.EACCES) {
				t.Errorf("write of the dropped request: %v, want EACCES", err)
			}
			if err := send(h2FrameBytes(h2Ping, 0, 0, make([]byte, 8))); err == nil {
				t.Error("a write after the drop went through")
			}
			d := grew(before, inj.Counters())
			h.finish()
			if rcvd := received(t, got); !bytes.Equal(rcvd, []byte(h2Preface)) {
				t.Errorf("server got %q, want only the preface", rcvd)
			}
			if d["drop"] < 1 || d["h2_injected"] != 0 || d["write_fail"] != 0 {
				t.Errorf("counters grew by %v; want drop >= 1, no h2_injected, no write_fail", d)
			}
			var now injectH2Span
			if err := inj.ids.Lookup(&k, &now); err != nil || now.Flags&h2Injected != 0 {
				t.Errorf("stream entry: flags %#x, %v; want it not marked injected", now.Flags, err)
			}
		})
	}
}
