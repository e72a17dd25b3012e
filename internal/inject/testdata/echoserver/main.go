// Command echoserver is an ordinary net/http server for weft's injection
// tests: it knows nothing of weft and answers every request with what it
// received, as JSON. With -client it is instead an ordinary client that
// prints its socket's cookie and sends requests when told to.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"syscall"
	"unsafe"
)

// Echo is the answer to every request.
type Echo struct {
	Method      string              `json:"method"`
	Path        string              `json:"path"`
	Proto       string              `json:"proto"`
	Traceparent []string            `json:"traceparent"` // every value received
	Header      map[string][]string `json:"header"`      // all other headers
	Chunked     bool                `json:"chunked"`
	Len         int64               `json:"len"`
	SHA256      string              `json:"sha256"`
}

func echo(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e := Echo{
		Method: r.Method, Path: r.URL.Path, Proto: r.Proto,
		Traceparent: r.Header.Values("Traceparent"), Header: map[string][]string{},
		Chunked: len(r.TransferEncoding) > 0, Len: n, SHA256: hex.EncodeToString(h.Sum(nil)),
	}
	for k, v := range r.Header {
		if k != "Traceparent" {
			e.Header[k] = v
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(e)
}

// cookie is the socket's SO_COOKIE, the key weft's maps use.
func cookie(c *net.TCPConn) uint64 {
	const soCookie = 57
	raw, err := c.SyscallConn()
	if err != nil {
		log.Fatal(err)
	}
	var v uint64
	l := uint32(8)
	raw.Control(func(fd uintptr) {
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_SOCKET, soCookie,
			uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			log.Fatal(e)
		}
	})
	return v
}

// client dials addr, prints "COOKIE n", then for each line on stdin sends
// GET /line and prints the server's answer on one line.
func client(addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("COOKIE %d\n", cookie(c.(*net.TCPConn)))
	in := bufio.NewScanner(os.Stdin)
	rd := bufio.NewReader(c)
	for in.Scan() {
		fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: echo\r\n\r\n", in.Text())
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s", body)
	}
}

func main() {
	clientOf := flag.String("client", "", "act as a client of this address")
	flag.Parse()
	if *clientOf != "" {
		client(*clientOf)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("LISTEN %d\n", ln.Addr().(*net.TCPAddr).Port)
	log.Fatal(http.Serve(ln, http.HandlerFunc(echo)))
}
