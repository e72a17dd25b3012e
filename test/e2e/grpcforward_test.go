package e2e

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestGRPCForwarded: a gRPC service that copies the incoming traceparent
// metadata onto its own calls (as proxies and gateways forward metadata)
// makes each of them twice on its one connection to the backend (a retry,
// a fan-out). Go's HPACK encoder Huffman-codes the first value and sends
// the second by index; weft rewrites the first's parent-id to its client
// span and turns the index into a literal naming the second call's span.
// Chain: 4 untraced callers, 25 calls each, each with a traceparent of its
// own → A (Check "hop forward twice grpc://B") → B, both traced. Every
// call's tree is exact: A's server span the caller's child, its two
// client spans its children, and each of B's two server spans the child
// of one of them.
func TestGRPCForwarded(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	dir := t.TempDir()
	src := filepath.Join(repoRoot(t), "testdata/grpcserver")
	bin := goBuild(t, src, "", filepath.Join(dir, "weft-e2e-grpcfwd"))
	callerBin := goBuild(t, src, "", filepath.Join(dir, "weft-e2e-grpcfwd-caller"))
	a, b := startServer(t, "a", bin), startServer(t, "b", bin)
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint},
		"-pid", fmt.Sprint(a.PID()), "-pid", fmt.Sprint(b.PID()))
	ag.waitTracked(t, a.PID())
	ag.waitTracked(t, b.PID())
	if injectionUnavailable(t, ag) {
		t.Fatal("injection unavailable on this kernel")
	}

	const callers, calls = 4, 25
	n := callers * calls
	tps := make([]string, n)
	for i := range tps {
		tps[i] = randomTraceparent()
	}
	before := injectCounters(t, ag)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := startCaller(t, callerBin, a.Addr)
			defer cl.in.Close()
			for i := c * calls; i < (c+1)*calls; i++ {
				if got := cl.call(t, "-md", "traceparent="+tps[i], "hop", "forward", "twice", "grpc://"+b.Addr); got != "OK" {
					t.Errorf("call %d: %s", i, got)
				}
			}
		}()
	}
	wg.Wait()

	pid := func(s otelcol.Span) string { return fmt.Sprint(s.Resource["process.pid"]) }
	aPID, bPID := fmt.Sprint(a.PID()), fmt.Sprint(b.PID())
	all := col.WaitSpans(t, 5*n, 60*time.Second, func(s otelcol.Span) bool { return pid(s) == aPID || pid(s) == bPID })
	after := injectCounters(t, ag)
	byTrace := map[string][]otelcol.Span{}
	for _, s := range all {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	bad := 0
	fail := func(format string, args ...any) {
		if bad++; bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for i, tp := range tps {
		trace, callerSpan := tp[3:35], tp[36:52]
		var srv, cli, back []otelcol.Span
		for _, s := range byTrace[trace] {
			switch {
			case pid(s) == aPID && s.Kind == 2:
				srv = append(srv, s)
			case pid(s) == aPID && s.Kind == 3:
				cli = append(cli, s)
			case pid(s) == bPID && s.Kind == 2:
				back = append(back, s)
			}
		}
		if len(srv) != 1 || len(cli) != 2 || len(back) != 2 {
			fail("call %d: trace %s has %d server spans in A, %d client spans, %d server spans in B; want 1, 2, 2",
				i, trace, len(srv), len(cli), len(back))
			continue
		}
		if srv[0].ParentSpanID != callerSpan {
			fail("call %d: A's server span has parent %s, want the caller's %s", i, srv[0].ParentSpanID, callerSpan)
		}
		clients := map[string]bool{}
		for _, c := range cli {
			if c.ParentSpanID != srv[0].SpanID {
				fail("call %d: A's client span %s has parent %s, want A's server span %s", i, c.SpanID, c.ParentSpanID, srv[0].SpanID)
			}
			clients[c.SpanID] = true
		}
		for _, s := range back {
			if !clients[s.ParentSpanID] {
				fail("call %d: B's server span has parent %s, not one of A's client spans %v (the caller's: %s)",
					i, s.ParentSpanID, clients, callerSpan)
			}
			delete(clients, s.ParentSpanID)
		}
	}
	d := func(name string) int { return int(after[name] - before[name]) }
	if d("forward_rewritten") != 2*n || d("h2_app_header") != 0 {
		t.Errorf("forward_rewritten +%d, h2_app_header +%d; want %d, 0", d("forward_rewritten"), d("h2_app_header"), 2*n)
	}
	t.Logf("%d calls, each forwarded twice: forward_rewritten +%d, h2_app_header +%d, h2_injected +%d",
		n, d("forward_rewritten"), d("h2_app_header"), d("h2_injected"))
}
