package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rssMiB reads a process's resident set from /proc.
func rssMiB(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// TestConnectionFlood: as many connections as the file limit allows (up to
// 15,000), each holding a never-finished 8 KiB request head to a traced
// server, keep the agent's memory inside its budget: the connection table
// evicts the least recently active and counts it; nothing crashes and the
// server still serves, with spans.
func TestConnectionFlood(t *testing.T) {
	needRoot(t)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = lim.Max // the server inherits it
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	n := min(15000, int(lim.Cur)-500)
	const budget = 32 << 20 // bytes of parser state the agent may hold
	root := repoRoot(t)
	bin := goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(t.TempDir(), "weft-e2e-flood"))
	srv := startServer(t, "flood", bin)
	ag := startAgent(t, []string{"WEFT_EXPORTER=jsonl", "WEFT_MAX_CONN_BYTES=" + strconv.Itoa(budget)}, "-pid", strconv.Itoa(srv.PID()))
	ag.waitTracked(t, srv.PID())
	base := rssMiB(t, ag.cmd.Process.Pid)

	head := []byte("GET /work HTTP/1.1\r\nHost: x\r\nX-Filler: " + strings.Repeat("f", 8000-40) + "\r\n")
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var curve []string
	var samples []float64
	peak := base
	for i := range n {
		c, err := net.DialTimeout("tcp", srv.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if _, err := c.Write(head); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if (i+1)%1000 == 0 || i == n-1 {
			time.Sleep(200 * time.Millisecond) // let the agent catch up
			rss := rssMiB(t, ag.cmd.Process.Pid)
			peak = max(peak, rss)
			samples = append(samples, rss)
			curve = append(curve, fmt.Sprintf("%d:%.0f", i+1, rss))
		}
	}
	t.Logf("agent RSS (MiB) by connections held: base %.0f, %s", base, strings.Join(curve, " "))
	select {
	case err := <-ag.exited:
		t.Fatalf("agent died under the flood: %v\n%s", err, tail(ag.stderr.String(), 30))
	default:
	}
	// The budget bounds the table's parser state; the Go heap around it
	// (per-connection structures beyond the estimate, evicted state not yet
	// collected, GC headroom) multiplies it. Before the budget the agent
	// grew ~21 KiB a connection, without end (374 MiB at 15,000 here).
	if limit := base + 5*float64(budget>>20); peak > limit {
		t.Errorf("agent RSS peaked at %.0f MiB with %d connections, over %.0f MiB", peak, n, limit)
	}
	if k := len(samples); k >= 6 {
		if growth := samples[k-1] - samples[k*2/3-1]; growth > 24 {
			t.Errorf("agent RSS still grows with the connections held: +%.0f MiB over the last third", growth)
		}
	}
	evicted := ag.metric(t, `weft_conntrack_evictions_total{reason="bytes"}`) + ag.metric(t, `weft_conntrack_evictions_total{reason="count"}`)
	if evicted == 0 {
		t.Errorf("no eviction counted with %d connections over a %d MiB budget", n, budget>>20)
	}
	if held := ag.metric(t, "weft_conntrack_bytes"); held > budget {
		t.Errorf("table holds %.0f bytes, over its budget %d", held, budget)
	}
	t.Logf("evictions %.0f, table %.0f connections %.1f MiB", evicted, ag.metric(t, "weft_conntrack_connections"), ag.metric(t, "weft_conntrack_bytes")/(1<<20))

	// Its event loop and exporter still beat: /healthz is ok.
	if hz, err := http.Get("http://" + ag.statusAddr + "/healthz"); err != nil || hz.StatusCode != 200 {
		t.Errorf("/healthz after the flood: %v %v", hz, err)
	} else {
		hz.Body.Close()
	}

	// The server still serves, and a fresh request still gets its span.
	resp, err := http.Get("http://" + srv.Addr + "/work?after=flood")
	if err != nil {
		t.Fatalf("server after the flood: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("server after the flood: %s", resp.Status)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Contains([]byte(ag.stdout.String()), []byte("after=flood")) {
		if time.Now().After(deadline) {
			t.Fatalf("no span for the request after the flood:\n%s", tail(ag.stdout.String(), 5))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
