package e2e

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestTCPOptionPropagation: with the header channel off and the TCP option
// on (-propagation tcp), a traced Go client's calls give the server span of
// a Go server and of a Python http.server the client span as parent, with
// no byte of the request changed; 300 KB uploads and downloads on the same
// option-carrying connections arrive byte-identical and in time, also to
// and from a server weft does not trace. Once per capture source: the
// option's context is taken on the read path both share.
func TestTCPOptionPropagation(t *testing.T) {
	needRoot(t)
	for _, capture := range captureSources(t) {
		t.Run(capture, func(t *testing.T) { tcpOptionRun(t, capture) })
	}
}

const bigBody = 300_000

// pattern is what the test server uploads with ?upload=n (testdata/httpserver).
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func tcpOptionRun(t *testing.T, capture string) {
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := func(name string) string {
		return goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, name))
	}
	a := startServer(t, "a", bin("weft-e2e-opt-a"))
	b := startServer(t, "b", bin("weft-e2e-opt-b"))
	py := startServer(t, "python", "/usr/bin/python3", filepath.Join(root, "testdata/pyserver/server.py"))
	untraced := startServer(t, "untraced", bin("weft-e2e-plain"))

	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-propagation", "tcp", "-capture", capture,
		"-exe", "weft-e2e-opt-*", "-pid", fmt.Sprint(py.PID()))
	for _, s := range []*server{a, b, py} {
		ag.waitTracked(t, s.PID())
	}
	if f := feature(t, ag, "tcp_option"); !f.On {
		t.Fatalf("tcp_option feature off: %s", f.Why)
	}
	if f := feature(t, ag, "injection"); f.On {
		t.Fatalf("-propagation tcp: header injection on (%s)", f.Why)
	}

	hc := &http.Client{Timeout: 30 * time.Second}
	get := func(u string) string {
		t.Helper()
		resp, err := hc.Get(u)
		if err != nil {
			t.Errorf("GET %s: %v", u, err)
			return ""
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %v", u, resp.StatusCode, err)
		}
		return string(body)
	}
	call := func(id string, extra string, to ...string) string {
		q := url.Values{"id": {id}}
		for _, u := range to {
			q.Add("to", u)
		}
		return get(fmt.Sprintf("http://%s/call?%s%s", a.Addr, q.Encode(), extra))
	}

	// Plain calls, 4 at a time, to both servers.
	const n = 24
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			to := fmt.Sprintf("http://%s/work?id=b%d", b.Addr, i)
			if i%2 == 1 {
				to = fmt.Sprintf("http://%s/work?id=p%d", py.Addr, i)
			}
			if got := call(fmt.Sprintf("a%d", i), "", to); got != "200" {
				t.Errorf("call %d: %q", i, got)
			}
		}()
	}
	wg.Wait()

	// Large uploads and downloads through A's (option-writing) connections.
	digest := func(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
	echoed := fmt.Sprintf("%d %s", bigBody, digest(pattern(bigBody)))
	wantUp := fmt.Sprintf("200 %d %s", len(echoed), digest([]byte(echoed)))
	wantDown := fmt.Sprintf("200 %d %s", bigBody, digest([]byte(strings.Repeat("x", bigBody))))
	for round := range 5 {
		start := time.Now()
		var ups, downs []string
		for _, s := range []*server{b, py, untraced} {
			ups = append(ups, fmt.Sprintf("http://%s/echo?id=up%d", s.Addr, round))
			downs = append(downs, fmt.Sprintf("http://%s/work?id=down%d&size=%d", s.Addr, round, bigBody))
		}
		got := call(fmt.Sprintf("upload%d", round), fmt.Sprintf("&digest=1&upload=%d", bigBody), ups...)
		if want := strings.Join([]string{wantUp, wantUp, wantUp}, ","); got != want {
			t.Errorf("uploads, round %d (b, python, untraced):\n got %s\nwant %s", round, got, want)
		}
		got = call(fmt.Sprintf("download%d", round), "&digest=1", downs...)
		if want := strings.Join([]string{wantDown, wantDown, wantDown}, ","); got != want {
			t.Errorf("downloads, round %d (b, python, untraced):\n got %s\nwant %s", round, got, want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("round %d of 300 KB transfers took %v", round, d)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every server span of B and the Python server is the child of A's
	// client span for it: same trace, parent = that span.
	want := n + 2*5*2 // calls, and uploads + downloads to b and python
	// Servers and clients counted apart: a client call the transport
	// retried is one more client span, not one server span fewer.
	col.WaitSpans(t, want, 60*time.Second, func(s otelcol.Span) bool {
		pid := fmt.Sprint(s.Resource["process.pid"])
		return s.Kind == 2 && (pid == fmt.Sprint(b.PID()) || pid == fmt.Sprint(py.PID()))
	})
	// A's client spans: one per server span (and those to the untraced
	// server besides), each looked up by its callee and id. Wait until
	// every server span has its own, not for a count: the calls to the
	// untraced server make A's clients more than the servers' spans.
	clients := map[string]otelcol.Span{}
	var servers []otelcol.Span
	keyOf := func(s otelcol.Span) string {
		q, _ := url.ParseQuery(fmt.Sprint(s.Attrs["url.query"]))
		addr := b.Addr
		if fmt.Sprint(s.Resource["process.pid"]) == fmt.Sprint(py.PID()) {
			addr = py.Addr
		}
		return addr + "/" + q.Get("id")
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		clear(clients)
		servers = servers[:0]
		for _, s := range col.Spans(t) {
			pid := fmt.Sprint(s.Resource["process.pid"])
			switch {
			case s.Kind == 3 && pid == fmt.Sprint(a.PID()):
				// url.full names the callee: keep its host with the id
				if u, err := url.Parse(fmt.Sprint(s.Attrs["url.full"])); err == nil {
					clients[u.Host+"/"+u.Query().Get("id")] = s
				}
			case s.Kind == 2 && (pid == fmt.Sprint(b.PID()) || pid == fmt.Sprint(py.PID())):
				servers = append(servers, s)
			}
		}
		missing := 0
		for _, s := range servers {
			if _, ok := clients[keyOf(s)]; !ok {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
	}
	checked := 0
	for _, s := range servers {
		c, ok := clients[keyOf(s)]
		if !ok {
			t.Errorf("server span %s: no client span of A for it (after 60 s)", keyOf(s))
			continue
		}
		checked++
		if s.ParentSpanID != c.SpanID || s.TraceID != c.TraceID {
			t.Errorf("server span %s: trace %s parent %q; A's client span is %s in %s",
				keyOf(s), s.TraceID, s.ParentSpanID, c.SpanID, c.TraceID)
		}
	}
	if checked != want {
		t.Errorf("checked %d server spans, want %d", checked, want)
	}
	written := ag.metric(t, `weft_tcpopt_total{name="written"}`)
	fromOpt := ag.metric(t, `weft_server_parent_total{from="option"}`)
	t.Logf("options written %v, read %v, repeats %v, no room %v, missed %v; server parents from option %v; matched %v unmatched %v",
		written, ag.metric(t, `weft_tcpopt_total{name="read"}`), ag.metric(t, `weft_tcpopt_total{name="repeat"}`),
		ag.metric(t, `weft_tcpopt_total{name="no_room"}`), ag.metric(t, `weft_tcpopt_total{name="missed"}`), fromOpt,
		ag.metric(t, `weft_sockio_kernel_total{name="option_matched"}`), ag.metric(t, `weft_sockio_kernel_total{name="option_unmatched"}`))
	if int(written) < want+5*2 { // the untraced server's get options too
		t.Errorf("%v options written, want at least %d", written, want+5*2)
	}
	if int(fromOpt) != want {
		t.Errorf("%v server spans took their parent from an option, want %d", fromOpt, want)
	}
}

// TestTCPOptionOlderConnections: connections made before the agent (a
// keep-alive pool, a restarted DaemonSet) never pass the ESTABLISHED
// callbacks; the iterator gives them the option callbacks when their
// process is tracked. With -propagation tcp only, A's calls to B on a
// connection A opened before the agent started still give B's server span
// A's client span as parent.
func TestTCPOptionOlderConnections(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := func(name string) string {
		return goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, name))
	}
	a := startServer(t, "a", bin("weft-e2e-old-a"))
	b := startServer(t, "b", bin("weft-e2e-old-b"))
	hc := &http.Client{Timeout: 30 * time.Second}
	call := func(id string) {
		t.Helper()
		to := fmt.Sprintf("http://%s/work?id=%s", b.Addr, id)
		resp, err := hc.Get(fmt.Sprintf("http://%s/call?id=%s&to=%s", a.Addr, id, url.QueryEscape(to)))
		if err != nil {
			t.Fatalf("call %s: %v", id, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "200" {
			t.Fatalf("call %s: %q", id, body)
		}
	}
	call("warm") // A's pool now holds a connection to B, made untraced

	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-propagation", "tcp", "-exe", "weft-e2e-old-*")
	ag.waitTracked(t, a.PID())
	ag.waitTracked(t, b.PID())
	older := feature(t, ag, "tcp_option_older_connections")
	if !older.On {
		// The agent probed it on a connection of its own: a kernel
		// without the iterator's bpf_setsockopt flag (6.1, 5.10) keeps
		// older connections without options; calls on them are then
		// roots at B, never wrongly parented.
		t.Logf("older connections: off on this kernel, as /status says: %s", older.Why)
		if !strings.Contains(older.Why, "iter/tcp") && !strings.Contains(older.Why, "TCP_BPF_SOCK_OPS_CB_FLAGS") {
			t.Fatalf("older connections off for an unexpected reason: %s", older.Why)
		}
	} else if n := ag.metric(t, `weft_tcpopt_total{name="older_connections"}`); n < 2 {
		t.Fatalf("%v older connections given the option callbacks (refused %v); want A's and B's ends of the pooled one",
			n, ag.metric(t, `weft_tcpopt_total{name="older_connections_refused"}`))
	}
	// A connection found mid-stream gives its first exchange no span (the
	// parser waits for a message start it can trust), and under emulation
	// the agent may still be settling: call until one exchange is seen
	// whole at both ends, then count.
	// A try's spans may come after the next try's (a slow guest's export
	// lags): any try whose two spans are both there settles it.
	settled := false
	for i := 0; i < 10 && !settled; i++ {
		call(fmt.Sprintf("settle%d", i))
		deadline := time.Now().Add(5 * time.Second)
		for !settled && time.Now().Before(deadline) {
			cli, srv := map[string]bool{}, map[string]bool{}
			for _, s := range col.Spans(t) {
				pid := fmt.Sprint(s.Resource["process.pid"])
				id := spanID(s)
				cli[id] = cli[id] || (strings.HasPrefix(id, "client:settle") && s.Kind == 3 && pid == fmt.Sprint(a.PID()))
				srv[id] = srv[id] || (strings.HasPrefix(id, "server:settle") && s.Kind == 2 && pid == fmt.Sprint(b.PID()))
			}
			for j := 0; j <= i && !settled; j++ {
				settled = cli[fmt.Sprintf("client:settle%d", j)] && srv[fmt.Sprintf("server:settle%d", j)]
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !settled {
		t.Fatal("no call over the older connection gave spans at both ends after 10 tries")
	}
	const n = 10
	for i := range n {
		call(fmt.Sprintf("old%d", i)) // one at a time: the pooled connection
	}
	spans := col.WaitSpans(t, 2*n, 60*time.Second, func(s otelcol.Span) bool {
		id := spanID(s)
		return strings.Contains(id, ":old") && ((s.Kind == 3 && fmt.Sprint(s.Resource["process.pid"]) == fmt.Sprint(a.PID())) ||
			(s.Kind == 2 && fmt.Sprint(s.Resource["process.pid"]) == fmt.Sprint(b.PID())))
	})
	byID := map[string]otelcol.Span{}
	for _, s := range spans {
		byID[spanID(s)] = s
	}
	for i := range n {
		c, s := byID[fmt.Sprintf("client:old%d", i)], byID[fmt.Sprintf("server:old%d", i)]
		if !older.On {
			if s.ParentSpanID != "" {
				t.Errorf("call %d: B's server span has parent %s with no option to carry it", i, s.ParentSpanID)
			}
			continue
		}
		if s.ParentSpanID != c.SpanID || s.TraceID != c.TraceID || c.SpanID == "" {
			t.Errorf("call %d on the older connection: B's server span trace %s parent %q; A's client span %s in %s",
				i, s.TraceID, s.ParentSpanID, c.SpanID, c.TraceID)
		}
	}
	if conns := ag.metric(t, `weft_tcpopt_total{name="sockets_writing"}`); conns != 0 {
		t.Logf("%v connections made while traced (want 0: the pooled one was reused)", conns)
	}
}
