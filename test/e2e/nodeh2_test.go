package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestNodeHTTP2Context: HTTP/2 from a program not in Go. Two Node.js
// servers (http2 module: nghttp2 frames, over TLS on memory BIOs, or h2c)
// call each other with Node's own HTTP/2 client on kept sessions. No Go
// probe files their streams' IDs and no header can be inserted (HPACK
// state, ciphertext): the kernel makes the IDs of the first stream each
// write opens and puts them in a TCP option on the write's first segment;
// the callee gives it to the first stream opened by a read that begins at
// that segment. One at a time, every callee's SERVER span is the child of
// its caller's CLIENT span. Ten at a time, Node may open several streams
// in one write: those after the first carry no context (counted) and
// their callees are roots, but a callee's parent is never another call.
func TestNodeHTTP2Context(t *testing.T) {
	needRoot(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("no node (make deps installs nodejs): %v", err)
	}
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"tls", true}, {"h2c", false}} {
		t.Run(tc.name, func(t *testing.T) { nodeHTTP2(t, node, tc.tls) })
	}
}

func nodeHTTP2(t *testing.T, node string, useTLS bool) {
	col := otelcol.Start(t)
	root := repoRoot(t)
	script := filepath.Join(root, "testdata/nodeserver/h2server.js")
	args := []string{node, script}
	scheme := "http"
	hc := &http.Client{Timeout: 30 * time.Second}
	if useTLS {
		cert, key := selfSigned(t, t.TempDir())
		args = append(args, cert, key)
		scheme = "https"
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	} else {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		hc.Transport = tr
	}
	a := startServer(t, "node-a", args...)
	b := startServer(t, "node-b", args...)
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}
	ag := startAgent(t, env, "-pid", fmt.Sprint(a.PID()), "-pid", fmt.Sprint(b.PID()))
	ag.waitTracked(t, a.PID())
	ag.waitTracked(t, b.PID())
	if useTLS && tlsUnavailable(t, ag) {
		return
	}
	if f := feature(t, ag, status.TCPOption); !f.On {
		t.Fatalf("the TCP option is off (%s): this test needs it", f.Why)
	}
	// In plaintext the IDs are made where the capture source sees a send
	// before its bytes leave (tcp_sendmsg_locked); A's status says so.
	// The TLS library's write is always before.
	aOption := capability(t, ag, a.PID(), status.TCPOption)
	propagates := useTLS || aOption.On && !strings.Contains(aOption.Why, "HTTP/2 calls only over TLS")
	if !propagates {
		t.Logf("h2c: A's calls carry no option on this kernel, as /status says: %s", aOption.Why)
	}

	const seq, conc = 30, 60
	get := func(i int) (string, string) {
		to := fmt.Sprintf("%s://%s/work?id=b%d", scheme, b.Addr, i)
		return request(i), fmt.Sprintf("%s://%s/call?id=a%d&to=%s", scheme, a.Addr, i, url.QueryEscape(to))
	}
	// A's session to B opens with two calls, not asserted: over TLS the
	// first one's stream may come in the server's read that ends the
	// handshake, and the second's in one read with A's SETTINGS ACK (its
	// own record and segment, sent once B's SETTINGS arrive); each read
	// begins before the option's segment (counted as
	// h2_option_unmatched), and the stream goes without context. (Whole
	// records before the segment are passed over, as the stops below
	// check, A's SETTINGS ACK's too; but the handshake's Finished gives
	// no plaintext of its own: the option is then dropped, never given
	// to another stream.)
	getAll(t, hc, 2, 1, func(i int) (string, string) {
		to := fmt.Sprintf("%s://%s/work?id=bwarm%d", scheme, b.Addr, i)
		return "warm-up", fmt.Sprintf("%s://%s/call?id=awarm%d&to=%s", scheme, a.Addr, i, url.QueryEscape(to))
	}, "200")
	getAll(t, hc, seq, 1, get, "200")
	getAll(t, hc, conc, 10, func(i int) (string, string) { return get(seq + i) }, "200")
	// Over TLS, B stopped while A sends a PING (a write, record and
	// segment of its own) and then a call: B's first read once it goes on
	// holds both, beginning a record before the option's segment. The
	// option is kept past that record for the plaintext read after its.
	stops := 0
	if useTLS {
		stops = 3
	}
	k := func(name string) float64 { return ag.metric(t, `weft_sockio_kernel_total{name="`+name+`"}`) }
	afterBefore := k("tls_option_after_records")
	for j := range stops {
		i := seq + conc + j
		if err := syscall.Kill(b.PID(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, u := get(i)
			resp, err := hc.Get(u + "&ping=1")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != "200" {
					err = fmt.Errorf("answered %q", body)
				}
			}
			done <- err
		}()
		time.Sleep(400 * time.Millisecond) // A's PING, then 50 ms later its call, wait in B's socket
		if err := syscall.Kill(b.PID(), syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Errorf("%s: %v", request(i), err)
		}
	}
	afterStops := k("tls_option_after_records") - afterBefore

	chains := callChains(t, col, map[int]string{a.PID(): "a", b.PID(): "b"}, seq+conc+stops, func(int) (string, string) { return "a", "b" })
	bad, roots := seq+conc+stops-len(chains), 0
	for i, c := range chains {
		if c.cli.Kind != 3 || fmt.Sprint(c.cli.Attrs["network.protocol.version"]) != "2" || fmt.Sprint(c.cli.Attrs["http.response.status_code"]) != "200" ||
			fmt.Sprint(c.leaf.Attrs["url.path"]) != "/work" || fmt.Sprint(c.leaf.Attrs["network.protocol.version"]) != "2" {
			t.Errorf("request %d: the call %v, the callee %v", i, c.cli.Attrs, c.leaf.Attrs)
			bad++
		}
		// An event loop: the call is a root or its own request's child.
		if c.cli.ParentSpanID != "" && c.cli.ParentSpanID != c.srv.SpanID {
			t.Errorf("request %d: the call has parent %q; its request is %s", i, c.cli.ParentSpanID, c.srv.SpanID)
			bad++
		}
		switch {
		case c.leaf.ParentSpanID == c.cli.SpanID && c.leaf.TraceID == c.cli.TraceID:
		case c.leaf.ParentSpanID == "" && (i >= seq && i < seq+conc || !propagates):
			roots++ // opened in a write with another stream: no option
		default:
			t.Errorf("request %d: the callee's span has parent %q in %s; the call is %s in %s", i, c.leaf.ParentSpanID, c.leaf.TraceID, c.cli.SpanID, c.cli.TraceID)
			bad++
		}
	}
	t.Logf("%d one at a time, %d ten at a time: %d callees without context (their stream shared a write); h2 calls %v, shared %v; options written %v read %v; server matched %v unmatched %v; given up for a shared sequence %v; chunk IDs client %v server %v",
		seq, conc, roots, k("h2_call"), k("h2_call_shared"), ag.metric(t, `weft_tcpopt_total{name="written"}`), ag.metric(t, `weft_tcpopt_total{name="read"}`),
		k("h2_option_matched"), k("h2_option_unmatched"), k("h2_option_same_seq"),
		ag.metric(t, `weft_http2_chunk_ids_total{kind="client"}`), ag.metric(t, `weft_http2_chunk_ids_total{kind="server_option"}`))
	if propagates && roots > 0 && k("h2_call_shared") == 0 && k("h2_option_unmatched") == 0 && k("h2_option_same_seq") == 0 {
		t.Errorf("%d callees without context, yet no stream shared a write and no option went unmatched", roots)
	}
	if afterStops < float64(stops) {
		t.Errorf("%v TLS options kept past records before their segment in the stops, want %d (one per stop)", afterStops, stops)
		bad++
	}
	if bad > 0 {
		t.Errorf("%d problems over %d requests", bad, seq+conc+stops)
		ag.logMetrics(t, "weft_http2", "weft_sockio", "weft_conntrack", "weft_spans", "weft_tcpopt")
	}
}
