// Package otelcol runs a real OpenTelemetry Collector in tests and reads
// back the spans it received, so assertions are made on what a real backend
// would see rather than on our own exporter's view of the data.
//
// The collector is built by scripts/otelcol.sh and cached outside the repo;
// the first run on a machine takes several minutes.
package otelcol

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	startTimeout = 30 * time.Second
	// A graceful stop flushes the batch processor and the file exporter;
	// on a loaded machine that can take seconds. A kill loses those spans.
	stopTimeout = 30 * time.Second
	// After enough spans have arrived, wait this long for stragglers so a
	// test can assert "exactly n" rather than "at least n".
	settle = 500 * time.Millisecond
	// readyLine is what the collector logs (at info, the default) once
	// every component started, its receivers bound to their ports; a
	// receiver that cannot bind makes it log the error and exit instead.
	readyLine = "Everything is ready. Begin running and processing data."
)

// Collector is a running collector with an OTLP/gRPC receiver whose spans
// are written to SpansFile by the file exporter.
type Collector struct {
	Endpoint  string // host:port of the OTLP gRPC receiver
	SpansFile string

	logFile    string
	bin        string
	configPath string
	previous   []string // spans files of earlier runs (Restart), oldest first
	runs       int
	// Set by StartWith; zero values mean Start's behaviour.
	endpointEnv  string   // env var that receives Endpoint
	spansFileEnv string   // env var that receives SpansFile
	extraEnv     []string // more KEY=value entries
	cmd          *exec.Cmd
	exited       chan struct{} // closed once cmd.Wait returns
}

// build runs the build script at most once per test binary: every caller
// gets the same path or the same error.
var build = sync.OnceValues(func() (string, error) { return runBuildScript() })

// runBuildScript runs scripts/otelcol.sh with args (a variant), which
// prints the path of the binary it built or found cached.
func runBuildScript(args ...string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	name := strings.Join(append([]string{"otelcol.sh"}, args...), " ")
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "scripts", "otelcol.sh")}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/%s: %v\n%s", name, err, stderr.String())
	}
	path := strings.TrimSpace(stdout.String())
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("scripts/%s printed %q: %v\n%s", name, path, err, stderr.String())
	}
	return path, nil
}

// Binary returns the path of the collector binary, building it on first use.
func Binary(t testing.TB) string {
	t.Helper()
	return binary(t, build, "the OpenTelemetry Collector")
}

func binary(t testing.TB, build func() (string, error), what string) string {
	t.Helper()
	path, err := build()
	if err != nil {
		t.Fatalf("building %s: %v", what, err)
	}
	return path
}

// repoRoot walks up from this package's directory (or, when the binary was
// built with -trimpath, from the working directory, which go test sets to
// the package under test) to the directory holding go.mod and the script.
func repoRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for {
			if fileExists(filepath.Join(dir, "go.mod")) && fileExists(filepath.Join(dir, "scripts", "otelcol.sh")) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("repository root (go.mod next to scripts/otelcol.sh) not found")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Start runs a collector configured by scripts/otelcol-file.yaml on a free
// loopback port and stops it when the test ends.
func Start(t testing.TB) *Collector {
	t.Helper()
	bin := Binary(t)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	config, err := os.ReadFile(filepath.Join(root, "scripts", "otelcol-file.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(configPath, config, 0o644); err != nil {
		t.Fatal(err)
	}
	return StartWith(t, Options{Binary: bin, Config: configPath})
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (c *Collector) start(t testing.TB, bin, configPath string) error {
	t.Helper()
	logf, err := os.Create(c.logFile)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy of the descriptor

	c.cmd = exec.Command(bin, "--config", configPath)
	c.cmd.Env = append(os.Environ(),
		orDefault(c.endpointEnv, "WEFT_OTLP_ENDPOINT")+"="+c.Endpoint,
		orDefault(c.spansFileEnv, "WEFT_SPANS_FILE")+"="+c.SpansFile,
	)
	c.cmd.Env = append(c.cmd.Env, c.extraEnv...)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		return err
	}
	first := c.exited == nil
	cmd, exited := c.cmd, make(chan struct{})
	c.exited = exited
	go func() {
		cmd.Wait()
		close(exited)
	}()
	if first { // one cleanup for all runs (see Restart)
		t.Cleanup(func() {
			c.stop(t)
			if t.Failed() {
				t.Logf("collector log (%s):\n%s", c.logFile, c.log())
			}
		})
	}

	// A connection alone does not prove the collector is ours: the ports
	// are picked by binding :0 and closing, and while one is free (before
	// the first start, or while Stop keeps the collector down) another
	// test's collector or server may take it. Then ours fails to bind and
	// exits, and the test would deliver to the other one. So wait for our
	// process to say it is ready (it exits instead if it cannot bind).
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-c.exited:
			log := c.log()
			if strings.Contains(log, "address already in use") {
				return fmt.Errorf("collector exited (%v): %s was taken by another process (port picked free, then reused); the collector log is printed at cleanup",
					c.cmd.ProcessState, c.Endpoint)
			}
			return fmt.Errorf("collector exited early (%v); its log is printed at cleanup", c.cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		ready := strings.Contains(c.log(), readyLine)
		if ready {
			conn, err := net.DialTimeout("tcp", c.Endpoint, time.Second)
			if err == nil {
				conn.Close()
				return nil
			}
		}
		if time.Now().After(deadline) {
			if !ready {
				return fmt.Errorf("collector on %s did not log %q within %v; the collector log is printed at cleanup", c.Endpoint, readyLine, startTimeout)
			}
			return fmt.Errorf("%s not accepting connections after %v; the collector log is printed at cleanup", c.Endpoint, startTimeout)
		}
	}
}

// Stop stops the collector gracefully (its file exporter flushes), as in
// an outage; Restart brings it back on the same endpoint. Safe twice.
func (c *Collector) Stop(t testing.TB) {
	t.Helper()
	c.stop(t)
}

// Restart starts a stopped collector again on the same endpoint, with the
// same config; spans written before stay visible to Spans and WaitSpans
// (the file exporter truncates its file on start, so each run writes its
// own). A running collector is stopped first.
func (c *Collector) Restart(t testing.TB) {
	t.Helper()
	c.stop(t)
	c.runs++
	old := fmt.Sprintf("%s.%d", c.SpansFile, c.runs-1)
	if err := os.Rename(c.SpansFile, old); err == nil {
		c.previous = append(c.previous, old)
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	c.logFile = strings.TrimSuffix(c.logFile, ".log") + fmt.Sprintf("-run%d.log", c.runs)
	// The port was ours until the stop, but free since: another test's
	// collector may have taken it (start then fails, saying so: the test
	// cannot go on with its collector gone). A short retry covers a slow
	// exit.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = c.start(t, c.bin, c.configPath); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("restarting the collector on %s: %v", c.Endpoint, err)
}

// stop asks for a graceful shutdown first so the file exporter flushes,
// and kills the collector if it has not exited after stopTimeout, saying
// so: spans it had taken but not written are then lost, which a test's
// count would otherwise only show as missing. Safe twice and on a
// collector that already exited.
func (c *Collector) stop(t testing.TB) {
	t.Helper()
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(stopTimeout):
		t.Logf("collector on %s still running %v after SIGTERM: killed; spans it had not written to %s are lost (log: %s)",
			c.Endpoint, stopTimeout, c.SpansFile, c.logFile)
		c.cmd.Process.Kill()
		<-c.exited
	}
}

func (c *Collector) log() string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Spans returns every span written so far, in file order, earlier runs
// (see Restart) first.
func (c *Collector) Spans(t testing.TB) []Span {
	t.Helper()
	var all []Span
	for _, path := range append(c.previous[:len(c.previous):len(c.previous)], c.SpansFile) {
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		spans, err := parseLines(data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		all = append(all, spans...)
	}
	return all
}

// WaitFor polls the spans until missing, given all of them, names none
// (then lets late spans settle), or timeout passes (then it logs what is
// still missing); it returns every span of its last look. It waits for
// the spans a test's checks need, where a count could be reached by
// others (retries, warm-ups, calls to untraced servers).
func (c *Collector) WaitFor(t testing.TB, timeout time.Duration, missing func([]Span) []string) []Span {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		all := c.Spans(t)
		m := missing(all)
		if len(m) == 0 {
			time.Sleep(settle)
			return c.Spans(t)
		}
		if time.Now().After(deadline) {
			t.Logf("after %v, %d spans still missing: %s", timeout, len(m), strings.Join(m[:min(len(m), 10)], ", "))
			return all
		}
	}
}

// WaitSpans waits until at least n spans match filter (nil matches all),
// lets late spans settle, and returns all matching spans.
func (c *Collector) WaitSpans(t testing.TB, n int, timeout time.Duration, filter func(Span) bool) []Span {
	t.Helper()
	matching := func() []Span {
		var out []Span
		for _, s := range c.Spans(t) {
			if filter == nil || filter(s) {
				out = append(out, s)
			}
		}
		return out
	}
	deadline := time.Now().Add(timeout)
	for {
		got := matching()
		if len(got) >= n {
			time.Sleep(settle)
			return matching()
		}
		if time.Now().After(deadline) {
			all := c.Spans(t)
			t.Fatalf("got %d matching spans (of %d in total) after %v, want at least %d:\n%s",
				len(got), len(all), timeout, n, summarize(all))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func summarize(spans []Span) string {
	const max = 30
	var b strings.Builder
	for i, s := range spans {
		if i == max {
			fmt.Fprintf(&b, "  ... and %d more\n", len(spans)-max)
			break
		}
		fmt.Fprintf(&b, "  %s kind=%d trace=%s span=%s parent=%s service=%v\n",
			s.Name, s.Kind, s.TraceID, s.SpanID, s.ParentSpanID, s.Resource["service.name"])
	}
	return b.String()
}
