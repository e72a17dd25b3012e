package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// call is one request of the suite and what its span must show.
type call struct {
	ID          string // also sent as ?id=, to find the span
	Method      string
	Path        string // without the id parameter
	Body        []byte
	Chunked     bool   // send the body with chunked transfer encoding
	Traceparent string // sent as is when non-empty
	NewConn     bool   // a fresh connection instead of the shared keep-alive pool
	Status      int    // expected status
	MinDur      time.Duration

	// Filled in by do().
	Goid     string
	RespBody []byte
	Err      error
}

// suite returns the requests every server gets: methods, paths, status
// codes, bodies from empty to 1 MiB, chunked both ways, caller traceparents,
// sleeps, new and reused connections.
func suite(prefix string) []*call {
	mib := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	lines := bytes.Repeat([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 2400) // body that looks like requests
	cs := []*call{
		{Method: "GET", Path: "/hello", Status: 200, NewConn: true},
		{Method: "GET", Path: "/hello", Status: 200},
		{Method: "GET", Path: "/hello", Status: 200},
		{Method: "GET", Path: "/work?status=404", Status: 404},
		{Method: "GET", Path: "/work?status=503", Status: 503},
		{Method: "DELETE", Path: "/work?status=204", Status: 204},
		{Method: "PUT", Path: "/work", Body: []byte("small"), Status: 200, NewConn: true},
		{Method: "GET", Path: "/work?sleep=120ms", Status: 200, MinDur: 120 * time.Millisecond},
		{Method: "GET", Path: "/work?sleep=30ms", Status: 200, MinDur: 30 * time.Millisecond,
			Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{Method: "GET", Path: "/work?size=200000&chunked=1", Status: 200},
		{Method: "GET", Path: "/work?size=70000", Status: 200},
		// A head that announces a body that never comes, then a head
		// written on its own before its body, on the same connection.
		{Method: "HEAD", Path: "/work?size=70000", Status: 200},
		{Method: "GET", Path: "/work?size=300000&flush=1", Status: 200},
		{Method: "POST", Path: "/echo", Status: 200},
		{Method: "POST", Path: "/echo", Body: bytes.Repeat([]byte("a"), 64<<10), Status: 200},
		{Method: "POST", Path: "/echo", Body: mib, Status: 200},
		{Method: "POST", Path: "/echo", Body: lines, Status: 200},
		{Method: "POST", Path: "/echo", Body: bytes.Repeat([]byte("c"), 100000), Chunked: true, Status: 200},
	}
	for i, c := range cs {
		c.ID = fmt.Sprintf("%s-%d", prefix, i)
	}
	return cs
}

// concurrent returns n requests meant to run at once.
func concurrent(prefix string, n int) []*call {
	cs := make([]*call, n)
	for i := range cs {
		cs[i] = &call{ID: fmt.Sprintf("%s-c%d", prefix, i), Method: "GET", Path: "/work?sleep=10ms&size=100", Status: 200, MinDur: 10 * time.Millisecond}
	}
	return cs
}

func withID(path, id string) string {
	if strings.Contains(path, "?") {
		return path + "&id=" + id
	}
	return path + "?id=" + id
}

// do sends c to addr through client (a fresh one when c.NewConn).
func (c *call) do(client *http.Client, addr string) {
	var body io.Reader = bytes.NewReader(c.Body)
	if c.Chunked {
		body = io.MultiReader(bytes.NewReader(c.Body)) // unknown length: chunked
	}
	req, err := http.NewRequest(c.Method, "http://"+addr+withID(c.Path, c.ID), body)
	if err != nil {
		c.Err = err
		return
	}
	if c.Traceparent != "" {
		req.Header.Set("traceparent", c.Traceparent)
	}
	if c.NewConn {
		client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	}
	resp, err := client.Do(req)
	if err != nil {
		c.Err = err
		return
	}
	defer resp.Body.Close()
	c.RespBody, c.Err = io.ReadAll(resp.Body)
	c.Goid = resp.Header.Get("X-Goid")
	if resp.StatusCode != c.Status {
		c.Err = fmt.Errorf("status %d, want %d", resp.StatusCode, c.Status)
	}
	if c.Path == "/echo" && c.Err == nil {
		sum := sha256.Sum256(c.Body)
		want := strconv.Itoa(len(c.Body)) + " " + hex.EncodeToString(sum[:])
		if string(c.RespBody) != want {
			c.Err = fmt.Errorf("echo answered %q, want %q: the body was altered", c.RespBody, want)
		}
	}
}

// run sends the calls, sequentially or all at once.
func run(t *testing.T, addr string, calls []*call, parallel bool) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	if parallel {
		var wg sync.WaitGroup
		for _, c := range calls {
			wg.Add(1)
			go func() { defer wg.Done(); c.do(client, addr) }()
		}
		wg.Wait()
	} else {
		for _, c := range calls {
			c.do(client, addr)
		}
	}
	for _, c := range calls {
		if c.Err != nil {
			t.Errorf("%s %s %s: %v", c.ID, c.Method, c.Path, c.Err)
		}
	}
}
