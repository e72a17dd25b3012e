package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// grpcVariant is one build of testdata/grpcserver: a grpc-go version (by
// the modfile that pins it) and the toolchain that compiles it.
type grpcVariant struct {
	grpc, modfile, toolchain string
}

var grpcVariants = []grpcVariant{
	{"v1.50.1", "go.v1.50.mod", "go1.22.12"},
	{"v1.66.2", "go.v1.66.mod", "go1.22.12"},
	{"v1.66.2", "go.v1.66.mod", "go1.26.8"},
	{"v1.83.2", "go.mod", "go1.26.8"}, // needs go >= 1.25
}

func (v grpcVariant) tag() string {
	return strings.ReplaceAll(v.grpc+"-"+v.toolchain, ".", "_")
}

// grpcBinary builds testdata/grpcserver as variant v into dir/name.
func grpcBinary(t testing.TB, v grpcVariant, dir, name string) string {
	t.Helper()
	var args []string
	if v.modfile != "go.mod" {
		args = append(args, "-modfile="+v.modfile)
	}
	return goBuild(t, filepath.Join(repoRoot(t), "testdata/grpcserver"), v.toolchain, filepath.Join(dir, name), args...)
}

// caller is a running "grpcserver -call ADDR -stdin": one process, one
// connection (dialled at the first call), calls made one a line.
type caller struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out chan string
}

func startCaller(t testing.TB, bin, addr string, flags ...string) *caller {
	t.Helper()
	c := &caller{cmd: exec.Command(bin, append([]string{"-call", addr, "-stdin"}, flags...)...), out: make(chan string, 16)}
	c.cmd.Stderr = os.Stderr
	var err error
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting caller: %v", err)
	}
	t.Cleanup(func() { c.in.Close(); c.cmd.Process.Kill(); c.cmd.Wait() })
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			c.out <- lines.Text()
		}
		close(c.out)
	}()
	return c
}

func (c *caller) PID() int { return c.cmd.Process.Pid }

// call makes one call and returns the status code's name it printed.
func (c *caller) call(t testing.TB, args ...string) string {
	t.Helper()
	if _, err := fmt.Fprintln(c.in, strings.Join(args, " ")); err != nil {
		t.Fatalf("caller: %v", err)
	}
	select {
	case got, ok := <-c.out:
		if !ok {
			t.Fatalf("caller exited")
		}
		return got
	case <-time.After(20 * time.Second):
		t.Fatalf("caller did not answer %v", args)
	}
	return ""
}

// waitSpansSoft is WaitSpans without the failure: it returns what came
// within the timeout, so a test can say what is missing.
func waitSpansSoft(t testing.TB, col *otelcol.Collector, n int, timeout time.Duration, filter func(otelcol.Span) bool) []otelcol.Span {
	t.Helper()
	matching := func() []otelcol.Span {
		var out []otelcol.Span
		for _, s := range col.Spans(t) {
			if filter == nil || filter(s) {
				out = append(out, s)
			}
		}
		return out
	}
	deadline := time.Now().Add(timeout)
	for len(matching()) < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // stragglers, so "exactly n" can be asserted
	return matching()
}

// matrixRow is one line of TestGRPCVersionMatrix's table.
type matrixRow struct {
	v                                 grpcVariant
	stage                             string // how far the subtest got
	calls, server, client, linked, of int
}

// TestGRPCVersionMatrix: the same unmodified grpc-go program, built against
// grpc-go v1.50, v1.66 and v1.83 with Go 1.22 and Go 1.26, traced as server
// and as client. Each call gives a SERVER span in the server and a CLIENT
// span in the caller, both with the RPC attributes and status, and the
// server span is the child of the client span (weft carried the context
// across the HTTP/2 connection). A program that sends its own traceparent
// metadata keeps it: the server span joins the program's trace.
func TestGRPCVersionMatrix(t *testing.T) {
	needRoot(t)
	var rows []*matrixRow
	for _, v := range grpcVariants {
		row := &matrixRow{v: v, stage: "build"}
		rows = append(rows, row)
		t.Run(v.tag(), func(t *testing.T) { checkGRPCVariant(t, v, row) })
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-8s %-10s %-6s %-9s %-8s %-8s %-8s %s\n", "grpc", "go", "result", "reached", "calls", "server", "client", "linked")
	for _, r := range rows {
		result := "PASS"
		if r.stage != "done" || r.server != r.of || r.client != r.of || r.linked != r.of || r.calls != r.of {
			result = "FAIL"
		}
		fmt.Fprintf(&b, "%-8s %-10s %-6s %-9s %d/%-6d %d/%-6d %d/%-6d %d/%d\n", r.v.grpc, r.v.toolchain, result, r.stage,
			r.calls, r.of, r.server, r.of, r.client, r.of, r.linked, r.of)
	}
	t.Logf("gRPC version matrix (per call: answered right, SERVER span right, CLIENT span right, server span child of client span):%s", b.String())
}

func checkGRPCVariant(t *testing.T, v grpcVariant, row *matrixRow) {
	// One caller process makes the ordinary calls; a second one sends its
	// own traceparent metadata on every call, as a program with an SDK does.
	own := fmt.Sprintf("00-%032x-%016x-01", 0x9c0000, 0x9c0001)
	calls := append(append([]healthCall(nil), healthCalls...), healthCall{[]string{""}, "OK", "Check", 0, false})
	ownCall := len(calls) - 1
	row.of = len(calls)

	bin := grpcBinary(t, v, t.TempDir(), "weft-e2e-grpcm-"+v.tag())
	row.stage = "start"
	col := otelcol.Start(t)
	srv := startServer(t, "grpc "+v.tag(), bin)
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", "weft-e2e-grpcm-*")
	ag.waitTracked(t, srv.PID())
	// The callers dial at their first call, once the agent traces them, so
	// their connections are seen from the HTTP/2 preface on.
	plain := startCaller(t, bin, srv.Addr)
	ag.waitTracked(t, plain.PID())
	withOwn := startCaller(t, bin, srv.Addr, "-own-traceparent", own)
	ag.waitTracked(t, withOwn.PID())

	row.stage = "calls"
	for i, c := range calls {
		cl := plain
		if i == ownCall {
			cl = withOwn
		}
		if got := cl.call(t, c.args...); got != c.answer {
			t.Errorf("call %d %v: %q, want %s", i, c.args, got, c.answer)
		} else {
			row.calls++
		}
	}
	row.stage = "spans"
	all := waitSpansSoft(t, col, 2*len(calls), 30*time.Second, nil)
	var servers, clients []otelcol.Span
	for _, s := range all {
		switch {
		case s.Kind == 2 && s.Resource["process.pid"] == int64(srv.PID()):
			servers = append(servers, s)
		case s.Kind == 3 && (s.Resource["process.pid"] == int64(plain.PID()) || s.Resource["process.pid"] == int64(withOwn.PID())):
			clients = append(clients, s)
		default:
			t.Errorf("unexpected span %q kind %d from %v", s.Name, s.Kind, s.Resource["process.pid"])
		}
	}
	wantRuntime := strings.TrimPrefix(v.toolchain, "go")
	for _, s := range all {
		if s.Resource["process.runtime.version"] != wantRuntime {
			t.Errorf("span %q: process.runtime.version %v, want %s", s.Name, s.Resource["process.runtime.version"], wantRuntime)
			break
		}
	}
	if len(servers) != len(calls) {
		t.Errorf("%d SERVER spans for %d calls", len(servers), len(calls))
	}
	if len(clients) != len(calls) {
		t.Errorf("%d CLIENT spans for %d calls", len(clients), len(calls))
	}
	// The calls ran one after another; so do their spans.
	servers, clients = inStartOrder(servers), inStartOrder(clients)
	ownTP := strings.Split(own, "-")
	for i, c := range calls {
		var srvSpan, cliSpan *otelcol.Span
		if len(servers) == len(calls) {
			srvSpan = &servers[i]
			if checkGRPCSpan(t, fmt.Sprintf("call %d (%s) SERVER", i, c.answer), *srvSpan, c, srv.Port, c.errorful) {
				row.server++
			}
		}
		if len(clients) == len(calls) {
			cliSpan = &clients[i]
			ok := checkGRPCSpan(t, fmt.Sprintf("call %d (%s) CLIENT", i, c.answer), *cliSpan, c, srv.Port, c.answer != "OK")
			if i == ownCall {
				// weft's client span joins the program's own trace.
				if cliSpan.TraceID != ownTP[1] || cliSpan.ParentSpanID != ownTP[2] {
					t.Errorf("call %d: CLIENT span (trace %s, parent %s) is not in the program's own context %s", i, cliSpan.TraceID, cliSpan.ParentSpanID, own)
					ok = false
				}
			} else if cliSpan.ParentSpanID != "" {
				t.Errorf("call %d: CLIENT span has parent %s; the caller is no server, want a root", i, cliSpan.ParentSpanID)
				ok = false
			}
			if ok {
				row.client++
			}
		}
		switch {
		case srvSpan == nil:
		case i == ownCall:
			// The program's own header reached the server untouched.
			if srvSpan.TraceID != ownTP[1] || srvSpan.ParentSpanID != ownTP[2] {
				t.Errorf("call %d: SERVER span (trace %s, parent %s): the program's own traceparent %s was not kept", i, srvSpan.TraceID, srvSpan.ParentSpanID, own)
			} else {
				row.linked++
			}
		case cliSpan == nil:
		case srvSpan.TraceID != cliSpan.TraceID || srvSpan.ParentSpanID != cliSpan.SpanID:
			t.Errorf("call %d (%s): SERVER span (trace %s, parent %s) is not the child of the CLIENT span %s (trace %s)",
				i, c.answer, srvSpan.TraceID, srvSpan.ParentSpanID, cliSpan.SpanID, cliSpan.TraceID)
		default:
			row.linked++
		}
	}
	row.stage = "done"
}

// checkGRPCSpan checks one span of a health call made to port; errorful is
// whether its status must be an error.
func checkGRPCSpan(t *testing.T, what string, s otelcol.Span, c healthCall, port int, errorful bool) bool {
	t.Helper()
	ok := true
	fail := func(format string, args ...any) {
		t.Errorf(what+": "+format, args...)
		ok = false
	}
	if s.Name != "grpc.health.v1.Health/"+c.method {
		fail("name %q", s.Name)
	}
	want := map[string]any{
		"rpc.system": "grpc", "rpc.service": "grpc.health.v1.Health", "rpc.method": c.method,
		"network.protocol.version": "2", "server.port": int64(port),
	}
	if c.code >= 0 {
		want["rpc.grpc.status_code"] = c.code
	} else {
		// Past the deadline the server may answer DeadlineExceeded before
		// the client's reset arrives, or not at all.
		if code, ok := s.Attrs["rpc.grpc.status_code"]; ok && code != int64(4) {
			fail("status code %v on a call past its deadline", code)
		}
		if d := time.Duration(s.EndUnixNano - s.StartUnixNano); d < 90*time.Millisecond || d > 400*time.Millisecond {
			fail("duration %v, want about the client's 100 ms deadline", d)
		}
	}
	for k, w := range want {
		if s.Attrs[k] != w {
			fail("%s = %v, want %v", k, s.Attrs[k], w)
		}
	}
	if (s.StatusCode == 2) != errorful {
		fail("span status %d, want error %v", s.StatusCode, errorful)
	}
	return ok
}
