package h2wire

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// recorder keeps the writes of both ends of a connection in the order they
// started: a write is recorded before its bytes can be read, so the order
// is one a tracer could see.
type recorder struct {
	mu     sync.Mutex
	writes []recWrite
}

type recWrite struct {
	client bool
	data   []byte
}

type recConn struct {
	net.Conn
	r      *recorder
	client bool
}

func (c *recConn) Write(p []byte) (int, error) {
	c.r.mu.Lock()
	c.r.writes = append(c.r.writes, recWrite{c.client, bytes.Clone(p)})
	c.r.mu.Unlock()
	return c.Conn.Write(p)
}

// grpcHandler answers like a unary gRPC server: headers, a body, trailers.
func grpcHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var i int
	fmt.Sscanf(r.URL.Path, "/pkg.Svc/M%d", &i)
	w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
	w.Header().Set("Content-Type", "application/grpc")
	w.WriteHeader(200)
	w.Write(bytes.Repeat([]byte("r"), 7*i+len(body)))
	w.Header().Set("Grpc-Status", fmt.Sprint(i%4))
	w.Header().Set("Grpc-Message", fmt.Sprintf("msg %d", i))
}

// Real golang.org/x/net/http2 client and server over an in-process pipe.
func TestRealCapture(t *testing.T) {
	rec := &recorder{}
	cc, sc := net.Pipe()
	srv := &http2.Server{}
	done := make(chan struct{})
	go func() {
		srv.ServeConn(&recConn{sc, rec, false}, &http2.ServeConnOpts{Handler: http.HandlerFunc(grpcHandler)})
		close(done)
	}()
	tr := &http2.Transport{AllowHTTP: true}
	conn, err := tr.NewClientConn(&recConn{cc, rec, true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			body := strings.Repeat("q", 100*i)
			req, _ := http.NewRequestWithContext(context.Background(), "POST", fmt.Sprintf("http://svc.local/pkg.Svc/M%d", i), strings.NewReader(body))
			req.Header.Set("Content-Type", "application/grpc+proto")
			req.Header.Set("Traceparent", fmt.Sprintf("00-%032x-%016x-01", i+1, i+1))
			req.Header.Set("User-Agent", "test-agent")
			resp, err := conn.RoundTrip(req)
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.Trailer.Get("Grpc-Status") != fmt.Sprint(i%4) {
				errs <- fmt.Errorf("trailer %v", resp.Trailer)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	conn.Close()
	cc.Close()
	sc.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
	rec.mu.Lock()
	writes := rec.writes
	rec.mu.Unlock()

	for _, role := range []Role{RoleServer, RoleClient} {
		for split := range 3 {
			r := rand.New(rand.NewPCG(uint64(split), 9))
			c := NewConn(Limits{})
			var got []Stream
			var probs []Problem
			tm := uint64(0)
			for _, w := range writes {
				d := DirRead
				if w.client == (role == RoleClient) {
					d = DirWrite
				}
				goid := uint64(2)
				if w.client {
					goid = 1
				}
				for p := w.data; len(p) > 0; {
					k := len(p)
					if split > 0 {
						k = 1 + r.IntN(min(len(p), 40))
					}
					tm++
					st, pr := c.Feed(Chunk{Dir: d, Time: tm, Len: k, Data: p[:k], Goid: goid})
					got = append(got, st...)
					probs = append(probs, pr...)
					p = p[k:]
				}
			}
			st, pr := c.Close(tm + 1)
			got = append(got, st...)
			probs = append(probs, pr...)
			if len(probs) > 0 {
				t.Fatalf("role %v: problems %v", role, probs)
			}
			if len(got) != n {
				t.Fatalf("role %v: %d streams", role, len(got))
			}
			seen := map[string]bool{}
			for _, s := range got {
				var i int
				fmt.Sscanf(s.Path, "/pkg.Svc/M%d", &i)
				seen[s.Path] = true
				w := Stream{
					Role: role, ID: s.ID, Method: "POST", Path: fmt.Sprintf("/pkg.Svc/M%d", i), Authority: "svc.local", Scheme: "http",
					ContentType: "application/grpc+proto", UserAgent: "test-agent",
					Traceparent: fmt.Sprintf("00-%032x-%016x-01", i+1, i+1),
					GRPC:        true, Status: 200, GRPCStatus: i % 4, GRPCMessage: fmt.Sprintf("msg %d", i),
					ReqBytes: int64(100 * i), RespBytes: int64(107 * i),
					Start: s.Start, End: s.End, StartGoid: 1, EndGoid: 2,
					FirstInChunk: s.FirstInChunk, // gen_test's streams check it
				}
				if s != w || s.Start >= s.End {
					t.Fatalf("role %v:\n got %+v\nwant %+v", role, s, w)
				}
			}
			if len(seen) != n {
				t.Fatalf("paths %v", seen)
			}
		}
	}
}
