package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestMixedChain: 200 concurrent requests through four copies of the
// unmodified grpcserver program, HTTP/1 → gRPC → HTTP/1 → gRPC:
//
//	test → A (-http) ─gRPC→ B ─HTTP→ C (-http) ─gRPC→ D
//
// Each process has one connection per next hop, so B's and D's calls are
// streams multiplexed on one HTTP/2 connection, and B's HTTP calls share a
// keep-alive pool. Each request gives exactly one trace of seven spans, each
// the child of the one before: A's SERVER span, A's gRPC CLIENT span, B's
// SERVER span, B's HTTP CLIENT span, C's SERVER span, C's gRPC CLIENT span,
// D's SERVER span; no span belongs to two requests. Every 10th request
// comes with a caller's traceparent, and A's server span continues it.
func TestMixedChain(t *testing.T) {
	needRoot(t)
	runMixedChain(t, "weft-e2e-mix")
}

// TestGRPCStreamWorkers: TestMixedChain with B and D serving with
// grpc.NumStreamWorkers(32): a handler runs in a reused worker goroutine
// (no child of the connection's reader) or, when all are busy, in a
// goroutine of its own; either way its calls are its children.
func TestGRPCStreamWorkers(t *testing.T) {
	needRoot(t)
	t.Setenv("GRPCSERVER_WORKERS", "32")
	runMixedChain(t, "weft-e2e-mixw")
}

// TestGRPCContextChain: HTTP/1 → gRPC → gRPC → gRPC, where B calls C from
// a goroutine its handler starts, and C calls D from a goroutine two
// generations below its handler, each with the handler's context: the
// gRPC handlers' goroutines are not probed (one uprobe hit a server call),
// so every link between a server span and its calls is made through the
// call's context.Context.
func TestGRPCContextChain(t *testing.T) {
	needRoot(t)
	runChain(t, "weft-e2e-ctx", chainShape{spawn: true})
}

// runMixedChain runs TestMixedChain's 200 requests through a mixed chain
// whose executables are named prefix-a ... prefix-d.
func runMixedChain(t *testing.T, prefix string) {
	runChain(t, prefix, mixedShape)
}

// runChain runs 200 requests through a chain of the shape given.
func runChain(t *testing.T, prefix string, shape chainShape) {
	const n = 200
	col := otelcol.Start(t)
	ch := startShapedChain(t, col, prefix, shape)
	svc, ag := ch.svc, ch.agent
	fanOut(t, n, func(i int) *http.Request {
		req, _ := http.NewRequest("GET", ch.url(fmt.Sprintf("m%d", i)), nil)
		if i%10 == 0 { // a caller that is traced already
			req.Header.Set("traceparent", callerTraceparent(i))
		}
		return req
	}, "ok")

	const perRequest = 7
	all := waitSpansSoft(t, col, n*perRequest, 120*time.Second, nil)

	// What arrived, by service and kind, whatever the links.
	service := func(s otelcol.Span) string {
		name, _ := s.Resource["service.name"].(string)
		return strings.TrimPrefix(name, prefix+"-")
	}
	count := map[string]int{}
	for _, s := range all {
		count[fmt.Sprintf("%s/kind%d", service(s), s.Kind)]++
	}
	var keys []string
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var summary strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&summary, " %s=%d", k, count[k])
	}
	t.Logf("%d spans for %d requests:%s", len(all), n, summary.String())
	for _, k := range []string{"a/kind2", "a/kind3", "b/kind2", "b/kind3", "c/kind2", "c/kind3", "d/kind2"} {
		if count[k] != n {
			t.Errorf("%s: %d spans, want %d", k, count[k], n)
		}
	}

	children := map[string][]otelcol.Span{}
	roots := map[int][]otelcol.Span{}
	for _, s := range all {
		children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
		if service(s) == "a" && s.Kind == 2 {
			q, _ := s.Attrs["url.query"].(string)
			v, _ := url.ParseQuery(q)
			var i int
			if _, err := fmt.Sscanf(v.Get("id"), "m%d", &i); err != nil {
				t.Errorf("A's SERVER span with url.query %q", q)
				continue
			}
			roots[i] = append(roots[i], s)
		}
	}
	// The tree, hop by hop: each span the only child of the one before
	// from its service and of its kind.
	type hop struct {
		what, service string
		kind          int
		check         func(otelcol.Span) string
	}
	grpcTo := func(to *server) func(otelcol.Span) string {
		return func(s otelcol.Span) string {
			if s.Name != "grpc.health.v1.Health/Check" || s.Attrs["rpc.system"] != "grpc" || s.Attrs["rpc.grpc.status_code"] != int64(0) || s.StatusCode == 2 {
				return fmt.Sprintf("name %q, rpc.system %v, status code %v, span status %d", s.Name, s.Attrs["rpc.system"], s.Attrs["rpc.grpc.status_code"], s.StatusCode)
			}
			if s.Attrs["server.port"] != int64(to.Port) {
				return fmt.Sprintf("server.port %v, want %d", s.Attrs["server.port"], to.Port)
			}
			return ""
		}
	}
	httpTo := func(to *server) func(otelcol.Span) string {
		return func(s otelcol.Span) string {
			if s.Attrs["http.response.status_code"] != int64(200) || s.StatusCode == 2 {
				return fmt.Sprintf("status %v, span status %d", s.Attrs["http.response.status_code"], s.StatusCode)
			}
			if s.Attrs["server.port"] != int64(to.Port) {
				return fmt.Sprintf("server.port %v, want %d", s.Attrs["server.port"], to.Port)
			}
			return ""
		}
	}
	to := func(name string) func(otelcol.Span) string {
		if shape.serves(name) == "http" {
			return httpTo(svc[name])
		}
		return grpcTo(svc[name])
	}
	proto := map[string]string{"http": "HTTP", "grpc": "gRPC"}
	var hops []hop
	for i, name := range []string{"b", "c", "d"} {
		from, up := string("abc"[i]), strings.ToUpper(name)
		hops = append(hops,
			hop{fmt.Sprintf("%s's %s CLIENT span", strings.ToUpper(from), proto[shape.serves(name)]), from, 3, to(name)},
			hop{up + "'s SERVER span", name, 2, to(name)})
	}
	// Each link on its own, whatever the others do: how many spans of a
	// hop are children of a span of the hop before, or roots.
	byID := map[string]otelcol.Span{}
	for _, s := range all {
		byID[s.SpanID] = s
	}
	prev := hop{"A's SERVER span", "a", 2, nil}
	var links strings.Builder
	// Without injection (a kernel that cannot run it: the agent says why)
	// each process's own links must hold and every next hop starts anew.
	noInject := injectionUnavailable(t, ag)
	// The TCP option still carries the Go net/http hop (B → C), and gRPC
	// calls (A → B, C → D) whose stream opens a write that B or D reads
	// from its start: under these 200 at once, few are.
	option := feature(t, ag, "tcp_option").On
	for _, h := range hops {
		linked, rootless, of := 0, 0, 0
		for _, s := range all {
			if service(s) != h.service || s.Kind != h.kind {
				continue
			}
			of++
			if p, ok := byID[s.ParentSpanID]; ok && service(p) == prev.service && p.Kind == prev.kind && p.TraceID == s.TraceID {
				linked++
			} else if s.ParentSpanID == "" {
				rootless++
			}
		}
		fmt.Fprintf(&links, "\n\t%-22s child of %-22s %3d of %d (%d roots)", h.what, prev.what, linked, of, rootless)
		if noInject && h.service == prev.service && linked != n {
			t.Errorf("without injection: %s child of %s in %d of %d requests, want all (in-process links need no injection)", h.what, prev.what, linked, n)
		}
		byOption := option && h.kind == 2 && shape.serves(h.service) == "http"
		if noInject && h.service != prev.service && byOption && linked != n {
			t.Errorf("without injection: %s child of %s in %d of %d requests, want all (the TCP option carries it)", h.what, prev.what, linked, n)
		}
		grpcByOption := option && h.kind == 2 && shape.serves(h.service) == "grpc"
		if noInject && h.service != prev.service && !byOption && !grpcByOption && rootless != n {
			t.Errorf("without injection: %s is a root in %d of %d requests, want all", h.what, rootless, n)
		}
		if noInject && grpcByOption && rootless+linked != n {
			t.Errorf("without injection: %s is a root in %d and the child of %s in %d of %d requests, want all one or the other", h.what, rootless, prev.what, linked, n)
		}
		prev = h
	}
	t.Logf("links:%s", links.String())
	if noInject {
		return
	}

	owner := map[string]int{} // span ID → request
	brokenAt := map[string]int{}
	complete, reported := 0, 0
	report := func(format string, args ...any) {
		if reported++; reported <= 20 {
			t.Errorf(format, args...)
		}
	}
	claim := func(i int, s otelcol.Span) {
		if j, ok := owner[s.SpanID]; ok && j != i {
			report("request %d: span %s %q is in request %d's tree too", i, s.SpanID, s.Name, j)
		}
		owner[s.SpanID] = i
	}
	for i := range n {
		if len(roots[i]) != 1 {
			report("request %d: %d SERVER spans in A, want 1", i, len(roots[i]))
			brokenAt["A's SERVER span"]++
			continue
		}
		p := roots[i][0]
		claim(i, p)
		if bad := httpTo(svc["a"])(p); bad != "" {
			report("request %d: A's SERVER span: %s", i, bad)
		}
		if i%10 == 0 {
			tp := strings.Split(callerTraceparent(i), "-")
			if p.TraceID != tp[1] || p.ParentSpanID != tp[2] {
				report("request %d: A's SERVER span (trace %s, parent %s) ignores the caller's %s", i, p.TraceID, p.ParentSpanID, callerTraceparent(i))
			}
		} else if p.ParentSpanID != "" {
			report("request %d: A's SERVER span has parent %s, want a root", i, p.ParentSpanID)
		}
		ok := true
		for _, h := range hops {
			var found []otelcol.Span
			for _, c := range children[p.SpanID] {
				if service(c) == h.service && c.Kind == h.kind {
					found = append(found, c)
				}
			}
			if len(found) != 1 {
				report("request %d: %d spans as %s (child of %s %q in %s), want 1", i, len(found), h.what, p.SpanID, p.Name, service(p))
				brokenAt[h.what]++
				ok = false
				break
			}
			c := found[0]
			claim(i, c)
			if c.TraceID != p.TraceID {
				report("request %d: %s in trace %s, its parent in %s", i, h.what, c.TraceID, p.TraceID)
			}
			if bad := h.check(c); bad != "" {
				report("request %d: %s: %s", i, h.what, bad)
			}
			p = c
		}
		if ok {
			complete++
		}
	}
	t.Logf("%d of %d requests gave the whole tree of %d spans; first broken link: %v", complete, n, perRequest, brokenAt)
	if complete != n {
		// What the agent counted, to tell lost events from lost links.
		t.Logf("agent counters:\n%s", agentCounters(t, ag))
	}
	if complete == n && len(owner) != len(all) {
		t.Errorf("%d spans in the requests' trees, %d exported", len(owner), len(all))
	}
	if len(all) != n*perRequest {
		t.Errorf("%d spans, want %d", len(all), n*perRequest)
	}
	if shape.spawn {
		// B's and C's calls, linked through their contexts; no hook on
		// the handlers' goroutines.
		viaCtx := ag.metric(t, `weft_gogrpc_kernel_total{name="client_calls_context_linked"}`)
		handlers := ag.metric(t, `weft_gogrpc_kernel_total{name="handlers"}`)
		t.Logf("gRPC calls linked through their context: %.0f; handleStream hits: %.0f", viaCtx, handlers)
		if viaCtx < 2*n || handlers != 0 {
			t.Errorf("%.0f calls linked through their context (want %d or more), %.0f handleStream hits (want 0: one hit a server call)", viaCtx, 2*n, handlers)
		}
	}
}
