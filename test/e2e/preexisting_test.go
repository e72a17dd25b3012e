package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestPreexistingKeepAlive: A's keep-alive connection to B was opened before
// the agent started; requests over it get a traceparent afterwards (the
// injector's iterator adds it to the sockhash), so B's server span is the
// child of A's call.
func TestPreexistingKeepAlive(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	start := func(name string) *server {
		return startServer(t, name, goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, "weft-e2e-pre-"+name)))
	}
	a, b := start("a"), start("b")
	get := func(id string) {
		t.Helper()
		resp, err := http.Get(fmt.Sprintf("http://%s/call?id=%s&to=%s", a.Addr, id, fmt.Sprintf("http://%s/work%%3Fid%%3Db-%s", b.Addr, id)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "200" {
			t.Fatalf("A answered %q", body)
		}
	}
	get("before") // opens A's pooled connection to B
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", "weft-e2e-pre-*")
	ag.waitTracked(t, a.PID())
	ag.waitTracked(t, b.PID())
	if injectionUnavailable(t, ag) {
		return // nothing to add to old connections: the reason was checked
	}
	for i := range 5 {
		get(fmt.Sprint(i))
	}
	if n := ag.metric(t, `weft_inject_total{name="iter_add"}`); n < 1 {
		t.Errorf("iterator added %v existing sockets, want at least A's connection to B", n)
	}
	if n := ag.metric(t, `weft_inject_total{name="sockhash_add"}`); n != 0 {
		t.Errorf("%v new connections, want 0: the test meant to reuse the old one", n)
	}
	// The first exchanges on a connection seen mid-stream may be skipped
	// (counted: a 6.1 guest once skipped two); the later ones must be whole.
	spans := col.WaitSpans(t, 4, 30*time.Second, func(s otelcol.Span) bool {
		id := spanID(s)
		return id == "client:b-4" || id == "server:b-4" || id == "client:b-3" || id == "server:b-3"
	})
	by := map[string]otelcol.Span{}
	for _, s := range spans {
		by[spanID(s)] = s
	}
	for _, i := range []string{"3", "4"} {
		cli, srv := by["client:b-"+i], by["server:b-"+i]
		if srv.ParentSpanID != cli.SpanID || srv.TraceID != cli.TraceID || cli.SpanID == "" {
			t.Errorf("request %s over the old connection: B's span (trace %s, parent %s) is not a child of A's call (trace %s, span %s)",
				i, srv.TraceID, srv.ParentSpanID, cli.TraceID, cli.SpanID)
		}
	}
}
