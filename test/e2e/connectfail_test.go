package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestConnectFailures: a Go server and a Python server (linked by thread)
// each call a port nothing listens on. The call fails before a byte is
// sent, so no protocol sees it; each is still a CLIENT span "connect" with
// error.type ECONNREFUSED and the peer's address, the child of the request
// it was made for. Where the kernel lacks bpf_task_pt_regs (5.10), the
// feature is off with the reason.
func TestConnectFailures(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	goSrv := startServer(t, "go", goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, "weft-e2e-connfail")))
	pySrv := startServer(t, "py", "/usr/bin/python3", filepath.Join(root, "testdata/pyserver/server.py"), "127.0.0.1")
	// A port that refuses: bound, then closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint},
		"-exe", "weft-e2e-connfail", "-pid", fmt.Sprint(pySrv.PID()))
	ag.waitTracked(t, goSrv.PID())
	ag.waitTracked(t, pySrv.PID())
	f := feature(t, ag, "connect_failures")
	if err := features.HaveProgramHelper(ebpf.Kprobe, asm.FnTaskPtRegs); err != nil {
		if f.On || !strings.Contains(f.Why, "bpf_task_pt_regs") {
			t.Fatalf("connect_failures on=%v (%s) on a kernel without bpf_task_pt_regs", f.On, f.Why)
		}
		t.Logf("connect failures: off on this kernel, as /status says: %s", f.Why)
		return
	}
	if !f.On {
		t.Fatalf("connect_failures off: %s", f.Why)
	}

	const n = 5
	for _, s := range []*server{goSrv, pySrv} {
		for i := range n {
			to := fmt.Sprintf("http://127.0.0.1:%d/x?id=%s-dead%d", dead, s.Name, i)
			resp, err := http.Get(fmt.Sprintf("http://%s/call?id=%s%d&to=%s", s.Addr, s.Name, i, url.QueryEscape(to)))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), "200") {
				t.Fatalf("%s: a call to a closed port answered %q", s.Name, body)
			}
		}
	}
	pids := map[string]*server{fmt.Sprint(goSrv.PID()): goSrv, fmt.Sprint(pySrv.PID()): pySrv}
	spans := col.WaitSpans(t, 4*n, 60*time.Second, func(s otelcol.Span) bool {
		return pids[fmt.Sprint(s.Resource["process.pid"])] != nil
	})
	for _, srv := range []*server{goSrv, pySrv} {
		var servers, connects []otelcol.Span
		for _, s := range inStartOrder(spans) {
			if fmt.Sprint(s.Resource["process.pid"]) != fmt.Sprint(srv.PID()) {
				continue
			}
			switch {
			case s.Kind == 2:
				servers = append(servers, s)
			case s.Kind == 3 && s.Name == "connect":
				connects = append(connects, s)
			default:
				t.Errorf("%s: unexpected span %q kind %d %v", srv.Name, s.Name, s.Kind, s.Attrs)
			}
		}
		if len(servers) != n || len(connects) != n {
			t.Fatalf("%s: %d server spans, %d connect spans; want %d each", srv.Name, len(servers), len(connects), n)
		}
		for i := range n {
			c, s := connects[i], servers[i]
			if c.ParentSpanID != s.SpanID || c.TraceID != s.TraceID {
				t.Errorf("%s call %d: connect span parent %q in %s; its request is %s in %s", srv.Name, i, c.ParentSpanID, c.TraceID, s.SpanID, s.TraceID)
			}
			if c.Attrs["error.type"] != "ECONNREFUSED" || c.Attrs["server.port"] != int64(dead) ||
				c.Attrs["server.address"] != "127.0.0.1" || c.StatusCode != 2 {
				t.Errorf("%s call %d: connect span %v status %d", srv.Name, i, c.Attrs, c.StatusCode)
			}
		}
	}
	if got := ag.metric(t, `weft_connect_failures_total{error_type="ECONNREFUSED"}`); int(got) != 2*n {
		t.Errorf("weft_connect_failures_total{ECONNREFUSED} = %v, want %d", got, 2*n)
	}
}
