package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// goroutinePair is B → C, two copies of the unmodified test server, traced
// by one agent started with env.
type goroutinePair struct {
	b, c  *server
	agent *agent
	col   *otelcol.Collector
}

func startGoroutinePair(t *testing.T, prefix string, env ...string) *goroutinePair {
	t.Helper()
	col := otelcol.Start(t)
	dir := t.TempDir()
	gp := &goroutinePair{col: col}
	for _, name := range []string{"b", "c"} {
		exe := goBuild(t, filepath.Join(repoRoot(t), "testdata/httpserver"), "", filepath.Join(dir, prefix+"-"+name))
		s := startServer(t, name, exe)
		if name == "b" {
			gp.b = s
		} else {
			gp.c = s
		}
	}
	gp.agent = startAgent(t, append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, env...), "-exe", prefix+"-*")
	gp.agent.waitTracked(t, gp.b.PID())
	gp.agent.waitTracked(t, gp.c.PID())
	return gp
}

// nestedURL: request i into B, whose call to C is made depth goroutines
// below B's handler.
func (gp *goroutinePair) nestedURL(i, depth int) string {
	c := fmt.Sprintf("http://%s/work?id=c%d", gp.c.Addr, i)
	return fmt.Sprintf("http://%s/call?id=b%d&mode=nested&depth=%d&to=%s", gp.b.Addr, i, depth, url.QueryEscape(c))
}

// TestGoroutineTree: with WEFT_GO_GOROUTINES=tree, a call made 1, 2 or 3
// goroutines below the handler is the handler's request's child, and B's
// call is C's parent, for 60 requests 20 at a time. Then the keep-alive
// edge: B answers request 1 at once and calls C from a goroutine 200 ms
// later, while the same connection's server goroutine serves request 2
// (a 600 ms one): the call is request 1's child, never request 2's.
func TestGoroutineTree(t *testing.T) {
	gp := startGoroutinePair(t, "weft-e2e-gtree", "WEFT_GO_GOROUTINES=tree")
	const n = 60
	hc := &http.Client{Timeout: 30 * time.Second}
	getAll(t, hc, n, 20, func(i int) (string, string) { return request(i), gp.nestedURL(i, 1+i%3) }, "200")

	// The keep-alive edge, on one connection.
	const k = 8
	one := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	for j := range k {
		c := fmt.Sprintf("http://%s/work?id=ck%d", gp.c.Addr, j)
		first := fmt.Sprintf("http://%s/call?id=bk%d&mode=after&delay=200ms&to=%s", gp.b.Addr, j, url.QueryEscape(c))
		second := fmt.Sprintf("http://%s/work?id=bw%d&sleep=600ms", gp.b.Addr, j)
		for _, u := range []string{first, second} {
			resp, err := one.Get(u)
			if err != nil {
				t.Fatalf("keep-alive request %d: %v", j, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}

	by := spansByKey(t, gp.col, 3*n+4*k, 60*time.Second, spanID)
	bad, missing := 0, 0
	child := func(what string, c, p string) {
		cs, okc := by[c]
		ps, okp := by[p]
		if !okc || !okp {
			if missing++; missing <= 10 {
				t.Errorf("%s: span missing (%s: %v, %s: %v)", what, c, okc, p, okp)
			}
			return
		}
		if cs.ParentSpanID != ps.SpanID || cs.TraceID != ps.TraceID {
			if bad++; bad <= 20 {
				t.Errorf("%s: %s (trace %s, parent %s) is not the child of %s (span %s, trace %s)",
					what, c, cs.TraceID, cs.ParentSpanID, p, ps.SpanID, ps.TraceID)
			}
		}
	}
	for j := range k {
		child(fmt.Sprintf("keep-alive %d: the call made after the response", j), fmt.Sprintf("client:ck%d", j), fmt.Sprintf("server:bk%d", j))
		child(fmt.Sprintf("keep-alive %d: C's span", j), fmt.Sprintf("server:ck%d", j), fmt.Sprintf("client:ck%d", j))
	}
	for i := range n {
		child(fmt.Sprintf("request %d (depth %d): B's call", i, 1+i%3), fmt.Sprintf("client:c%d", i), fmt.Sprintf("server:b%d", i))
		child(fmt.Sprintf("request %d: C's span", i), fmt.Sprintf("server:c%d", i), fmt.Sprintf("client:c%d", i))
	}
	if linked := gp.agent.metric(t, `weft_gospawn_kernel_total{name="linked"}`); linked < float64(n) {
		t.Errorf("weft_gospawn_kernel_total{name=\"linked\"} = %v, want at least %d", linked, n)
	}
	if c := capability(t, gp.agent, gp.b.PID(), status.GoroutineTree); !c.On {
		t.Errorf("B's goroutine_tree is off: %s", c.Why)
	}
}

// TestGoroutineParentOnly: with WEFT_GO_GOROUTINES=parent a call
// one goroutine below the handler is linked, and a deeper one is a root:
// never another request's child.
func TestGoroutineParentOnly(t *testing.T) {
	gp := startGoroutinePair(t, "weft-e2e-gparent", "WEFT_GO_GOROUTINES=parent")
	const n = 30
	hc := &http.Client{Timeout: 30 * time.Second}
	getAll(t, hc, n, 10, func(i int) (string, string) { return request(i), gp.nestedURL(i, 1+i%3) }, "200")
	by := spansByKey(t, gp.col, 3*n, 60*time.Second, spanID)
	for i := range n {
		cli, srv := by[fmt.Sprintf("client:c%d", i)], by[fmt.Sprintf("server:b%d", i)]
		if cli.SpanID == "" || srv.SpanID == "" {
			t.Errorf("request %d: spans missing (client %q, server %q)", i, cli.SpanID, srv.SpanID)
			continue
		}
		switch depth := 1 + i%3; {
		case depth == 1 && (cli.ParentSpanID != srv.SpanID || cli.TraceID != srv.TraceID):
			t.Errorf("request %d (depth 1): B's call (trace %s, parent %s) is not the child of B's span %s", i, cli.TraceID, cli.ParentSpanID, srv.SpanID)
		case depth > 1 && cli.ParentSpanID != "":
			t.Errorf("request %d (depth %d): B's call has parent %s, want a root without the goroutine-start probe", i, depth, cli.ParentSpanID)
		}
	}
	if c := capability(t, gp.agent, gp.b.PID(), status.GoroutineTree); c.On || !strings.Contains(c.Why, "WEFT_GO_GOROUTINES=parent") {
		t.Errorf("B's goroutine_tree: %+v, want off saying why", c)
	}
}

// TestGoroutineAuto: by default the goroutine-start probe waits for a
// sign. C, which serves and never calls out, never gets it. B gets it
// from its first calls made two goroutines below the handler (roots
// until then); once it is on, 45 requests at depths 1 to 3 are whole.
func TestGoroutineAuto(t *testing.T) {
	gp := startGoroutinePair(t, "weft-e2e-gauto")
	hc := &http.Client{Timeout: 30 * time.Second}
	if c := capability(t, gp.agent, gp.b.PID(), status.GoroutineTree); c.On {
		t.Fatalf("B's goroutine_tree is on before any call: %s", c.Why)
	}
	on, warm := false, 0
	for w := 0; w < 50 && !on; w++ {
		warm++
		getAll(t, hc, 1, 0, func(int) (string, string) { return "warm-up", gp.nestedURL(1000+w, 2) }, "200")
		time.Sleep(200 * time.Millisecond)
		on = capability(t, gp.agent, gp.b.PID(), status.GoroutineTree).On
	}
	t.Logf("auto mode switched on after %d warm-up requests", warm)
	if !on {
		t.Fatalf("B's goroutine_tree still off after 50 calls from two goroutines below the handler: %+v",
			capability(t, gp.agent, gp.b.PID(), status.GoroutineTree))
	}
	const n = 45
	getAll(t, hc, n, 15, func(i int) (string, string) { return request(i), gp.nestedURL(i, 1+i%3) }, "200")
	var want []string // not a count: the warm-up's spans are there too
	for i := range n {
		want = append(want, fmt.Sprintf("client:c%d", i), fmt.Sprintf("server:b%d", i), fmt.Sprintf("server:c%d", i))
	}
	by := spansWithKeys(t, gp.col, 60*time.Second, spanID, want)
	for i := range n {
		cli, srv, down := by[fmt.Sprintf("client:c%d", i)], by[fmt.Sprintf("server:b%d", i)], by[fmt.Sprintf("server:c%d", i)]
		if cli.SpanID == "" || srv.SpanID == "" || down.SpanID == "" {
			t.Errorf("request %d: spans missing (B's call %q, B's span %q, C's span %q)", i, cli.SpanID, srv.SpanID, down.SpanID)
			continue
		}
		if cli.ParentSpanID != srv.SpanID || cli.TraceID != srv.TraceID {
			t.Errorf("request %d (depth %d): B's call (trace %s, parent %s) is not the child of B's span %s", i, 1+i%3, cli.TraceID, cli.ParentSpanID, srv.SpanID)
		}
		if down.ParentSpanID != cli.SpanID || down.TraceID != cli.TraceID {
			t.Errorf("request %d: C's span (trace %s, parent %s) is not the child of B's call %s", i, down.TraceID, down.ParentSpanID, cli.SpanID)
		}
	}
	if c := capability(t, gp.agent, gp.c.PID(), status.GoroutineTree); c.On || !strings.Contains(c.Why, "auto") {
		t.Errorf("C (serves, never calls) goroutine_tree: %+v, want off, waiting", c)
	}
}
