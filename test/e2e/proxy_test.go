package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestProxy: unmodified reverse proxies between an untraced caller and a
// traced backend (testdata/httpserver), each request a chain caller →
// proxy SERVER → proxy CLIENT → backend SERVER. Proxies copy the incoming
// traceparent onto the request they send; weft, seeing the context of the
// request its server span serves forwarded unchanged (that span's trace,
// its parent as parent-id), writes its client span's ID over the header's
// parent-id, so the tree is exact: the proxy's client span is the child of
// its server span and the backend's server span the child of the proxy's
// client span, and the backend got one traceparent naming that client
// span. Both a proxy that copies every header onto a plain http.Client
// request and httputil.ReverseProxy, with and without a caller traceparent.
// A proxy that sends a span of its own (an SDK's fresh parent-id) keeps its
// header untouched. 200 concurrent requests per case, with each capture
// source (the rewrite happens after the bytes were captured either way).
// The copy and reverse proxies also run over h2c to the backend (net/http's
// HTTP/2 client): the same trees, the field rewritten inside HPACK.
func TestProxy(t *testing.T) {
	needRoot(t)
	for _, capture := range captureSources(t) {
		t.Run(capture, func(t *testing.T) { proxyRun(t, capture) })
	}
}

func proxyRun(t *testing.T, capture string) {
	const n = 200
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	backendBin := goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, "weft-e2e-proxy-backend"))
	proxyBin := goBuild(t, filepath.Join(root, "testdata/proxy"), "", filepath.Join(dir, "proxy"))
	// The backend takes h2c too: the -h2c proxies call it over net/http's
	// own HTTP/2 client.
	backend := startServer(t, "backend", backendBin, "-h2c")
	// A traced caller too: its weft injects the traceparent the proxy
	// forwards (the chain of a mesh of weft-traced services).
	callerBin := goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, "weft-e2e-proxy-caller"))
	traced := startServer(t, "caller", callerBin)
	proxies := map[string]*server{}
	for _, mode := range []string{"copy", "reverse", "sdk", "copy-h2c", "reverse-h2c"} {
		// One executable per mode: service.name tells their spans apart.
		exe := copyExe(t, proxyBin, filepath.Join(dir, "weft-e2e-proxy-"+mode))
		args := []string{"-mode", strings.TrimSuffix(mode, "-h2c"), "-backend", "http://" + backend.Addr}
		if strings.HasSuffix(mode, "-h2c") {
			args = append(args, "-h2c")
		}
		proxies[mode] = startServer(t, mode, append([]string{exe}, args...)...)
	}
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-capture", capture, "-exe", "weft-e2e-proxy-*")
	ag.waitTracked(t, backend.PID())
	ag.waitTracked(t, traced.PID())
	for _, p := range proxies {
		ag.waitTracked(t, p.PID())
	}
	if injectionUnavailable(t, ag) {
		t.Fatal("injection unavailable on this kernel")
	}

	cases := []struct {
		mode   string
		caller bool // the caller sends a traceparent
	}{
		{"copy", true}, {"copy", false}, {"reverse", true}, {"reverse", false}, {"sdk", true},
		// HTTP/2 to the backend: the forwarded field is rewritten inside
		// HPACK (Huffman-coded by Go's encoder, then sent by index for
		// as long as the same value repeats); a request without one gets
		// weft's on the same connections.
		{"copy-h2c", true}, {"copy-h2c", false}, {"reverse-h2c", true}, {"reverse-h2c", false},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%s/caller=%v", tc.mode, tc.caller)
		t.Run(name, func(t *testing.T) {
			prefix := fmt.Sprintf("%s-%v-", tc.mode, tc.caller)
			callers := make([]string, n)
			for i := range callers {
				if tc.caller {
					callers[i] = randomTraceparent()
				}
			}
			before := injectCounters(t, ag)
			got := proxyFanOut(t, n, func(i int) *http.Request {
				req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/headers?id=%s%d", proxies[tc.mode].Addr, prefix, i), nil)
				if callers[i] != "" {
					req.Header.Set("traceparent", callers[i])
				}
				return req
			})
			svc := "weft-e2e-proxy-" + tc.mode
			var keys []string
			for i := range n {
				id := fmt.Sprintf("%s%d", prefix, i)
				keys = append(keys, svc+"/server:"+id, svc+"/client:"+id, "weft-e2e-proxy-backend/server:"+id)
			}
			all := waitKeys(t, col, 120*time.Second, svcSpanID, keys...)
			after := injectCounters(t, ag)
			byKey := map[string][]otelcol.Span{}
			for _, s := range all {
				svc, _ := s.Resource["service.name"].(string)
				k := svc + "/" + spanID(s)
				byKey[k] = append(byKey[k], s)
			}
			one := func(key string) otelcol.Span {
				if ss := byKey[key]; len(ss) == 1 {
					return ss[0]
				}
				t.Errorf("%s: %d spans, want 1", key, len(byKey[key]))
				return otelcol.Span{SpanID: "missing-" + key}
			}
			bad := 0
			fail := func(format string, args ...any) {
				if bad++; bad <= 20 {
					t.Errorf(format, args...)
				}
			}
			child := func(i int, what string, c, p otelcol.Span) {
				if c.ParentSpanID != p.SpanID || c.TraceID != p.TraceID {
					fail("request %d: %s: span %s (trace %s, parent %s) is not a child of %s (trace %s)",
						i, what, c.SpanID, c.TraceID, c.ParentSpanID, p.SpanID, p.TraceID)
				}
			}
			for i := range n {
				id := fmt.Sprintf("%s%d", prefix, i)
				pSrv := one(svc + "/server:" + id)
				pCli := one(svc + "/client:" + id)
				bSrv := one("weft-e2e-proxy-backend/server:" + id)
				if tc.caller {
					f := strings.Split(callers[i], "-")
					child(i, "proxy's server span", pSrv, otelcol.Span{TraceID: f[1], SpanID: f[2]})
				} else if pSrv.ParentSpanID != "" {
					fail("request %d: proxy's server span has parent %s, want a root", i, pSrv.ParentSpanID)
				}
				tps := got[id].Traceparent
				if len(tps) != 1 {
					fail("request %d: the backend got traceparent %q, want one", i, tps)
					continue
				}
				f := strings.Split(tps[0], "-")
				if len(f) != 4 {
					fail("request %d: the backend got traceparent %q", i, tps[0])
					continue
				}
				if tc.mode == "sdk" {
					// The proxy's own span: weft's client span and the
					// backend join it, and the header is as it was sent.
					own := otelcol.Span{TraceID: pSrv.TraceID, SpanID: f[2]}
					if f[2] == pSrv.SpanID || f[2] == pCli.SpanID {
						fail("request %d: the backend got %s, not the proxy's own span", i, tps[0])
					}
					child(i, "proxy's client span, under its own span", pCli, own)
					child(i, "backend's server span, under the proxy's own span", bSrv, own)
					continue
				}
				child(i, "proxy's client span", pCli, pSrv)
				child(i, "backend's server span", bSrv, pCli)
				if f[1] != pCli.TraceID || f[2] != pCli.SpanID || f[3] != "01" {
					fail("request %d: the backend got traceparent %s, want 00-%s-%s-01 (the proxy's client span)", i, tps[0], pCli.TraceID, pCli.SpanID)
				}
			}
			d := func(name string) int { return int(after[name] - before[name]) }
			want := map[string]int{"forward_rewritten": 0, "app_header": 0, "injected": 0, "h2_injected": 0, "h2_app_header": 0}
			switch {
			case tc.mode == "sdk":
				want["app_header"] = n
			case tc.caller:
				want["forward_rewritten"] = n
			case strings.HasSuffix(tc.mode, "-h2c"):
				want["h2_injected"] = n
			default:
				want["injected"] = n
			}
			for name, w := range want {
				if d(name) != w {
					t.Errorf("weft_inject_total{name=%q} grew by %d, want %d", name, d(name), w)
				}
			}
			t.Logf("%s: %d requests; forward_rewritten +%d, app_header +%d, injected +%d, h2_injected +%d, h2_app_header +%d",
				name, n, d("forward_rewritten"), d("app_header"), d("injected"), d("h2_injected"), d("h2_app_header"))
		})
	}
	t.Run("copy/caller=traced", func(t *testing.T) {
		tracedCaller(t, col, ag, traced, proxies["copy"], n)
	})
}

// tracedCaller sends n concurrent requests into the traced caller's /call,
// which calls the copy proxy's /headers: caller SERVER → caller CLIENT
// (weft injects its traceparent) → proxy SERVER → proxy CLIENT (the
// forwarded header rewritten) → backend SERVER, each the child of the one
// before.
func tracedCaller(t *testing.T, col *otelcol.Collector, ag *agent, caller, proxy *server, n int) {
	before := injectCounters(t, ag)
	fanOut(t, n, func(i int) *http.Request {
		to := fmt.Sprintf("http://%s/headers?id=traced-%d", proxy.Addr, i)
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/call?id=traced-%d&to=%s", caller.Addr, i, url.QueryEscape(to)), nil)
		return req
	}, "200")
	var keys []string
	for i := range n {
		id := fmt.Sprintf("traced-%d", i)
		keys = append(keys, "weft-e2e-proxy-caller/server:"+id, "weft-e2e-proxy-caller/client:"+id,
			"weft-e2e-proxy-copy/server:"+id, "weft-e2e-proxy-copy/client:"+id, "weft-e2e-proxy-backend/server:"+id)
	}
	all := waitKeys(t, col, 120*time.Second, svcSpanID, keys...)
	after := injectCounters(t, ag)
	byKey := map[string][]otelcol.Span{}
	for _, s := range all {
		svc, _ := s.Resource["service.name"].(string)
		k := svc + "/" + spanID(s)
		byKey[k] = append(byKey[k], s)
	}
	one := func(key string) otelcol.Span {
		if ss := byKey[key]; len(ss) == 1 {
			return ss[0]
		}
		t.Errorf("%s: %d spans, want 1", key, len(byKey[key]))
		return otelcol.Span{SpanID: "missing-" + key}
	}
	bad := 0
	for i := range n {
		id := fmt.Sprintf("traced-%d", i)
		chain := []otelcol.Span{
			one("weft-e2e-proxy-caller/server:" + id),
			one("weft-e2e-proxy-caller/client:" + id),
			one("weft-e2e-proxy-copy/server:" + id),
			one("weft-e2e-proxy-copy/client:" + id),
			one("weft-e2e-proxy-backend/server:" + id),
		}
		if chain[0].ParentSpanID != "" {
			t.Errorf("request %d: the caller's server span has parent %s, want a root", i, chain[0].ParentSpanID)
		}
		for k := 1; k < len(chain); k++ {
			c, p := chain[k], chain[k-1]
			if (c.ParentSpanID != p.SpanID || c.TraceID != p.TraceID) && bad < 20 {
				bad++
				t.Errorf("request %d: hop %d: span %s (trace %s, parent %s) is not a child of %s (trace %s)",
					i, k, c.SpanID, c.TraceID, c.ParentSpanID, p.SpanID, p.TraceID)
			}
		}
	}
	d := func(name string) int { return int(after[name] - before[name]) }
	if d("forward_rewritten") != n || d("injected") != n || d("app_header") != 0 {
		t.Errorf("forward_rewritten +%d, injected +%d, app_header +%d; want %d, %d, 0",
			d("forward_rewritten"), d("injected"), d("app_header"), n, n)
	}
	t.Logf("copy/caller=traced: %d requests; forward_rewritten +%d, app_header +%d, injected +%d",
		n, d("forward_rewritten"), d("app_header"), d("injected"))
}

// randomTraceparent is a fresh, valid, sampled caller context.
func randomTraceparent() string {
	b := make([]byte, 24)
	rand.Read(b)
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}

// injectCounters reads the agent's weft_inject_total series the proxy test
// checks.
func injectCounters(t *testing.T, a *agent) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, name := range []string{"forward_rewritten", "app_header", "injected", "h2_injected", "h2_app_header"} {
		out[name] = a.metric(t, fmt.Sprintf("weft_inject_total{name=%q}", name))
	}
	return out
}

// seen is the backend's /headers answer: the trace-context headers it got.
type seen struct {
	Traceparent []string `json:"traceparent"`
	Tracestate  []string `json:"tracestate"`
}

// proxyFanOut sends n requests at once and returns, by id, what the
// backend saw; any failure fails the test.
func proxyFanOut(t *testing.T, n int, req func(i int) *http.Request) map[string]seen {
	t.Helper()
	client := &http.Client{Timeout: 60 * time.Second}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	got := map[string]seen{}
	for i := range n {
		wg.Go(func() {
			r := req(i)
			resp, err := client.Do(r)
			if err == nil {
				var s seen
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %s: %s", resp.Status, b)
				} else if err = json.Unmarshal(b, &s); err == nil {
					mu.Lock()
					got[r.URL.Query().Get("id")] = s
					mu.Unlock()
				}
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("request %d: %w", i, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 10 {
			t.Errorf("... and %d more", len(errs)-10)
			break
		}
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return got
}
