package inject

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// TestNetHTTPClient: the unmodified net/http client of the traced test
// process, keep-alive on one connection, GETs and 64 KiB POSTs of request
// lines, new IDs before each request; nobody deletes the entry (the
// "repeat" rule keeps body messages untouched).
func TestNetHTTPClient(t *testing.T) { eachHook(t, testNetHTTPClient) }

func testNetHTTPClient(t *testing.T, h Hook) {
	inj := startInjector(t, h)
	addr := startServer(t)
	trackSelf(t, inj)
	var dials atomic.Int32
	var cookie atomic.Uint64
	tr := &http.Transport{
		MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if err == nil {
				dials.Add(1)
				cookie.Store(cookieOf(t, c))
			}
			return c, err
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	do := func(method string, body []byte) echo {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+"/client", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e echo
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	do("GET", nil) // opens the connection: its cookie is known from here on

	before := inj.Counters()
	const n = 150
	for i := range n {
		x := newIDs()
		setCtx(t, inj, cookie.Load(), x)
		method, body := "GET", []byte(nil)
		if i%2 == 1 {
			method, body = "POST", requestLines
		}
		e := do(method, body)
		if len(e.Traceparent) != 1 || e.Traceparent[0] != x.header() {
			t.Fatalf("request %d: server saw %q, want %s", i, e.Traceparent, x.header())
		}
		if e.Len != int64(len(body)) || e.SHA256 != sum(body) {
			t.Fatalf("request %d: body of %d bytes arrived as %d bytes, sha256 %s", i, len(body), e.Len, e.SHA256)
		}
	}
	after := inj.Counters()
	if d := after["injected"] - before["injected"]; d != n {
		t.Errorf("injected +%d, want %d", d, n)
	}
	if dials.Load() != 1 {
		t.Errorf("%d connections, want 1", dials.Load())
	}
	t.Logf("per %d requests: injected +%d, repeat +%d", n, after["injected"]-before["injected"], after["repeat"]-before["repeat"])
}

// TestIPv6Connection: a connection to ::1 enters the sockhash at connect
// (through connect6 under HookConnect) and its request gets the header.
func TestIPv6Connection(t *testing.T) { eachHook(t, testIPv6Connection) }

func testIPv6Connection(t *testing.T, h Hook) {
	inj := startInjector(t, h)
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("listening on ::1 (the test needs IPv6 loopback): %v", err)
	}
	got := make(chan []string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Values("Traceparent")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	trackSelf(t, inj)
	before := inj.Counters()
	c := dial(t, ln.Addr().String())
	if !waitFor(func() bool { return inj.SockhashHas(c.cookie) }) {
		t.Fatal("the IPv6 connection is not in the sockhash")
	}
	x := newIDs()
	setCtx(t, inj, c.cookie, x)
	c.roundTripFirst(t, head("GET", "/v6"))
	if tp := <-got; len(tp) != 1 || tp[0] != x.header() {
		t.Errorf("server saw traceparent %q, want %s", tp, x.header())
	}
	if d := grew(before, inj.Counters()); d["sockhash_add"] != 1 || d["injected"] != 1 {
		t.Errorf("counters grew by %v, want sockhash_add and injected 1", d)
	}
}
