package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestJavaThreadPerRequest: J is a Java HTTP server (the JDK's
// HttpServer on a worker pool: a thread per request, as servlet
// containers serve) that calls Q, a Python server, with
// HttpURLConnection on the thread serving the request. 100 requests, 10
// at a time: J's SERVER and CLIENT spans with path and status, J's call
// the child of J's request (by thread), Q's span the child of J's call
// (TCP option); J's socket never enters the sockhash; /status says its
// TLS (JSSE) is not covered.
func TestJavaThreadPerRequest(t *testing.T) {
	needRoot(t)
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatalf("no java (make deps installs default-jdk-headless): %v", err)
	}
	col := otelcol.Start(t)
	root := repoRoot(t)
	j := startServer(t, "java", java, filepath.Join(root, "testdata/javaserver/Server.java"))
	q := startServer(t, "q", "/usr/bin/python3", filepath.Join(root, "testdata/pyserver/server.py"))
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-pid", fmt.Sprint(j.PID()), "-pid", fmt.Sprint(q.PID()))
	for _, s := range []*server{j, q} {
		ag.waitTracked(t, s.PID())
	}
	c, ok := status.Capability{}, false
	for deadline := time.Now().Add(30 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, ok = statusCapability(t, ag, j.PID(), status.TLS)
	}
	if c.On || !strings.Contains(c.Why, "JSSE") {
		t.Errorf("java: tls %v: %q, want off for JSSE", c.On, c.Why)
	}

	const n = 100
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 10}}
	getAll(t, hc, n, 10, func(i int) (string, string) {
		to := fmt.Sprintf("http://%s/work?id=q%d", q.Addr, i)
		return request(i), fmt.Sprintf("http://%s/call?id=j%d&to=%s", j.Addr, i, url.QueryEscape(to))
	}, "200")

	chains := callChains(t, col, map[int]string{j.PID(): "j", q.PID(): "q"}, n, func(int) (string, string) { return "j", "q" })
	bad := n - len(chains)
	for i, c := range chains {
		if fmt.Sprint(c.srv.Attrs["url.path"]) != "/call" || fmt.Sprint(c.srv.Attrs["http.response.status_code"]) != "200" ||
			fmt.Sprint(c.cli.Attrs["http.response.status_code"]) != "200" || fmt.Sprint(c.leaf.Attrs["url.path"]) != "/work" {
			t.Errorf("request %d: attributes J server %v, J client %v, Q %v", i, c.srv.Attrs, c.cli.Attrs, c.leaf.Attrs)
			bad++
		}
		bad += c.linked(t, i, true)
	}
	if k := sockhashSockets(t, uint32(j.PID())); k != 0 {
		t.Errorf("%d of J's sockets in the sockhash", k)
	}
	t.Logf("thread links %v, roots %v; options written %v, matched %v",
		ag.metric(t, `weft_sockio_kernel_total{name="thread_linked"}`), ag.metric(t, `weft_sockio_kernel_total{name="thread_root"}`),
		ag.metric(t, `weft_tcpopt_total{name="written"}`), ag.metric(t, `weft_sockio_kernel_total{name="option_matched"}`))
	if bad > 0 {
		t.Errorf("%d problems over %d requests", bad, n)
	}
}
