package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestGRPCPreexisting: a gRPC connection open before the agent started (an
// agent restart, or tracing switched on for a running pod; gRPC
// connections live for hours) still gives every later call its SERVER and
// CLIENT spans. The frames are picked up at the first read or write that
// starts at a frame boundary. Header fields indexed before that are
// unknown, and grpc-go keeps :path and content-type indexed for the
// connection's life (its grpc-timeout values repeat, so the table hardly
// turns over): the first span without a path has the gRPC probes of that
// process send each stream's :path with its IDs, so that every later span
// is a whole gRPC span. No span carries a wrong value.
func TestGRPCPreexisting(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	bin := goBuild(t, filepath.Join(repoRoot(t), "testdata/grpcserver"), "", filepath.Join(t.TempDir(), "weft-e2e-grpcpre"))
	srv := startServer(t, "grpc", bin)
	cl := startCaller(t, bin, srv.Addr)
	for _, args := range [][]string{{""}, {"missing"}, {""}} { // the connection and its tables, before any tracing
		cl.call(t, args...)
	}
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", "weft-e2e-grpcpre")
	ag.waitTracked(t, srv.PID())
	ag.waitTracked(t, cl.PID())
	const n, first = 160, 10
	call := func(i int) {
		args, answer := []string{""}, "OK"
		if i%2 == 1 {
			args, answer = []string{"missing"}, "NotFound"
		}
		if got := cl.call(t, args...); got != answer {
			t.Fatalf("call %d: %q, want %s", i, got, answer)
		}
	}
	// The first calls' spans, once built, have the probes send paths: the
	// calls made after that are named.
	for i := range first {
		call(i)
	}
	waitSpansSoft(t, col, 2*first-4, 60*time.Second, nil)
	for i := first; i < n; i++ {
		call(i)
	}
	all := waitSpansSoft(t, col, 2*n, 60*time.Second, nil)
	var servers, clients []otelcol.Span
	for _, s := range all {
		switch {
		case s.Kind == 2 && s.Resource["process.pid"] == int64(srv.PID()):
			servers = append(servers, s)
		case s.Kind == 3 && s.Resource["process.pid"] == int64(cl.PID()):
			clients = append(clients, s)
		default:
			t.Errorf("unexpected span %q kind %d from %v", s.Name, s.Kind, s.Resource["process.pid"])
		}
	}
	// The reads and writes in flight when the probes came may be missed:
	// the first two calls may go unseen; every later one must not.
	if len(servers) < n-2 || len(servers) > n || len(clients) < n-2 || len(clients) > n {
		t.Fatalf("%d SERVER and %d CLIENT spans for %d calls on the old connection", len(servers), len(clients), n)
	}
	for side, spans := range map[string][]otelcol.Span{"server": inStartOrder(servers), "client": inStartOrder(clients)} {
		named, lastUnnamed := 0, -1
		for i, s := range spans {
			switch {
			case s.Name == "grpc.health.v1.Health/Check" && s.Attrs["rpc.system"] == "grpc" && s.Attrs["rpc.method"] == "Check":
				named++
			case s.Name == "POST": // (an HTTP span, or a gRPC one whose grpc-status was known)
				lastUnnamed = i
				for _, k := range []string{"url.path", "url.full", "rpc.method"} {
					if v, ok := s.Attrs[k]; ok {
						t.Errorf("%s span %d: %s = %v, but the path was indexed before tracing", side, i, k, v)
					}
				}
			default:
				t.Errorf("%s span %d: %q %v", side, i, s.Name, s.Attrs)
			}
		}
		// The first unnamed spans ask for paths; a call may be in flight
		// meanwhile.
		if lastUnnamed > first {
			t.Errorf("%s: span %d of %d is still unnamed", side, lastUnnamed, len(spans))
		}
		t.Logf("%s: %d spans for %d calls on the old connection, %d named (the last unnamed: %d)", side, len(spans), n, named, lastUnnamed)
	}
	// (Not every one: where the deadlines' grpc-timeout values differ
	// more, as under emulation, the table turns over and paths come as
	// literals again.)
	if got := ag.metric(t, "weft_http2_streams_named_by_probe_total"); got < 1 {
		t.Errorf("weft_http2_streams_named_by_probe_total = %v, want the probes to have named streams", got)
	}
	// Context crosses the old connection (the injector's iterator took its
	// socket): a server span with a parent is its call's child.
	callers := map[string]string{}
	for _, c := range clients {
		callers[c.SpanID] = c.TraceID
	}
	linked := 0
	for i, s := range servers {
		if s.ParentSpanID == "" {
			continue
		}
		if tr, ok := callers[s.ParentSpanID]; !ok || tr != s.TraceID {
			t.Errorf("server span %d: parent %s in %s is none of the caller's spans", i, s.ParentSpanID, s.TraceID)
			continue
		}
		linked++
	}
	t.Logf("%d of %d server spans are the children of the caller's", linked, len(servers))
	// Where the injector runs, the caller's socket is synced at its first
	// write of whole frames, and every later call carries a traceparent:
	// the calls in flight when the probes came may go without.
	if ag.metric(t, "weft_inject_enabled") == 1 {
		if linked < len(servers)-2 {
			ag.logMetrics(t, "weft_inject")
			t.Errorf("%d of %d server spans are the caller's children, want all but the first two", linked, len(servers))
		}
		if got := ag.metric(t, `weft_inject_total{name="h2_synced"}`); got < 1 {
			t.Errorf(`weft_inject_total{name="h2_synced"} = %v, want the old connection synced`, got)
		}
	}
	if got := ag.metric(t, "weft_http2_conns_mid_stream_total"); got < 2 {
		t.Errorf("weft_http2_conns_mid_stream_total = %v, want the connection on both sides", got)
	}
}
