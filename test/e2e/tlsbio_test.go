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
		for deadline := time.Now().Add(30 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
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

	chains := callChains(t, col, map[int]string{n.PID(): "n", p.PID(): "p"}, 2*reqs, func(i int) (string, string) {
		if i%2 == 1 {
			return "p", "n"
		}
		return "n", "p"
	})
	bad, linked := 2*reqs-len(chains), 0
	for i, c := range chains {
		for _, a := range []struct {
			s          otelcol.Span
			key, value string
		}{
			{c.srv, "url.path", "/call"}, {c.srv, "url.scheme", "https"}, {c.srv, "http.response.status_code", "200"},
			{c.cli, "http.request.method", "GET"}, {c.cli, "http.response.status_code", "200"},
			{c.leaf, "url.path", "/work"}, {c.leaf, "url.scheme", "https"}, {c.leaf, "http.response.status_code", "200"},
		} {
			if got := fmt.Sprint(a.s.Attrs[a.key]); got != a.value {
				t.Errorf("request %d: %s %s is %q, want %q", i, a.s.Name, a.key, got, a.value)
				bad++
			}
		}
		if c.cli.ParentSpanID != "" {
			linked++
		}
		bad += c.linked(t, i, false)
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
