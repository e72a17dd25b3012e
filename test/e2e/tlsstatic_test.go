package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
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
	root := repoRoot(t)
	dir := t.TempDir()
	cli := filepath.Join(dir, "weft-e2e-sslstatic")
	libs := []string{"/usr/lib/x86_64-linux-gnu/libssl.a", "/usr/lib/x86_64-linux-gnu/libcrypto.a"}
	cc := exec.Command("cc", append(append([]string{"-O2", "-o", cli, filepath.Join(root, "testdata/sslclient/main.c")}, libs...), "-lpthread", "-ldl")...)
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("building the static OpenSSL client (make deps installs libssl-dev): %v\n%s", err, out)
	}
	sslClientCalls(t, cli, "linked into the executable", false)
}

// TestOpenSSL11 (issue 19 item 2): the same client linked against OpenSSL
// 1.1's libssl.so.1.1 (Debian 11's package, scripts/libssl11.sh), found
// through the executable's RPATH on a system whose own libssl is OpenSSL
// 3. Each client is held (ptrace) right after its exec, before the
// dynamic loader maps any library, until the agent has attached: the
// uprobes must go on the libssl.so.1.1 its dependencies name, not on the
// system's libssl.so.3, and fire once the loader maps it.
func TestOpenSSL11(t *testing.T) {
	needRoot(t)
	root := repoRoot(t)
	out, err := exec.Command(filepath.Join(root, "scripts/libssl11.sh")).Output()
	if err != nil {
		t.Fatalf("fetching OpenSSL 1.1 (scripts/libssl11.sh): %v", err)
	}
	lib := strings.TrimSpace(string(out))
	cli := filepath.Join(t.TempDir(), "weft-e2e-ssl11")
	cc := exec.Command("cc", "-O2", "-o", cli, filepath.Join(root, "testdata/sslclient/main.c"),
		filepath.Join(lib, "libssl.so.1.1"), filepath.Join(lib, "libcrypto.so.1.1"), "-Wl,--disable-new-dtags,-rpath,"+lib)
	if out, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("building the OpenSSL 1.1 client: %v\n%s", err, out)
	}
	sslClientCalls(t, cli, "OpenSSL 1.1 ("+filepath.Join(lib, "libssl.so.1.1")+" (not mapped yet)", true)
}

// sslClientCalls runs testdata/sslclient built as cli five times against
// a traced Python HTTPS server: each run's TLS status must contain why
// (atExec: read while the run is held stopped at its exec), each call must be a CLIENT span with its URL, and the server's span of
// it its child across the encrypted hop (TCP option).
func sslClientCalls(t *testing.T, cli, why string, atExec bool) {
	t.Helper()
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	srv := startServer(t, "pytls", "/usr/bin/python3", filepath.Join(root, "testdata/pyserver/server.py"), "127.0.0.1", cert, key)
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-pid", fmt.Sprint(srv.PID()), "-exe", filepath.Base(cli))
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
		if atExec {
			// ptrace's requests must come from the thread that started it.
			runtime.LockOSThread()
			cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if atExec {
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WALL, nil); err != nil || !ws.Stopped() {
				t.Fatalf("client %d: not stopped at its exec: %v %v", i, ws, err)
			}
		}
		ag.waitTracked(t, cmd.Process.Pid)
		// The families report a process's capabilities one by one; a
		// process selected at exec may also be tracked a second time
		// (its exec event after a scan found it), which reports them
		// again. Wait for the TLS one rather than read it once.
		c, ok := status.Capability{}, false
		for deadline := time.Now().Add(30 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			c, ok = statusCapability(t, ag, cmd.Process.Pid, status.TLS)
		}
		if !c.On || !strings.Contains(c.Why, why) {
			cmd.Process.Kill()
			t.Fatalf("client %d: tls %v: %s", i, c.On, c.Why)
		}
		if atExec {
			err := syscall.PtraceDetach(cmd.Process.Pid)
			runtime.UnlockOSThread()
			if err != nil {
				t.Fatalf("client %d: letting it run: %v", i, err)
			}
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
	for deadline := time.Now().Add(45 * time.Second); len(clients) < n && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
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
	t.Logf("%s: %d calls, %d CLIENT spans, %d the parent of the server's span", why, n, len(clients), linked)
	if linked != n {
		t.Fatalf("%d of %d calls linked", linked, n)
	}
	_ = os.Remove(cli)
}
