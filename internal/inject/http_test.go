package inject

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// A body that looks like requests: stateless matching would take its
// chunks for request heads.
var requestLines = []byte(strings.Repeat("GET / HTTP/1.1\r\n", 4096)) // 64 KiB

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func head(method, path string, hdr ...string) []byte {
	return []byte(method + " " + path + " HTTP/1.1\r\nHost: echo\r\n" + strings.Join(hdr, "") + "\r\n")
}

func withLen(n int) string { return fmt.Sprintf("Content-Length: %d\r\n", n) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// split cuts b into writes of at most n bytes.
func split(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

func chunked(body []byte, n int) []byte {
	var b bytes.Buffer
	for _, c := range split(body, n) {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(c), c)
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

// TestRequestsOnOneConnection sends requests of every shape on one
// keep-alive connection of the traced test process to a real, untraced
// net/http server, with new IDs before each, and checks what the server
// received: one traceparent with exactly those IDs where one belongs,
// none (or only the application's) elsewhere, and every body intact.
func TestRequestsOnOneConnection(t *testing.T) { eachHook(t, testRequestsOnOneConnection) }

func testRequestsOnOneConnection(t *testing.T, h Hook) {
	inj := startInjector(t, h)
	addr := startServer(t)
	trackSelf(t, inj)
	c := dial(t, addr)
	if !waitFor(func() bool { return inj.SockhashHas(c.cookie) }) {
		t.Fatal("the traced connection is not in the sockhash")
	}
	appTP := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	big := strings.Repeat("x", 5000)
	long := strings.Repeat("y", 3900)
	tests := []struct {
		name   string
		writes [][]byte // one sendmsg each
		body   []byte   // what the server must read
		noCtx  bool     // no inject_ctx entry
		delCtx bool     // delete the entry after the first write, as sockio's tracepoint does
		want   string   // "ids": our header; "": none; else that value only
		count  string   // counter that must grow by one
	}{
		{name: "get", writes: [][]byte{head("GET", "/get")}, want: "ids", count: "injected"},
		{name: "delete", writes: [][]byte{head("DELETE", "/d")}, want: "ids", count: "injected"},
		{name: "empty post", writes: [][]byte{head("POST", "/e", withLen(0))}, want: "ids", count: "injected"},
		{name: "64k request lines, one write", body: requestLines,
			writes: [][]byte{cat(head("POST", "/one", withLen(len(requestLines))), requestLines)}, want: "ids", count: "injected"},
		{name: "64k request lines, 4k writes", body: requestLines,
			writes: split(cat(head("POST", "/many", withLen(len(requestLines))), requestLines), 4096), want: "ids", count: "injected"},
		{name: "64k request lines, entry deleted after the first send", body: requestLines, delCtx: true,
			writes: split(cat(head("POST", "/del", withLen(len(requestLines))), requestLines), 4096), want: "ids", count: "injected"},
		{name: "body of whole request heads", body: bytes.Repeat(head("GET", "/fake"), 300),
			writes: append([][]byte{head("PUT", "/heads", withLen(300*len(head("GET", "/fake"))))},
				split(bytes.Repeat(head("GET", "/fake"), 300), 512)...), want: "ids", count: "injected"},
		{name: "chunked", body: requestLines,
			writes: append([][]byte{head("POST", "/chunked", "Transfer-Encoding: chunked\r\n")},
				split(chunked(requestLines, 1000), 3000)...), want: "ids", count: "injected"},
		{name: "head near the 4 KiB bound", writes: [][]byte{head("GET", "/long", "X-Long: "+long+"\r\n")}, want: "ids", count: "injected"},
		{name: "app's own traceparent", writes: [][]byte{head("GET", "/app", "TraceParent: "+appTP+"\r\n")}, want: appTP, count: "app_header"},
		{name: "no entry", writes: [][]byte{head("GET", "/none")}, noCtx: true, count: "no_ctx"},
		{name: "head split across sends", writes: [][]byte{[]byte("GET /split HTTP/1.1\r\nHost: echo\r\n"), []byte("X-A: b\r\n\r\n")}, count: "split"},
		{name: "head over 4 KiB", writes: [][]byte{head("GET", "/big", "X-Big: "+big+"\r\n")}, count: "too_long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newIDs()
			clearCtx(inj, c.cookie)
			if !tc.noCtx {
				setCtx(t, inj, c.cookie, x)
			}
			before := inj.Counters()
			var e echo
			if tc.delCtx {
				c.roundTripFirst(t, tc.writes[0])
				clearCtx(inj, c.cookie)
				e = c.roundTrip(t, tc.writes[1:]...)
			} else {
				e = c.roundTrip(t, tc.writes...)
			}
			after := inj.Counters()
			want := []string(nil)
			switch tc.want {
			case "":
			case "ids":
				want = []string{x.header()}
			default:
				want = []string{tc.want}
			}
			if fmt.Sprint(e.Traceparent) != fmt.Sprint(want) {
				t.Errorf("server saw traceparent %q, want %q", e.Traceparent, want)
			}
			if e.Len != int64(len(tc.body)) || e.SHA256 != sum(tc.body) {
				t.Errorf("body: server read %d bytes, sha256 %s; sent %d, %s", e.Len, e.SHA256, len(tc.body), sum(tc.body))
			}
			if d := after[tc.count] - before[tc.count]; d != 1 {
				t.Errorf("counter %s grew by %d, want 1 (%v)", tc.count, d, after)
			}
			if tc.count != "injected" && after["injected"] != before["injected"] {
				t.Errorf("injected grew by %d", after["injected"]-before["injected"])
			}
		})
	}
	t.Logf("counters: %v", inj.Counters())
}

// roundTripFirst sends the first write of a request without reading.
func (c *conn) roundTripFirst(t *testing.T, w []byte) {
	t.Helper()
	if n, err := c.Write(w); err != nil || n != len(w) {
		t.Fatalf("write: %d of %d: %v", n, len(w), err)
	}
}

// TestNotHTTP: with an entry, bytes that are no HTTP/1.x request pass
// untouched and are counted; the server still answers them (Go's server
// refuses the TLS and HTTP/2.0 ones). The HTTP/2 preface puts a socket on
// the HTTP/2 path instead (h2_test.go).
func TestNotHTTP(t *testing.T) { eachHook(t, testNotHTTP) }

func testNotHTTP(t *testing.T, h Hook) {
	inj := startInjector(t, h)
	addr := startServer(t)
	trackSelf(t, inj)
	for _, raw := range []string{
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: echo\r\n\r\n",
	} {
		c := dial(t, addr)
		setCtx(t, inj, c.cookie, newIDs())
		before := inj.Counters()
		c.roundTripFirst(t, []byte(raw))
		resp := make([]byte, 12)
		if _, err := c.rd.Read(resp); err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		after := inj.Counters()
		if d := after["not_http"] - before["not_http"]; d != 1 || after["injected"] != before["injected"] {
			t.Errorf("%q: not_http +%d, injected +%d", raw, d, after["injected"]-before["injected"])
		}
		if !bytes.HasPrefix(resp, []byte("HTTP/1.1 ")) {
			t.Errorf("%q: server answered %q", raw, resp)
		}
	}
}
