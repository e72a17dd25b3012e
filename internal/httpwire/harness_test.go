package httpwire

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// HTTPWIRE_DEBUG=1 logs every chunk of the fuzz scripts.
var debugTrace = os.Getenv("HTTPWIRE_DEBUG") != ""

func debugf(t testing.TB, format string, args ...any) {
	if debugTrace {
		t.Logf(format, args...)
	}
}

// step is one syscall (or a close) in a test script.
type step struct {
	dir   Dir
	data  string
	gap   int // unknown bytes after data
	goid  uint64
	tag   uint64
	close bool
	idle  uint64 // > 0: call Idle(time, idle) instead
}

func R(s string) step                     { return step{dir: DirRead, data: s} }
func W(s string) step                     { return step{dir: DirWrite, data: s} }
func RG(s string, gap int) step           { return step{dir: DirRead, data: s, gap: gap} }
func WG(s string, gap int) step           { return step{dir: DirWrite, data: s, gap: gap} }
func closeStep() step                     { return step{close: true} }
func idleStep(after uint64) step          { return step{idle: after} }
func (s step) with(goid, tag uint64) step { s.goid, s.tag = goid, tag; return s }

// result of playing a script: exchanges and problems in order.
type result struct {
	ex    []Exchange
	probs []Problem
	conn  *Conn
}

func (r result) count(p Problem) int {
	n := 0
	for _, q := range r.probs {
		if q == p {
			n++
		}
	}
	return n
}

// stepTime is the Time of step i (0-based).
func stepTime(i int) uint64 { return uint64(i+1) * 100 }

func play(t testing.TB, l Limits, steps ...step) result {
	t.Helper()
	c := NewConn(l)
	var r result
	r.conn = c
	for i, s := range steps {
		var ex []Exchange
		var pr []Problem
		switch {
		case s.close:
			ex, pr = c.Close(stepTime(i))
		case s.idle > 0:
			ex, pr = c.Idle(stepTime(i), s.idle)
		default:
			ex, pr = c.Feed(Chunk{
				Dir: s.dir, Time: stepTime(i), Len: len(s.data) + s.gap,
				Data: []byte(s.data), Goid: s.goid, Tag: s.tag,
			})
		}
		r.ex = append(r.ex, ex...)
		r.probs = append(r.probs, pr...)
		checkInvariants(t, c)
	}
	return r
}

// checkInvariants verifies the Conn's memory bounds.
func checkInvariants(t testing.TB, c *Conn) {
	t.Helper()
	for d := range c.st {
		if len(c.st[d].buf) > c.lim.MaxHeaderBytes {
			t.Fatalf("dir %d buffers %d head bytes > %d", d, len(c.st[d].buf), c.lim.MaxHeaderBytes)
		}
	}
	if len(c.q) > c.lim.MaxPending {
		t.Fatalf("%d queued > %d", len(c.q), c.lim.MaxPending)
	}
}

// want describes an expected exchange; zero fields are not checked except
// Incomplete.
type want struct {
	method, target string
	status         int
	start, end     uint64
	reqBody        int64
	respBody       int64
	incomplete     string
}

func checkExchanges(t testing.TB, got []Exchange, w ...want) {
	t.Helper()
	if len(got) != len(w) {
		t.Fatalf("got %d exchanges, want %d:\n%s", len(got), len(w), dump(got))
	}
	for i, e := range got {
		x := w[i]
		if x.method != "" && e.Req.Method != x.method || x.target != "" && e.Req.Target != x.target ||
			x.status != 0 && e.Resp.Status != x.status ||
			x.start != 0 && e.Start != x.start || x.end != 0 && e.End != x.end ||
			x.reqBody != 0 && e.Req.BodyBytes != x.reqBody || x.respBody != 0 && e.Resp.BodyBytes != x.respBody ||
			e.Incomplete != x.incomplete {
			t.Errorf("exchange %d = %s\nwant %+v", i, dump(got[i:i+1]), x)
		}
	}
}

func dump(ex []Exchange) string {
	var b strings.Builder
	for _, e := range ex {
		fmt.Fprintf(&b, "  %s %s %s -> %d [%d..%d] reqBody=%d respBody=%d first=%v incomplete=%q\n",
			e.Req.Method, e.Req.Target, e.Req.Proto, e.Resp.Status, e.Start, e.End,
			e.Req.BodyBytes, e.Resp.BodyBytes, e.FirstInChunk, e.Incomplete)
	}
	return b.String()
}

func checkProblems(t testing.TB, r result, want ...Problem) {
	t.Helper()
	if fmt.Sprint(r.probs) != fmt.Sprint(want) {
		t.Errorf("problems %v, want %v", r.probs, want)
	}
}

const (
	get1  = "GET /a?b HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\n\r\n"
	get2  = "GET /two HTTP/1.1\r\nHost: example.com\r\n\r\n"
	ok5   = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	ok0   = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	nf    = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
	post5 = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde"
)
