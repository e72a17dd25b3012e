package inject

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	fionreadOnce sync.Once
	fionreadBin  string
	fionreadErr  error
)

// buildFionread builds testdata/fionread, a cgo program, once. It needs a
// C compiler: gcc, or else clang (which make deps installs for the BPF
// objects).
func buildFionread(tb testing.TB) string {
	tb.Helper()
	fionreadOnce.Do(func() {
		if fionreadBin = os.Getenv(fionreadEnv); fionreadBin != "" {
			return
		}
		dir, err := os.MkdirTemp("", "weft-fionread")
		if err != nil {
			fionreadErr = err
			return
		}
		bin := filepath.Join(dir, "fionread")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = "testdata/fionread"
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=1")
		if _, err := exec.LookPath("gcc"); err != nil {
			if _, err := exec.LookPath("clang"); err == nil {
				cmd.Env = append(cmd.Env, "CC=clang")
			}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			fionreadErr = fmt.Errorf("%v\n%s", err, out)
			return
		}
		fionreadBin = bin
	})
	if fionreadErr != nil {
		tb.Fatalf("building the cgo test program (needs a C compiler, gcc or clang): %v", fionreadErr)
	}
	return fionreadBin
}

// fionreadSent is what the server sends on every connection, at once.
const fionreadSent = 1000

// startSender accepts connections and writes fionreadSent bytes on each,
// then leaves them open.
func startSender(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write(bytes.Repeat([]byte("x"), fionreadSent))
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// FionreadClient is a running testdata/fionread.
type FionreadClient struct {
	PID int
	in  io.Writer
	out *bufio.Reader
}

func startFionread(tb testing.TB, addr string) *FionreadClient {
	tb.Helper()
	cmd := exec.Command(buildFionread(tb), addr)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	return &FionreadClient{PID: cmd.Process.Pid, in: in, out: bufio.NewReader(out)}
}

func (c *FionreadClient) ask(tb testing.TB, cmd, prefix string) []string {
	tb.Helper()
	fmt.Fprintln(c.in, cmd)
	line, err := c.out.ReadString('\n')
	if err != nil {
		tb.Fatalf("fionread %s: %v", cmd, err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != prefix {
		tb.Fatalf("fionread %s: said %q", cmd, line)
	}
	return f[1:]
}

// Dial makes the program open one more connection; its socket's cookie.
func (c *FionreadClient) Dial(tb testing.TB) uint64 {
	tb.Helper()
	v, err := strconv.ParseUint(c.ask(tb, "dial", "COOKIE")[0], 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// FIONREAD is what ioctl(FIONREAD), called from C once each connection is
// readable, says on each.
func (c *FionreadClient) FIONREAD(tb testing.TB) []int {
	tb.Helper()
	var ns []int
	for _, s := range c.ask(tb, "fionread", "FIONREAD") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			tb.Fatalf("fionread: %q (-1: never readable, -2: ioctl failed)", s)
		}
		ns = append(ns, n)
	}
	return ns
}

// TestFIONREADCgo measures the hazard that keeps cgo programs out of the
// sockhash: a C library asking ioctl(FIONREAD) how much to read, on a
// connection whose peer wrote 1000 bytes, is told 0 while the socket is in
// the sockhash (though poll says it is readable) and 1000 once it left.
// A library that reads only what FIONREAD announces, or treats 0 on a
// readable socket as the peer having closed, stalls or drops the
// connection. Here the program is tracked by calling Injector.Track
// directly, past the rule that keeps cgo programs out (probes/inject).
// That is the kernel measured (6.18); Debian's 6.1.192, whose tcp_bpf has
// no ioctl of its own, counts right in the sockhash: either passes, and
// the log says which.
func TestFIONREADCgo(t *testing.T) { eachHook(t, testFIONREADCgo) }

func testFIONREADCgo(t *testing.T, h Hook) {
	inj := startInjector(t, h)
	addr := startSender(t)
	cl := startFionread(t, addr)
	before := cl.Dial(t) // connected before Track: the iterator adds it
	if err := inj.Track(cl.PID, nil); err != nil {
		t.Fatal(err)
	}
	after := cl.Dial(t) // connected after: sockops adds it
	if !inj.SockhashHas(before) || !inj.SockhashHas(after) {
		t.Fatalf("in the sockhash: before Track %v, after %v", inj.SockhashHas(before), inj.SockhashHas(after))
	}
	switch in := cl.FIONREAD(t); {
	case len(in) == 2 && in[0] == 0 && in[1] == 0:
		t.Logf("FIONREAD from C in the sockhash with %d bytes waiting: 0 on both connections (the hazard)", fionreadSent)
	case len(in) == 2 && in[0] == fionreadSent && in[1] == fionreadSent:
		t.Logf("FIONREAD from C in the sockhash: %d on both connections: this kernel counts right there", fionreadSent)
	default:
		t.Errorf("FIONREAD from C in the sockhash with %d bytes waiting: %v; want 0 (the hazard) or %d on both", fionreadSent, in, fionreadSent)
	}
	inj.Untrack(cl.PID)
	if inj.SockhashHas(before) || inj.SockhashHas(after) {
		t.Fatal("still in the sockhash after Untrack")
	}
	got := cl.FIONREAD(t)
	t.Logf("FIONREAD from C with %d bytes waiting: %v outside the sockhash", fionreadSent, got)
	if len(got) != 2 || got[0] != fionreadSent || got[1] != fionreadSent {
		t.Errorf("FIONREAD from C outside the sockhash: %v, want %d each", got, fionreadSent)
	}
}
