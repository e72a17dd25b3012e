// Command gohttp-wrapper is a traced program for the gohttp probe's tests:
// an HTTP server whose handler calls an upstream through one of three
// clients, which differ only in what their Transport's DialContext returns
// (so in the dynamic type of net/http's persistConn.conn):
//
//	plain     a *net.TCPConn (net.Dialer)
//	counting  counting{net.Conn; n}, a wrapper that counts the bytes written
//	tagged    tagged{tags; net.Conn}, a wrapper whose first word points at
//	          memory holding, where a *net.TCPConn's netFD keeps its
//	          descriptor, the descriptor of another open socket of this
//	          process (the decoy): read as a *net.TCPConn, this wrapper
//	          names the decoy's socket
//
//	GET /call?via=plain|counting|tagged&to=URL   calls URL, answers its status
//
// It prints "LISTEN <port>" once it serves. -sysfd-at is where the probe
// reads the descriptor in net.netFD (net.netFD.pfd + internal/poll.FD.Sysfd),
// -decoy an address to hold the decoy connection to.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

// counting is the ordinary wrapper: a net.Conn that counts what it writes.
type counting struct {
	net.Conn
	n int
}

func (c *counting) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n += n
	return n, err
}

// tagged carries a pointer to per-connection tags before the connection.
type tagged struct {
	tags *[8]int64
	net.Conn
}

func main() {
	sysfdAt := flag.Int("sysfd-at", 16, "byte offset of the descriptor in net.netFD")
	decoyAddr := flag.String("decoy", "", "address of a server to hold an idle connection to")
	flag.Parse()
	if *sysfdAt < 0 || *sysfdAt >= 64 || *sysfdAt%8 != 0 {
		log.Fatalf("-sysfd-at %d: want a multiple of 8 below 64", *sysfdAt)
	}

	// The decoy: a connection this process holds open and never writes on.
	tags := new([8]int64)
	if *decoyAddr != "" {
		decoy, err := net.Dial("tcp", *decoyAddr)
		if err != nil {
			log.Fatal(err)
		}
		raw, err := decoy.(*net.TCPConn).SyscallConn()
		if err != nil {
			log.Fatal(err)
		}
		raw.Control(func(fd uintptr) { tags[*sysfdAt/8] = int64(fd) })
	}

	var d net.Dialer
	clients := map[string]*http.Client{
		"plain": {Transport: &http.Transport{DialContext: d.DialContext}},
		"counting": {Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &counting{Conn: c}, nil
		}}},
		"tagged": {Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &tagged{tags: tags, Conn: c}, nil
		}}},
	}
	for _, c := range clients {
		c.Timeout = 10 * time.Second
	}

	http.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		c, ok := clients[r.URL.Query().Get("via")]
		if !ok {
			http.Error(w, "via: plain, counting or tagged", http.StatusBadRequest)
			return
		}
		resp, err := c.Get(r.URL.Query().Get("to"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Fprintf(w, "%d", resp.StatusCode)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "LISTEN %d\n", ln.Addr().(*net.TCPAddr).Port)
	log.Fatal(http.Serve(ln, nil))
}
