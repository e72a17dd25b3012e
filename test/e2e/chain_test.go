package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// chain runs three copies of the unmodified test server, A → B → C.
type chain struct {
	a, b, c *server
	agent   *agent
	col     *otelcol.Collector
	// oneAtATime: checkChain sends its requests one after the other
	// (else all at once).
	oneAtATime bool
}

func startChain(t *testing.T, agentArgs ...string) *chain {
	t.Helper()
	return startChainWith(t, nil, agentArgs...)
}

// startChainWith is startChain calling before (when not nil) once the
// servers run and before the agent starts.
func startChainWith(t *testing.T, before func(*chain), agentArgs ...string) *chain {
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
	if before != nil {
		before(ch)
	}
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ch.agent = startAgent(t, env, append([]string{"-exe", "weft-e2e-chain-*"}, agentArgs...)...)
	for _, s := range []*server{ch.a, ch.b, ch.c} {
		ch.agent.waitTracked(t, s.PID())
	}
	return ch
}

// url of request i into A: A calls B once; B calls C twice, from its
// handler or from goroutines it starts.
func (ch *chain) url(i int, mode, own string) string {
	c1 := fmt.Sprintf("http://%s/work?id=c%d-1&sleep=2ms", ch.c.Addr, i)
	c2 := fmt.Sprintf("http://%s/work?id=c%d-2", ch.c.Addr, i)
	b := fmt.Sprintf("http://%s/call?id=b%d&mode=%s&to=%s&to=%s", ch.b.Addr, i, mode, url.QueryEscape(c1), url.QueryEscape(c2))
	a := fmt.Sprintf("http://%s/call?id=a%d&to=%s", ch.a.Addr, i, url.QueryEscape(b))
	if own != "" {
		a += "&own=" + url.QueryEscape(own)
	}
	return a
}

// appTraceparent is what A sends itself on request i, like an SDK would.
func appTraceparent(i int) string {
	return fmt.Sprintf("00-%032x-%016x-01", 0x5d4000+i, 0x5d4000+i)
}

// unsampled picks the requests whose caller sends sampled=0.
func unsampled(i int) bool { return i%20 == 7 }

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

// TestOneTracePerRequest: 500 concurrent requests into A through A → B → C
// (B calls C twice, from its handler or from goroutines, through one shared
// keep-alive client). Each request gives exactly one trace and the whole
// tree is right: every parent points at the right span, nothing from another
// request. Callers' traceparents are honoured; a request whose program sets
// its own traceparent keeps it, and weft's spans join that trace.
func TestOneTracePerRequest(t *testing.T) {
	needRoot(t)
	checkChain(t, 500, true, nil)
}

// TestChainLateSends: the chain's trees stay right when every send of B
// is recorded milliseconds after its bytes went (a program on
// sock_send_length, ahead of the agent's, holds it): C's answers to B's
// calls, and often A's next request on a kept connection, are read before
// B's send is recorded. Under load a preempted thread does this now and
// then; here it is most of the time. (Only B, and one request at a time:
// a tracepoint's programs run with preemption off, and with every CPU
// held in a stall no process would be left to answer.)
func TestChainLateSends(t *testing.T) {
	needRoot(t)
	ch := checkChain(t, 40, true, func(ch *chain) {
		ch.oneAtATime = true
		kernel.StallSends(t, 1<<22, ch.b.PID())
	})
	if got := ch.agent.metric(t, `weft_conntrack_reads_held_total{outcome="after_write"}`); got == 0 {
		t.Errorf("no read was held for the send it answers: the stall made no race")
	}
}

// TestInjectionOff: with injection switched off, spans and in-process links
// still come, the next hop starts a new trace, and the agent says so.
func TestInjectionOff(t *testing.T) {
	needRoot(t)
	checkChain(t, 40, false, nil)
}

// checkChain sends n requests through A → B → C and checks every tree;
// before (when not nil) runs before the agent starts.
func checkChain(t *testing.T, n int, inject bool, before func(*chain)) *chain {
	// Off: no channel at all (-inject=false alone leaves the TCP option on).
	args := []string{"-inject=false", "-propagation", "none"}
	if inject {
		args = []string{"-inject=true"}
	}
	ch := startChainWith(t, before, args...)
	mk := func(i int) *http.Request {
		mode := "inline"
		if i%2 == 1 {
			mode = "goroutine"
		}
		own := ""
		if i%10 == 5 {
			own = appTraceparent(i)
		}
		req, _ := http.NewRequest("GET", ch.url(i, mode, own), nil)
		if i%3 == 0 { // a caller that is traced already
			req.Header.Set("traceparent", callerTraceparent(i))
		}
		if unsampled(i) { // a caller that decided not to sample
			req.Header.Set("traceparent", strings.TrimSuffix(callerTraceparent(i), "-01")+"-00")
		}
		return req
	}
	if ch.oneAtATime {
		for i := range n {
			fanOut(t, 1, func(int) *http.Request { return mk(i) }, "200")
		}
	} else {
		fanOut(t, n, mk, "200")
	}
	dropped := 0
	for i := range n {
		if unsampled(i) {
			dropped++
		}
	}
	want := (n - dropped) * 7
	if !inject { // without propagation the unsampled decision stops at A
		want = n*7 - dropped*2
	}
	// Not WaitSpans: when one is missing, the checks below name it.
	var all []otelcol.Span
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if all = ch.col.Spans(t); len(all) >= want || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(time.Second) // a span too many would come now
	if all = ch.col.Spans(t); len(all) < want {
		t.Errorf("%d spans, want %d", len(all), want)
		ch.agent.logMetrics(t, "weft_http1", "weft_http_", "weft_client_calls", "weft_sockio", "weft_conntrack", "weft_spans", "weft_export", "weft_inject", "weft_gohttp")
	}
	// Reads the kernel recorded before the write they answer (put back
	// in order): how often the race this chain once lost a span to came.
	ch.agent.logMetrics(t, "weft_conntrack_reads_held")
	byKey := map[string][]otelcol.Span{}
	for _, s := range all {
		byKey[spanID(s)] = append(byKey[spanID(s)], s)
	}
	one := func(key string) otelcol.Span {
		ss := byKey[key]
		if len(ss) != 1 {
			t.Errorf("%s: %d spans, want 1", key, len(ss))
			return otelcol.Span{SpanID: "missing-" + key}
		}
		return ss[0]
	}
	bad := 0
	child := func(i int, what string, c, p otelcol.Span) {
		if c.ParentSpanID != p.SpanID || c.TraceID != p.TraceID {
			if bad++; bad <= 20 {
				t.Errorf("request %d: %s: span %s (trace %s, parent %s) is not a child of %s (trace %s)",
					i, what, c.SpanID, c.TraceID, c.ParentSpanID, p.SpanID, p.TraceID)
			}
		}
	}
	for i := range n {
		if unsampled(i) {
			// Nothing exported anywhere in the chain: the flag travelled.
			for _, k := range []string{"server:a%d", "client:b%d", "server:b%d", "client:c%d-1", "server:c%d-1"} {
				key := fmt.Sprintf(k, i)
				if len(byKey[key]) != 0 && (inject || k == "server:a%d" || k == "client:b%d") {
					t.Errorf("request %d: caller's sampled flag is off, yet %s was exported", i, key)
				}
			}
			continue
		}
		aSrv, aCli, bSrv := one(fmt.Sprintf("server:a%d", i)), one(fmt.Sprintf("client:b%d", i)), one(fmt.Sprintf("server:b%d", i))
		if i%3 == 0 {
			tp := strings.Split(callerTraceparent(i), "-")
			if aSrv.TraceID != tp[1] || aSrv.ParentSpanID != tp[2] {
				t.Errorf("request %d: A's server span (trace %s, parent %s) ignores the caller's %s", i, aSrv.TraceID, aSrv.ParentSpanID, callerTraceparent(i))
			}
		} else if aSrv.ParentSpanID != "" {
			t.Errorf("request %d: A's server span has parent %s, want a root", i, aSrv.ParentSpanID)
		}
		if i%10 == 5 {
			// A set its own traceparent: weft's client span and B join it.
			tp := strings.Split(appTraceparent(i), "-")
			own := otelcol.Span{TraceID: tp[1], SpanID: tp[2]}
			child(i, "A's call made with the program's own traceparent", aCli, own)
			if inject {
				child(i, "B's server span, after A's own traceparent", bSrv, own)
			}
		} else {
			child(i, "A's call", aCli, aSrv)
			if inject {
				child(i, "B's server span", bSrv, aCli)
			} else if bSrv.ParentSpanID != "" {
				t.Errorf("request %d: injection is off, yet B's server span has parent %s", i, bSrv.ParentSpanID)
			}
		}
		for _, c := range []string{"1", "2"} {
			bCli := one(fmt.Sprintf("client:c%d-%s", i, c))
			cSrv := one(fmt.Sprintf("server:c%d-%s", i, c))
			child(i, "B's call "+c, bCli, bSrv)
			if inject {
				child(i, "C's server span "+c, cSrv, bCli)
			}
		}
	}
	if len(all) != want {
		t.Errorf("%d spans, want %d", len(all), want)
	}
	if got := ch.agent.metric(t, "weft_spans_unsampled_total"); int(got) != n*7-want {
		t.Errorf("weft_spans_unsampled_total = %v, want %d", got, n*7-want)
	}
	m := scrape(t, ch.agent)
	// Per executable: roundTrip (HTTP/1), net/http's HTTP/2 client's
	// writeHeaders, and its HTTP/2 server's processHeaders and runHandler.
	if !strings.Contains(m, `weft_uprobes_attached{family="gohttp"} 12`) {
		t.Errorf("want four uprobe links per executable:\n%s", m)
	}
	wantInjected := 0
	if inject {
		wantInjected = n*3 - n/10 // every call but A's with its own header
	}
	if got := ch.agent.metric(t, `weft_inject_total{name="injected"}`); int(got) != wantInjected {
		t.Errorf("injected %v headers, want %d", got, wantInjected)
	}
	if inject {
		if got := ch.agent.metric(t, `weft_inject_total{name="app_header"}`); int(got) != n/10 {
			t.Errorf("app_header %v, want %d", got, n/10)
		}
	} else {
		if got := ch.agent.metric(t, "weft_inject_enabled"); got != 0 {
			t.Errorf("weft_inject_enabled = %v with -inject=false", got)
		}
		// Every call is counted; net/http may send one again on another
		// connection when a pooled one turns out closed (a retry is a
		// second roundTrip, counted too).
		if got := ch.agent.metric(t, `weft_requests_unpropagated_total{reason="injection_off"}`); int(got) < n*3 || int(got) > n*3+2 {
			t.Errorf("unpropagated requests counted %v, want %d (or up to 2 more: retries)", got, n*3)
		} else if int(got) != n*3 {
			t.Logf("unpropagated requests counted %v for %d calls: net/http retried %v", got, n*3, int(got)-n*3)
		}
	}
	return ch
}
