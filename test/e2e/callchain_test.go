package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// callChain is one request's spans through a caller that calls out while
// serving it: the caller's SERVER span, its CLIENT span of the call, and
// the callee's SERVER span.
type callChain struct {
	srv, cli, leaf otelcol.Span
}

// callChains waits for 3 spans per request from the processes named in
// names (pid → letter) and returns each request's chain: request i is
// served by caller(i) with id <caller><i> and calls callee(i) with id
// <callee><i> (the ids the test servers' spans carry). A request whose
// spans are not all there is reported and left out.
func callChains(t *testing.T, col *otelcol.Collector, names map[int]string, n int, who func(i int) (caller, callee string)) map[int]callChain {
	t.Helper()
	letters := map[string]string{}
	for pid, l := range names {
		letters[fmt.Sprint(pid)] = l
	}
	// Each request's three spans, not a count (a warm-up's count too);
	// when one is missing, the loop below names it.
	key := func(s otelcol.Span) string {
		if l := letters[fmt.Sprint(s.Resource["process.pid"])]; l != "" {
			return l + " " + spanID(s)
		}
		return ""
	}
	var want []string
	for i := range n {
		c, e := who(i)
		want = append(want, fmt.Sprintf("%s server:%s%d", c, c, i), fmt.Sprintf("%s client:%s%d", c, e, i), fmt.Sprintf("%s server:%s%d", e, e, i))
	}
	var spans []otelcol.Span
	for _, s := range waitKeys(t, col, 60*time.Second, key, want...) {
		if key(s) != "" {
			spans = append(spans, s)
		}
	}
	by := map[string]otelcol.Span{}
	for _, s := range spans {
		by[letters[fmt.Sprint(s.Resource["process.pid"])]+" "+spanID(s)] = s
	}
	out := map[int]callChain{}
	missing := 0
	for i := range n {
		c, e := who(i)
		srv, ok1 := by[fmt.Sprintf("%s server:%s%d", c, c, i)]
		cli, ok2 := by[fmt.Sprintf("%s client:%s%d", c, e, i)]
		leaf, ok3 := by[fmt.Sprintf("%s server:%s%d", e, e, i)]
		if !ok1 || !ok2 || !ok3 {
			if missing++; missing <= 10 {
				t.Errorf("request %d: spans missing (%s server %v, %s client %v, %s server %v)", i, c, ok1, c, ok2, e, ok3)
			}
			continue
		}
		out[i] = callChain{srv, cli, leaf}
	}
	if missing > 0 {
		t.Errorf("%d of %d requests miss a span", missing, n)
	}
	return out
}

// linked checks that the callee's span is the child of the caller's call
// (across the hop) and, when byThread, that the call is the child of the
// caller's request; otherwise (an event loop) the call may be a root but
// never another request's child. It returns the problems found.
func (c callChain) linked(t *testing.T, i int, byThread bool) (bad int) {
	t.Helper()
	switch {
	case c.cli.ParentSpanID == c.srv.SpanID && c.cli.TraceID == c.srv.TraceID:
	case c.cli.ParentSpanID == "" && !byThread:
	default:
		t.Errorf("request %d: the call has parent %q in %s; its request is %s in %s", i, c.cli.ParentSpanID, c.cli.TraceID, c.srv.SpanID, c.srv.TraceID)
		bad++
	}
	if c.leaf.ParentSpanID != c.cli.SpanID || c.leaf.TraceID != c.cli.TraceID {
		t.Errorf("request %d: the callee's span has parent %q in %s; the call is %s in %s", i, c.leaf.ParentSpanID, c.leaf.TraceID, c.cli.SpanID, c.cli.TraceID)
		bad++
	}
	return bad
}
