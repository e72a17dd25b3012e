package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// grpcB3Case is one gRPC call into A carrying mesh (B3) metadata.
type grpcB3Case struct {
	name string
	md   []string // KEY=VALUE metadata
	// The context A's server span must continue: trace and parent span
	// ID, "" for a root (B3 ignored).
	trace, parent string
	problem       string // the weft_b3_ignored_total reason it counts, if any
	kernelB3      bool   // the gRPC probe took B3 (b3_parent), else it saw B3 and took none (b3_no_context)
}

func grpcB3Cases() []grpcB3Case {
	const (
		t128 = "80f198ee56343ba864fe8b2a57d3eff7"
		t64  = "a3ce929d0e0e4736"
		span = "e457b5a2e4d86bd1"
		par  = "05e3ac9a4f6e3b90"
		tp   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	)
	pad := strings.Repeat("0", 16)
	return []grpcB3Case{
		{name: "single128", md: []string{"b3=" + t128 + "-" + span + "-1-" + par}, trace: t128, parent: span, kernelB3: true},
		{name: "single64", md: []string{"b3=" + t64 + "-" + span + "-1"}, trace: pad + t64, parent: span, kernelB3: true},
		// No sampling state: the decision was deferred, and is taken as sampled.
		{name: "deferred", md: []string{"b3=" + t128 + "-" + span}, trace: t128, parent: span, kernelB3: true},
		{name: "multi", md: []string{"x-b3-traceid=" + t128, "x-b3-spanid=" + span, "x-b3-parentspanid=" + par, "x-b3-sampled=1"},
			trace: t128, parent: span, kernelB3: true},
		{name: "multi64debug", md: []string{"x-b3-traceid=" + t64, "x-b3-spanid=" + span, "x-b3-sampled=0", "x-b3-flags=1"},
			trace: pad + t64, parent: span, kernelB3: true},
		// traceparent wins over either form (grpc-go sends metadata in map order).
		{name: "traceparent", md: []string{"b3=" + t128 + "-" + span + "-1", "traceparent=" + tp},
			trace: "4bf92f3577b34da6a3ce929d0e0e4736", parent: "00f067aa0ba902b7"},
		{name: "traceparentmulti", md: []string{"traceparent=" + tp, "x-b3-traceid=" + t128, "x-b3-spanid=" + span},
			trace: "4bf92f3577b34da6a3ce929d0e0e4736", parent: "00f067aa0ba902b7"},
		{name: "malformed", md: []string{"b3=" + t128 + "-" + span[:10] + "-1"}, problem: "length"},
		{name: "zero", md: []string{"b3=" + strings.Repeat("0", 32) + "-" + span + "-1"}, problem: "zero_id"},
		{name: "nospan", md: []string{"x-b3-traceid=" + t128, "x-b3-sampled=1"}, problem: "missing_id"},
		{name: "uppercase", md: []string{"x-b3-traceid=" + strings.ToUpper(t128), "x-b3-spanid=" + span}, problem: "hex"},
		{name: "badsampled", md: []string{"x-b3-traceid=" + t128, "x-b3-spanid=" + span, "x-b3-sampled=yes"}, problem: "sampled"},
		{name: "samplingonly", md: []string{"b3=0"}},
	}
}

// TestGRPCB3Incoming: a gRPC call that carries B3 metadata and no
// traceparent continues the B3 trace, in user space (A's server span) and
// in the kernel (the gRPC probe's IDs: A's handler's call is the server
// span's child, and the traceparent injected into it makes B's server span
// that call's child); malformed B3 is counted and ignored, a traceparent
// wins, and a B3 "not sampled" leaves every span of the call unsampled.
// Chain: an untraced caller → A (Check "hop grpc://B") → B, both traced.
func TestGRPCB3Incoming(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	dir := t.TempDir()
	src := filepath.Join(repoRoot(t), "testdata/grpcserver")
	bin := goBuild(t, src, "", filepath.Join(dir, "weft-e2e-grpcb3"))
	// The caller is another executable, never selected: its calls carry
	// only the metadata the test gives them.
	callerBin := goBuild(t, src, "", filepath.Join(dir, "weft-e2e-grpcb3-caller"))
	a, b := startServer(t, "a", bin), startServer(t, "b", bin)
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint},
		"-pid", fmt.Sprint(a.PID()), "-pid", fmt.Sprint(b.PID()))
	ag.waitTracked(t, a.PID())
	ag.waitTracked(t, b.PID())
	noInject := injectionUnavailable(t, ag)

	// Each round on a caller of its own: its connection's first stream
	// comes with the preface, the others on an open connection.
	const rounds = 2
	cases := grpcB3Cases()
	call := func(c *caller, md []string) {
		t.Helper()
		args := []string{}
		for _, kv := range md {
			args = append(args, "-md", kv)
		}
		if got := c.call(t, append(args, "hop", "grpc://"+b.Addr)...); got != "OK" {
			t.Fatalf("call with %v: %s", md, got)
		}
	}
	for range rounds {
		c := startCaller(t, callerBin, a.Addr)
		for _, tc := range cases {
			call(c, tc.md)
		}
		c.in.Close()
	}

	pid := func(s otelcol.Span) string { return fmt.Sprint(s.Resource["process.pid"]) }
	aPID, bPID := fmt.Sprint(a.PID()), fmt.Sprint(b.PID())
	n := rounds * len(cases)
	all := col.WaitSpans(t, 3*n, 60*time.Second, func(s otelcol.Span) bool { return pid(s) == aPID || pid(s) == bPID })
	var aSrv []otelcol.Span
	children := map[string][]otelcol.Span{}
	for _, s := range inStartOrder(all) {
		if s.Kind == 2 && pid(s) == aPID {
			aSrv = append(aSrv, s)
		}
		children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
	}
	if len(aSrv) != n {
		t.Fatalf("%d server spans in A for %d calls", len(aSrv), n)
	}
	// The only child of parent from pid, of kind.
	only := func(what string, parent otelcol.Span, pid_ string, kind int) (otelcol.Span, bool) {
		var got []otelcol.Span
		for _, s := range children[parent.SpanID] {
			if pid(s) == pid_ && s.Kind == kind {
				got = append(got, s)
			}
		}
		if len(got) != 1 {
			t.Errorf("%s: %d spans with parent %s, want 1", what, len(got), parent.SpanID)
			return otelcol.Span{}, false
		}
		return got[0], true
	}
	problems := map[string]int{}
	kernelTook, kernelNone := 0, 0
	for r := range rounds {
		for i, tc := range cases {
			id := fmt.Sprintf("%s-%d", tc.name, r)
			srv := aSrv[r*len(cases)+i] // the calls ran one after another
			if tc.problem != "" {
				problems[tc.problem]++
			}
			switch {
			case tc.kernelB3:
				kernelTook++
			case !strings.Contains(strings.Join(tc.md, " "), "traceparent="):
				kernelNone++
			}
			if srv.Name != "grpc.health.v1.Health/Check" || srv.Attrs["rpc.grpc.status_code"] != int64(0) {
				t.Errorf("%s: A's server span %q status %v", id, srv.Name, srv.Attrs["rpc.grpc.status_code"])
			}
			switch {
			case tc.trace == "" && (srv.ParentSpanID != "" || srv.TraceID == "" || strings.Contains(strings.Join(tc.md, " "), srv.TraceID)):
				t.Errorf("%s: A's server span trace %s parent %q, want a root of a fresh trace", id, srv.TraceID, srv.ParentSpanID)
			case tc.trace != "" && (srv.TraceID != tc.trace || srv.ParentSpanID != tc.parent):
				t.Errorf("%s: A's server span trace %s parent %q, want %s %s", id, srv.TraceID, srv.ParentSpanID, tc.trace, tc.parent)
			}
			// The kernel's side: the handler's call is the server span's
			// child in the same trace, and B's server span that call's.
			cli, ok := only(id+": A's client span", srv, aPID, 3)
			if !ok {
				continue
			}
			if cli.TraceID != srv.TraceID {
				t.Errorf("%s: A's client span in trace %s, A's server span in %s", id, cli.TraceID, srv.TraceID)
			}
			if noInject {
				// No header: the TCP option may carry A's call to B (the
				// syscalls source reads the write before it leaves), or
				// B's span is a root.
				for _, down := range children[cli.SpanID] {
					if down.TraceID != srv.TraceID {
						t.Errorf("%s: B's server span in trace %s, want %s", id, down.TraceID, srv.TraceID)
					}
				}
				continue
			}
			down, ok := only(id+": B's server span", cli, bPID, 2)
			if ok && down.TraceID != srv.TraceID {
				t.Errorf("%s: B's server span in trace %s, want %s", id, down.TraceID, srv.TraceID)
			}
		}
	}
	for _, reason := range []string{"length", "zero_id", "missing_id", "hex", "format", "sampled", "other", "not_in_kernel"} {
		series := fmt.Sprintf(`weft_b3_ignored_total{reason=%q}`, reason)
		if got := int(ag.metric(t, series)); got != problems[reason] {
			t.Errorf("%s = %d, want %d", series, got, problems[reason])
		}
	}
	t.Logf("%d calls: B3 taken in the kernel %v, seen and not taken %v; ignored in user space %v", n,
		ag.metric(t, `weft_gogrpc_kernel_total{name="b3_parent"}`), ag.metric(t, `weft_gogrpc_kernel_total{name="b3_no_context"}`), problems)
	for name, want := range map[string]int{"b3_parent": kernelTook, "b3_no_context": kernelNone} {
		series := fmt.Sprintf(`weft_gogrpc_kernel_total{name=%q}`, name)
		if got := int(ag.metric(t, series)); got != want {
			t.Errorf("%s = %d, want %d", series, got, want)
		}
	}

	// B3 "not sampled" (single and multi): under the default sampler
	// (parent-based) the whole call is unsampled, A's spans and B's (whose
	// injected traceparent says so): made, counted, never exported.
	const tu = "5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed"
	unsampled := [][]string{
		{"b3=" + tu + "-e457b5a2e4d86bd1-0"},
		{"x-b3-traceid=" + tu, "x-b3-spanid=e457b5a2e4d86bd1", "x-b3-sampled=0"},
	}
	c := startCaller(t, callerBin, a.Addr)
	for _, md := range unsampled {
		call(c, md)
	}
	// Without injection B's span is unsampled only where the TCP option
	// carried the call; else it is a root of its own, sampled.
	least, most := 3*len(unsampled), 3*len(unsampled)
	if noInject {
		least = 2 * len(unsampled)
	}
	deadline := time.Now().Add(30 * time.Second)
	for int(ag.metric(t, "weft_spans_unsampled_total")) < least && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if noInject {
		time.Sleep(2 * time.Second) // B's spans, if linked
	}
	if got := int(ag.metric(t, "weft_spans_unsampled_total")); got < least || got > most {
		t.Errorf("weft_spans_unsampled_total = %d, want %d to %d", got, least, most)
	}
	for _, s := range col.Spans(t) {
		if s.TraceID == tu {
			t.Errorf("a span of the unsampled B3 trace was exported: %q kind %d pid %s", s.Name, s.Kind, pid(s))
		}
	}
	if got := int(ag.metric(t, `weft_gogrpc_kernel_total{name="b3_parent"}`)); got != kernelTook+len(unsampled) {
		t.Errorf("b3_parent = %d after the unsampled calls, want %d", got, kernelTook+len(unsampled))
	}
}
