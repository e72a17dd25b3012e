// Command httpserver is an ordinary net/http server used as an unmodified
// traced program in weft's tests, benchmarks and demo. It knows nothing of
// weft; it reports its handler's goroutine id so tests can check weft's.
//
//	GET  /hello                  "hello"
//	ANY  /work?sleep=50ms&status=404&size=1000&chunked=1
//	POST /echo                   reads the body, answers its length and sha256
//	GET  /call?to=URL&to=URL&mode=inline|goroutine|nested|after
//	                             calls each URL through one shared keep-alive
//	                             client, from the handler or from goroutines it
//	                             starts (nested: depth=N generations below it;
//	                             after: answers "later" at once and calls
//	                             after delay=D); answers the statuses it got; with
//	                             own=TRACEPARENT it sets that header itself,
//	                             as a program with its own tracing SDK does
//
// With -cert and -key it serves HTTPS (HTTP/1.1 and, by ALPN, h2), and its
// client trusts -cert for the HTTPS URLs it calls; -ca alone makes a
// plaintext server whose client trusts that certificate. With -h2 the
// client speaks HTTP/2 to HTTPS servers that offer it.
package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

func goid() string {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := strings.Fields(string(buf[:n])) // "goroutine 42 [running]:"
	if len(f) < 2 {
		return "0"
	}
	return f[1]
}

func work(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Goid", goid())
	q := r.URL.Query()
	n, _ := io.Copy(io.Discard, r.Body)
	w.Header().Set("X-Req-Bytes", strconv.FormatInt(n, 10))
	if d, err := time.ParseDuration(q.Get("sleep")); err == nil {
		time.Sleep(d)
	}
	status := http.StatusOK
	if s, err := strconv.Atoi(q.Get("status")); err == nil {
		status = s
	}
	size, _ := strconv.Atoi(q.Get("size"))
	body := bytes.Repeat([]byte("x"), size)
	if q.Get("chunked") != "" {
		w.WriteHeader(status)
		half := len(body) / 2
		w.Write(body[:half])
		w.(http.Flusher).Flush() // no Content-Length: chunked encoding
		w.Write(body[half:])
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if q.Get("flush") != "" {
		w.(http.Flusher).Flush() // the head in a write of its own
	}
	w.Write(body)
}

func echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Goid", goid())
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("X-Req-Bytes", strconv.FormatInt(n, 10))
	fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
}

// client is shared by every handler, as real services share one: its
// keep-alive pool hands connections from one request's calls to another's.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func call(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Goid", goid())
	q := r.URL.Query()
	targets := q["to"]
	statuses := make([]string, len(targets))
	get := func(i int) {
		var body io.Reader
		method := "GET"
		if n, _ := strconv.Atoi(q.Get("upload")); n > 0 {
			method, body = "POST", bytes.NewReader(Pattern(n))
		}
		req, err := http.NewRequest(method, targets[i], body)
		if err != nil {
			statuses[i] = "error"
			return
		}
		if own := q.Get("own"); own != "" {
			req.Header.Set("traceparent", own)
		}
		resp, err := client.Do(req)
		if err != nil {
			statuses[i] = "error"
			return
		}
		if q.Get("body") != "" {
			// what the callee answered, for the caller to read
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[i] = string(b)
			if err != nil {
				statuses[i] = "error"
			}
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		statuses[i] = strconv.Itoa(resp.StatusCode)
		if q.Get("digest") != "" {
			// what came back, for the caller to check byte for byte
			statuses[i] = fmt.Sprintf("%d %d %x", resp.StatusCode, n, h.Sum(nil))
			if err != nil {
				statuses[i] = "error"
			}
		}
	}
	switch q.Get("mode") {
	case "goroutine":
		var wg sync.WaitGroup
		for i := range targets {
			wg.Add(1)
			go func() { defer wg.Done(); get(i) }()
		}
		wg.Wait()
	case "nested":
		// Each call from a goroutine depth generations below the handler
		// (a helper starting an errgroup, say).
		depth, _ := strconv.Atoi(q.Get("depth"))
		var wg sync.WaitGroup
		for i := range targets {
			wg.Add(1)
			go nested(max(depth, 1)-1, func() { defer wg.Done(); get(i) })
		}
		wg.Wait()
	case "after":
		// Answer now; call from a goroutine the handler started, after
		// delay, when the connection may be serving the next request.
		delay, _ := time.ParseDuration(q.Get("delay"))
		go func() {
			time.Sleep(delay)
			for i := range targets {
				get(i)
			}
		}()
		io.WriteString(w, "later")
		return
	default:
		for i := range targets {
			get(i)
		}
	}
	io.WriteString(w, strings.Join(statuses, ","))
}

// nested runs f in a goroutine n generations below the caller's.
func nested(n int, f func()) {
	if n <= 0 {
		f()
		return
	}
	go nested(n-1, f)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	cert := flag.String("cert", "", "PEM certificate: serve HTTPS, and trust it as a client")
	key := flag.String("key", "", "PEM key of -cert")
	ca := flag.String("ca", "", "PEM certificate the client trusts (default -cert)")
	h2 := flag.Bool("h2", false, "the client offers HTTP/2 (ALPN) on HTTPS calls, as http.DefaultTransport does")
	flag.Parse()
	srv := &http.Server{}
	if setupH2C != nil {
		setupH2C(srv, client.Transport.(*http.Transport))
	}
	if *ca == "" {
		*ca = *cert
	}
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			log.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	// A custom TLSClientConfig turns the Transport's HTTP/2 off unless asked.
	client.Transport.(*http.Transport).ForceAttemptHTTP2 = *h2
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	mux.HandleFunc("/work", work)
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("/call", call)
	mux.HandleFunc("/headers", headers)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// The test harness reads the port from this line.
	fmt.Fprintf(os.Stdout, "LISTEN %d\n", ln.Addr().(*net.TCPAddr).Port)
	srv.Handler = mux
	if *cert != "" {
		log.Fatal(srv.ServeTLS(ln, *cert, *key))
	}
	log.Fatal(srv.Serve(ln))
}

// setupH2C is set where net/http has http.Protocols (h2c.go).
var setupH2C func(srv *http.Server, tr *http.Transport)

// Pattern is n bytes of a repeating, non-uniform pattern: uploads with
// ?upload=n send it, for the receiver's digest to be checked.
func Pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}
