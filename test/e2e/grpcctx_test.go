package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestGRPCHandlerHTTP2Call: a gRPC handler calls out through net/http's
// own HTTP/2 client (HTTPS, h2 by ALPN) from a goroutine it starts, with
// its context. The handler's goroutine is not probed (grpc v1.83: one
// uprobe hit a server call), so the link from B's SERVER span to its
// HTTP/2 CLIENT span can only come through the request's context:
//
//	test → A (-http) ─gRPC→ B ─spawn, HTTPS/h2→ C (-http, TLS)
//
// 60 requests, 12 at a time: each of B's SERVER spans has exactly one
// CLIENT child in B, an HTTP/2 GET to C.
func TestGRPCHandlerHTTP2Call(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	const prefix = "weft-e2e-gh2"
	bin := goBuild(t, filepath.Join(repoRoot(t), "testdata/grpcserver"), "", filepath.Join(dir, prefix))
	exe := func(name string) string { return copyExe(t, bin, filepath.Join(dir, prefix+"-"+name)) }
	a := startServer(t, "a", exe("a"), "-http")
	b := startServer(t, "b", exe("b"), "-http-ca", cert)
	c := startServer(t, "c", exe("c"), "-http", "-http-cert", cert, "-http-key", key)
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", prefix+"-*")
	for _, s := range []*server{a, b, c} {
		ag.waitTracked(t, s.PID())
	}
	if tlsUnavailable(t, ag) {
		return // B's HTTPS call has no span to link
	}

	const n = 60
	next := url.QueryEscape(fmt.Sprintf("grpc://%s spawn https://%s", b.Addr, c.Addr))
	getAll(t, &http.Client{Timeout: 30 * time.Second}, n, 12, func(i int) (string, string) {
		return fmt.Sprintf("request %d", i), fmt.Sprintf("http://%s/hop?next=%s&id=r%d", a.Addr, next, i)
	}, "ok")

	service := func(s otelcol.Span) string {
		name, _ := s.Resource["service.name"].(string)
		return name
	}
	inB := func(s otelcol.Span) bool { return service(s) == prefix+"-b" }
	// B: a SERVER and a CLIENT span a request.
	spans := waitSpansSoft(t, col, 2*n, 60*time.Second, inB)
	children := map[string][]otelcol.Span{}
	var servers []otelcol.Span
	for _, s := range spans {
		switch s.Kind {
		case 2:
			servers = append(servers, s)
		case 3:
			children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
		}
	}
	if len(servers) != n {
		t.Errorf("%d SERVER spans in B, want %d", len(servers), n)
	}
	linked := 0
	for _, s := range servers {
		kids := children[s.SpanID]
		if len(kids) != 1 {
			t.Errorf("B's SERVER span %s: %d CLIENT children, want 1", s.SpanID, len(kids))
			continue
		}
		k := kids[0]
		if k.TraceID != s.TraceID || k.Attrs["http.request.method"] != "GET" || k.Attrs["server.port"] != int64(c.Port) ||
			k.Attrs["network.protocol.version"] != "2" {
			t.Errorf("B's CLIENT span %s: trace %s (server's %s), attributes %v; want an HTTP/2 GET to port %d in the server's trace",
				k.SpanID, k.TraceID, s.TraceID, k.Attrs, c.Port)
			continue
		}
		linked++
	}
	viaCtx := ag.metric(t, `weft_gohttp_kernel_total{name="grpc_context_linked"}`)
	handlers := ag.metric(t, `weft_gogrpc_kernel_total{name="handlers"}`)
	t.Logf("%d of %d HTTP/2 calls the children of their gRPC handler's span; linked through their context %.0f; handleStream hits %.0f",
		linked, len(servers), viaCtx, handlers)
	if viaCtx < n || handlers != 0 {
		t.Errorf("%.0f calls linked through their context (want %d or more), %.0f handleStream hits (want 0)", viaCtx, n, handlers)
	}
}

// TestGRPCHandlerWithoutContext: a gRPC handler that calls out without its
// context (context.Background(): http.Get does the same) cannot be linked
// through it. Its first calls are roots; they make the agent hook
// handleStream in its executable (weft_gogrpc_handler_hooks_total), and
// from then on its calls are linked by goroutine, as they were before
// contexts were followed:
//
//	test → A (-http) ─gRPC→ B ─nocontext, HTTP/1→ C (-http)
func TestGRPCHandlerWithoutContext(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	dir := t.TempDir()
	const prefix = "weft-e2e-gnc"
	bin := goBuild(t, filepath.Join(repoRoot(t), "testdata/grpcserver"), "", filepath.Join(dir, prefix))
	exe := func(name string) string { return copyExe(t, bin, filepath.Join(dir, prefix+"-"+name)) }
	a := startServer(t, "a", exe("a"), "-http")
	b := startServer(t, "b", exe("b"))
	c := startServer(t, "c", exe("c"), "-http")
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", prefix+"-*")
	for _, s := range []*server{a, b, c} {
		ag.waitTracked(t, s.PID())
	}
	next := url.QueryEscape(fmt.Sprintf("grpc://%s nocontext http://%s", b.Addr, c.Addr))
	hc := &http.Client{Timeout: 30 * time.Second}
	get := func(id string) {
		t.Helper()
		getAll(t, hc, 1, 1, func(int) (string, string) {
			return id, fmt.Sprintf("http://%s/hop?next=%s&id=%s", a.Addr, next, id)
		}, "ok")
	}
	// Calls until the hook is on: a few, each a root.
	const hooks = `weft_gogrpc_handler_hooks_total`
	warm := 0
	for deadline := time.Now().Add(20 * time.Second); ag.metric(t, hooks) == 0; warm++ {
		if time.Now().After(deadline) {
			t.Fatalf("handleStream not hooked after %d calls without their context", warm)
		}
		get(fmt.Sprintf("w%d", warm))
		time.Sleep(100 * time.Millisecond)
	}
	const n = 40
	for i := range n {
		get(fmt.Sprintf("r%d", i))
	}

	service := func(s otelcol.Span) string {
		name, _ := s.Resource["service.name"].(string)
		return name
	}
	inB := func(s otelcol.Span) bool { return service(s) == prefix+"-b" }
	spans := waitSpansSoft(t, col, 2*(warm+n), 60*time.Second, inB)
	children := map[string]int{}
	for _, s := range spans {
		if s.Kind == 3 {
			children[s.ParentSpanID]++
		}
	}
	servers, linked := 0, 0
	for _, s := range spans {
		if s.Kind != 2 {
			continue
		}
		servers++
		if children[s.SpanID] == 1 {
			linked++
		}
	}
	t.Logf("%d warm-up calls before handleStream was hooked; then %d SERVER spans in B, %d with their CLIENT child (of %d requests in all)",
		warm, servers, linked, warm+n)
	if servers != warm+n {
		t.Errorf("%d SERVER spans in B, want %d", servers, warm+n)
	}
	if linked < n {
		t.Errorf("%d of B's SERVER spans have their CLIENT child, want the %d after the hook at least", linked, n)
	}
	if h := ag.metric(t, `weft_gogrpc_kernel_total{name="handlers_linked"}`); h < n {
		t.Errorf("handleStream linked %.0f handlers, want %d or more", h, n)
	}
}
