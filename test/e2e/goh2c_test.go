package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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

// TestGoH2CClientHeader: net/http's own HTTP/2 client over h2c (Go 1.26,
// Transport.Protocols) in A calls B, a Go h2c server whose /headers answers
// the traceparent and tracestate fields it got. Propagation is headers
// only, so B's parent can come from nothing but a field the injector added
// to A's HPACK block.
//   - 40 requests, 4 at a time, of which A sends no traceparent of its own:
//     B gets exactly one, naming A's CLIENT span, and B's SERVER span is its
//     child; A's CLIENT span is the child of A's request.
//   - Then 10 requests whose traceparent A sets itself (Go's encoder
//     Huffman-codes the name, then sends it by dynamic-table index): B gets
//     exactly A's, never a second.
//
// Where the kernel cannot inject (sk_msg without bpf_loop, before 5.17:
// /status must say so) B gets no traceparent but A's own, and its spans
// are roots.
func TestGoH2CClientHeader(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := goBuild(t, filepath.Join(root, "testdata/httpserver"), "go1.26.8", filepath.Join(dir, "weft-e2e-h2c"))
	a := startServer(t, "a", bin, "-h2c")
	b := startServer(t, "b", bin, "-h2c")
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint, "WEFT_PROPAGATION=headers"}, "-exe", "weft-e2e-h2c")
	ag.waitTracked(t, a.PID())
	ag.waitTracked(t, b.PID())
	off := injectionUnavailable(t, ag)

	type got struct {
		Traceparent []string `json:"traceparent"`
		Tracestate  []string `json:"tracestate"`
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	call := func(id, own string) (got, error) {
		to := fmt.Sprintf("http://%s/headers?id=b-%s", b.Addr, id)
		u := fmt.Sprintf("http://%s/call?id=a-%s&body=1&to=%s", a.Addr, id, url.QueryEscape(to))
		if own != "" {
			u += "&own=" + url.QueryEscape(own)
		}
		var g got
		resp, err := hc.Get(u)
		if err != nil {
			return g, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return g, fmt.Errorf("%d %q", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &g); err != nil {
			return g, fmt.Errorf("B's answer %q: %w", body, err)
		}
		return g, nil
	}

	const n, owned = 40, 10
	recv := make([]got, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			g, err := call(fmt.Sprint(i), "")
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			recv[i] = g
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i := range owned {
		var tid [16]byte
		var sid [8]byte
		rand.Read(tid[:])
		rand.Read(sid[:])
		own := fmt.Sprintf("00-%s-%s-01", hex.EncodeToString(tid[:]), hex.EncodeToString(sid[:]))
		g, err := call(fmt.Sprintf("own%d", i), own)
		if err != nil {
			t.Fatalf("request own%d: %v", i, err)
		}
		if len(g.Traceparent) != 1 || g.Traceparent[0] != own {
			t.Errorf("request own%d: B got traceparent %q, want exactly A's own %q", i, g.Traceparent, own)
		}
	}

	role := map[string]string{fmt.Sprint(a.PID()): "a", fmt.Sprint(b.PID()): "b"}
	by := spansByKey(t, col, 3*(n+owned), 60*time.Second, roleKey(role))
	bad := 0
	for i := range n {
		aS, ok1 := by[fmt.Sprintf("a server:a-%d", i)]
		aC, ok2 := by[fmt.Sprintf("a client:b-%d", i)]
		bS, ok3 := by[fmt.Sprintf("b server:b-%d", i)]
		if !ok1 || !ok2 || !ok3 {
			t.Errorf("request %d: spans missing (A server %v, A client %v, B server %v)", i, ok1, ok2, ok3)
			bad++
			continue
		}
		if fmt.Sprint(aC.Attrs["network.protocol.version"]) != "2" {
			t.Errorf("request %d: A's call is not HTTP/2: %v", i, aC.Attrs)
			bad++
		}
		if aC.ParentSpanID != aS.SpanID || aC.TraceID != aS.TraceID {
			t.Errorf("request %d: A's call has parent %s in %s; A's request is %s in %s", i, aC.ParentSpanID, aC.TraceID, aS.SpanID, aS.TraceID)
			bad++
		}
		if off {
			if len(recv[i].Traceparent) != 0 || bS.ParentSpanID != "" {
				t.Errorf("request %d: no injection, but B got traceparent %q and parent %q", i, recv[i].Traceparent, bS.ParentSpanID)
				bad++
			}
			continue
		}
		want := fmt.Sprintf("00-%s-%s-", aC.TraceID, aC.SpanID)
		if tp := recv[i].Traceparent; len(tp) != 1 || !strings.HasPrefix(tp[0], want) {
			t.Errorf("request %d: B got traceparent %q, want one naming A's call (%s..)", i, tp, want)
			bad++
		}
		if bS.ParentSpanID != aC.SpanID || bS.TraceID != aC.TraceID {
			t.Errorf("request %d: B's request has parent %q in %s, not A's call %s", i, bS.ParentSpanID, bS.TraceID, aC.SpanID)
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d requests broken", bad, n)
	}
	injected := ag.metric(t, `weft_inject_total{name="h2_injected"}`)
	app := ag.metric(t, `weft_inject_total{name="h2_app_header"}`)
	t.Logf("h2_injected %v, h2_app_header %v, h2_unchecked %v", injected, app, ag.metric(t, `weft_inject_total{name="h2_unchecked"}`))
	if !off && (injected < n || app < owned) {
		t.Errorf("h2_injected %v (want >= %d), h2_app_header %v (want >= %d)", injected, n, app, owned)
	}
}
