// Package e2e runs the real agent binary, as root, against real unmodified
// servers and a real OpenTelemetry Collector, and checks the spans it
// receives. Nothing here is mocked.
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// needRoot starts every test here: each runs the agent, which loads BPF.
// Under -short the test is skipped; otherwise it fails unless it can run.
func needRoot(t *testing.T) {
	t.Helper()
	kernel.Require(t)
}

func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var buildMu sync.Mutex

// goBuild builds the package in moduleDir with a given toolchain ("" for the
// go on PATH) and build flags, into out. args go to go build as they are, so
// "-modfile=go.v1.50.mod" builds against that alternate go.mod and the go.sum
// beside it, read only (-mod=readonly is go build's default). Compiled
// packages come from Go's own build cache, outside the repository, so a
// second build of the same inputs only links.
//
// With WEFT_E2E_BIN set (the kernel matrix, scripts/vm/e2e.sh: a guest
// under software emulation compiles 10–50× slower), nothing is built: the
// binary is copied from that folder, where the host built it under the
// name prebuiltName gives, and a missing one fails the test.
func goBuild(t testing.TB, moduleDir, toolchain, out string, args ...string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if dir := os.Getenv("WEFT_E2E_BIN"); dir != "" {
		name := prebuiltName(t, moduleDir, toolchain, args)
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			rel, _ := filepath.Rel(repoRoot(t), moduleDir)
			t.Fatalf("WEFT_E2E_BIN: no prebuilt %s (%v): have scripts/vm/e2e.sh build %s with toolchain %q and flags %q", name, err, rel, toolchain, args)
		}
		if err := os.WriteFile(out, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return out
	}
	cgo := "CGO_ENABLED=0"
	if slices.Contains(args, "weftcgo") { // -tags weftcgo: a program that calls C
		cgo = "CGO_ENABLED=1"
	}
	cmd := exec.Command("go", append(append([]string{"build", "-o", out}, args...), ".")...)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), cgo, "GOFLAGS=")
	if toolchain != "" {
		cmd.Env = append(cmd.Env, "GOTOOLCHAIN="+toolchain)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s with %s %v: %v\n%s", moduleDir, toolchain, args, err, b)
	}
	return out
}

// prebuiltName is the file name, in $WEFT_E2E_BIN, of what goBuild builds
// from moduleDir with toolchain and args: the module's path in the
// repository, the toolchain ("default" for none) and the args, joined by
// "_", every byte other than [A-Za-z0-9.=-] made "_". scripts/vm/e2e.sh
// names its builds the same way.
func prebuiltName(t testing.TB, moduleDir, toolchain string, args []string) string {
	rel, err := filepath.Rel(repoRoot(t), moduleDir)
	if err != nil {
		t.Fatal(err)
	}
	if toolchain == "" {
		toolchain = "default"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '=' || r == '-' {
			return r
		}
		return '_'
	}, strings.Join(append([]string{rel, toolchain}, args...), "_"))
}

// agentBinary builds the agent once per test binary; with WEFT_E2E_BIN set
// it is that folder's weft-agent, built by the host.
var agentOnce struct {
	sync.Once
	path string
	err  error
}

func agentBinary(t testing.TB) string {
	agentOnce.Do(func() {
		if dir := os.Getenv("WEFT_E2E_BIN"); dir != "" {
			agentOnce.path = filepath.Join(dir, "weft-agent")
			if _, err := os.Stat(agentOnce.path); err != nil {
				agentOnce.err = fmt.Errorf("WEFT_E2E_BIN: no prebuilt agent: %v", err)
			}
			return
		}
		dir, err := os.MkdirTemp("", "weft-agent-")
		if err != nil {
			agentOnce.err = err
			return
		}
		agentOnce.path = filepath.Join(dir, "weft-agent")
		cmd := exec.Command("go", "build", "-o", agentOnce.path, "./cmd/agent")
		cmd.Dir = repoRoot(t)
		if b, err := cmd.CombinedOutput(); err != nil {
			agentOnce.err = fmt.Errorf("%v\n%s", err, b)
		}
	})
	if agentOnce.err != nil {
		t.Fatalf("building agent: %v", agentOnce.err)
	}
	return agentOnce.path
}

// server is a running test server.
type server struct {
	Name string
	Cmd  *exec.Cmd
	Port int
	Addr string
}

// startServer runs a server that prints "LISTEN <port>" and stops it at cleanup.
func startServer(t testing.TB, name string, argv ...string) *server {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(out)
	port := make(chan int, 1)
	go func() {
		for lines.Scan() {
			if p, ok := strings.CutPrefix(lines.Text(), "LISTEN "); ok {
				n, _ := strconv.Atoi(p)
				port <- n
			}
		}
	}()
	select {
	case p := <-port:
		return &server{Name: name, Cmd: cmd, Port: p, Addr: fmt.Sprintf("127.0.0.1:%d", p)}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not print its port", name)
	}
	return nil
}

func (s *server) PID() int { return s.Cmd.Process.Pid }

// agent is a running weft-agent.
type agent struct {
	cmd        *exec.Cmd
	statusAddr string
	stdout     *syncBuffer
	stderr     *syncBuffer
	exited     chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startAgent runs the agent with args and waits until it is attached.
func startAgent(t testing.TB, env []string, args ...string) *agent {
	t.Helper()
	a := &agent{statusAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	a.cmd = exec.Command(agentBinary(t), append([]string{"-status-addr", a.statusAddr}, args...)...)
	a.cmd.Env = append(os.Environ(), env...)
	a.cmd.Stdout, a.cmd.Stderr = a.stdout, a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("starting agent: %v", err)
	}
	go func() { a.exited <- a.cmd.Wait() }()
	t.Cleanup(func() {
		a.stop(t)
		if t.Failed() {
			t.Logf("agent stderr:\n%s", tail(a.stderr.String(), 60))
		}
	})
	deadline := time.Now().Add(90 * time.Second) // a ceiling: qemu legs are slow
	for time.Now().Before(deadline) {
		if strings.Contains(a.stderr.String(), "weft-agent running") {
			return a
		}
		select {
		case err := <-a.exited:
			t.Fatalf("agent exited at start: %v\n%s", err, a.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("agent not running after 90s:\n%s", a.stderr.String())
	return nil
}

// stop sends SIGTERM and waits; safe twice.
func (a *agent) stop(t testing.TB) error {
	if a.cmd.ProcessState != nil {
		return nil
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.exited:
		a.exited <- err
		return err
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		t.Errorf("agent did not stop within 20s of SIGTERM")
		return fmt.Errorf("killed")
	}
}

// metric reads one series from the agent's /metrics, 0 when absent.
func (a *agent) metric(t testing.TB, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + a.statusAddr + "/metrics")
	if err != nil {
		t.Fatalf("reading agent metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// logMetrics logs the agent's non-zero series whose names start with one
// of prefixes: what a test that lost something shows of where it went.
func (a *agent) logMetrics(t testing.TB, prefixes ...string) {
	t.Helper()
	resp, err := http.Get("http://" + a.statusAddr + "/metrics")
	if err != nil {
		t.Logf("reading agent metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "#") || strings.HasSuffix(l, " 0") {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	t.Logf("agent metrics:\n  %s", strings.Join(out, "\n  "))
}

// waitTracked waits until the agent logs that it traces pid.
func (a *agent) waitTracked(t testing.TB, pid int) {
	t.Helper()
	want := fmt.Sprintf("msg=\"tracing process\" component=discovery pid=%d ", pid)
	deadline := time.Now().Add(45 * time.Second) // qemu legs are slow
	for time.Now().Before(deadline) {
		if strings.Contains(a.stderr.String(), want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("agent never traced pid %d:\n%s", pid, tail(a.stderr.String(), 30))
}

// waitKeys waits (up to timeout) until the collector holds a span of each
// wanted key, keyOf naming a span's; it returns every span then.
func waitKeys(t testing.TB, col *otelcol.Collector, timeout time.Duration, keyOf func(otelcol.Span) string, want ...string) []otelcol.Span {
	t.Helper()
	return col.WaitFor(t, timeout, func(all []otelcol.Span) []string {
		have := make(map[string]bool, len(all))
		for _, s := range all {
			have[keyOf(s)] = true
		}
		var missing []string
		for _, k := range want {
			if !have[k] {
				missing = append(missing, k)
			}
		}
		return missing
	})
}

// svcSpanID keys a span by its service and spanID: "svc/server:id".
func svcSpanID(s otelcol.Span) string {
	svc, _ := s.Resource["service.name"].(string)
	return svc + "/" + spanID(s)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// mixedChain is four copies of the unmodified grpcserver program,
// A (-http) ─gRPC→ B ─HTTP→ C (-http) ─gRPC→ D, traced by one agent (or
// another chainShape).
type mixedChain struct {
	shape chainShape
	svc   map[string]*server
	agent *agent
	next  string // the hop list A relays, query-escaped
}

// chainShape says which of B, C and D serve HTTP/1 (the others gRPC; A
// always serves HTTP/1), and whether B and C call their next hop from
// goroutines their handler starts (one generation in B, two in C) with the
// handler's context.
type chainShape struct {
	http  string // e.g. "c"
	spawn bool
}

// mixedShape is TestMixedChain's: HTTP/1 → gRPC → HTTP/1 → gRPC.
var mixedShape = chainShape{http: "c"}

func (c chainShape) serves(name string) string {
	if name == "a" || strings.Contains(c.http, name) {
		return "http"
	}
	return "grpc"
}

// startMixedChain builds the chain; prefix names the executables (so that
// service.name tells the spans apart) and the agent's selection.
func startMixedChain(t *testing.T, col *otelcol.Collector, prefix string, agentEnv ...string) *mixedChain {
	return startShapedChain(t, col, prefix, mixedShape, agentEnv...)
}

// copyExe copies the executable src to dst: one build under several
// names, so that each process has a service.name of its own.
func copyExe(t testing.TB, src, dst string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// startShapedChain builds a chain of the shape given.
func startShapedChain(t *testing.T, col *otelcol.Collector, prefix string, shape chainShape, agentEnv ...string) *mixedChain {
	t.Helper()
	dir := t.TempDir()
	bin := goBuild(t, filepath.Join(repoRoot(t), "testdata/grpcserver"), "", filepath.Join(dir, prefix))
	m := &mixedChain{shape: shape, svc: map[string]*server{}}
	for _, name := range []string{"a", "b", "c", "d"} {
		exe := copyExe(t, bin, filepath.Join(dir, prefix+"-"+name))
		args := []string{exe}
		if shape.serves(name) == "http" {
			args = append(args, "-http")
		}
		m.svc[name] = startServer(t, name, args...)
	}
	m.agent = startAgent(t, append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, agentEnv...), "-exe", prefix+"-*")
	for _, s := range m.svc {
		m.agent.waitTracked(t, s.PID())
	}
	var hops []string
	for i, name := range []string{"b", "c", "d"} {
		if shape.spawn && i > 0 {
			hops = append(hops, strings.Repeat("spawn ", i))
		}
		hops = append(hops, shape.serves(name)+"://"+m.svc[name].Addr)
	}
	m.next = url.QueryEscape(strings.Join(strings.Fields(strings.Join(hops, " ")), " "))
	return m
}

// url of request id into A.
func (m *mixedChain) url(id string) string {
	return fmt.Sprintf("http://%s/hop?next=%s&id=%s", m.svc["a"].Addr, m.next, id)
}

// fanOut sends n requests at once (req builds the i-th) and fails the test
// on a transport error or an answer other than 200 with body want.
func fanOut(t *testing.T, n int, req func(i int) *http.Request, want string) {
	t.Helper()
	client := &http.Client{Timeout: 60 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			resp, err := client.Do(req(i))
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(b) != want {
				errs <- fmt.Errorf("request %d: answered %d %q, want 200 %q", i, resp.StatusCode, b, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
