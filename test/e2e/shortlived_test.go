package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// shortRun is one run of a short-lived client: a fresh process making one
// call and exiting.
type shortRun struct {
	id      string // unique per run: the HTTP query's id, the gRPC Check's service name
	pid     int
	elapsed time.Duration
}

// TestShortLivedClients (issue 20 item 2): a client that lives a few
// milliseconds (one HTTP GET, or one unary gRPC call, then exit), started
// after the agent, matched by the agent's -exe glob, is traced like a
// long-lived one: each of its calls is a CLIENT span of that process, and
// the server's SERVER span of the call is that span's child. The kernel
// selects a process at its exec once user space has selected one of the
// same executable (bpf/execsel.h): the runs of a never-seen executable
// until then are a warm-up, logged (how many, how long), not asserted.
// The 50 runs after it, each a new process, are asserted.
func TestShortLivedClients(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	const prefix = "weft-e2e-short-"
	httpSrvBin := goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, prefix+"httpsrv"))
	grpcSrvBin := goBuild(t, filepath.Join(root, "testdata/grpcserver"), "", filepath.Join(dir, prefix+"grpcsrv"))
	httpCli := goBuild(t, filepath.Join(root, "testdata/shortclient"), "", filepath.Join(dir, prefix+"httpcli"))
	// The gRPC client is grpcserver -call (one unary Check, then exit),
	// under a name of its own so that its spans and its exec are its own.
	grpcCli := copyExe(t, grpcSrvBin, filepath.Join(dir, prefix+"grpccli"))

	httpSrv := startServer(t, "httpsrv", httpSrvBin)
	grpcSrv := startServer(t, "grpcsrv", grpcSrvBin)
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", prefix+"*")
	ag.waitTracked(t, httpSrv.PID())
	ag.waitTracked(t, grpcSrv.PID())

	const n = 50
	lagCount := func() float64 { return ag.metric(t, "weft_discovery_exec_to_traced_seconds_count") }
	lagSum := func() float64 { return ag.metric(t, "weft_discovery_exec_to_traced_seconds_sum") }

	// run starts one client process, waits for it, and checks its answer.
	run := func(what, id, want string, argv ...string) shortRun {
		t.Helper()
		cmd := exec.Command(argv[0], argv[1:]...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s %s: starting: %v", what, id, err)
		}
		err := cmd.Wait()
		r := shortRun{id: id, pid: cmd.Process.Pid, elapsed: time.Since(start)}
		if got := strings.TrimSpace(out.String()); err != nil || got != want {
			t.Fatalf("%s %s: answered %q (%v), want %q; stderr: %s", what, id, got, err, want, errb.String())
		}
		return r
	}
	// armed counts the processes the kernel selected at exec: once it
	// moves, the executable's next processes are traced from their first
	// instruction, however short-lived.
	armed := func() float64 {
		n := 0.0
		for _, o := range []string{"tracked", "exited", "not_tracked"} {
			n += ag.metric(t, `weft_discovery_exec_selected_total{outcome="`+o+`"}`)
		}
		return n
	}
	// warmUp runs a client the agent has never seen, then again until the
	// kernel selects a run at its exec, and reports how long that took
	// from the first exec and how many runs went before: what a new
	// executable loses. The first run's exec-to-traced is logged too.
	warmUp := func(what, id, want string, argv func(id string) []string) shortRun {
		t.Helper()
		c0, s0 := lagCount(), lagSum()
		a0 := armed()
		first := time.Now()
		r := run(what, id, want, argv(id)...)
		runs := 1
		for ; armed() == a0; runs++ {
			if time.Since(first) > 45*time.Second {
				t.Fatalf("%s: after %d runs over %v, the kernel still selects none at exec", what, runs, time.Since(first))
			}
			time.Sleep(20 * time.Millisecond)
			wid := fmt.Sprintf("%s-%d", id, runs)
			run(what, wid, want, argv(wid)...)
		}
		t.Logf("%s never-seen executable: selected in the kernel at exec from run %d, %v after the first exec", what, runs, time.Since(first).Round(time.Millisecond))
		c1, s1 := lagCount(), lagSum()
		traced := strings.Contains(ag.stderr.String(), fmt.Sprintf("msg=\"tracing process\" component=discovery pid=%d ", r.pid))
		if c1 > c0 {
			t.Logf("%s warm-up (pid %d, ran %v): weft_discovery_exec_to_traced_seconds count %v→%v over the warm-up runs, mean %.2f ms; first run tracked by user space: %v",
				what, r.pid, r.elapsed, c0, c1, (s1-s0)/(c1-c0)*1e3, traced)
		}
		return r
	}
	runs := func(what string, mk func(i int) (id string, argv []string), want string) []shortRun {
		t.Helper()
		c0, s0 := lagCount(), lagSum()
		out := make([]shortRun, n)
		for i := range n {
			id, argv := mk(i)
			out[i] = run(what, id, want, argv...)
		}
		// Let the agent's late observations land, so that the next
		// warm-up's delta is its own.
		time.Sleep(time.Second)
		c1, s1 := lagCount(), lagSum()
		ds := make([]time.Duration, n)
		for i, r := range out {
			ds[i] = r.elapsed
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		mean := "n/a"
		if c1 > c0 {
			mean = fmt.Sprintf("%.2f ms", (s1-s0)/(c1-c0)*1e3)
		}
		t.Logf("%s: %d runs, each a new process: median %v, max %v; exec-to-traced observations %v (mean %s)",
			what, n, ds[n/2], ds[n-1], c1-c0, mean)
		return out
	}

	httpURL := func(id string) string { return fmt.Sprintf("http://%s/work?id=%s", httpSrv.Addr, id) }
	httpWarm := warmUp("http", "shw", "200", func(id string) []string { return []string{httpCli, "-url", httpURL(id)} })
	httpRuns := runs("http", func(i int) (string, []string) {
		id := fmt.Sprintf("sh%d", i)
		return id, []string{httpCli, "-url", httpURL(id)}
	}, "200")
	// grpcserver's Check answers OK to any service it does not know.
	grpcWarm := warmUp("grpc", "run-warm", "OK", func(id string) []string { return []string{grpcCli, "-call", grpcSrv.Addr, id} })
	grpcRuns := runs("grpc", func(i int) (string, []string) {
		id := fmt.Sprintf("run-%d", i)
		return id, []string{grpcCli, "-call", grpcSrv.Addr, id}
	}, "OK")

	// Collect: the servers' spans (one per run) and the clients' (by the
	// process that made them), until the asserted runs' are all there or
	// 45 s have passed: a run the agent missed never gets its client span.
	// The warm-ups' first runs are not waited for (a never-seen
	// executable's first run may go untraced).
	cliPIDs, assertedPIDs := map[string]bool{}, map[string]bool{}
	for _, r := range append(append([]shortRun{httpWarm, grpcWarm}, httpRuns...), grpcRuns...) {
		cliPIDs[fmt.Sprint(r.pid)] = true
	}
	for _, r := range append(append([]shortRun{}, httpRuns...), grpcRuns...) {
		assertedPIDs[fmt.Sprint(r.pid)] = true
	}
	pidOf := func(s otelcol.Span) string { return fmt.Sprint(s.Resource["process.pid"]) }
	// Done when every asserted run has its client span and the server's
	// span of its call: HTTP by id, gRPC by the client span as parent
	// (the warm-ups' server spans are there too: not a count).
	httpIDs := map[string]bool{}
	for _, r := range httpRuns {
		httpIDs["server:"+r.id] = true
	}
	var spans []otelcol.Span
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		spans = col.Spans(t)
		clients, httpServers, grpcParents := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for _, s := range spans {
			switch {
			case s.Kind == 2 && pidOf(s) == fmt.Sprint(httpSrv.PID()) && httpIDs[spanID(s)]:
				httpServers[spanID(s)] = true
			case s.Kind == 2 && pidOf(s) == fmt.Sprint(grpcSrv.PID()):
				grpcParents[s.ParentSpanID] = true
			case s.Kind == 3 && assertedPIDs[pidOf(s)]:
				clients[pidOf(s)] = true
			}
		}
		grpcLinked := 0
		for _, s := range spans {
			if s.Kind == 3 && assertedPIDs[pidOf(s)] && grpcParents[s.SpanID] {
				grpcLinked++
			}
		}
		if len(clients) >= 2*n && len(httpServers) >= n && grpcLinked >= n || time.Now().After(deadline) {
			break
		}
	}

	// Client spans by the PID of their process (each run is one process
	// making one call); server spans by the id of their call (HTTP: the
	// query's id) or, for gRPC, whose body the server span does not show,
	// in start order (the runs were one after another, and nothing else
	// calls that server).
	clientByPID := map[string][]otelcol.Span{}
	httpServerByID := map[string]otelcol.Span{}
	var grpcServer []otelcol.Span
	for _, s := range spans {
		switch {
		case s.Kind == 3 && cliPIDs[pidOf(s)]:
			clientByPID[pidOf(s)] = append(clientByPID[pidOf(s)], s)
		case s.Kind == 2 && pidOf(s) == fmt.Sprint(httpSrv.PID()):
			if k := spanID(s); strings.HasPrefix(k, "server:") {
				httpServerByID[strings.TrimPrefix(k, "server:")] = s
			}
		case s.Kind == 2 && pidOf(s) == fmt.Sprint(grpcSrv.PID()):
			grpcServer = append(grpcServer, s)
		}
	}
	grpcServer = inStartOrder(grpcServer)
	grpcServerByID := map[string]otelcol.Span{}
	if len(grpcServer) >= n+1 { // the warm-up's first, the asserted runs' last
		grpcServerByID[grpcWarm.id] = grpcServer[0]
		for i, r := range grpcRuns {
			grpcServerByID[r.id] = grpcServer[len(grpcServer)-n+i]
		}
	}

	// check reports one run: its client span, and whether the server's
	// span of the call is that span's child.
	type tally struct{ runs, client, server, linked, otherParent int }
	check := func(what string, r shortRun, serverOf map[string]otelcol.Span, wantClient func(otelcol.Span) bool, tl *tally, logOnly bool) (gotClient, gotLink bool) {
		tl.runs++
		var cli *otelcol.Span
		for _, s := range clientByPID[fmt.Sprint(r.pid)] {
			if wantClient(s) {
				cli = &s
				break
			}
		}
		srv, okSrv := serverOf[r.id]
		if okSrv {
			tl.server++
		}
		report := t.Errorf
		if logOnly {
			report = t.Logf
		}
		if cli == nil {
			if okSrv && srv.ParentSpanID != "" {
				tl.otherParent++
			}
			if tl.runs-tl.client <= 5 || logOnly {
				report("%s %s (pid %d): no CLIENT span from the client process (server span found: %v, its parent %q)", what, r.id, r.pid, okSrv, srv.ParentSpanID)
			}
			return false, false
		}
		tl.client++
		// The server's span of this call: by id, or any with this parent
		// (the gRPC order may be off when a server span is missing).
		if !okSrv || srv.ParentSpanID != cli.SpanID {
			for _, s := range spans {
				if s.Kind == 2 && s.ParentSpanID == cli.SpanID {
					srv, okSrv = s, true
					break
				}
			}
		}
		if okSrv && srv.ParentSpanID == cli.SpanID && srv.TraceID == cli.TraceID {
			tl.linked++
			return true, true
		}
		if okSrv && srv.ParentSpanID != "" {
			tl.otherParent++
		}
		if tl.client-tl.linked <= 5 || logOnly {
			report("%s %s (pid %d): CLIENT span %s in trace %s is not the parent of the server's span (found: %v, trace %s, parent %q)",
				what, r.id, r.pid, cli.SpanID, cli.TraceID, okSrv, srv.TraceID, srv.ParentSpanID)
		}
		return true, false
	}
	isHTTPCall := func(id string) func(otelcol.Span) bool {
		return func(s otelcol.Span) bool { return spanID(s) == "client:"+id }
	}
	isGRPCCall := func(s otelcol.Span) bool { return s.Attrs["rpc.system"] == "grpc" }

	var warm tally
	c, l := check("http warm-up", httpWarm, httpServerByID, isHTTPCall(httpWarm.id), &warm, true)
	t.Logf("http warm-up (never-seen executable): CLIENT span %v, linked %v", c, l)
	c, l = check("grpc warm-up", grpcWarm, grpcServerByID, isGRPCCall, &warm, true)
	t.Logf("grpc warm-up (never-seen executable): CLIENT span %v, linked %v", c, l)

	var h, g tally
	for _, r := range httpRuns {
		check("http", r, httpServerByID, isHTTPCall(r.id), &h, false)
	}
	for _, r := range grpcRuns {
		check("grpc", r, grpcServerByID, isGRPCCall, &g, false)
	}
	summary := fmt.Sprintf("http: %d runs, %d with a CLIENT span, %d linked (server span its child), %d server spans found (%d of them with a parent other than a client span seen); "+
		"grpc: %d runs, %d with a CLIENT span, %d linked, %d server spans matched of %d from the server (%d with another parent)",
		h.runs, h.client, h.linked, h.server, h.otherParent,
		g.runs, g.client, g.linked, g.server, len(grpcServer), g.otherParent)
	t.Log(summary)
	if h.client != n || h.linked != n || g.client != n || g.linked != n {
		ag.logMetrics(t, "weft_")
		t.Fatalf("short-lived clients not traced whole: %s", summary)
	}
}
