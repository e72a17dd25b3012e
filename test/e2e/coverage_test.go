package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// covCell is one build of the unmodified grpcserver program.
type covCell struct {
	goVersion, variant string
	flags              []string
	bin                string
	grpcSrv, httpSrv   *server
	tpGRPC, tpHTTP     string // the callers' traceparents, one trace each
}

// modfileFor picks the newest grpc the toolchain builds: v1.83 needs Go
// 1.25, v1.66 Go 1.22.
func modfileFor(goVersion string) []string {
	switch {
	case goVersion < "go1.22":
		return []string{"-modfile=go.v1.50.mod"}
	case goVersion < "go1.25":
		return []string{"-modfile=go.v1.66.mod"}
	}
	return nil
}

// TestGoVersionMatrix: every Go minor from 1.21 × {default, stripped
// (-s -w), PIE}, each build serving gRPC and HTTP and calling the other
// protocol, gives correct spans with propagation both ways:
//
//	caller ─gRPC(traceparent)→ cell ─HTTP→ reference HTTP server
//	caller ─HTTP(traceparent)→ cell ─gRPC→ reference gRPC server
//
// Each chain is one trace: the cell's SERVER span continues the caller's
// context, its CLIENT span is the child of its SERVER span (in-process
// link), and the reference server's span is the child of that CLIENT span
// (the header weft added). Stripped builds take their offsets from weft's
// tables; go1.25.5 is in no table, so its DWARF is what makes it work. The
// matrix is printed as a table.
func TestGoVersionMatrix(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	dir := t.TempDir()
	src := filepath.Join(repoRoot(t), "testdata/grpcserver")
	ref := goBuild(t, src, "", filepath.Join(dir, "weft-e2e-cov-ref"))
	caller := goBuild(t, src, "", filepath.Join(dir, "untraced-caller")) // not selected

	variants := []struct {
		name  string
		flags []string
	}{{"default", nil}, {"stripped", []string{"-ldflags=-s -w"}}, {"pie", []string{"-buildmode=pie"}}}
	var cells []*covCell
	for _, gv := range []string{"go1.21.13", "go1.22.12", "go1.23.12", "go1.24.13", "go1.25.14", "go1.26.8"} {
		for _, v := range variants {
			cells = append(cells, &covCell{goVersion: gv, variant: v.name, flags: v.flags})
		}
	}
	cells = append(cells, &covCell{goVersion: "go1.25.5", variant: "default"}) // not in the table: DWARF
	for i, c := range cells {
		name := fmt.Sprintf("weft-e2e-cov-%s-%s", c.goVersion, c.variant)
		c.bin = goBuild(t, src, c.goVersion, filepath.Join(dir, name), append(modfileFor(c.goVersion), c.flags...)...)
		c.tpGRPC = fmt.Sprintf("00-%032x-%016x-01", 0xc0e000+2*i, 0xc0e000+2*i)
		c.tpHTTP = fmt.Sprintf("00-%032x-%016x-01", 0xc0e001+2*i, 0xc0e001+2*i)
	}

	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", "weft-e2e-cov-*")
	refGRPC := startServer(t, "ref-grpc", ref)
	refHTTP := startServer(t, "ref-http", ref, "-http")
	ag.waitTracked(t, refGRPC.PID())
	ag.waitTracked(t, refHTTP.PID())
	for _, c := range cells {
		c.grpcSrv = startServer(t, c.goVersion+"-"+c.variant, c.bin)
		c.httpSrv = startServer(t, c.goVersion+"-"+c.variant+"-http", c.bin, "-http")
		ag.waitTracked(t, c.grpcSrv.PID())
		ag.waitTracked(t, c.httpSrv.PID())
	}
	for _, c := range cells {
		cmd := exec.Command(caller, "-call", c.grpcSrv.Addr, "-own-traceparent", c.tpGRPC, "hop http://"+refHTTP.Addr)
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "OK" {
			t.Fatalf("%s %s: gRPC call: %v %s", c.goVersion, c.variant, err, out)
		}
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/hop?next=%s", c.httpSrv.Addr, url.QueryEscape("grpc://"+refGRPC.Addr)), nil)
		req.Header.Set("traceparent", c.tpHTTP)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: HTTP call: %v", c.goVersion, c.variant, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: HTTP call: %s", c.goVersion, c.variant, resp.Status)
		}
	}
	all := waitSpansSoft(t, col, 6*len(cells), 60*time.Second, nil)
	byTrace := map[string][]otelcol.Span{}
	for _, s := range all {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}

	var table strings.Builder
	fmt.Fprintf(&table, "\n%-10s %-9s %-11s %-11s %-10s %-11s %-11s %-10s", "go", "build", "grpc server", "->http link", "http inject", "http server", "->grpc link", "grpc inject")
	for _, c := range cells {
		g := chainOf(byTrace[strings.Split(c.tpGRPC, "-")[1]], strings.Split(c.tpGRPC, "-")[2], c.grpcSrv.Port, refHTTP.Port)
		h := chainOf(byTrace[strings.Split(c.tpHTTP, "-")[1]], strings.Split(c.tpHTTP, "-")[2], c.httpSrv.Port, refGRPC.Port)
		fmt.Fprintf(&table, "\n%-10s %-9s %-11s %-11s %-10s %-11s %-11s %-10s", c.goVersion, c.variant,
			mark(g[0]), mark(g[1]), mark(g[2]), mark(h[0]), mark(h[1]), mark(h[2]))
		for _, tp := range []string{c.tpGRPC, c.tpHTTP} {
			if g != [3]bool{true, true, true} && tp == c.tpGRPC || h != [3]bool{true, true, true} && tp == c.tpHTTP {
				var b strings.Builder
				for _, s := range byTrace[strings.Split(tp, "-")[1]] {
					fmt.Fprintf(&b, "\n\tkind %d %q port %v span %s parent %s", s.Kind, s.Name, s.Attrs["server.port"], s.SpanID, s.ParentSpanID)
				}
				t.Logf("%s %s: trace of %s:%s", c.goVersion, c.variant, tp, b.String())
			}
		}
		for i, what := range []string{"gRPC server span continues the caller", "HTTP client span child of the gRPC server span", "reference HTTP server child of the cell's client span"} {
			if !g[i] {
				t.Errorf("%s %s: %s", c.goVersion, c.variant, what)
			}
		}
		for i, what := range []string{"HTTP server span continues the caller", "gRPC client span child of the HTTP server span", "reference gRPC server child of the cell's client span"} {
			if !h[i] {
				t.Errorf("%s %s: %s", c.goVersion, c.variant, what)
			}
		}
	}
	t.Logf("Go version × build matrix (✓ works, ✗ broken):%s", table.String())
	if t.Failed() {
		t.Logf("agent counters:\n%s", agentCounters(t, ag))
	}
}

// chainOf checks a three-span chain in one trace: the cell's SERVER span
// (on cellPort, child of parent), the cell's CLIENT span (its child, to
// refPort) and the reference SERVER span (on refPort, child of the client).
func chainOf(trace []otelcol.Span, parent string, cellPort, refPort int) [3]bool {
	var ok [3]bool
	var srv, cli otelcol.Span
	for _, s := range trace {
		if s.Kind == 2 && s.Attrs["server.port"] == int64(cellPort) && s.ParentSpanID == parent {
			srv, ok[0] = s, true
		}
	}
	for _, s := range trace {
		if ok[0] && s.Kind == 3 && s.ParentSpanID == srv.SpanID && s.Attrs["server.port"] == int64(refPort) {
			cli, ok[1] = s, true
		}
	}
	for _, s := range trace {
		if ok[1] && s.Kind == 2 && s.Attrs["server.port"] == int64(refPort) && s.ParentSpanID == cli.SpanID {
			ok[2] = true
		}
	}
	return ok
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

// TestUnverifiableLayout: a stripped binary whose Go version weft has no
// layout for (the build info says go1.99, newer than any table entry) is
// traced at the socket layer only; the status endpoint says which links it
// lacks and why, and the program answers unharmed.
func TestUnverifiableLayout(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	dir := t.TempDir()
	bin := goBuild(t, filepath.Join(repoRoot(t), "testdata/grpcserver"), "", filepath.Join(dir, "weft-e2e-future"), "-ldflags=-s -w")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	// Same length, so nothing moves: the runtime never reads it back.
	goVer := strings.TrimSpace(string(must(exec.Command("go", "env", "GOVERSION").Output())))
	future := "go1.99" + strings.TrimPrefix(goVer, goVer[:6])
	if len(future) != len(goVer) || !bytes.Contains(data, []byte(goVer)) {
		t.Fatalf("cannot patch %q into %q", goVer, future)
	}
	if err := os.WriteFile(bin, bytes.ReplaceAll(data, []byte(goVer), []byte(future)), 0o755); err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", "weft-e2e-future")
	srv := startServer(t, "future", bin, "-http")
	ag.waitTracked(t, srv.PID())

	resp, err := http.Get("http://" + srv.Addr + "/hop?next=")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("server answered %s", resp.Status)
	}
	if got := col.WaitSpans(t, 1, 30*time.Second, func(s otelcol.Span) bool { return s.Kind == 2 }); len(got) != 1 {
		t.Fatalf("%d server spans, want 1 (spans come from the socket layer whatever the layout)", len(got))
	}

	resp, err = http.Get("http://" + ag.statusAddr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep status.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	procs := rep.Processes
	var p *status.Process
	for i := range procs {
		if procs[i].PID == srv.PID() {
			p = &procs[i]
		}
	}
	if p == nil {
		t.Fatalf("pid %d not in /status: %+v", srv.PID(), procs)
	}
	if p.GoVersion != future {
		t.Errorf("status go_version %q, want %q", p.GoVersion, future)
	}
	if c := p.Capabilities[status.Spans]; !c.On {
		t.Errorf("spans off: %s", c.Why)
	}
	for _, name := range []string{status.HTTPClientLinks, status.GRPCServerLinks, status.GRPCClientLinks} {
		c, ok := p.Capabilities[name]
		if !ok || c.On || !strings.Contains(c.Why, future) || !strings.Contains(c.Why, "unknown") {
			t.Errorf("%s: %+v, want off, saying the %s layout is unknown", name, c, future)
		}
	}
	t.Logf("status of the unverifiable binary: %+v", p.Capabilities)
	resp, err = http.Get("http://" + srv.Addr + "/hop?next=")
	if err != nil {
		t.Fatalf("the server after tracing: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the server after tracing answered %s", resp.Status)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
