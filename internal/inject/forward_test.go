package inject

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"
)

// TestForwardedTraceparent sends requests that already carry a traceparent
// from the traced test process to a recorder, and checks the bytes the
// server got. A request whose header has the call's trace ID and, as
// parent-id, the remote parent of the span the call is made for (a proxy
// forwarding the traceparent of the request it serves) arrives with exactly
// that parent-id replaced by the client span's, and nothing else changed:
// no byte added, flags and tracestate as they were, even with a cluster
// name that would otherwise add a tracestate member; Forwarded then says
// so for that span, once. Any other traceparent (an SDK's own span,
// another trace, a value the check does not take) arrives as sent.
func TestForwardedTraceparent(t *testing.T) { eachHook(t, testForwardedTraceparent) }

func testForwardedTraceparent(t *testing.T, h Hook) {
	inj := New(nil, "")
	inj.SetHook(h)
	if err := inj.SetTraceState("weft", "shop-01"); err != nil {
		t.Fatal(err)
	}
	if err := inj.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { inj.Shutdown(context.Background()) })
	trackSelf(t, inj)

	hx := func(b []byte) string { return hex.EncodeToString(b) }
	// Placeholders in the headers: {T} the call's trace ID, {P} the served
	// span's remote parent (inject_ctx.fwd_id), {R} random.
	tests := []struct {
		name     string
		hdr      []string
		noParent bool // the served span has no remote parent (or none is known)
		split    int  // send the request in two writes, cut here
		rewrite  bool // want {P} replaced by {S} in the traceparent
		count    string
	}{
		{name: "forwarded, Go's spelling", hdr: []string{"Traceparent: 00-{T}-{P}-01\r\n"}, rewrite: true, count: "forward_rewritten"},
		{name: "forwarded, lower case, no space, not sampled", hdr: []string{"traceparent:00-{T}-{P}-00\r\n"}, rewrite: true, count: "forward_rewritten"},
		{name: "forwarded, tab and trailing space", hdr: []string{"X-A: b\r\n", "TRACEPARENT:\t 00-{T}-{P}-03 \r\n", "X-C: d\r\n"}, rewrite: true, count: "forward_rewritten"},
		{name: "forwarded with tracestate", hdr: []string{"tracestate: congo=t61rcWkgMzE\r\n", "Traceparent: 00-{T}-{P}-01\r\n"}, rewrite: true, count: "forward_rewritten"},
		{name: "forwarded with this agent's tracestate", hdr: []string{"Traceparent: 00-{T}-{P}-01\r\n", "Tracestate: weft=other,a=b\r\n"}, rewrite: true, count: "forward_rewritten"},
		{name: "sdk span", hdr: []string{"Traceparent: 00-{T}-{R}-01\r\n"}, count: "app_header"},
		{name: "another trace", hdr: []string{"Traceparent: 00-{R}{R}-{P}-01\r\n"}, count: "app_header"},
		{name: "upper-case hex", hdr: []string{"Traceparent: 00-{TU}-{PU}-01\r\n"}, count: "app_header"},
		{name: "version 01", hdr: []string{"Traceparent: 01-{T}-{P}-01\r\n"}, count: "app_header"},
		{name: "more fields", hdr: []string{"Traceparent: 00-{T}-{P}-01-ab\r\n"}, count: "app_header"},
		{name: "bad flags", hdr: []string{"Traceparent: 00-{T}-{P}-0g\r\n"}, count: "app_header"},
		{name: "two lines", hdr: []string{"Traceparent: 00-{T}-{P}-01\r\n", "traceparent: 00-{T}-{P}-01\r\n"}, count: "app_header"},
		{name: "no parent known", noParent: true, hdr: []string{"Traceparent: 00-{T}-0000000000000000-01\r\n"}, count: "app_header"},
		{name: "head split after the line", split: 110, hdr: []string{"Traceparent: 00-{T}-{P}-01\r\n", "X-Pad: 1\r\n"}, count: "app_header"},
		{name: "head split in the line", split: 40, hdr: []string{"Traceparent: 00-{T}-{P}-01\r\n", "X-Pad: 1\r\n"}, count: "split"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newIDs()
			if tc.noParent {
				x.parent = [8]byte{}
			}
			other := newIDs()
			r := strings.NewReplacer("{T}", hx(x.trace[:]), "{P}", hx(x.parent[:]), "{R}", hx(other.span[:]),
				"{TU}", strings.ToUpper(hx(x.trace[:])), "{PU}", strings.ToUpper(hx(x.parent[:])))
			var hdr []string
			for _, l := range tc.hdr {
				hdr = append(hdr, r.Replace(l))
			}
			req := append(head("POST", "/forward", append(hdr, withLen(5))...), "hello"...)
			want := req
			if tc.rewrite {
				want = bytes.Replace(req, []byte("-"+hx(x.parent[:])+"-"), []byte("-"+hx(x.span[:])+"-"), 1)
			}

			addr, got := startRecorder(t)
			c := dial(t, addr)
			if !waitFor(func() bool { return inj.SockhashHas(c.cookie) }) {
				t.Fatal("the traced connection is not in the sockhash")
			}
			setCtx(t, inj, c.cookie, x)
			before := inj.Counters()
			writes := [][]byte{req}
			if tc.split > 0 {
				writes = [][]byte{req[:tc.split], req[tc.split:]}
			}
			for _, w := range writes {
				if _, err := c.Write(w); err != nil {
					t.Fatal(err)
				}
			}
			c.Conn.(*net.TCPConn).CloseWrite()
			var rcvd []byte
			select {
			case rcvd = <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("recorder got nothing")
			}
			if !bytes.Equal(rcvd, want) {
				t.Errorf("server got\n%q\nwant\n%q", rcvd, want)
			}
			after := inj.Counters()
			for _, name := range []string{"forward_rewritten", "app_header", "injected", "split", "state_merged", "write_fail", "drop"} {
				wantD := uint64(0)
				if name == tc.count {
					wantD = 1
				}
				if d := after[name] - before[name]; d != wantD {
					t.Errorf("%s grew by %d, want %d", name, d, wantD)
				}
			}
			if got := inj.Forwarded(x.span); got != tc.rewrite {
				t.Errorf("Forwarded(client span) = %v, want %v", got, tc.rewrite)
			}
			if inj.Forwarded(x.span) {
				t.Error("Forwarded(client span) is true a second time")
			}
		})
	}
}
