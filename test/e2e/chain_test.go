package e2e

import (
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

// chain runs three copies of the unmodified test server, A → B → C.
type chain struct {
	a, b, c *server
	agent   *agent
	col     *otelcol.Collector
}

func startChain(t *testing.T, agentArgs ...string) *chain {
	t.Helper()
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	// Separate executables, as separate services have. B is a stripped
	// Go 1.24 build: its offsets come from weft's table, not DWARF.
	start := func(name, toolchain string, flags ...string) *server {
		p := goBuild(t, filepath.Join(root, "testdata/httpserver"), toolchain, filepath.Join(dir, "weft-e2e-chain-"+name), flags...)
		return startServer(t, name, p)
	}
	ch := &chain{a: start("a", ""), b: start("b", "go1.24.13", "-ldflags=-s -w"), c: start("c", ""), col: col}
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ch.agent = startAgent(t, env, append([]string{"-exe", "weft-e2e-chain-*"}, agentArgs...)...)
	for _, s := range []*server{ch.a, ch.b, ch.c} {
		ch.agent.waitTracked(t, s.PID())
	}
	return ch
}

// url of request i into A: A calls B once; B calls C twice, from its
// handler or from goroutines it starts.
func (ch *chain) url(i int, mode string) string {
	c1 := fmt.Sprintf("http://%s/work?id=c%d-1&sleep=2ms", ch.c.Addr, i)
	c2 := fmt.Sprintf("http://%s/work?id=c%d-2", ch.c.Addr, i)
	b := fmt.Sprintf("http://%s/call?id=b%d&mode=%s&to=%s&to=%s", ch.b.Addr, i, mode, url.QueryEscape(c1), url.QueryEscape(c2))
	return fmt.Sprintf("http://%s/call?id=a%d&to=%s", ch.a.Addr, i, url.QueryEscape(b))
}

// callerTraceparent is a distinct, valid, sampled caller context per request.
func callerTraceparent(i int) string {
	return fmt.Sprintf("00-%032x-%016x-01", 0xabc000+i, 0xdef000+i)
}

func spanID(s otelcol.Span) string {
	if q, ok := s.Attrs["url.query"].(string); ok {
		v, _ := url.ParseQuery(q)
		return "server:" + v.Get("id")
	}
	if f, ok := s.Attrs["url.full"].(string); ok {
		if u, err := url.Parse(f); err == nil {
			return "client:" + u.Query().Get("id")
		}
	}
	return ""
}

// TestInProcessLinks: in every service, each client call is a child of the
// server span it was made for, in its trace, whether made from the handler
// or from goroutines it started, through one shared keep-alive client,
// under concurrency. Never linked to another request.
func TestInProcessLinks(t *testing.T) {
	needRoot(t)
	ch := startChain(t)
	const n = 60
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		mode := "inline"
		if i%2 == 1 {
			mode = "goroutine"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", ch.url(i, mode), nil)
			if i%3 == 0 { // a caller that is traced already
				req.Header.Set("traceparent", callerTraceparent(i))
			}
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "200" {
				errs <- fmt.Errorf("request %d: A answered %q", i, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Per request: 3 server spans in A, B, C(x2) = 4, and 3 client spans.
	all := ch.col.WaitSpans(t, n*7, 60*time.Second, func(otelcol.Span) bool { return true })
	byKey := map[string][]otelcol.Span{}
	for _, s := range all {
		byKey[spanID(s)] = append(byKey[spanID(s)], s)
	}
	one := func(key string) (otelcol.Span, bool) {
		ss := byKey[key]
		if len(ss) != 1 {
			t.Errorf("%s: %d spans, want 1", key, len(ss))
			return otelcol.Span{}, false
		}
		return ss[0], true
	}
	for i := range n {
		aSrv, ok1 := one(fmt.Sprintf("server:a%d", i))
		aCli, ok2 := one(fmt.Sprintf("client:b%d", i))
		bSrv, ok3 := one(fmt.Sprintf("server:b%d", i))
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		if i%3 == 0 {
			tp := strings.Split(callerTraceparent(i), "-")
			if aSrv.TraceID != tp[1] || aSrv.ParentSpanID != tp[2] {
				t.Errorf("request %d: A's server span (trace %s, parent %s) ignores the caller's traceparent %s",
					i, aSrv.TraceID, aSrv.ParentSpanID, callerTraceparent(i))
			}
		}
		if aCli.Kind != 3 || aCli.ParentSpanID != aSrv.SpanID || aCli.TraceID != aSrv.TraceID {
			t.Errorf("request %d: A's call (kind %d, trace %s, parent %s) is not a child of A's server span (trace %s, span %s)",
				i, aCli.Kind, aCli.TraceID, aCli.ParentSpanID, aSrv.TraceID, aSrv.SpanID)
		}
		for _, c := range []string{"1", "2"} {
			bCli, ok := one(fmt.Sprintf("client:c%d-%s", i, c))
			if !ok {
				continue
			}
			if bCli.ParentSpanID != bSrv.SpanID || bCli.TraceID != bSrv.TraceID {
				t.Errorf("request %d: B's call %s (trace %s, parent %s) is not a child of B's server span (trace %s, span %s)",
					i, c, bCli.TraceID, bCli.ParentSpanID, bSrv.TraceID, bSrv.SpanID)
			}
			if _, ok := one(fmt.Sprintf("server:c%d-%s", i, c)); !ok {
				continue
			}
		}
	}
	if len(all) != n*7 {
		t.Errorf("%d spans, want %d", len(all), n*7)
	}
	if m := scrape(t, ch.agent); !strings.Contains(m, `weft_uprobes_attached{family="gohttp"} 3`) {
		t.Errorf("want one uprobe per executable:\n%s", m)
	}
}
