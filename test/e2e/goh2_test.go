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

// TestGoHTTP2ClientLinks: Go's own HTTP/2 client (net/http over TLS,
// h2 by ALPN, as http.DefaultTransport speaks to any HTTPS server that
// offers it) in A, a plaintext server, calling B, an HTTPS server, for
// 60 requests 12 at a time, Go 1.22 and 1.26. A's CLIENT span (from the
// HTTP/2 frames of the crypto/tls plaintext) is exact and the child of A's
// request: the IDs the writeHeaders probe made in the goroutine writing the
// request, whose parent serves it. B's SERVER span is B's request, never
// another's child (no context crosses this hop yet: no header can go into
// ciphertext, and the TCP option does not carry HTTP/2 streams).
func TestGoHTTP2ClientLinks(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	type pair struct {
		name string
		a, b *server
	}
	var pairs []pair
	for _, v := range []struct{ name, toolchain string }{{"go122", "go1.22.12"}, {"go126", "go1.26.8"}} {
		bin := goBuild(t, filepath.Join(root, "testdata/httpserver"), v.toolchain, filepath.Join(dir, "weft-e2e-goh2-"+v.name))
		a := startServer(t, v.name+"-a", bin, "-ca", cert, "-h2")
		b := startServer(t, v.name+"-b", bin, "-cert", cert, "-key", key)
		pairs = append(pairs, pair{v.name, a, b})
	}
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", "weft-e2e-goh2-*")
	for _, p := range pairs {
		ag.waitTracked(t, p.a.PID())
		ag.waitTracked(t, p.b.PID())
	}
	if tlsUnavailable(t, ag) {
		return
	}
	const n = 60
	hc := &http.Client{Timeout: 30 * time.Second}
	getAll(t, hc, n*len(pairs), 12, func(j int) (string, string) {
		p, i := pairs[j/n], j%n
		to := fmt.Sprintf("https://%s/work?id=%s-b%d", p.b.Addr, p.name, i)
		return fmt.Sprintf("%s request %d", p.name, i),
			fmt.Sprintf("http://%s/call?id=%s-a%d&to=%s", p.a.Addr, p.name, i, url.QueryEscape(to))
	}, "200")

	role := map[string]string{}
	for _, p := range pairs {
		role[fmt.Sprint(p.a.PID())] = p.name + " a"
		role[fmt.Sprint(p.b.PID())] = p.name + " b"
	}
	by := spansByKey(t, col, 3*n*len(pairs), 60*time.Second, roleKey(role))
	for _, p := range pairs {
		bad := 0
		for i := range n {
			v := p.name
			aS, ok1 := by[fmt.Sprintf("%s a server:%s-a%d", v, v, i)]
			aC, ok2 := by[fmt.Sprintf("%s a client:%s-b%d", v, v, i)]
			bS, ok3 := by[fmt.Sprintf("%s b server:%s-b%d", v, v, i)]
			if !ok1 || !ok2 || !ok3 {
				t.Errorf("%s request %d: spans missing (A server %v, A client %v, B server %v)", v, i, ok1, ok2, ok3)
				bad++
				continue
			}
			if aC.Kind != 3 || fmt.Sprint(aC.Attrs["http.request.method"]) != "GET" ||
				fmt.Sprint(aC.Attrs["http.response.status_code"]) != "200" ||
				fmt.Sprint(aC.Attrs["network.protocol.version"]) != "2" ||
				fmt.Sprint(aC.Attrs["url.full"]) != fmt.Sprintf("https://%s/work?id=%s-b%d", p.b.Addr, v, i) {
				t.Errorf("%s request %d: A's call: kind %d %v", v, i, aC.Kind, aC.Attrs)
			}
			if aC.ParentSpanID != aS.SpanID || aC.TraceID != aS.TraceID {
				t.Errorf("%s request %d: A's HTTP/2 call has parent %q in %s; A's request is %s in %s", v, i, aC.ParentSpanID, aC.TraceID, aS.SpanID, aS.TraceID)
				bad++
			}
			if bS.ParentSpanID != "" && (bS.ParentSpanID != aC.SpanID || bS.TraceID != aC.TraceID) {
				t.Errorf("%s request %d: B's request has parent %q in %s, not A's call %s", v, i, bS.ParentSpanID, bS.TraceID, aC.SpanID)
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d requests broken", p.name, bad, n)
		}
	}
	if linked := ag.metric(t, `weft_gohttp_kernel_total{name="h2_linked"}`); linked < float64(n*len(pairs)) {
		t.Errorf("h2_linked %v, want at least %d", linked, n*len(pairs))
	}
}
