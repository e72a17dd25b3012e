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
	for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
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

	names := map[string]string{fmt.Sprint(j.PID()): "j", fmt.Sprint(q.PID()): "q"}
	spans := col.WaitSpans(t, 3*n, 60*time.Second, func(s otelcol.Span) bool { return names[fmt.Sprint(s.Resource["process.pid"])] != "" })
	by := map[string]otelcol.Span{}
	for _, s := range spans {
		by[names[fmt.Sprint(s.Resource["process.pid"])]+" "+spanID(s)] = s
	}
	bad := 0
	for i := range n {
		jS, ok1 := by[fmt.Sprintf("j server:j%d", i)]
		jC, ok2 := by[fmt.Sprintf("j client:q%d", i)]
		qS, ok3 := by[fmt.Sprintf("q server:q%d", i)]
		if !ok1 || !ok2 || !ok3 {
			t.Errorf("request %d: spans missing (j server %v, j client %v, q server %v)", i, ok1, ok2, ok3)
			bad++
			continue
		}
		if fmt.Sprint(jS.Attrs["url.path"]) != "/call" || fmt.Sprint(jS.Attrs["http.response.status_code"]) != "200" ||
			fmt.Sprint(jC.Attrs["http.response.status_code"]) != "200" || fmt.Sprint(qS.Attrs["url.path"]) != "/work" {
			t.Errorf("request %d: attributes J server %v, J client %v, Q %v", i, jS.Attrs, jC.Attrs, qS.Attrs)
			bad++
		}
		if jC.ParentSpanID != jS.SpanID || jC.TraceID != jS.TraceID {
			t.Errorf("request %d: J's call has parent %q in %s; J's request is %s in %s", i, jC.ParentSpanID, jC.TraceID, jS.SpanID, jS.TraceID)
			bad++
		}
		if qS.ParentSpanID != jC.SpanID || qS.TraceID != jC.TraceID {
			t.Errorf("request %d: Q's span has parent %q in %s; J's call is %s in %s", i, qS.ParentSpanID, qS.TraceID, jC.SpanID, jC.TraceID)
			bad++
		}
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
