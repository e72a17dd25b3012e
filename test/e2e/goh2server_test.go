package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestGoHTTP2ServerLinks: a Go HTTPS chain where every hop is HTTP/2, as
// http.DefaultTransport and an HTTPS net/http server make it by default:
// A (plaintext, calls B over h2) → B (HTTPS server, h2 by ALPN; its handler
// calls C over h2) → C (HTTPS). 40 requests 10 at a time, Go 1.22 and 1.26,
// each request over B's connections multiplexed with others. Every request
// is one trace of five spans with exact parents:
//   - B's SERVER span is A's CLIENT span's child: the context came in a TCP
//     option on the TLS segment that began the stream (no header can go into
//     the ciphertext), read by B's HTTP/2 server probe (processHeaders);
//   - B's CLIENT span is B's SERVER span's child: the handler's goroutine got
//     its stream's span from runHandler;
//   - C's SERVER span is B's CLIENT span's child (the option again).
func TestGoHTTP2ServerLinks(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	type chain struct {
		name    string
		a, b, c *server
	}
	var chains []chain
	for _, v := range []struct{ name, toolchain string }{{"go122", "go1.22.12"}, {"go126", "go1.26.8"}} {
		bin := goBuild(t, filepath.Join(root, "testdata/httpserver"), v.toolchain, filepath.Join(dir, "weft-e2e-h2s-"+v.name))
		a := startServer(t, v.name+"-a", bin, "-ca", cert, "-h2")
		b := startServer(t, v.name+"-b", bin, "-cert", cert, "-key", key, "-h2")
		c := startServer(t, v.name+"-c", bin, "-cert", cert, "-key", key)
		chains = append(chains, chain{v.name, a, b, c})
	}
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", "weft-e2e-h2s-*")
	for _, c := range chains {
		for _, s := range []*server{c.a, c.b, c.c} {
			ag.waitTracked(t, s.PID())
		}
	}
	if tlsUnavailable(t, ag) {
		return
	}
	if f := feature(t, ag, status.TCPOption); !f.On {
		t.Fatalf("the TCP option is off (%s): this test needs it", f.Why)
	}
	// One request at a time, then ten at a time (requests multiplexed on
	// A's and B's connections, writes and reads of several streams merged).
	hc := &http.Client{Timeout: 30 * time.Second}
	role := map[string]string{}
	for _, c := range chains {
		role[fmt.Sprint(c.a.PID())] = c.name + " a"
		role[fmt.Sprint(c.b.PID())] = c.name + " b"
		role[fmt.Sprint(c.c.PID())] = c.name + " c"
	}
	phases := []struct {
		name    string
		n, conc int
	}{{"seq", 20, 1}, {"conc", 40, 10}}
	total := 0
	for _, ph := range phases {
		getAll(t, hc, ph.n*len(chains), ph.conc, func(j int) (string, string) {
			c, i := chains[j/ph.n], j%ph.n
			id := fmt.Sprintf("%s-%s-", ph.name, c.name)
			toC := fmt.Sprintf("https://%s/work?id=%sc%d", c.c.Addr, id, i)
			toB := fmt.Sprintf("https://%s/call?id=%sb%d&to=%s", c.b.Addr, id, i, url.QueryEscape(toC))
			return fmt.Sprintf("%s %s request %d", ph.name, c.name, i),
				fmt.Sprintf("http://%s/call?id=%sa%d&to=%s", c.a.Addr, id, i, url.QueryEscape(toB))
		}, "200")
		total += ph.n * len(chains)
	}
	by := spansByKey(t, col, 5*total, 60*time.Second, roleKey(role))
	for _, ph := range phases {
		for _, c := range chains {
			wrong, optionLinked, optionHops := 0, 0, 0
			for i := range ph.n {
				id := fmt.Sprintf("%s-%s-", ph.name, c.name)
				get := func(who, kind, hop string) (otelcol.Span, bool) {
					s, ok := by[fmt.Sprintf("%s %s %s:%s%s%d", c.name, who, kind, id, hop, i)]
					return s, ok
				}
				aS, ok1 := get("a", "server", "a")
				aC, ok2 := get("a", "client", "b")
				bS, ok3 := get("b", "server", "b")
				bC, ok4 := get("b", "client", "c")
				cS, ok5 := get("c", "server", "c")
				if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
					t.Errorf("%s %s request %d: spans missing (A server %v, A client %v, B server %v, B client %v, C server %v)",
						ph.name, c.name, i, ok1, ok2, ok3, ok4, ok5)
					wrong++
					continue
				}
				if bS.Kind != 2 || fmt.Sprint(bS.Attrs["network.protocol.version"]) != "2" ||
					fmt.Sprint(bS.Attrs["http.response.status_code"]) != "200" || fmt.Sprint(bS.Attrs["url.path"]) != "/call" {
					t.Errorf("%s %s request %d: B's request: kind %d %v", ph.name, c.name, i, bS.Kind, bS.Attrs)
				}
				// In-process links: always exact.
				for _, e := range []struct {
					what          string
					child, parent otelcol.Span
				}{{"A's call under A's request", aC, aS}, {"B's call under B's request", bC, bS}} {
					if e.child.ParentSpanID != e.parent.SpanID || e.child.TraceID != e.parent.TraceID {
						t.Errorf("%s %s request %d: %s: parent %q in %s, want %s in %s", ph.name, c.name, i, e.what,
							e.child.ParentSpanID, e.child.TraceID, e.parent.SpanID, e.parent.TraceID)
						wrong++
					}
				}
				// Across the TLS hops, by the option: the caller's span, or
				// a root when no option could be matched to the stream
				// (several streams in one write or one read); never
				// another request's span.
				for _, e := range []struct {
					what          string
					child, parent otelcol.Span
				}{{"B's request under A's call", bS, aC}, {"C's request under B's call", cS, bC}} {
					optionHops++
					switch {
					case e.child.ParentSpanID == e.parent.SpanID && e.child.TraceID == e.parent.TraceID:
						optionLinked++
					case e.child.ParentSpanID != "":
						t.Errorf("%s %s request %d: %s: parent %q in %s, want %s in %s or none", ph.name, c.name, i, e.what,
							e.child.ParentSpanID, e.child.TraceID, e.parent.SpanID, e.parent.TraceID)
						wrong++
					}
				}
			}
			t.Logf("%s %s: %d of %d TLS hops linked by the option; %d wrong", ph.name, c.name, optionLinked, optionHops, wrong)
			// One request at a time, each stream's HEADERS starts its own
			// write and its own read.
			if ph.conc == 1 && optionLinked < optionHops*9/10 {
				t.Errorf("%s %s: only %d of %d TLS hops linked by the option", ph.name, c.name, optionLinked, optionHops)
			}
		}
	}
	checkH2ServerB3(t, col, cert, role, func(yield func(name string, b, c *server) bool) {
		for _, ch := range chains {
			if !yield(ch.name, ch.b, ch.c) {
				return
			}
		}
	})
	for _, m := range []string{"h2_server_streams", "h2_server_no_reader", "h2_server_b3_parent", "h2_server_header_parent", "h2_server_option_parent", "h2_server_handlers", "h2_server_linked", "h2_calls", "h2_linked"} {
		t.Logf("weft_gohttp_kernel_total{name=%q} %v", m, ag.metric(t, fmt.Sprintf(`weft_gohttp_kernel_total{name=%q}`, m)))
	}
	for _, m := range []string{"h2_option", "h2_option_shared", "opt_matched"} {
		t.Logf("weft_sockio_kernel_total{name=%q} %v", m, ag.metric(t, fmt.Sprintf(`weft_sockio_kernel_total{name=%q}`, m)))
	}
	if got := ag.metric(t, `weft_gohttp_kernel_total{name="h2_server_b3_parent"}`); got != float64(3*len(chains)) {
		t.Errorf("h2_server_b3_parent %v, want %d (three valid B3 requests a chain)", got, 3*len(chains))
	}
	if got := ag.metric(t, `weft_gohttp_kernel_total{name="h2_server_linked"}`); got < float64(total) {
		t.Errorf("h2_server_linked %v, want at least %d", got, total)
	}
	if got := ag.metric(t, `weft_gohttp_kernel_total{name="h2_server_no_reader"}`); got != 0 {
		t.Errorf("h2_server_no_reader %v: streams whose reader was not known", got)
	}
}

// checkH2ServerB3: B3 headers (as Envoy or Linkerd send them) on HTTP/2
// requests straight to B from an untraced client: with no traceparent and
// no option, B's SERVER span continues the B3 trace (a 64-bit trace ID
// padded), its call is its child, C's request the call's (or a root: the
// option is best effort, never wrong). A traceparent wins over B3; a
// malformed B3 is ignored.
func checkH2ServerB3(t *testing.T, col *otelcol.Collector, cert string, role map[string]string,
	chains func(func(name string, b, c *server) bool)) {
	t.Helper()
	hc := h2Client(t, cert, 0)
	const (
		trace64  = "a3ce929d0e0e4736"
		trace128 = "4bf92f3577b34da6" + trace64
		span     = "00f067aa0ba902b7"
		tpTrace  = "0af7651916cd43dd8448eb211c80319c"
	)
	cases := []struct {
		hdr         map[string]string
		trace, from string // want B's span in trace, child of from ("": a root)
	}{
		{map[string]string{"b3": trace128 + "-" + span + "-1"}, trace128, span},
		{map[string]string{"b3": trace64 + "-" + span + "-1"}, "0000000000000000" + trace64, span},
		{map[string]string{"X-B3-TraceId": trace128, "X-B3-SpanId": span, "X-B3-Sampled": "1"}, trace128, span},
		{map[string]string{"b3": "zz" + trace128[2:] + "-" + span + "-1"}, "", ""},
		{map[string]string{"b3": trace128 + "-" + span + "-1", "traceparent": "00-" + tpTrace + "-b7ad6b7169203331-01"}, tpTrace, "b7ad6b7169203331"},
	}
	var calls []func() (string, string, string, string)
	chains(func(name string, b, c *server) bool {
		for i, cs := range cases {
			id := fmt.Sprintf("b3-%s-", name)
			toC := fmt.Sprintf("https://%s/work?id=%sc%d", c.Addr, id, i)
			req, err := http.NewRequest("GET", fmt.Sprintf("https://%s/call?id=%sb%d&to=%s", b.Addr, id, i, url.QueryEscape(toC)), nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range cs.hdr {
				req.Header.Set(k, v)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s B3 case %d: %v", name, i, err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
				t.Fatalf("%s B3 case %d: %s %d, want HTTP/2 200", name, i, resp.Proto, resp.StatusCode)
			}
			calls = append(calls, func() (string, string, string, string) {
				return name, fmt.Sprintf("%s b server:%sb%d", name, id, i), fmt.Sprintf("%s b client:%sc%d", name, id, i),
					fmt.Sprintf("%s c server:%sc%d", name, id, i)
			})
		}
		return true
	})
	keys := roleKey(role)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		by := map[string]otelcol.Span{}
		for _, s := range col.Spans(t) {
			if k := keys(s); k != "" {
				by[k] = s
			}
		}
		missing := 0
		for _, f := range calls {
			_, b, c, cs := f()
			for _, k := range []string{b, c, cs} {
				if _, ok := by[k]; !ok {
					missing++
				}
			}
		}
		if missing > 0 && time.Now().Before(deadline) {
			continue
		}
		for j, f := range calls {
			name, bk, ck, csk := f()
			cs := cases[j%len(cases)]
			bS, bC, cS := by[bk], by[ck], by[csk]
			if bS.SpanID == "" || bC.SpanID == "" || cS.SpanID == "" {
				t.Errorf("%s B3 case %d: spans missing", name, j%len(cases))
				continue
			}
			switch {
			case cs.from == "" && bS.ParentSpanID != "":
				t.Errorf("%s B3 case %d (malformed): B's request has parent %s, want a root", name, j%len(cases), bS.ParentSpanID)
			case cs.from != "" && (bS.ParentSpanID != cs.from || bS.TraceID != cs.trace):
				t.Errorf("%s B3 case %d: B's request has parent %q in %s, want %s in %s", name, j%len(cases),
					bS.ParentSpanID, bS.TraceID, cs.from, cs.trace)
			}
			if bC.ParentSpanID != bS.SpanID || bC.TraceID != bS.TraceID {
				t.Errorf("%s B3 case %d: B's call has parent %q in %s, want %s in %s", name, j%len(cases),
					bC.ParentSpanID, bC.TraceID, bS.SpanID, bS.TraceID)
			}
			if cS.ParentSpanID != "" && (cS.ParentSpanID != bC.SpanID || cS.TraceID != bC.TraceID) {
				t.Errorf("%s B3 case %d: C's request has parent %q in %s, want %s in %s or none", name, j%len(cases),
					cS.ParentSpanID, cS.TraceID, bC.SpanID, bC.TraceID)
			}
		}
		return
	}
}

// TestGoHTTP2ServerPreexisting: an HTTP/2 connection into B opened before
// the agent started (a restart of the agent, say) has no preface left to
// see. The reader's first frame header after tracing began makes it an
// HTTP/2 server connection, so B's handlers still get their streams'
// spans: after one request, each of B's ten calls to C (over a connection
// opened while traced) has B's stream's span as parent, and C's request is
// the call's child (or a root: the option is best effort). B's own SERVER
// spans are there too, with their paths (new in each request, so sent as
// literals), picked up at a frame boundary with the fields indexed before
// tracing unknown (h2wire's mid-stream decoding); B's calls are their
// children.
func TestGoHTTP2ServerPreexisting(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	bin := goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, "weft-e2e-h2pre"))
	b := startServer(t, "b", bin, "-cert", cert, "-key", key, "-h2")
	c := startServer(t, "c", bin, "-cert", cert, "-key", key)
	hc := h2Client(t, cert, 1) // one connection, opened now and kept
	get := func(u string) {
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("%s: %s %d, want HTTP/2 200", u, resp.Proto, resp.StatusCode)
		}
	}
	call := func(id string) {
		toC := fmt.Sprintf("https://%s/work?id=c%s", c.Addr, id)
		get(fmt.Sprintf("https://%s/call?id=b%s&to=%s", b.Addr, id, url.QueryEscape(toC)))
	}
	get(fmt.Sprintf("https://%s/hello", b.Addr)) // opens the connection before any tracing
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-exe", "weft-e2e-h2pre")
	ag.waitTracked(t, b.PID())
	ag.waitTracked(t, c.PID())
	if tlsUnavailable(t, ag) {
		return
	}
	// The reader was inside crypto/tls's Read when the uprobes came: that
	// read's plaintext is not seen, so the first stream after attaching
	// may find no reader (counted as h2_server_no_reader).
	call("-first")
	linked0 := ag.metric(t, `weft_gohttp_kernel_total{name="h2_server_linked"}`)
	const n = 10
	for i := range n {
		call(fmt.Sprint(i))
	}
	role := map[string]string{fmt.Sprint(b.PID()): "b", fmt.Sprint(c.PID()): "c"}
	var want []string // not a count: the first call's spans are there too
	for i := range n {
		want = append(want, fmt.Sprintf("b server:b%d", i), fmt.Sprintf("b client:c%d", i), fmt.Sprintf("c server:c%d", i))
	}
	by := spansWithKeys(t, col, 60*time.Second, roleKey(role), want)
	serverSpans := 0
	for i := range n {
		bS, ok := by[fmt.Sprintf("b server:b%d", i)]
		if !ok {
			t.Errorf("request %d: no SERVER span in B, on the connection opened before the agent", i)
		} else {
			serverSpans++
			if p := bS.Attrs["url.path"]; p != "/call" {
				t.Errorf("request %d: B's SERVER span has url.path %v", i, p)
			}
		}
		bC, ok1 := by[fmt.Sprintf("b client:c%d", i)]
		cS, ok2 := by[fmt.Sprintf("c server:c%d", i)]
		if !ok1 || !ok2 {
			t.Errorf("request %d: spans missing (B client %v, C server %v)", i, ok1, ok2)
			continue
		}
		if bC.ParentSpanID == "" {
			t.Errorf("request %d: B's call is a root: its handler did not get its stream's span", i)
		} else if ok && (bC.ParentSpanID != bS.SpanID || bC.TraceID != bS.TraceID) {
			t.Errorf("request %d: B's call has parent %s in %s, want B's SERVER span %s in %s", i, bC.ParentSpanID, bC.TraceID, bS.SpanID, bS.TraceID)
		}
		if cS.ParentSpanID != "" && (cS.ParentSpanID != bC.SpanID || cS.TraceID != bC.TraceID) {
			t.Errorf("request %d: C's request has parent %q in %s, want %s in %s or none", i, cS.ParentSpanID, cS.TraceID, bC.SpanID, bC.TraceID)
		}
	}
	// B's handlers and C's (B calls C over HTTP/2 too).
	if got := ag.metric(t, `weft_gohttp_kernel_total{name="h2_server_linked"}`) - linked0; got != 2*n {
		t.Errorf("h2_server_linked went up by %v, want %d", got, 2*n)
	}
	if got := ag.metric(t, "weft_http2_conns_mid_stream_total"); got < 1 {
		t.Errorf("weft_http2_conns_mid_stream_total = %v, want B's old connection", got)
	}
}

// h2Client is an untraced HTTP/2 client (h2 by ALPN) trusting cert, with at
// most maxConns connections a host (0: no limit).
func h2Client(t *testing.T, cert string, maxConns int) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, MaxConnsPerHost: maxConns}}
}
