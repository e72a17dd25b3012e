package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// b3Case is one request into A carrying mesh (B3) headers.
type b3Case struct {
	name    string
	headers map[string]string
	// The context A's server span must continue: trace and parent span
	// ID, "" for a root (B3 ignored).
	trace, parent string
	problem       string // the weft_b3_ignored_total reason it counts, if any
}

func b3Cases() []b3Case {
	const (
		t128 = "80f198ee56343ba864fe8b2a57d3eff7"
		t64  = "a3ce929d0e0e4736"
		span = "e457b5a2e4d86bd1"
		par  = "05e3ac9a4f6e3b90"
		tp   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	)
	return []b3Case{
		{name: "single128", headers: map[string]string{"b3": t128 + "-" + span + "-1-" + par}, trace: t128, parent: span},
		{name: "single64", headers: map[string]string{"b3": t64 + "-" + span + "-1"},
			trace: strings.Repeat("0", 16) + t64, parent: span},
		// No sampling state: the decision was deferred, and is taken as sampled.
		{name: "deferred", headers: map[string]string{"B3": t128 + "-" + span}, trace: t128, parent: span},
		{name: "multi", headers: map[string]string{"X-B3-TraceId": t128, "X-B3-SpanId": span, "X-B3-ParentSpanId": par,
			"X-B3-Sampled": "1"}, trace: t128, parent: span},
		{name: "multi64debug", headers: map[string]string{"x-b3-traceid": t64, "x-b3-spanid": span, "x-b3-flags": "1"},
			trace: strings.Repeat("0", 16) + t64, parent: span},
		// traceparent wins, wherever it is in the head.
		{name: "traceparent", headers: map[string]string{"b3": t128 + "-" + span + "-1", "traceparent": tp},
			trace: "4bf92f3577b34da6a3ce929d0e0e4736", parent: "00f067aa0ba902b7"},
		{name: "malformed", headers: map[string]string{"b3": t128 + "-" + span[:10] + "-1"}, problem: "length"},
		{name: "zero", headers: map[string]string{"b3": strings.Repeat("0", 32) + "-" + span + "-1"}, problem: "zero_id"},
		{name: "nospan", headers: map[string]string{"X-B3-TraceId": t128, "X-B3-Sampled": "1"}, problem: "missing_id"},
		{name: "uppercase", headers: map[string]string{"X-B3-TraceId": strings.ToUpper(t128), "X-B3-SpanId": span}, problem: "hex"},
		{name: "samplingonly", headers: map[string]string{"b3": "0"}},
	}
}

// TestB3Incoming: a request that carries B3 and no traceparent continues
// the B3 trace, in user space (the server span) and in the kernel (the
// calls its handler makes, and the traceparent they carry downstream);
// where the kernel cannot read B3, every span of the request is in one
// fresh trace instead.
// Chain: the test (untraced) → A /call → B /work, both traced.
func TestB3Incoming(t *testing.T) {
	needRoot(t)
	// Both capture sources where the kernel has both (the syscalls one
	// scans heads without bpf_loop); "auto" is the agent's default.
	for _, capture := range []string{"auto", "syscalls"} {
		t.Run(capture, func(t *testing.T) { testB3Incoming(t, capture) })
	}
}

func testB3Incoming(t *testing.T, capture string) {
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, "weft-e2e-b3"))
	a, b := startServer(t, "a", bin), startServer(t, "b", bin)
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", "weft-e2e-b3", "-capture", capture)
	ag.waitTracked(t, a.PID())
	ag.waitTracked(t, b.PID())
	// The kernel reads B3 where its capture source scans heads with
	// bpf_loop (sock tracepoints, 6.3+); elsewhere the agent ignores B3
	// rather than split a trace between the server span and its calls.
	kernelB3 := strings.Contains(ag.stderr.String(), "msg=attached probe=sockio source=sock_tracepoints")
	t.Logf("kernel reads B3: %v", kernelB3)

	const rounds = 3 // each case, over fresh and kept-alive connections
	cases := b3Cases()
	client := &http.Client{Timeout: 10 * time.Second}
	for r := range rounds {
		for _, c := range cases {
			id := fmt.Sprintf("%s-%d", c.name, r)
			to := fmt.Sprintf("http://%s/work?id=%s-down", b.Addr, id)
			req, err := http.NewRequest("GET", fmt.Sprintf("http://%s/call?id=%s&to=%s", a.Addr, id, url.QueryEscape(to)), nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range c.headers {
				req.Header[k] = []string{v} // as given: B3 names in any case
			}
			if r == 0 {
				req.Close = true
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s: status %d", id, resp.StatusCode)
			}
		}
	}

	// Per request: A's server span, A's client span, B's server span.
	want := 3 * rounds * len(cases)
	got := col.WaitSpans(t, want, 60*time.Second, func(s otelcol.Span) bool { return spanID(s) != "" })
	byID := map[string][]otelcol.Span{}
	for _, s := range got {
		byID[spanID(s)] = append(byID[spanID(s)], s)
	}
	one := func(key string) (otelcol.Span, bool) {
		if n := len(byID[key]); n != 1 {
			t.Errorf("%s: %d spans, want 1", key, n)
			return otelcol.Span{}, false
		}
		return byID[key][0], true
	}
	problems := map[string]int{}
	for r := range rounds {
		for _, c := range cases {
			id := fmt.Sprintf("%s-%d", c.name, r)
			srv, ok1 := one("server:" + id)
			cli, ok2 := one("client:" + id + "-down")
			down, ok3 := one("server:" + id + "-down")
			if !ok1 || !ok2 || !ok3 {
				continue
			}
			if c.trace != "" && c.headers["traceparent"] == "" && !kernelB3 {
				c.trace, c.parent, c.problem = "", "", "not_in_kernel"
			}
			if c.problem != "" {
				problems[c.problem]++
			}
			switch {
			case c.trace == "" && (srv.ParentSpanID != "" || srv.TraceID == "" || strings.Contains(fmt.Sprint(c.headers), srv.TraceID)):
				t.Errorf("%s: server span trace %s parent %q, want a root of a fresh trace", id, srv.TraceID, srv.ParentSpanID)
			case c.trace != "" && (srv.TraceID != c.trace || srv.ParentSpanID != c.parent):
				t.Errorf("%s: server span trace %s parent %q, want %s %s", id, srv.TraceID, srv.ParentSpanID, c.trace, c.parent)
			}
			// The kernel's side: the handler's call is the server span's
			// child in the same trace, and the traceparent injected into it
			// made B's server span that call's child.
			if cli.TraceID != srv.TraceID || cli.ParentSpanID != srv.SpanID {
				t.Errorf("%s: A's client span trace %s parent %s, want %s %s", id, cli.TraceID, cli.ParentSpanID, srv.TraceID, srv.SpanID)
			}
			if down.TraceID != srv.TraceID || down.ParentSpanID != cli.SpanID {
				t.Errorf("%s: B's server span trace %s parent %s, want %s %s", id, down.TraceID, down.ParentSpanID, srv.TraceID, cli.SpanID)
			}
		}
	}
	for _, reason := range []string{"length", "zero_id", "missing_id", "hex", "format", "sampled", "other", "not_in_kernel"} {
		series := fmt.Sprintf(`weft_b3_ignored_total{reason=%q}`, reason)
		if got := int(ag.metric(t, series)); got != problems[reason] {
			t.Errorf("%s = %d, want %d", series, got, problems[reason])
		}
	}
}
