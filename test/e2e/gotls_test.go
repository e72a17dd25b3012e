package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// goTLSBuilds are the Go HTTPS servers traced: DWARF and stripped, oldest
// and newest toolchain the issue names.
var goTLSBuilds = []struct {
	name, toolchain string
	flags           []string
}{
	{"go122", "go1.22.12", nil},
	{"go122-stripped", "go1.22.12", []string{"-ldflags=-s -w"}},
	{"go126", "go1.26.8", nil},
	{"go126-stripped", "go1.26.8", []string{"-ldflags=-s -w"}},
}

// TestGoTLSSpansAndPropagation: for each build, Go HTTPS servers A and B
// (net/http, crypto/tls, HTTP/1.1) where A's handler calls B over HTTPS
// through its keep-alive client. The plaintext comes from the crypto/tls
// uprobes (Write at its entry, Read where it copies its plaintext): A's and
// B's SERVER spans and A's CLIENT span are exact (method, path, status),
// A's call is the child of A's request (goroutine link), and B's request
// the child of A's call through the TCP option on the encrypted hop (no
// header can go into ciphertext).
func TestGoTLSSpansAndPropagation(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	type pair struct{ name, a, b *server }
	var pairs []pair
	for _, v := range goTLSBuilds {
		bin := goBuild(t, filepath.Join(root, "testdata/httpserver"), v.toolchain, filepath.Join(dir, "weft-e2e-gotls-"+v.name), v.flags...)
		a := startServer(t, v.name+"-a", bin, "-cert", cert, "-key", key)
		b := startServer(t, v.name+"-b", bin, "-cert", cert, "-key", key)
		pairs = append(pairs, pair{&server{Name: v.name}, a, b})
	}
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-exe", "weft-e2e-gotls-*")
	for _, p := range pairs {
		ag.waitTracked(t, p.a.PID())
		ag.waitTracked(t, p.b.PID())
	}
	if tlsUnavailable(t, ag) {
		return
	}
	for _, p := range pairs {
		for _, s := range []*server{p.a, p.b} {
			c := capability(t, ag, s.PID(), status.TLS)
			if !c.On || !strings.Contains(c.Why, "crypto/tls") {
				t.Fatalf("%s pid %d: tls %v: %s", s.Name, s.PID(), c.On, c.Why)
			}
			// Both toolchains inline bytes.Reader's Read into (*Conn).Read:
			// it is probed at its copy, one hit per read with data.
			if !strings.Contains(c.Why, "where it copies its plaintext") {
				t.Errorf("%s pid %d: Read not probed at its copy: %s", s.Name, s.PID(), c.Why)
			}
		}
	}

	const n = 40
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 8}}
	// n requests into each pair's A, 8 at a time across all pairs.
	getAll(t, hc, n*len(pairs), 8, func(j int) (string, string) {
		p, i := pairs[j/n], j%n
		to := fmt.Sprintf("https://%s/work?id=%s-b%d", p.b.Addr, p.name.Name, i)
		return fmt.Sprintf("%s request %d", p.name.Name, i),
			fmt.Sprintf("https://%s/call?id=%s-a%d&to=%s", p.a.Addr, p.name.Name, i, url.QueryEscape(to))
	}, "200")

	role := map[string]string{}
	for _, p := range pairs {
		role[fmt.Sprint(p.a.PID())] = p.name.Name + " a"
		role[fmt.Sprint(p.b.PID())] = p.name.Name + " b"
	}
	// Every span is then checked by name: the report says which are missing.
	by := spansByKey(t, col, 3*n*len(pairs), 60*time.Second, roleKey(role))
	for _, p := range pairs {
		bad := 0
		for i := range n {
			v := p.name.Name
			aS, ok1 := by[fmt.Sprintf("%s a server:%s-a%d", v, v, i)]
			aC, ok2 := by[fmt.Sprintf("%s a client:%s-b%d", v, v, i)]
			bS, ok3 := by[fmt.Sprintf("%s b server:%s-b%d", v, v, i)]
			if !ok1 || !ok2 || !ok3 {
				t.Errorf("%s request %d: spans missing (A server %v, A client %v, B server %v)", v, i, ok1, ok2, ok3)
				bad++
				continue
			}
			if aS.Kind != 2 || aC.Kind != 3 || bS.Kind != 2 {
				t.Errorf("%s request %d: kinds %d %d %d", v, i, aS.Kind, aC.Kind, bS.Kind)
			}
			if aS.Name != "GET" || fmt.Sprint(aS.Attrs["http.response.status_code"]) != "200" ||
				fmt.Sprint(aS.Attrs["url.path"]) != "/call" || fmt.Sprint(aS.Attrs["url.scheme"]) != "https" ||
				fmt.Sprint(bS.Attrs["url.path"]) != "/work" || fmt.Sprint(aC.Attrs["http.request.method"]) != "GET" ||
				fmt.Sprint(aC.Attrs["http.response.status_code"]) != "200" ||
				fmt.Sprint(aC.Attrs["url.full"]) != fmt.Sprintf("https://%s/work?id=%s-b%d", p.b.Addr, v, i) {
				t.Errorf("%s request %d: A server %q %v; A client %v; B server %v", v, i, aS.Name, aS.Attrs, aC.Attrs, bS.Attrs)
			}
			if aC.ParentSpanID != aS.SpanID || aC.TraceID != aS.TraceID {
				t.Errorf("%s request %d: A's call has parent %q in %s; A's request is %s in %s", v, i, aC.ParentSpanID, aC.TraceID, aS.SpanID, aS.TraceID)
				bad++
			}
			if bS.ParentSpanID != aC.SpanID || bS.TraceID != aC.TraceID {
				t.Errorf("%s request %d: B's request has parent %q in %s; A's call is %s in %s", v, i, bS.ParentSpanID, bS.TraceID, aC.SpanID, aC.TraceID)
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d requests' traces broken", p.name.Name, bad, n)
		}
	}
	t.Logf("tls connections %v, plaintext lost for want of a socket %v (not a TCPConn %v); options written %v read %v; server parents from option %v; uprobe hits: see make bench",
		ag.metric(t, `weft_sockio_kernel_total{name="tls_conns"}`), ag.metric(t, `weft_sockio_kernel_total{name="tls_no_sock"}`),
		ag.metric(t, `weft_sockio_kernel_total{name="gotls_not_tcpconn"}`),
		ag.metric(t, `weft_tcpopt_total{name="written"}`), ag.metric(t, `weft_tcpopt_total{name="read"}`),
		ag.metric(t, `weft_server_parent_total{from="option"}`))
}

// TestTLSMixedChain: plaintext Go A -> HTTPS Go B -> HTTPS Python C (OpenSSL),
// each handler calling the next hop, under 200 concurrent requests. Each
// request is one trace of five spans with exact parents: A's call is the
// child of A's request (goroutine), B's request of A's call (TCP option
// across TLS), B's call of B's request (goroutine, plaintext from Go's
// crypto/tls), C's request of B's call (option across TLS, plaintext from
// libssl).
func TestTLSMixedChain(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	bin := goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, "weft-e2e-mix"))
	a := startServer(t, "a", bin, "-ca", cert)
	b := startServer(t, "b", bin, "-cert", cert, "-key", key)
	c := startServer(t, "c", "/usr/bin/python3", filepath.Join(root, "testdata/pyserver/server.py"), "127.0.0.1", cert, key)
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-exe", "weft-e2e-mix", "-pid", fmt.Sprint(c.PID()))
	for _, s := range []*server{a, b, c} {
		ag.waitTracked(t, s.PID())
	}
	if tlsUnavailable(t, ag) {
		return
	}
	for _, s := range []*server{b, c} {
		if cp := capability(t, ag, s.PID(), status.TLS); !cp.On {
			t.Fatalf("%s: tls off: %s", s.Name, cp.Why)
		}
	}

	const n = 200
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	getAll(t, hc, n, 0, func(i int) (string, string) {
		toC := fmt.Sprintf("https://%s/work?id=c%d", c.Addr, i)
		toB := fmt.Sprintf("https://%s/call?id=b%d&to=%s", b.Addr, i, url.QueryEscape(toC))
		return request(i), fmt.Sprintf("http://%s/call?id=a%d&to=%s", a.Addr, i, url.QueryEscape(toB))
	}, "200")

	role := map[string]string{fmt.Sprint(a.PID()): "a", fmt.Sprint(b.PID()): "b", fmt.Sprint(c.PID()): "c"}
	by := spansByKey(t, col, 5*n, 60*time.Second, roleKey(role))
	links := []struct {
		what          string
		child, parent string // formats of span keys, %d the request
	}{
		{"A's call child of A's request", "a client:b%d", "a server:a%d"},
		{"B's request child of A's call (option over TLS)", "b server:b%d", "a client:b%d"},
		{"B's call child of B's request", "b client:c%d", "b server:b%d"},
		{"C's request child of B's call (option over TLS)", "c server:c%d", "b client:c%d"},
	}
	// A wrong parent (another request's span) always fails. A span
	// missing, a root where a link was due, or a parent no exported span
	// has (the next hop of a call whose span lost the kernel's IDs) is a
	// loss: CI's loaded 2-core runs lost 2 of 200 twice (not yet
	// explained); up to 1% is logged, more fails.
	exported := map[string]bool{}
	for _, s := range by {
		exported[s.SpanID] = true
	}
	whole, lost := 0, 0
	for i := range n {
		ok := true
		for _, l := range links {
			ch, ok1 := by[fmt.Sprintf(l.child, i)]
			pa, ok2 := by[fmt.Sprintf(l.parent, i)]
			if ok1 && ok2 && ch.ParentSpanID == pa.SpanID && ch.TraceID == pa.TraceID {
				continue
			}
			wrong := ok1 && ok2 && ch.ParentSpanID != "" && exported[ch.ParentSpanID]
			switch {
			case wrong:
				t.Errorf("request %d: %s: wrong parent %q in %s, want %q in %s", i, l.what, ch.ParentSpanID, ch.TraceID, pa.SpanID, pa.TraceID)
			case ok:
				t.Logf("request %d: %s: lost (child found %v, parent found %v, parent %q want %q)",
					i, l.what, ok1, ok2, ch.ParentSpanID, pa.SpanID)
			}
			ok = false
		}
		if ok {
			whole++
		} else {
			lost++
		}
	}
	if lost > n/100 {
		t.Errorf("%d of %d requests lost a span or a link (more than 1%%)", lost, n)
	}
	t.Logf("%d of %d requests gave one whole trace of 5 spans; options written %v read %v; server parents from option %v",
		whole, n, ag.metric(t, `weft_tcpopt_total{name="written"}`), ag.metric(t, `weft_tcpopt_total{name="read"}`),
		ag.metric(t, `weft_server_parent_total{from="option"}`))
}

// TestGRPCOverTLS: grpc-go servers with TLS credentials, A relaying each
// unary Check to B, and a server-streaming Watch. The HTTP/2 frames come
// from the crypto/tls plaintext: A's and B's SERVER spans and A's CLIENT
// span carry the rpc attributes, and A's call is the child of A's request
// (the gRPC probes' goroutine link, as for h2c). Across the encrypted hop
// no header can be inserted into ciphertext: the TCP option on the first
// segment of the write that opens a stream carries A's call, and B's span
// is its child (issue 19 item 3 for HTTP/2).
func TestGRPCOverTLS(t *testing.T) {
	needRoot(t)
	// grpc v1.66 (Go 1.22) and the newest (Go 1.26), as the issue asks.
	for _, v := range []grpcVariant{grpcVariants[1], grpcVariants[len(grpcVariants)-1]} {
		t.Run(v.tag(), func(t *testing.T) { grpcOverTLS(t, v) })
	}
}

func grpcOverTLS(t *testing.T, v grpcVariant) {
	col := otelcol.Start(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	bin := grpcBinary(t, v, dir, "weft-e2e-grpctls")
	a := startServer(t, "a", bin, "-cert", cert, "-key", key)
	b := startServer(t, "b", bin, "-cert", cert, "-key", key)
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-pid", fmt.Sprint(a.PID()), "-pid", fmt.Sprint(b.PID()))
	ag.waitTracked(t, a.PID())
	ag.waitTracked(t, b.PID())
	if tlsUnavailable(t, ag) {
		return
	}
	const n = 10
	var lines []string
	for range n {
		lines = append(lines, "hop grpc://"+b.Addr)
	}
	lines = append(lines, "-watch")
	cmd := exec.Command(bin, "-call", a.Addr, "-cert", cert, "-stdin")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.Output()
	if got := strings.Fields(string(out)); err != nil || len(got) != n+1 || strings.Count(string(out), "OK") != n+1 {
		t.Fatalf("calls over TLS: %q %v", out, err)
	}

	pid := func(s otelcol.Span) string { return fmt.Sprint(s.Resource["process.pid"]) }
	spans := col.WaitSpans(t, 3*n+1, 60*time.Second, func(s otelcol.Span) bool {
		return pid(s) == fmt.Sprint(a.PID()) || pid(s) == fmt.Sprint(b.PID())
	})
	var aSrv, aCli, bSrv []otelcol.Span
	watch := 0
	for _, s := range inStartOrder(spans) {
		switch {
		case s.Attrs["rpc.method"] == "Watch" && s.Kind == 2 && pid(s) == fmt.Sprint(a.PID()):
			watch++
		case s.Attrs["rpc.method"] != "Check":
			t.Errorf("span %q kind %d: rpc.method %v", s.Name, s.Kind, s.Attrs["rpc.method"])
		case s.Kind == 2 && pid(s) == fmt.Sprint(a.PID()):
			aSrv = append(aSrv, s)
		case s.Kind == 3 && pid(s) == fmt.Sprint(a.PID()):
			aCli = append(aCli, s)
		case s.Kind == 2 && pid(s) == fmt.Sprint(b.PID()):
			bSrv = append(bSrv, s)
		}
	}
	if len(aSrv) != n || len(aCli) != n || len(bSrv) != n || watch != 1 {
		t.Fatalf("A server %d, A client %d, B server %d Check spans, %d Watch: want %d each and 1", len(aSrv), len(aCli), len(bSrv), watch, n)
	}
	roots := 0
	for i := range n {
		if aCli[i].ParentSpanID != aSrv[i].SpanID || aCli[i].TraceID != aSrv[i].TraceID {
			t.Errorf("call %d: A's call has parent %q in %s; A's request is %s in %s", i, aCli[i].ParentSpanID, aCli[i].TraceID, aSrv[i].SpanID, aSrv[i].TraceID)
		}
		if fmt.Sprint(aSrv[i].Attrs["rpc.grpc.status_code"]) != "0" || fmt.Sprint(bSrv[i].Attrs["rpc.service"]) != "grpc.health.v1.Health" {
			t.Errorf("call %d: attributes A %v B %v", i, aSrv[i].Attrs, bSrv[i].Attrs)
		}
		// No header goes into ciphertext: the TCP option on the first
		// segment of the write that opens the stream carries A's call.
		// B takes it only from a read that begins at that segment: the
		// first stream of a connection (read with the preface) or one
		// whose write B read together with an earlier one (a PING ack)
		// is a root then, never a wrong child.
		switch {
		case bSrv[i].ParentSpanID == "":
			roots++
		case bSrv[i].ParentSpanID != aCli[i].SpanID || bSrv[i].TraceID != aCli[i].TraceID:
			t.Errorf("call %d: B's request has parent %q in %s, not A's call %s in %s", i, bSrv[i].ParentSpanID, bSrv[i].TraceID, aCli[i].SpanID, aCli[i].TraceID)
		}
	}
	if roots > n*3/10 {
		t.Errorf("%d of %d calls over TLS reached B without A's context", roots, n)
	}
	t.Logf("h2 options filed %v, written %v, not at a segment's start %v, missed %v, read %v; server streams parented by an option %v",
		ag.metric(t, `weft_sockio_kernel_total{name="h2_option"}`), ag.metric(t, `weft_tcpopt_total{name="written"}`),
		ag.metric(t, `weft_tcpopt_total{name="not_at_start"}`), ag.metric(t, `weft_tcpopt_total{name="missed"}`),
		ag.metric(t, `weft_tcpopt_total{name="read"}`), ag.metric(t, `weft_gogrpc_kernel_total{name="option_parent"}`))
}

// TestGRPCOverTLSConcurrent: 120 requests, 120 at once, through A (HTTP)
// → B (gRPC over TLS, every call on A's one connection to B) → C (HTTP).
// Concurrent streams share TLS records and segments: an option then fits
// no stream's write exactly and is not written, and B's span is a root;
// never the child of another request's call. Each request is followed
// end to end by its id at A and its unique pseudo-hop at C.
func TestGRPCOverTLSConcurrent(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	bin := goBuild(t, filepath.Join(repoRoot(t), "testdata/grpcserver"), "", filepath.Join(dir, "weft-e2e-grpctls"))
	a := startServer(t, "a", bin, "-http", "-cert", cert)
	b := startServer(t, "b", bin, "-cert", cert, "-key", key)
	c := startServer(t, "c", bin, "-http")
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-pid", fmt.Sprint(a.PID()), "-pid", fmt.Sprint(b.PID()), "-pid", fmt.Sprint(c.PID()))
	for _, s := range []*server{a, b, c} {
		ag.waitTracked(t, s.PID())
	}
	if tlsUnavailable(t, ag) {
		return
	}
	const n = 120
	fanOut(t, n, func(i int) *http.Request {
		next := url.QueryEscape(fmt.Sprintf("grpc://%s http://%s sleep=%dns", b.Addr, c.Addr, i+1))
		r, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/hop?next=%s&id=r%d", a.Addr, next, i), nil)
		return r
	}, "ok")

	pid := func(s otelcol.Span) string { return fmt.Sprint(s.Resource["process.pid"]) }
	role := map[string]string{fmt.Sprint(a.PID()): "A", fmt.Sprint(b.PID()): "B", fmt.Sprint(c.PID()): "C"}
	spans := waitSpansSoft(t, col, 5*n, 60*time.Second, func(s otelcol.Span) bool { return role[pid(s)] != "" })
	if len(spans) != 5*n {
		// Say whose spans are missing, and what the agent counted.
		count := map[string]int{}
		for _, s := range spans {
			count[fmt.Sprintf("%s kind %d", role[pid(s)], s.Kind)]++
		}
		t.Errorf("%d spans, want %d (%d per side and kind): %v", len(spans), 5*n, n, count)
		ag.logMetrics(t, "weft_http2", "weft_sockio", "weft_conntrack", "weft_spans", "weft_export", "weft_gotls", "weft_gogrpc", "weft_http_")
	}
	byID := map[string]otelcol.Span{}
	children := map[string][]otelcol.Span{}
	aSrv := map[int]otelcol.Span{}
	cSrv := map[int]otelcol.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
		children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
		q, _ := s.Attrs["url.query"].(string)
		v, _ := url.ParseQuery(q)
		switch {
		case s.Kind == 2 && pid(s) == fmt.Sprint(a.PID()):
			var i int
			if _, err := fmt.Sscanf(v.Get("id"), "r%d", &i); err == nil {
				aSrv[i] = s
			}
		case s.Kind == 2 && pid(s) == fmt.Sprint(c.PID()):
			var i int
			if _, err := fmt.Sscanf(v.Get("next"), "sleep=%dns", &i); err == nil {
				cSrv[i-1] = s
			}
		}
	}
	linked, roots, wrong := 0, 0, 0
	for i := range n {
		sa, ok1 := aSrv[i]
		sc, ok2 := cSrv[i]
		if !ok1 || !ok2 {
			t.Errorf("request %d: A's server span %v, C's %v", i, ok1, ok2)
			continue
		}
		var aCall otelcol.Span // A's gRPC call: its server span's CLIENT child
		for _, ch := range children[sa.SpanID] {
			if ch.Kind == 3 {
				aCall = ch
			}
		}
		bCall, ok3 := byID[sc.ParentSpanID] // B's HTTP call: C's parent
		bSrv, ok4 := byID[bCall.ParentSpanID]
		if aCall.SpanID == "" || !ok3 || !ok4 || bSrv.Kind != 2 {
			t.Errorf("request %d: chain incomplete (A's call %q, B's call %v, B's server span %v)", i, aCall.SpanID, ok3, ok4)
			continue
		}
		switch bSrv.ParentSpanID {
		case "":
			roots++
		case aCall.SpanID:
			linked++
		default:
			wrong++
			t.Errorf("request %d: B's span is the child of %s, not of A's call %s", i, bSrv.ParentSpanID, aCall.SpanID)
		}
	}
	t.Logf("%d requests: B's span the child of A's call %d, a root %d, wrong %d; options filed %v (streams sharing a write, without one: %v), written %v, not at a segment's start %v",
		n, linked, roots, wrong, ag.metric(t, `weft_sockio_kernel_total{name="h2_option"}`), ag.metric(t, `weft_sockio_kernel_total{name="h2_option_shared"}`), ag.metric(t, `weft_tcpopt_total{name="written"}`),
		ag.metric(t, `weft_tcpopt_total{name="not_at_start"}`))
	if wrong > 0 {
		t.Fatalf("over TLS under concurrency: %d linked, %d wrong", linked, wrong)
	}
}
