package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"

	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weft-e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestOpenSSLSpansAndPropagation: two Python http.server processes behind
// ssl (OpenSSL, libssl.so.3), P calling Q over HTTPS with urllib on the
// thread serving the request; a Go client calls P over HTTPS. Both see
// their SERVER spans with method, route, status from the plaintext the
// libssl uprobes read; P's call is a CLIENT span linked to P's request by
// thread, and Q's server span takes it as parent from the TCP option that
// rode the encrypted hop. The ciphertext is never parsed.
func TestOpenSSLSpansAndPropagation(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	py := filepath.Join(root, "testdata/pyserver/server.py")
	p := startServer(t, "p", "/usr/bin/python3", py, "127.0.0.1", cert, key)
	q := startServer(t, "q", "/usr/bin/python3", py, "127.0.0.1", cert, key)

	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-pid", fmt.Sprint(p.PID()), "-pid", fmt.Sprint(q.PID()))
	for _, s := range []*server{p, q} {
		ag.waitTracked(t, s.PID())
	}
	if tlsUnavailable(t, ag) {
		return
	}
	for _, s := range []*server{p, q} {
		if c := capability(t, ag, s.PID(), status.TLS); !c.On {
			t.Fatalf("pid %d: tls off: %s", s.PID(), c.Why)
		}
	}

	const n = 40
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 8}}
	getAll(t, hc, n, 8, func(i int) (string, string) {
		to := fmt.Sprintf("https://%s/work?id=q%d", q.Addr, i)
		return request(i), fmt.Sprintf("https://%s/call?id=p%d&to=%s", p.Addr, i, url.QueryEscape(to))
	}, "200")

	chains := callChains(t, col, map[int]string{p.PID(): "p", q.PID(): "q"}, n, func(int) (string, string) { return "p", "q" })
	bad := n - len(chains)
	for i, c := range chains {
		if c.srv.Name != "GET /call" && c.srv.Name != "GET" {
			t.Errorf("request %d: P's server span named %q", i, c.srv.Name)
		}
		if fmt.Sprint(c.srv.Attrs["http.response.status_code"]) != "200" || fmt.Sprint(c.leaf.Attrs["url.path"]) != "/work" {
			t.Errorf("request %d: attributes P %v, Q %v", i, c.srv.Attrs, c.leaf.Attrs)
		}
		bad += c.linked(t, i, true)
	}
	t.Logf("tls connections %v, plaintext lost for want of a socket %v; options written %v read %v; server parents from option %v",
		ag.metric(t, `weft_sockio_kernel_total{name="tls_conns"}`), ag.metric(t, `weft_sockio_kernel_total{name="tls_no_sock"}`),
		ag.metric(t, `weft_tcpopt_total{name="written"}`), ag.metric(t, `weft_tcpopt_total{name="read"}`),
		ag.metric(t, `weft_server_parent_total{from="option"}`))
	if bad > 0 {
		t.Errorf("%d of %d requests' traces broken", bad, n)
	}
}

// TestCurlOverTLS: curl (libcurl with OpenSSL), started after the agent
// and selected by its executable, calls a Python HTTPS server 10 times on
// one connection, 4 a second. Once curl is traced (discovery sees its exec
// and attaches to its libssl) its calls are CLIENT spans, and the server's
// spans their children through the TCP option on the encrypted hop. The
// calls before the attach are counted, not required.
func TestCurlOverTLS(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	srv := startServer(t, "pytls", "/usr/bin/python3", filepath.Join(root, "testdata/pyserver/server.py"), "127.0.0.1", cert, key)
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-pid", fmt.Sprint(srv.PID()), "-exe", "curl")
	ag.waitTracked(t, srv.PID())
	if tlsUnavailable(t, ag) {
		return
	}

	const n = 10
	args := []string{"-sk", "--rate", "4/s", "-o", "/dev/null", "-w", "%{http_code}\n"}
	for i := range n {
		args = append(args, fmt.Sprintf("https://%s/work?id=curl%d", srv.Addr, i))
	}
	out, err := exec.Command("curl", args...).Output()
	if err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	if got := strings.Count(string(out), "200\n"); got != n {
		t.Fatalf("curl answers: %q", out)
	}
	servers := col.WaitSpans(t, n, 30*time.Second, func(s otelcol.Span) bool {
		return s.Kind == 2 && fmt.Sprint(s.Resource["process.pid"]) == fmt.Sprint(srv.PID())
	})
	// curl's spans: it exited, the agent flushes. Until its last call's
	// is there (its first ones may have been made before it was traced).
	isCurl := func(s otelcol.Span) bool {
		return s.Kind == 3 && strings.HasPrefix(fmt.Sprint(s.Resource["process.executable.name"]), "curl")
	}
	curlKey := func(s otelcol.Span) string {
		if isCurl(s) {
			return spanID(s)
		}
		return ""
	}
	clients := map[string]otelcol.Span{}
	for _, s := range waitKeys(t, col, 30*time.Second, curlKey, fmt.Sprintf("client:curl%d", n-1)) {
		if isCurl(s) {
			clients[spanID(s)] = s
		}
	}
	linked := 0
	for _, s := range servers {
		id := strings.TrimPrefix(spanID(s), "server:")
		c, ok := clients["client:"+id]
		if !ok {
			continue
		}
		switch {
		case s.ParentSpanID == "":
			// made before curl's connection got the option callbacks
		case s.ParentSpanID != c.SpanID || s.TraceID != c.TraceID:
			t.Errorf("%s: server span trace %s parent %q; curl's client span %s in %s", id, s.TraceID, s.ParentSpanID, c.SpanID, c.TraceID)
		default:
			linked++
		}
	}
	t.Logf("curl: %d of %d calls traced as CLIENT spans, %d of them the parent of the server's span", len(clients), n, linked)
	if len(clients) < n/2 || linked < n/2 {
		t.Errorf("curl: %d client spans, %d linked; want at least %d of %d once it is traced", len(clients), linked, n/2, n)
	}
}

// tlsUnavailable checks the tls feature against the kernel, probed by the
// test itself: off only where uprobes lack bpf_loop (5.10), with that
// reason; then the test has nothing more to check.
func tlsUnavailable(t *testing.T, ag *agent) bool {
	t.Helper()
	f := feature(t, ag, status.TLS)
	loop := features.HaveProgramHelper(ebpf.Kprobe, asm.FnLoop)
	switch {
	case f.On && loop != nil:
		t.Fatalf("tls on, but this kernel's uprobes lack bpf_loop (%v)", loop)
	case f.On:
		return false
	case loop == nil:
		t.Fatalf("tls off on a kernel with bpf_loop in uprobes: %s", f.Why)
	case !strings.Contains(f.Why, "bpf_loop"):
		t.Fatalf("tls off without bpf_loop, but /status says: %s", f.Why)
	}
	t.Logf("tls off on this kernel, as /status says: %s", f.Why)
	return true
}
