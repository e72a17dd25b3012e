package sockio

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/protocols/http1"
	"github.com/weft-dev/weft/internal/protocols/http2"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/listener"
	"github.com/weft-dev/weft/internal/testutil/spanrec"
	"github.com/weft-dev/weft/internal/wire"
)

// newProbe makes the family with the protocols the agent uses, spans to
// sink, capturing with the named source.
func newProbe(sink spans.Sink, met *metrics.Registry, capture string) *Probe {
	return New(probes.Deps{Metrics: met, Config: probes.Config{MaxHeaderBytes: 8192, Capture: capture}}, conntrack.Protocols{
		Fallback: http1.New(http1.Config{Sink: sink, Metrics: met, MaxHeaderBytes: 8192}),
		Sniffed:  []conntrack.Protocol{http2.New(http2.Config{Sink: sink, Metrics: met})},
	})
}

func startPython(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	srv := listener.Start(t, "/usr/bin/python3", filepath.Join(filepath.Dir(file), "../../../testdata/pyserver/server.py"))
	return srv.Cmd, srv.Addr
}

// eachSource runs test once per capture source, forced: both must give
// the same results on this kernel. A source this kernel lacks (the sock_*
// tracepoints before 6.3) must instead be refused at Start, saying so.
func eachSource(t *testing.T, test func(t *testing.T, capture string)) {
	for _, src := range sources() {
		t.Run(src.Name(), func(t *testing.T) {
			if why := src.Available(); why != nil {
				p := newProbe(spanrec.New(), metrics.New(), src.Name())
				err := p.Start(context.Background())
				if err == nil {
					p.Shutdown(context.Background())
					t.Fatalf("%s started on a kernel that lacks it (%v)", src.Name(), why)
				}
				if !errors.Is(err, ErrSourceUnavailable) {
					t.Fatalf("%s on a kernel without it: %v, want ErrSourceUnavailable", src.Name(), err)
				}
				t.Logf("not on this kernel, as expected: %v", err)
				return
			}
			test(t, src.Name())
		})
	}
}

func attr(s spans.Span, k string) any {
	for _, kv := range s.Attrs {
		if string(kv.Key) == k {
			return kv.Value.AsInterface()
		}
	}
	return nil
}

// TestProbeTracesRealServer loads and attaches sockio, tracks a real Python
// http.server, and checks spans for keep-alive requests, an untracked
// connection from the test itself, and raw malformed input.
func TestProbeTracesRealServer(t *testing.T) {
	kernel.Require(t)
	eachSource(t, func(t *testing.T, capture string) {
		rec := spanrec.New()
		met := metrics.New()
		p := newProbe(rec, met, capture)
		if err := p.Start(context.Background()); err != nil {
			t.Fatalf("starting sockio: %v", err)
		}
		if p.Source() != capture {
			t.Fatalf("capture source %q, want %q", p.Source(), capture)
		}
		defer p.Shutdown(context.Background())
		defer p.Shutdown(context.Background()) // twice is safe

		cmd, addr := startPython(t)
		if err := p.Track(&probes.Process{PID: cmd.Process.Pid}); err != nil {
			t.Fatal(err)
		}
		client := &http.Client{}
		for i := range 3 {
			resp, err := client.Get(fmt.Sprintf("http://%s/work?status=%d", addr, 200+i))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		// Garbage gets no span; the server answers 400 and the problem is counted.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "\x16\x03\x01garbage\r\n\r\n")
		io.Copy(io.Discard, c)
		c.Close()

		got := rec.WaitExactly(t, 3, 10*time.Second)
		for i, s := range got {
			if st := attr(s, "http.response.status_code"); st != int64(200+i) {
				t.Errorf("span %d: status %v, want %d", i, st, 200+i)
			}
			if s.Name != "GET" || attr(s, "url.path") != "/work" {
				t.Errorf("span %d: %q %v", i, s.Name, attr(s, "url.path"))
			}
		}
		if ringbufFull, data := p.KernelStats(); ringbufFull != 0 || data == 0 {
			t.Errorf("kernel stats: ringbuf_full %d, data events %d", ringbufFull, data)
		}

		// Untracked: nothing more is captured.
		p.Untrack(cmd.Process.Pid)
		resp, err := client.Get("http://" + addr + "/hello")
		if err == nil {
			resp.Body.Close()
		}
		time.Sleep(500 * time.Millisecond)
		if n := rec.Len(); n != 3 {
			t.Errorf("%d spans after Untrack, want 3", n)
		}
	})
}

// TestUntrackForgetsSockets: after Untrack no kernel-side socket state of
// the process is left.
func TestUntrackForgetsSockets(t *testing.T) {
	kernel.Require(t)
	eachSource(t, func(t *testing.T, capture string) {
		p := newProbe(spanrec.New(), metrics.New(), capture)
		if err := p.Start(context.Background()); err != nil {
			t.Fatalf("starting sockio: %v", err)
		}
		if p.Source() != capture {
			t.Fatalf("capture source %q, want %q", p.Source(), capture)
		}
		defer p.Shutdown(context.Background())
		cmd, addr := startPython(t)
		pid := cmd.Process.Pid
		if err := p.Track(&probes.Process{PID: pid}); err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", addr) // kept open: the server's socket stays
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
		bufio.NewReader(c).ReadString('\n')
		count := func() int {
			n := 0
			var key uint64
			var val sockioConn
			for it := p.maps.Conns.Iterate(); it.Next(&key, &val); {
				if val.Tgid == uint32(pid) {
					n++
				}
			}
			return n
		}
		if n := count(); n != 1 {
			t.Fatalf("%d sockets of the server in the map, want 1", n)
		}
		p.Untrack(pid)
		if n := count(); n != 0 {
			t.Fatalf("%d sockets of the server left after Untrack", n)
		}
	})
}

// TestRetrackAfterUntrack: a process untracked and at once tracked again
// (discovery re-evaluating it after an exec) keeps giving spans once the
// deferred untrack has run.
func TestRetrackAfterUntrack(t *testing.T) {
	kernel.Require(t)
	eachSource(t, func(t *testing.T, capture string) {
		rec := spanrec.New()
		p := newProbe(rec, metrics.New(), capture)
		if err := p.Start(context.Background()); err != nil {
			t.Fatalf("starting sockio: %v", err)
		}
		if p.Source() != capture {
			t.Fatalf("capture source %q, want %q", p.Source(), capture)
		}
		defer p.Shutdown(context.Background())
		cmd, addr := startPython(t)
		proc := &probes.Process{PID: cmd.Process.Pid}
		if err := p.Track(proc); err != nil {
			t.Fatal(err)
		}
		p.Untrack(proc.PID)
		if err := p.Track(proc); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond) // past the deferred untrack's bound
		for range 2 {
			resp, err := http.Get("http://" + addr + "/work")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		rec.WaitExactly(t, 2, 10*time.Second)
	})
}

// TestSentStamps: every data event carries the bytes its process had
// queued on the connection (the table orders reads after the writes they
// follow by it): from 0 or 1 (the SYN) before the first write, up by each
// write's length, and a read's equal to the last write's. A traced Python
// server answers keep-alive requests and calls itself (a client
// connection of the traced process too).
func TestSentStamps(t *testing.T) {
	kernel.Require(t)
	eachSource(t, func(t *testing.T, capture string) {
		p := newProbe(spanrec.New(), metrics.New(), capture)
		type stamp struct {
			dir       wire.Dir
			len       int
			sent      uint32
			stamped   bool
			midStream bool
		}
		byConn := map[uint64][]stamp{}
		var pid uint32
		p.observe = func(ev *conntrack.Event) {
			if ev.Kind == conntrack.KindData && ev.PID == pid {
				byConn[ev.Conn] = append(byConn[ev.Conn], stamp{ev.Chunk.Dir, ev.Chunk.Len, ev.Sent, ev.Stamped, ev.MidStream})
			}
		}
		cmd, addr := startPython(t)
		p.mu.Lock()
		pid = uint32(cmd.Process.Pid)
		p.mu.Unlock()
		if err := p.Start(context.Background()); err != nil {
			t.Fatalf("starting sockio: %v", err)
		}
		defer p.Shutdown(context.Background())
		if err := p.Track(&probes.Process{PID: cmd.Process.Pid}); err != nil {
			t.Fatal(err)
		}
		client := &http.Client{}
		for _, path := range []string{"/work?size=10", "/work?size=70000", "/hello", "/call?to=http://" + addr + "/work%3Fsize%3D5"} {
			resp, err := client.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		time.Sleep(500 * time.Millisecond) // the ring drained
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(byConn) != 3 {
			t.Errorf("%d connections, want 3 (the test's, the call's both ends)", len(byConn))
		}
		for id, ss := range byConn {
			base := ss[0].sent
			if ss[0].dir == wire.DirWrite {
				base -= uint32(ss[0].len)
			}
			if base > 1 {
				t.Errorf("conn %x: %d sent before its first event (%+v), want 0 or 1", id, base, ss[0])
			}
			t.Logf("conn %x: %d events from %d sent", id, len(ss), base)
			sent := base
			for i, s := range ss {
				if s.dir == wire.DirWrite {
					sent += uint32(s.len)
				}
				if !s.stamped || s.midStream || s.sent != sent {
					t.Errorf("conn %x, event %d (%s of %d): sent %d (stamped %v, mid-stream %v), want %d", id, i, s.dir, s.len, s.sent, s.stamped, s.midStream, sent)
				}
			}
		}
	})
}
