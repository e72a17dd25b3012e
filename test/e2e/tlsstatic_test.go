package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestOpenSSLLinkedIn (issue 19 item 2): a C client with OpenSSL linked
// statically into its executable (no libssl.so mapped, as Node.js and
// vendored C/C++ programs carry it) is traced through the executable's own
// SSL_* symbols: /status says so, each HTTPS call is a CLIENT span with
// its URL, and the Python server's span of the call is its child across
// the encrypted hop (TCP option).
func TestOpenSSLLinkedIn(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	cli := filepath.Join(dir, "weft-e2e-sslstatic")
	libs := []string{"/usr/lib/x86_64-linux-gnu/libssl.a", "/usr/lib/x86_64-linux-gnu/libcrypto.a"}
	cc := exec.Command("cc", append(append([]string{"-O2", "-o", cli, filepath.Join(root, "testdata/sslclient/main.c")}, libs...), "-lpthread", "-ldl")...)
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("building the static OpenSSL client (make deps installs libssl-dev): %v\n%s", err, out)
	}
	cert, key := selfSigned(t, dir)
	srv := startServer(t, "pytls", "/usr/bin/python3", filepath.Join(root, "testdata/pyserver/server.py"), "127.0.0.1", cert, key)
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-pid", fmt.Sprint(srv.PID()), "-exe", "weft-e2e-sslstatic")
	ag.waitTracked(t, srv.PID())
	if tlsUnavailable(t, ag) {
		return
	}

	const n = 5
	host, port, _ := strings.Cut(srv.Addr, ":")
	pids := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("st%d", i)
		cmd := exec.Command(cli, host, port, "/work?id="+id, "wait")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ag.waitTracked(t, cmd.Process.Pid)
		// The families report a process's capabilities one by one; a
		// process selected at exec may also be tracked a second time
		// (its exec event after a scan found it), which reports them
		// again. Wait for the TLS one rather than read it once.
		c, ok := status.Capability{}, false
		for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			c, ok = statusCapability(t, ag, cmd.Process.Pid, status.TLS)
		}
		if !c.On || !strings.Contains(c.Why, "linked into the executable") {
			cmd.Process.Kill()
			t.Fatalf("client %d: tls %v: %s", i, c.On, c.Why)
		}
		fmt.Fprintln(stdin, "go")
		if err := cmd.Wait(); err != nil || strings.TrimSpace(out.String()) != "200" {
			t.Fatalf("client %d: %v: %s", i, err, out.String())
		}
		pids[fmt.Sprint(cmd.Process.Pid)] = id
	}

	servers := col.WaitSpans(t, n, 30*time.Second, func(s otelcol.Span) bool {
		return s.Kind == 2 && fmt.Sprint(s.Resource["process.pid"]) == fmt.Sprint(srv.PID())
	})
	clients := map[string]otelcol.Span{}
	for deadline := time.Now().Add(15 * time.Second); len(clients) < n && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		for _, s := range col.Spans(t) {
			if id, ok := pids[fmt.Sprint(s.Resource["process.pid"])]; ok && s.Kind == 3 {
				clients[id] = s
			}
		}
	}
	linked := 0
	for _, s := range servers {
		id := strings.TrimPrefix(spanID(s), "server:")
		c, ok := clients[id]
		switch {
		case !ok:
			t.Errorf("%s: no CLIENT span from the client process", id)
		case spanID(c) != "client:"+id || fmt.Sprint(c.Attrs["http.request.method"]) != "GET":
			t.Errorf("%s: client span %q, attributes %v", id, c.Name, c.Attrs)
		case s.ParentSpanID != c.SpanID || s.TraceID != c.TraceID:
			t.Errorf("%s: server span trace %s parent %q; the client's span %s in %s", id, s.TraceID, s.ParentSpanID, c.SpanID, c.TraceID)
		default:
			linked++
		}
	}
	t.Logf("OpenSSL linked into the executable: %d calls, %d CLIENT spans, %d the parent of the server's span", n, len(clients), linked)
	if linked != n {
		t.Fatalf("%d of %d calls linked", linked, n)
	}
	_ = os.Remove(cli)
}
