package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// spansPerSampledRequest: A's server span and its calls to B and to the
// recorder; B's server span and its two calls to C; C's two server spans.
const spansPerSampledRequest = 8

// recorder is an untraced server that keeps the traceparent each request
// brings, by the request's id: what weft told the next hop.
type recorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]string
}

func startRecorder(t *testing.T) *recorder {
	r := &recorder{got: map[string]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.got[req.URL.Query().Get("id")] = req.Header.Get("traceparent")
		r.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) traceparent(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id]
}

// samplingURL is request i into A: A calls B (which calls C twice) and
// then the recorder.
func (ch *chain) samplingURL(i int, rec *recorder) string {
	b := ch.url(i, []string{"inline", "goroutine"}[i%2], "")
	_, aQuery, _ := strings.Cut(b, "?")
	q, _ := url.ParseQuery(aQuery)
	q.Add("to", fmt.Sprintf("%s/?id=r%d", rec.srv.URL, i))
	return fmt.Sprintf("http://%s/call?%s", ch.a.Addr, q.Encode())
}

// caller is the traceparent a request comes in with ("" for none).
type callerFunc func(i int) string

// samplingRun is what one agent did with n requests.
type samplingRun struct {
	n       int
	caller  callerFunc
	byKey   map[string][]otelcol.Span
	total   int     // spans exported
	dropped float64 // weft_spans_unsampled_total
	rec     *recorder
}

// runSampling starts A → B → C under an agent with the given sampler
// environment, sends n concurrent requests and waits until every span the
// agent made is either exported or counted as unsampled.
func runSampling(t *testing.T, n int, env map[string]string, caller callerFunc) *samplingRun {
	for k, v := range env {
		t.Setenv(k, v) // the agent inherits the test's environment
	}
	rec := startRecorder(t)
	ch := startChain(t)
	fanOut(t, n, func(i int) *http.Request {
		req, _ := http.NewRequest("GET", ch.samplingURL(i, rec), nil)
		if tp := caller(i); tp != "" {
			req.Header.Set("traceparent", tp)
		}
		return req
	}, "200,200")
	want := n * spansPerSampledRequest
	run := &samplingRun{n: n, caller: caller, rec: rec}
	deadline := time.Now().Add(120 * time.Second)
	for {
		all := ch.col.Spans(t)
		run.total, run.dropped = len(all), ch.agent.metric(t, "weft_spans_unsampled_total")
		if run.total+int(run.dropped) >= want || time.Now().After(deadline) {
			time.Sleep(time.Second) // anything late would show as too many
			all = ch.col.Spans(t)
			run.total, run.dropped = len(all), ch.agent.metric(t, "weft_spans_unsampled_total")
			run.byKey = map[string][]otelcol.Span{}
			for _, s := range all {
				run.byKey[spanID(s)] = append(run.byKey[spanID(s)], s)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if run.total+int(run.dropped) != want {
		t.Errorf("%d spans exported + %v counted in weft_spans_unsampled_total, want %d in all",
			run.total, run.dropped, want)
		ch.agent.logMetrics(t, "weft_http", "weft_client_calls", "weft_sockio", "weft_conntrack", "weft_spans", "weft_export", "weft_inject", "weft_gohttp")
	}
	return run
}

// sdkDecides is what an OpenTelemetry SDK with the same sampler decides
// for a span of trace tid whose caller sent callerTP ("" for none).
type sdkDecides func(tid trace.TraceID, callerTP string) bool

func sdkDecision(s sdktrace.Sampler) sdkDecides {
	return func(tid trace.TraceID, callerTP string) bool {
		ctx := context.Background()
		if callerTP != "" {
			p := strings.Split(callerTP, "-")
			cfg := trace.SpanContextConfig{TraceID: tid, Remote: true}
			sid, _ := hex.DecodeString(p[2])
			copy(cfg.SpanID[:], sid)
			if p[3] == "01" {
				cfg.TraceFlags = trace.FlagsSampled
			}
			ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(cfg))
		}
		r := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: "GET", Kind: trace.SpanKindServer})
		return r.Decision == sdktrace.RecordAndSample
	}
}

// check verifies every request against the SDK's decision: the flag weft
// sent the next hop, and a trace that is whole (all its spans, linked
// right) or absent. It returns how many requests without a caller were
// sampled.
func (run *samplingRun) check(t *testing.T, decide sdkDecides) (rootsSampled, roots int) {
	t.Helper()
	bad := 0
	fail := func(format string, args ...any) {
		if bad++; bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	keys := []string{"server:a%d", "client:b%d", "client:r%d", "server:b%d", "client:c%d-1", "client:c%d-2", "server:c%d-1", "server:c%d-2"}
	exported := 0
	for i := range run.n {
		caller := run.caller(i)
		sent := run.rec.traceparent(fmt.Sprintf("r%d", i))
		p := strings.Split(sent, "-")
		if len(p) != 4 || len(p[1]) != 32 {
			fail("request %d: A's call reached the next hop with traceparent %q", i, sent)
			continue
		}
		var tid trace.TraceID
		hex.Decode(tid[:], []byte(p[1]))
		if caller != "" && p[1] != strings.Split(caller, "-")[1] {
			fail("request %d: A's call carries trace %s, not the caller's %s", i, p[1], caller)
		}
		want := decide(tid, caller)
		if (p[3] == "01") != want {
			fail("request %d (caller %q): weft sent the next hop %s; the SDK's decision is sampled=%v", i, caller, sent, want)
		}
		if caller == "" {
			roots++
			if want {
				rootsSampled++
			}
		}
		present := 0
		for _, k := range keys {
			present += len(run.byKey[fmt.Sprintf(k, i)])
		}
		if !want {
			if present != 0 {
				fail("request %d (trace %s, caller %q) is not sampled, yet %d of its spans were exported", i, p[1], caller, present)
			}
			continue
		}
		if present != len(keys) {
			var missing []string
			for _, k := range keys {
				if len(run.byKey[fmt.Sprintf(k, i)]) != 1 {
					missing = append(missing, fmt.Sprintf(k, i))
				}
			}
			fail("request %d (trace %s, caller %q) is sampled, yet %d of its %d spans were exported (not one: %v)", i, p[1], caller, present, len(keys), missing)
			continue
		}
		exported += present
		span := func(k string) otelcol.Span { return run.byKey[fmt.Sprintf(k, i)][0] }
		for _, k := range keys {
			if s := span(k); s.TraceID != p[1] || s.Flags&1 == 0 {
				fail("request %d: %s has trace %s flags %#x, want trace %s sampled", i, k, s.TraceID, s.Flags, p[1])
			}
		}
		aSrv, toRec := span("server:a%d"), span("client:r%d")
		if wantParent := ""; caller != "" {
			wantParent = strings.Split(caller, "-")[2]
			if aSrv.ParentSpanID != wantParent {
				fail("request %d: A's server span has parent %q, want the caller's %q", i, aSrv.ParentSpanID, wantParent)
			}
		} else if aSrv.ParentSpanID != "" {
			fail("request %d: A's server span has parent %q, want a root", i, aSrv.ParentSpanID)
		}
		if toRec.SpanID != p[2] || toRec.ParentSpanID != aSrv.SpanID {
			fail("request %d: the recorder was sent span %s; A's call span is %s (parent %s, A's server span %s)",
				i, p[2], toRec.SpanID, toRec.ParentSpanID, aSrv.SpanID)
		}
	}
	if exported != run.total {
		t.Errorf("%d spans exported, %d of them for the requests sent", run.total, exported)
	}
	t.Logf("%d spans exported, %v unsampled; %d of %d new traces sampled", run.total, run.dropped, rootsSampled, roots)
	return rootsSampled, roots
}

// callers gives a quarter of the requests a sampled caller, a quarter an
// unsampled one, and half none.
func callers(i int) string {
	switch i % 4 {
	case 1:
		return fmt.Sprintf("00-%032x-%016x-01", 0x5a3000+i, 0x5b3000+i)
	case 3:
		return fmt.Sprintf("00-%032x-%016x-00", 0x5a3000+i, 0x5b3000+i)
	}
	return ""
}

// TestSampling: with parentbased_traceidratio at 0.5, every request's
// trace is whole or absent; a trace weft starts is kept exactly when the
// SDK's TraceIDRatioBased keeps its ID, and the next hop is told so (flag
// 01 or 00); callers' decisions are followed; about half the new traces
// are kept; every span is exported or counted as unsampled.
func TestSampling(t *testing.T) {
	needRoot(t)
	const n = 200
	run := runSampling(t, n, map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, callers)
	kept, roots := run.check(t, sdkDecision(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.5))))
	// 100 fair coins: outside [30, 70] happens about once in 10^4 runs.
	if roots != n/2 || kept < roots*3/10 || kept > roots*7/10 {
		t.Errorf("%d of %d new traces sampled at ratio 0.5", kept, roots)
	}
	if want := (kept + n/4) * spansPerSampledRequest; run.total != want {
		t.Errorf("%d spans exported, want %d", run.total, want)
	}
}

// TestSamplingNotParentBased: the samplers that ignore the caller's flag
// decide every hop themselves (in the kernel too: the flag sent on may
// differ from the one that came in).
func TestSamplingNotParentBased(t *testing.T) {
	needRoot(t)
	// Caller trace IDs with their low half at either end of the range, so
	// that ratio 0.5 keeps some against a caller's 00 and drops some
	// against its 01.
	mixed := func(i int) string {
		if i%2 == 0 {
			return ""
		}
		low := uint64(0x10 + i)
		if i%4 == 1 {
			low = ^uint64(0) - uint64(i)
		}
		return fmt.Sprintf("00-%016x%016x-%016x-%02d", 0x77+i, low, 0x99+i, (i/2)%2)
	}
	for _, tc := range []struct {
		sampler, arg string
		sdk          sdktrace.Sampler
		kept         func(roots int) (lo, hi int)
	}{
		{"traceidratio", "0.5", sdktrace.TraceIDRatioBased(0.5), func(r int) (int, int) { return r * 2 / 10, r * 8 / 10 }},
		{"always_on", "", sdktrace.AlwaysSample(), func(r int) (int, int) { return r, r }},
		{"always_off", "", sdktrace.NeverSample(), func(r int) (int, int) { return 0, 0 }},
	} {
		t.Run(tc.sampler, func(t *testing.T) {
			const n = 40
			run := runSampling(t, n, map[string]string{"OTEL_TRACES_SAMPLER": tc.sampler, "OTEL_TRACES_SAMPLER_ARG": tc.arg}, mixed)
			kept, roots := run.check(t, sdkDecision(tc.sdk))
			if lo, hi := tc.kept(roots); roots != n/2 || kept < lo || kept > hi {
				t.Errorf("%d of %d new traces sampled, want %d to %d", kept, roots, lo, hi)
			}
		})
	}
}

// TestSamplingMixedChain: the gRPC probe's sites decide as the HTTP ones
// do. Under parentbased_traceidratio at 0.5, requests through
// A (HTTP) ─gRPC→ B ─HTTP→ C (HTTP) ─gRPC→ D give whole traces of seven
// spans, whose root (A's) trace ID the SDK's ratio rule keeps, or nothing:
// a hop that ignored the flag it was sent would export spans of a trace
// without its root.
func TestSamplingMixedChain(t *testing.T) {
	needRoot(t)
	const n, perRequest = 100, 7
	col := otelcol.Start(t)
	ch := startMixedChain(t, col, "weft-e2e-smix", "OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.5")
	ag := ch.agent
	fanOut(t, n, func(i int) *http.Request {
		req, _ := http.NewRequest("GET", ch.url(fmt.Sprintf("s%d", i)), nil)
		return req
	}, "ok")

	var all []otelcol.Span
	var dropped float64
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		all, dropped = col.Spans(t), ag.metric(t, "weft_spans_unsampled_total")
		if len(all)+int(dropped) >= n*perRequest || time.Now().After(deadline) {
			time.Sleep(time.Second)
			all, dropped = col.Spans(t), ag.metric(t, "weft_spans_unsampled_total")
			break
		}
	}
	if len(all)+int(dropped) != n*perRequest {
		t.Errorf("%d spans exported + %v counted unsampled, want %d in all", len(all), dropped, n*perRequest)
	}
	byTrace := map[string][]otelcol.Span{}
	for _, s := range all {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	ratio := sdkDecision(sdktrace.TraceIDRatioBased(0.5))
	for id, ss := range byTrace {
		var tid trace.TraceID
		hex.Decode(tid[:], []byte(id))
		roots := 0
		for _, s := range ss {
			if s.ParentSpanID == "" {
				roots++
			}
		}
		if len(ss) != perRequest || roots != 1 || !ratio(tid, "") {
			t.Errorf("trace %s: %d spans, %d roots, kept by the ratio rule: %v; want %d spans, one root, kept",
				id, len(ss), roots, ratio(tid, ""), perRequest)
		}
	}
	t.Logf("%d of %d traces sampled; %d spans exported, %v unsampled", len(byTrace), n, len(all), dropped)
	if len(byTrace) < n*3/10 || len(byTrace) > n*7/10 {
		t.Errorf("%d of %d traces sampled at ratio 0.5", len(byTrace), n)
	}
	if got := ag.metric(t, `weft_gogrpc_kernel_total{name="client_calls_linked"}`); got < n {
		t.Errorf("the gRPC probe linked %v client calls, want at least %d: the gRPC sites were not exercised", got, n)
	}
}
