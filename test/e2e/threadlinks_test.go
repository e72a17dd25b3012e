package e2e

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

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
// its own hook (tcp_sendmsg_locked, sys_enter). Then across a network
// namespace: B runs behind a veth pair, the host end with TSO and GSO off
// (TCP cuts MSS-sized segments itself), B's end with TSO off and GSO on
// (software segmentation repeats the option on every segment cut from an
// skb: B's 300 KB uploads, headers and body in one send, carry it on
// dozens), and 300 KB uploads and downloads cross it byte-identical and in
// time both ways.
func TestPythonInChain(t *testing.T) {
	needRoot(t)
	for _, capture := range captureSources(t) {
		t.Run(capture, func(t *testing.T) { pythonChainRun(t, capture, nil) })
	}
	t.Run("veth", func(t *testing.T) { pythonChainRun(t, "auto", vethNamespace(t)) })
}

// vethNS is a network namespace joined to the host by a veth pair.
type vethNS struct {
	name         string
	hostIP, nsIP string
}

// vethNamespace makes one, in the lab's address block (10.99.0.0/16; a /30
// the multicluster lab's clusters do not use), removed at cleanup.
func vethNamespace(t *testing.T) *vethNS {
	t.Helper()
	v := &vethNS{name: "weft-e2e-opt", hostIP: "10.99.250.1", nsIP: "10.99.250.2"}
	const hostEnd = "wopt0"
	run := func(argv ...string) {
		t.Helper()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
		}
	}
	cleanup := func() {
		exec.Command("ip", "netns", "del", v.name).Run()
		exec.Command("ip", "link", "del", hostEnd).Run()
	}
	cleanup() // what a killed earlier run left
	t.Cleanup(cleanup)
	run("ip", "netns", "add", v.name)
	run("ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", v.name)
	run("ip", "addr", "add", v.hostIP+"/30", "dev", hostEnd)
	run("ip", "link", "set", hostEnd, "up")
	run("ip", "-n", v.name, "link", "set", "lo", "up")
	run("ip", "-n", v.name, "addr", "add", v.nsIP+"/30", "dev", "eth0")
	run("ip", "-n", v.name, "link", "set", "eth0", "up")
	run("ethtool", "-K", hostEnd, "tso", "off", "gso", "off")
	run("ip", "netns", "exec", v.name, "ethtool", "-K", "eth0", "tso", "off", "gso", "on")
	return v
}

func pythonChainRun(t *testing.T, capture string, ns *vethNS) {
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := func(name string) string {
		return goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, name))
	}
	a := startServer(t, "a", bin("weft-e2e-py-a"))
	var b, c *server
	if ns == nil {
		c = startServer(t, "c", bin("weft-e2e-py-c"))
		b = startServer(t, "python", "/usr/bin/python3", filepath.Join(root, "testdata/pyserver/server.py"))
	} else {
		c = startServer(t, "c", bin("weft-e2e-py-c"), "-addr", ns.hostIP+":0")
		c.Addr = fmt.Sprintf("%s:%d", ns.hostIP, c.Port)
		b = startServer(t, "python", "ip", "netns", "exec", ns.name,
			"/usr/bin/python3", filepath.Join(root, "testdata/pyserver/server.py"), ns.nsIP)
		b.Addr = fmt.Sprintf("%s:%d", ns.nsIP, b.Port)
	}

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
	// B's calls carry the option where the capture source sees a send
	// before its bytes leave; the tracepoint source needs
	// tcp_sendmsg_locked (6.16+), which the test looks up itself.
	bOption := capability(t, ag, b.PID(), status.TCPOption)
	if !bOption.On {
		spec, err := btf.LoadKernelSpec()
		if err != nil {
			t.Fatal(err)
		}
		var tp *btf.Typedef
		if spec.TypeByName("btf_trace_tcp_sendmsg_locked", &tp) == nil && feature(t, ag, "capture").Why != "" &&
			strings.HasPrefix(feature(t, ag, "capture").Why, "sock_tracepoints") {
			t.Fatalf("python: tcp_option off on a kernel with tcp_sendmsg_locked: %s", bOption.Why)
		}
		if !strings.Contains(bOption.Why, "tcp_sendmsg_locked") {
			t.Fatalf("python: tcp_option off for an unexpected reason: %s", bOption.Why)
		}
		t.Logf("python: no option on this kernel, as /status says: %s", bOption.Why)
	}

	n := 200
	if k := os.Getenv("WEFT_VM_KERNEL"); k != "" {
		// A kernel-matrix guest (software emulation) cannot serve 200
		// at once within the servers' client timeouts; the kernel paths
		// are the same with 40.
		n = 40
		t.Logf("in the %s guest: %d concurrent requests", k, n)
	}
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	// A answers B's status; B answers C's in its body, which A does not
	// pass on: B's 200 means B's own call gave 200.
	getAll(t, hc, n, 0, func(i int) (string, string) {
		cu := fmt.Sprintf("http://%s/work?id=c%d", c.Addr, i)
		bu := fmt.Sprintf("http://%s/call?id=b%d&to=%s", b.Addr, i, url.QueryEscape(cu))
		return request(i), fmt.Sprintf("http://%s/call?id=a%d&to=%s", a.Addr, i, url.QueryEscape(bu))
	}, "200")

	pids := map[string]string{fmt.Sprint(a.PID()): "a", fmt.Sprint(b.PID()): "b", fmt.Sprint(c.PID()): "c"}
	// Not WaitSpans: when one is missing, the checks below name it.
	spans := waitSpansSoft(t, col, 5*n, 90*time.Second, func(s otelcol.Span) bool {
		return pids[fmt.Sprint(s.Resource["process.pid"])] != ""
	})
	if len(spans) != 5*n {
		t.Errorf("%d spans, want %d", len(spans), 5*n)
		ag.logMetrics(t, "weft_http", "weft_sockio", "weft_conntrack", "weft_spans", "weft_export", "weft_tcpopt", "weft_gohttp")
	}
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
			if !bOption.On && link.child.SpanID == cS.SpanID {
				if cS.ParentSpanID != "" { // no option: a root, never a guess
					t.Errorf("request %d: C's server span has parent %s with no option from B", i, cS.ParentSpanID)
				}
				continue
			}
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

	if ns != nil {
		bigTransfers(t, hc, a, b)
		pythonUploads(t, hc, b, c)
		if r := ag.metric(t, `weft_tcpopt_total{name="repeat"}`); r == 0 && bOption.On {
			t.Errorf("no repeated option read: the host end's software GSO should copy it to every segment")
		}
	}
	if injectionUnavailable(t, ag) {
		t.Logf("no sockhash on this kernel: the Python server's sockets cannot be in one")
	} else if socks := sockhashSockets(t, uint32(b.PID())); socks != 0 {
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
	c, ok := statusCapability(t, a, pid, name)
	if !ok {
		t.Fatalf("pid %d: no capability %q in /status: %+v", pid, name, statusReport(t, a).Processes)
	}
	return c
}

// statusCapability is capability without failing: false when /status has
// no such process or capability (yet).
func statusCapability(t testing.TB, a *agent, pid int, name string) (status.Capability, bool) {
	t.Helper()
	for _, p := range statusReport(t, a).Processes {
		if p.PID == pid {
			c, ok := p.Capabilities[name]
			return c, ok
		}
	}
	return status.Capability{}, false
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

// TestEventLoopNotLinkedByThread: B is an asyncio server, one thread serving
// every request. Under 100 overlapping requests the kernel sees it read a
// request while another is unanswered: B's status says thread_links off
// (event loop), and no B call is ever parented to a request it was not made
// for; each still carries its own IDs to C in the TCP option.
func TestEventLoopNotLinkedByThread(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := func(name string) string {
		return goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, name))
	}
	a := startServer(t, "a", bin("weft-e2e-loop-a"))
	c := startServer(t, "c", bin("weft-e2e-loop-c"))
	b := startServer(t, "asyncio", "/usr/bin/python3", filepath.Join(root, "testdata/pyserver/asyncserver.py"))
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-exe", "weft-e2e-loop-*", "-pid", fmt.Sprint(b.PID()))
	for _, s := range []*server{a, b, c} {
		ag.waitTracked(t, s.PID())
	}

	const n = 100
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	getAll(t, hc, n, 0, func(i int) (string, string) {
		cu := fmt.Sprintf("http://%s/work?id=c%d", c.Addr, i)
		bu := fmt.Sprintf("http://%s/call?id=b%d&sleep=20&to=%s", b.Addr, i, url.QueryEscape(cu))
		return request(i), fmt.Sprintf("http://%s/call?id=a%d&to=%s", a.Addr, i, url.QueryEscape(bu))
	}, "200")

	// Where B's calls carry no option (see TestPythonInChain), C's spans
	// are roots.
	bOption := capability(t, ag, b.PID(), status.TCPOption).On
	bpid, cpid := fmt.Sprint(b.PID()), fmt.Sprint(c.PID())
	spans := col.WaitSpans(t, 3*n, 60*time.Second, func(s otelcol.Span) bool {
		pid := fmt.Sprint(s.Resource["process.pid"])
		return pid == bpid || (pid == cpid && s.Kind == 2)
	})
	byName := map[string]otelcol.Span{}
	for _, s := range spans {
		who := "b "
		if fmt.Sprint(s.Resource["process.pid"]) == cpid {
			who = "c "
		}
		byName[who+spanID(s)] = s
	}
	linked := 0
	for i := range n {
		bS, ok1 := byName[fmt.Sprintf("b server:b%d", i)]
		bC, ok2 := byName[fmt.Sprintf("b client:c%d", i)]
		cS, ok3 := byName[fmt.Sprintf("c server:c%d", i)]
		if !ok1 || !ok2 || !ok3 {
			t.Errorf("request %d: spans missing (b server %v, b client %v, c server %v)", i, ok1, ok2, ok3)
			continue
		}
		switch bC.ParentSpanID {
		case "":
		case bS.SpanID:
			linked++
		default:
			t.Errorf("request %d: B's call has parent %s, not B's request %s: a guess", i, bC.ParentSpanID, bS.SpanID)
		}
		if !bOption {
			if cS.ParentSpanID != "" {
				t.Errorf("request %d: C's server span has parent %s with no option from B", i, cS.ParentSpanID)
			}
		} else if cS.TraceID != bC.TraceID || cS.ParentSpanID != bC.SpanID {
			t.Errorf("request %d: C's server span trace %s parent %q; B's call is %s in %s",
				i, cS.TraceID, cS.ParentSpanID, bC.SpanID, bC.TraceID)
		}
	}
	mux := ag.metric(t, `weft_sockio_kernel_total{name="thread_mux"}`)
	t.Logf("B's calls linked before the event loop was seen: %d of %d; thread_mux %v", linked, n, mux)
	if mux < 1 {
		t.Errorf("thread_mux %v: the event loop was not seen", mux)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp := capability(t, ag, b.PID(), status.ThreadLinks)
		if !cp.On && strings.Contains(cp.Why, "event loop") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("asyncio server: thread_links %v (%s); want off, event loop", cp.On, cp.Why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// bigTransfers has A upload 300 KB to B's /echo and download 300 KB from
// B's /work through A's option-carrying connections, 5 rounds: the bytes
// arrive identical (digests) and no round stalls.
func bigTransfers(t *testing.T, hc *http.Client, a, b *server) {
	t.Helper()
	digest := func(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
	echoed := fmt.Sprintf("%d %s", bigBody, digest(pattern(bigBody)))
	wantUp := fmt.Sprintf("200 %d %s", len(echoed), digest([]byte(echoed)))
	wantDown := fmt.Sprintf("200 %d %s", bigBody, digest([]byte(strings.Repeat("x", bigBody))))
	call := func(id, extra, to string) string {
		resp, err := hc.Get(fmt.Sprintf("http://%s/call?id=%s&to=%s%s", a.Addr, id, url.QueryEscape(to), extra))
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	for round := range 5 {
		start := time.Now()
		if got := call(fmt.Sprintf("upload%d", round), fmt.Sprintf("&digest=1&upload=%d", bigBody),
			fmt.Sprintf("http://%s/echo?id=up%d", b.Addr, round)); got != wantUp {
			t.Errorf("upload, round %d: got %s, want %s", round, got, wantUp)
		}
		if got := call(fmt.Sprintf("download%d", round), "&digest=1",
			fmt.Sprintf("http://%s/work?id=down%d&size=%d", b.Addr, round, bigBody)); got != wantDown {
			t.Errorf("download, round %d: got %s, want %s", round, got, wantDown)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("round %d of 300 KB transfers took %v", round, d)
		}
	}
}

// pythonUploads has B (Python) upload 300 KB to C's /echo, 5 times: B's
// answer is the digest of what C echoed.
func pythonUploads(t *testing.T, hc *http.Client, b, c *server) {
	t.Helper()
	digest := func(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
	echoed := fmt.Sprintf("%d %s", bigBody, digest(pattern(bigBody)))
	want := fmt.Sprintf("200 %d %s", len(echoed), digest([]byte(echoed)))
	for round := range 5 {
		start := time.Now()
		to := fmt.Sprintf("http://%s/echo?id=pyup%d", c.Addr, round)
		resp, err := hc.Get(fmt.Sprintf("http://%s/call?id=pycall%d&digest=1&onesend=1&upload=%d&to=%s", b.Addr, round, bigBody, url.QueryEscape(to)))
		if err != nil {
			t.Fatalf("python upload, round %d: %v", round, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Errorf("python upload, round %d: got %s, want %s", round, body, want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("python upload, round %d took %v", round, d)
		}
	}
}

// captureSources are the capture sources this kernel has, looked up by the
// test itself: the syscall tracepoints everywhere, sock_*_length where the
// kernel's BTF has them (6.3+).
func captureSources(t *testing.T) []string {
	t.Helper()
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatalf("reading kernel BTF: %v", err)
	}
	var tp *btf.Typedef
	if spec.TypeByName("btf_trace_sock_recv_length", &tp) != nil {
		t.Logf("this kernel has no sock_recv_length tracepoint: the syscalls source only")
		return []string{"syscalls"}
	}
	return []string{"sock_tracepoints", "syscalls"}
}
