package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestSplitRequestHead: a request head that reaches the server in several
// reads (a sender's header insert can arrive after its request line) still
// makes every call the handler makes join the caller's trace: B's server
// span, its two calls to C and C's server spans all carry the caller's
// trace ID, however the head was cut.
func TestSplitRequestHead(t *testing.T) {
	needRoot(t)
	ch := startChain(t)
	cuts := []struct {
		name   string
		pieces func(line, host, tp string) []string
	}{
		{"after the request line", func(l, h, tp string) []string { return []string{l, h + tp + "\r\n"} }},
		{"before traceparent", func(l, h, tp string) []string { return []string{l + h, tp + "\r\n"} }},
		{"three pieces", func(l, h, tp string) []string { return []string{l, h, tp + "\r\n"} }},
		{"traceparent first", func(l, h, tp string) []string { return []string{l, tp + h + "\r\n"} }},
		{"in one piece", func(l, h, tp string) []string { return []string{l + h + tp + "\r\n"} }},
	}
	const rounds = 4
	tps := map[string]string{}
	for r := range rounds {
		for k, cut := range cuts {
			id := fmt.Sprintf("s%d-%d", r, k)
			tp := fmt.Sprintf("00-%032x-%016x-01", 0x5b1000+r*16+k, 0x5b2000+r*16+k)
			tps[id] = tp
			c1 := fmt.Sprintf("http://%s/work?id=c%s-1", ch.c.Addr, id)
			c2 := fmt.Sprintf("http://%s/work?id=c%s-2", ch.c.Addr, id)
			line := fmt.Sprintf("GET /call?id=%s&mode=inline&to=%s&to=%s HTTP/1.1\r\n", id, url.QueryEscape(c1), url.QueryEscape(c2))
			host := "Host: " + ch.b.Addr + "\r\nUser-Agent: split-test\r\n"
			sendPieces(t, ch.b.Addr, cut.pieces(line, host, "traceparent: "+tp+"\r\n"), cut.name)
		}
	}
	want := rounds * len(cuts) * 5
	all := ch.col.WaitSpans(t, want, 60*time.Second, func(otelcol.Span) bool { return true })
	byKey := map[string]otelcol.Span{}
	for _, s := range all {
		byKey[spanID(s)] = s
	}
	for id, tp := range tps {
		f := strings.Split(tp, "-")
		b := byKey["server:"+id]
		if b.TraceID != f[1] || b.ParentSpanID != f[2] {
			t.Errorf("%s: B's server span (trace %s, parent %s) ignores the caller's %s", id, b.TraceID, b.ParentSpanID, tp)
		}
		for _, n := range []string{"1", "2"} {
			cli, srv := byKey["client:c"+id+"-"+n], byKey["server:c"+id+"-"+n]
			if cli.TraceID != f[1] || cli.ParentSpanID != b.SpanID {
				t.Errorf("%s: B's call %s (trace %s, parent %s) is not a child of B's server span %s in trace %s",
					id, n, cli.TraceID, cli.ParentSpanID, b.SpanID, f[1])
			}
			if srv.TraceID != f[1] || srv.ParentSpanID != cli.SpanID {
				t.Errorf("%s: C's server span %s (trace %s, parent %s) is not a child of B's call %s",
					id, n, srv.TraceID, srv.ParentSpanID, cli.SpanID)
			}
		}
	}
}

// sendPieces writes one request in separate writes, far enough apart that
// the server reads each on its own, and checks the answer.
func sendPieces(t *testing.T, addr string, pieces []string, what string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, p := range pieces {
		if i > 0 {
			time.Sleep(30 * time.Millisecond)
		}
		if _, err := conn.Write([]byte(p)); err != nil {
			t.Fatalf("%s: write: %v", what, err)
		}
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: status %d", what, resp.StatusCode)
	}
}
