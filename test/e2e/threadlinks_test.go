package e2e

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestPythonInChain: A (Go) → B (Python ThreadingHTTPServer, calling C with
// urllib on the thread that serves the request) → C (Go), 200 requests at
// once, default propagation (headers,tcp). Every request is one 5-span
// trace with every parent exact: B's server span takes A's client span
// (header and option agree), B's client call is linked to B's request by
// thread, and C's server span takes B's client span from the TCP option
// alone (B's bytes are untouched: its sockets never enter the sockhash).
// Once per capture source: each files B's call before its bytes leave from
// its own hook (tcp_sendmsg_locked, sys_enter).
func TestPythonInChain(t *testing.T) {
	needRoot(t)
	for _, capture := range []string{"sock_tracepoints", "syscalls"} {
		t.Run(capture, func(t *testing.T) { pythonChainRun(t, capture) })
	}
}

func pythonChainRun(t *testing.T, capture string) {
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := func(name string) string {
		return goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, name))
	}
	a := startServer(t, "a", bin("weft-e2e-py-a"))
	c := startServer(t, "c", bin("weft-e2e-py-c"))
	b := startServer(t, "python", "/usr/bin/python3", filepath.Join(root, "testdata/pyserver/server.py"))

	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-capture", capture, "-exe", "weft-e2e-py-*", "-pid", fmt.Sprint(b.PID()))
	for _, s := range []*server{a, b, c} {
		ag.waitTracked(t, s.PID())
	}
	if f := feature(t, ag, "tcp_option"); !f.On {
		t.Fatalf("tcp_option feature off: %s", f.Why)
	}
	if cp := capability(t, ag, b.PID(), status.ThreadLinks); !cp.On {
		t.Fatalf("python: thread_links off: %s", cp.Why)
	}

	const n = 200
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			cu := fmt.Sprintf("http://%s/work?id=c%d", c.Addr, i)
			bu := fmt.Sprintf("http://%s/call?id=b%d&to=%s", b.Addr, i, url.QueryEscape(cu))
			au := fmt.Sprintf("http://%s/call?id=a%d&to=%s", a.Addr, i, url.QueryEscape(bu))
			resp, err := hc.Get(au)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// A answers B's status; B answers C's in its body, which A
			// does not pass on: B's 200 means B's own call gave 200.
			if resp.StatusCode != 200 || string(body) != "200" {
				t.Errorf("request %d: %d %q", i, resp.StatusCode, body)
			}
		}()
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	pids := map[string]string{fmt.Sprint(a.PID()): "a", fmt.Sprint(b.PID()): "b", fmt.Sprint(c.PID()): "c"}
	spans := col.WaitSpans(t, 5*n, 90*time.Second, func(s otelcol.Span) bool {
		return pids[fmt.Sprint(s.Resource["process.pid"])] != ""
	})
	// By who made it and what it names: "a server:a7", "a client:b7",
	// "b server:b7", "b client:c7", "c server:c7".
	byName := map[string]otelcol.Span{}
	for _, s := range spans {
		k := pids[fmt.Sprint(s.Resource["process.pid"])] + " " + spanID(s)
		if _, dup := byName[k]; dup {
			t.Errorf("two spans %s", k)
		}
		byName[k] = s
	}
	bad := 0
	for i := range n {
		get := func(k string) (otelcol.Span, bool) {
			s, ok := byName[fmt.Sprintf(k, i)]
			if !ok && bad < 10 {
				t.Errorf("request %d: no span %q", i, fmt.Sprintf(k, i))
			}
			return s, ok
		}
		aS, ok1 := get("a server:a%d")
		aC, ok2 := get("a client:b%d")
		bS, ok3 := get("b server:b%d")
		bC, ok4 := get("b client:c%d")
		cS, ok5 := get("c server:c%d")
		if !(ok1 && ok2 && ok3 && ok4 && ok5) {
			bad++
			continue
		}
		for _, link := range []struct {
			name          string
			child, parent otelcol.Span
		}{{"A's client ← A's server", aC, aS}, {"B's server ← A's client", bS, aC},
			{"B's client ← B's server (by thread)", bC, bS}, {"C's server ← B's client (TCP option)", cS, bC}} {
			if link.child.TraceID != link.parent.TraceID || link.child.ParentSpanID != link.parent.SpanID {
				if bad < 10 {
					t.Errorf("request %d: %s: child trace %s parent %q; want trace %s parent %s", i, link.name,
						link.child.TraceID, link.child.ParentSpanID, link.parent.TraceID, link.parent.SpanID)
				}
				bad++
			}
		}
		if aS.ParentSpanID != "" {
			t.Errorf("request %d: A's server span has parent %s; the caller sent none", i, aS.ParentSpanID)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d requests' traces broken", bad, n)
	}

	if socks := sockhashSockets(t, uint32(b.PID())); socks != 0 {
		t.Errorf("%d of the Python server's sockets in the injector's sockhash; want none", socks)
	}
	linked := ag.metric(t, `weft_sockio_kernel_total{name="thread_linked"}`)
	t.Logf("thread-linked calls %v, roots %v, event loops %v; options written %v read %v; server parents from option %v, header %v, both %v",
		linked, ag.metric(t, `weft_sockio_kernel_total{name="thread_root"}`), ag.metric(t, `weft_sockio_kernel_total{name="thread_mux"}`),
		ag.metric(t, `weft_tcpopt_total{name="written"}`), ag.metric(t, `weft_tcpopt_total{name="read"}`),
		ag.metric(t, `weft_server_parent_total{from="option"}`), ag.metric(t, `weft_server_parent_total{from="header"}`),
		ag.metric(t, `weft_server_parent_total{from="both"}`))
	if int(linked) < n {
		t.Errorf("%v calls linked by thread, want at least %d", linked, n)
	}
	if cp := capability(t, ag, b.PID(), status.ThreadLinks); !cp.On {
		t.Errorf("python: thread_links went off: %s", cp.Why)
	}
}

// capability reads one process's capability from the agent's /status.
func capability(t testing.TB, a *agent, pid int, name string) status.Capability {
	t.Helper()
	resp, err := http.Get("http://" + a.statusAddr + "/status")
	if err != nil {
		t.Fatalf("reading /status: %v", err)
	}
	defer resp.Body.Close()
	var rep status.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("decoding /status: %v", err)
	}
	for _, p := range rep.Processes {
		if p.PID == pid {
			c, ok := p.Capabilities[name]
			if !ok {
				t.Fatalf("pid %d: no capability %q in /status: %+v", pid, name, p.Capabilities)
			}
			return c
		}
	}
	t.Fatalf("pid %d not in /status", pid)
	return status.Capability{}
}

// sockhashSockets counts the sockets of process tgid in the injector's
// sockhash (inject_socks, keyed by cookie and tgid), found among the
// kernel's maps by name.
func sockhashSockets(t testing.TB, tgid uint32) int {
	t.Helper()
	found, count := false, 0
	var id ebpf.MapID
	for {
		next, err := ebpf.MapGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			t.Fatalf("listing BPF maps: %v", err)
		}
		id = next
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		info, err := m.Info()
		if err != nil || info.Name != "inject_socks" || info.Type != ebpf.SockHash {
			m.Close()
			continue
		}
		found = true
		var cursor, nextKey []byte
		for {
			nextKey = make([]byte, info.KeySize)
			var err error
			if cursor == nil {
				err = m.NextKey(nil, &nextKey)
			} else {
				err = m.NextKey(cursor, &nextKey)
			}
			if err != nil {
				break
			}
			cursor = nextKey
			if len(nextKey) >= 12 && binary.LittleEndian.Uint32(nextKey[8:12]) == tgid { // struct sock_key.tgid
				count++
			}
		}
		m.Close()
	}
	if !found {
		t.Fatalf("no inject_socks sockhash loaded: the injector is not running")
	}
	return count
}
