package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// rawExchange writes req on a new connection and returns the status line of
// the answer ("" when the server answered nothing before closing).
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, req)
	if tc, ok := c.(*net.TCPConn); ok && !strings.HasSuffix(req, "\r\n\r\n") {
		tc.CloseWrite()
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// TestMalformedInput: bad traceparents are ignored and counted but the
// request still gets a (root) span; garbage, truncated requests and heads
// over the limit get no span and are counted; the server answers every
// request exactly as it would untraced.
func TestMalformedInput(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	bin := goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(t.TempDir(), "weft-e2e-bad"))
	srv := startServer(t, "bad", bin)
	// Selected by its listening port: the port selector's path.
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-port", fmt.Sprint(srv.Port))
	ag.waitTracked(t, srv.PID())

	tp := func(id, v string) string {
		return "GET /work?id=" + id + " HTTP/1.1\r\nHost: x\r\ntraceparent: " + v + "\r\nConnection: close\r\n\r\n"
	}
	badTP := map[string]string{
		"length":  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
		"hex":     "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
		"version": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"zero_id": "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
	}
	for reason, v := range badTP {
		if got := rawExchange(t, srv.Addr, tp(reason, v)); got != "HTTP/1.1 200 OK" {
			t.Errorf("traceparent %s: server answered %q", reason, got)
		}
	}
	if got := rawExchange(t, srv.Addr, "\x16\x03\x01\x02\x00 definitely not http\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Errorf("garbage: server answered %q", got)
	}
	rawExchange(t, srv.Addr, "GET /truncated?id=trunc HTTP/1.1\r\nHost: x\r\nX-Half") // then EOF
	big := "GET /work?id=big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 9000) + "\r\nConnection: close\r\n\r\n"
	if got := rawExchange(t, srv.Addr, big); got != "HTTP/1.1 200 OK" {
		t.Errorf("9 KiB head: server answered %q", got)
	}
	resp, err := http.Get("http://" + srv.Addr + "/work?id=after")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("normal request after bad input: %v %v", resp, err)
	}
	resp.Body.Close()

	ss := col.WaitSpans(t, len(badTP)+1, 30*time.Second, func(s otelcol.Span) bool { return s.Kind == 2 })
	ids := map[string]otelcol.Span{}
	for _, s := range ss {
		q := fmt.Sprint(s.Attrs["url.query"])
		ids[strings.TrimPrefix(q, "id=")] = s
	}
	for reason := range badTP {
		s, ok := ids[reason]
		if !ok {
			t.Errorf("no span for the request with a bad traceparent (%s)", reason)
			continue
		}
		if s.ParentSpanID != "" || s.TraceID == "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("%s: an invalid traceparent was used: trace %s parent %s", reason, s.TraceID, s.ParentSpanID)
		}
		if n := ag.metric(t, fmt.Sprintf("weft_traceparent_invalid_total{reason=%q}", reason)); n != 1 {
			t.Errorf("weft_traceparent_invalid_total{reason=%q} = %v, want 1", reason, n)
		}
	}
	for _, id := range []string{"trunc", "big"} {
		if _, ok := ids[id]; ok {
			t.Errorf("request %q must not give a span", id)
		}
	}
	if _, ok := ids["after"]; !ok {
		t.Error("no span for the normal request after bad input")
	}
	if len(ss) != len(badTP)+1 {
		t.Errorf("%d spans, want %d", len(ss), len(badTP)+1)
	}
	metrics := scrape(t, ag)
	for _, want := range []string{"weft_http_problems_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}
}

func scrape(t *testing.T, a *agent) string {
	resp, err := http.Get("http://" + a.statusAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// agentCounters is the agent's non-zero loss, problem and probe counters,
// for a failing test to say what went wrong where.
func agentCounters(t *testing.T, a *agent) string {
	var lines []string
	for _, l := range strings.Split(scrape(t, a), "\n") {
		if strings.HasPrefix(l, "#") || strings.HasSuffix(l, " 0") {
			continue
		}
		for _, k := range []string{"lost", "problems", "kernel_total", "inject_total", "ringbuf", "http2_streams", "spans_total", "skipped", "events_total"} {
			if strings.Contains(l, k) {
				lines = append(lines, l)
				break
			}
		}
	}
	return strings.Join(lines, "\n")
}

// TestDetachOnSIGTERM: the agent's BPF programs are gone after SIGTERM, no
// uprobe is left behind, and the traced server never noticed.
func TestDetachOnSIGTERM(t *testing.T) {
	needRoot(t)
	root := repoRoot(t)
	bin := goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(t.TempDir(), "weft-e2e-term"))
	srv := startServer(t, "term", bin)
	ag := startAgent(t, nil, "-exporter", "jsonl", "-pid", fmt.Sprint(srv.PID()))
	ag.waitTracked(t, srv.PID())
	client := &http.Client{} // a keep-alive connection that outlives the agent
	get := func() {
		t.Helper()
		resp, err := client.Get("http://" + srv.Addr + "/hello")
		if err != nil {
			t.Fatalf("server failed: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello" {
			t.Fatalf("server answered %q", b)
		}
	}
	get()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(ag.stdout.String(), `"traceId"`) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(ag.stdout.String(), `"name":"GET"`) {
		t.Fatalf("no jsonl span on stdout:\n%s", ag.stdout.String())
	}
	progs := agentPrograms(t, ag.cmd.Process.Pid)
	if len(progs) == 0 {
		t.Fatal("found no BPF programs held by the agent")
	}
	if err := ag.stop(t); err != nil {
		t.Fatalf("agent exit after SIGTERM: %v\n%s", err, ag.stderr.String())
	}
	if !strings.Contains(ag.stderr.String(), "detached and stopped") {
		t.Errorf("agent did not log its detach:\n%s", ag.stderr.String())
	}
	// The kernel frees programs after an RCU grace period: allow it a moment.
	deadline = time.Now().Add(10 * time.Second)
	for _, id := range progs {
		for programLoaded(id) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if programLoaded(id) {
			t.Errorf("BPF program %d of the agent is still loaded after exit", id)
		}
	}
	if b, err := os.ReadFile("/sys/kernel/tracing/uprobe_events"); err == nil && strings.Contains(string(b), "weft") {
		t.Errorf("uprobes left behind:\n%s", b)
	}
	get()
}

// agentPrograms lists the BPF program IDs the process holds, from the
// fdinfo of its file descriptors.
func agentPrograms(t *testing.T, pid int) []int {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
	var ids []int
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "prog_id:"); ok {
				var id int
				fmt.Sscan(strings.TrimSpace(v), &id)
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// programLoaded reports whether a BPF program with this ID still exists.
func programLoaded(id int) bool {
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return false
	}
	p.Close()
	return true
}
