package inject

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// churnConns is how many connections TestUntrackAfterChurn opens and
// closes: more than the 65536 entries of the LRU owner map the injector
// used to keep, so that the pooled connection's entry would be gone.
const churnConns = 70000

// startSink accepts connections and holds each until its peer goes.
func startSink(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// TestUntrackAfterChurn: a traced client keeps one pooled connection
// while it opens and closes tens of thousands of others. Closed sockets
// leave nothing behind (the sockhash, keyed by socket and owner, holds
// only the live one), and Untrack still finds the pooled connection and
// takes it out of the sockhash.
func TestUntrackAfterChurn(t *testing.T) { eachHook(t, testUntrackAfterChurn) }

func testUntrackAfterChurn(t *testing.T, h Hook) {
	inj := startInjector(t, h)
	addr := startSink(t)
	trackSelf(t, inj)
	pid := os.Getpid()

	pooled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pooled.Close()
	cookie := cookieOf(t, pooled)
	if !inj.SockhashHas(cookie) {
		t.Fatal("the pooled connection is not in the sockhash")
	}

	start := time.Now()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= churnConns {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					failed.Add(1)
					continue
				}
				// RST instead of FIN: no TIME_WAIT, so the ports come back.
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d connections failed", n, churnConns)
	}
	t.Logf("%d connections opened and closed in %v", churnConns, time.Since(start).Round(time.Millisecond))

	if c := inj.Counters(); c["sockhash_add"] < churnConns+1 {
		t.Errorf("sockhash_add %d, want at least %d: the churn did not go through the sockhash", c["sockhash_add"], churnConns+1)
	}
	if !waitFor(func() bool { return inj.SockhashOwned(pid) == 1 }) {
		t.Errorf("the sockhash holds %d sockets of this process, want 1 (the pooled one)", inj.SockhashOwned(pid))
	}
	if n := inj.SockhashLen(); n != 1 {
		t.Errorf("the sockhash holds %d entries, want 1", n)
	}
	if !inj.SockhashHas(cookie) {
		t.Fatal("the pooled connection left the sockhash before Untrack")
	}

	inj.Untrack(pid)
	if inj.SockhashHas(cookie) {
		t.Error("the pooled connection is still in the sockhash after Untrack")
	}
	if n := inj.SockhashLen(); n != 0 {
		t.Errorf("%d entries left in the sockhash after Untrack", n)
	}
}
