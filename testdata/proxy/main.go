// Command proxy is an ordinary reverse proxy, the kind gateways are, used
// as an unmodified traced program in weft's tests. It knows nothing of
// weft. Every request it gets is sent on to -backend (same method, path,
// query and body) and the backend's answer is copied back.
//
//	-mode copy     a plain http.Client request carrying a copy of every
//	               incoming header (traceparent included, unchanged)
//	-mode reverse  net/http/httputil.ReverseProxy
//	-mode sdk      as copy, but the traceparent sent names a span of the
//	               proxy's own (a fresh parent-id in the same trace), as a
//	               program with a tracing SDK does
//	-h2c           to the backend over HTTP/2 without TLS (net/http's own
//	               HTTP/2 client, prior knowledge)
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	backend := flag.String("backend", "", "backend base URL, e.g. http://127.0.0.1:8080")
	mode := flag.String("mode", "copy", "copy, reverse or sdk")
	h2c := flag.Bool("h2c", false, "HTTP/2 without TLS to the backend")
	flag.Parse()
	target, err := url.Parse(*backend)
	if err != nil || target.Host == "" {
		log.Fatalf("-backend %q: want a base URL", *backend)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 256}
	if *h2c {
		transport.Protocols = new(http.Protocols)
		transport.Protocols.SetUnencryptedHTTP2(true)
	}
	var h http.Handler
	switch *mode {
	case "copy", "sdk":
		h = &copier{client: &http.Client{Timeout: 30 * time.Second, Transport: transport}, target: target, sdk: *mode == "sdk"}
	case "reverse":
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.Transport = transport
		h = rp
	default:
		log.Fatalf("-mode %q: want copy, reverse or sdk", *mode)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// The test harness reads the port from this line.
	fmt.Fprintf(os.Stdout, "LISTEN %d\n", ln.Addr().(*net.TCPAddr).Port)
	log.Fatal(http.Serve(ln, h))
}

// copier forwards by hand: a new request with the incoming headers copied.
type copier struct {
	client *http.Client
	target *url.URL
	sdk    bool
}

func (c *copier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u := *c.target
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for k, vs := range r.Header {
		out.Header[k] = append([]string(nil), vs...)
	}
	if c.sdk {
		out.Header.Set("Traceparent", ownSpan(r.Header.Get("Traceparent")))
	}
	resp, err := c.client.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// ownSpan is the traceparent an SDK sends for a span of its own under the
// incoming context: the same trace and flags, a fresh parent-id (a new
// trace when nothing valid came in).
func ownSpan(in string) string {
	span := make([]byte, 8)
	rand.Read(span)
	f := strings.Split(in, "-")
	if len(f) != 4 || len(f[1]) != 32 || len(f[3]) != 2 {
		trace := make([]byte, 16)
		rand.Read(trace)
		return "00-" + hex.EncodeToString(trace) + "-" + hex.EncodeToString(span) + "-01"
	}
	return "00-" + f[1] + "-" + hex.EncodeToString(span) + "-" + f[3]
}
