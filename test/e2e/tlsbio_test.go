package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestTLSMemoryBIO: Node.js (OpenSSL in its executable) and Python's
// asyncio keep their SSL objects on memory BIOs and move the ciphertext
// themselves, so no SSL call does socket I/O and none calls SSL_set_fd.
// N (Node HTTPS server, Node's https client) and P (asyncio HTTPS server,
// asyncio's TLS client) call each other, 60 requests each way, 10 at a
// time. Every request and call is a span with its method, path and status
// from the plaintext, and each callee's SERVER span is the child of the
// caller's CLIENT span (the TCP option across TLS). Both are event loops:
// a call's parent is its own request or none, never another's.
func TestTLSMemoryBIO(t *testing.T) {
	needRoot(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("no node (make deps installs nodejs): %v", err)
	}
	col := otelcol.Start(t)
	root := repoRoot(t)
	cert, key := selfSigned(t, t.TempDir())
	n := startServer(t, "node", node, filepath.Join(root, "testdata/nodeserver/server.js"), cert, key)
	p := startServer(t, "asyncio", "/usr/bin/python3", filepath.Join(root, "testdata/pyserver/asyncserver.py"), cert, key)
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-pid", fmt.Sprint(n.PID()), "-pid", fmt.Sprint(p.PID()))
	for _, s := range []*server{n, p} {
		ag.waitTracked(t, s.PID())
	}
	if tlsUnavailable(t, ag) {
		return
	}
	for _, s := range []*server{n, p} {
		c, ok := status.Capability{}, false
		for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			c, ok = statusCapability(t, ag, s.PID(), status.TLS)
		}
		if !c.On {
			t.Fatalf("%s: tls off: %s", s.Name, c.Why)
		}
		t.Logf("%s: tls: %s", s.Name, c.Why)
	}

	const reqs = 60
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 10}}
	getAll(t, hc, 2*reqs, 10, func(i int) (string, string) {
		if i%2 == 0 { // N calls P
			to := fmt.Sprintf("https://%s/work?id=p%d", p.Addr, i)
			return request(i), fmt.Sprintf("https://%s/call?id=n%d&to=%s", n.Addr, i, url.QueryEscape(to))
		}
		to := fmt.Sprintf("https://%s/work?id=n%d", n.Addr, i) // P calls N
		return request(i), fmt.Sprintf("https://%s/call?id=p%d&to=%s", p.Addr, i, url.QueryEscape(to))
	}, "200")

	names := map[string]string{fmt.Sprint(n.PID()): "n", fmt.Sprint(p.PID()): "p"}
	spans := col.WaitSpans(t, 6*reqs, 60*time.Second, func(s otelcol.Span) bool { return names[fmt.Sprint(s.Resource["process.pid"])] != "" })
	by := map[string]otelcol.Span{}
	for _, s := range spans {
		by[names[fmt.Sprint(s.Resource["process.pid"])]+" "+spanID(s)] = s
	}
	bad, linked := 0, 0
	for i := range 2 * reqs {
		caller, callee := "n", "p"
		if i%2 == 1 {
			caller, callee = "p", "n"
		}
		srv, ok1 := by[fmt.Sprintf("%s server:%s%d", caller, caller, i)]
		cli, ok2 := by[fmt.Sprintf("%s client:%s%d", caller, callee, i)]
		leaf, ok3 := by[fmt.Sprintf("%s server:%s%d", callee, callee, i)]
		if !ok1 || !ok2 || !ok3 {
			t.Errorf("request %d: spans missing (%s server %v, %s client %v, %s server %v)", i, caller, ok1, caller, ok2, callee, ok3)
			bad++
			continue
		}
		for _, c := range []struct {
			s          otelcol.Span
			key, value string
		}{
			{srv, "url.path", "/call"}, {srv, "url.scheme", "https"}, {srv, "http.response.status_code", "200"},
			{cli, "http.request.method", "GET"}, {cli, "http.response.status_code", "200"},
			{leaf, "url.path", "/work"}, {leaf, "url.scheme", "https"}, {leaf, "http.response.status_code", "200"},
		} {
			if got := fmt.Sprint(c.s.Attrs[c.key]); got != c.value {
				t.Errorf("request %d: %s %s is %q, want %q", i, c.s.Name, c.key, got, c.value)
				bad++
			}
		}
		switch cli.ParentSpanID {
		case "":
		case srv.SpanID:
			linked++
		default:
			t.Errorf("request %d: %s's call has parent %s, not its request %s: a guess", i, caller, cli.ParentSpanID, srv.SpanID)
			bad++
		}
		if leaf.ParentSpanID != cli.SpanID || leaf.TraceID != cli.TraceID {
			t.Errorf("request %d: %s's server span has parent %q in %s; %s's call is %s in %s",
				i, callee, leaf.ParentSpanID, leaf.TraceID, caller, cli.SpanID, cli.TraceID)
			bad++
		}
	}
	t.Logf("%d requests: calls linked to their request by thread %d (event loops: the rest roots); SSL objects given the socket read before the call %v; plaintext lost for want of a socket %v",
		2*reqs, linked, ag.metric(t, `weft_sockio_kernel_total{name="tls_sock_by_read"}`), ag.metric(t, `weft_sockio_kernel_total{name="tls_no_sock"}`))
	t.Logf("options written %v read %v; matched %v unmatched %v",
		ag.metric(t, `weft_tcpopt_total{name="written"}`), ag.metric(t, `weft_tcpopt_total{name="read"}`),
		ag.metric(t, `weft_sockio_kernel_total{name="option_matched"}`), ag.metric(t, `weft_sockio_kernel_total{name="option_unmatched"}`))
	if bad > 0 {
		t.Errorf("%d problems over %d requests", bad, 2*reqs)
	}
}
