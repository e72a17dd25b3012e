package inject

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/listener"
)

// echoBin is the testdata echoserver, built once by TestMain.
var echoBin string

// Where nothing can be compiled (a test binary run on another kernel under
// scripts/vm/run.sh), these name test programs built beforehand:
// testdata/echoserver (CGO_ENABLED=0) and testdata/fionread (cgo).
const (
	echoEnv     = "WEFT_INJECT_ECHOSERVER"
	fionreadEnv = "WEFT_INJECT_FIONREAD"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // the tests that need the server are skipped
	}
	if echoBin = os.Getenv(echoEnv); echoBin != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "weft-inject-test")
	if err != nil {
		panic(err)
	}
	echoBin = filepath.Join(dir, "echoserver")
	cmd := exec.Command("go", "build", "-o", echoBin, ".")
	cmd.Dir = "testdata/echoserver"
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building echoserver: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// echo mirrors the echoserver's answer.
type echo struct {
	Method      string              `json:"method"`
	Path        string              `json:"path"`
	Traceparent []string            `json:"traceparent"`
	Header      map[string][]string `json:"header"`
	Chunked     bool                `json:"chunked"`
	Len         int64               `json:"len"`
	SHA256      string              `json:"sha256"`
}

// testHooks are the hooks the injection tests run with: the one Start
// picks on this kernel, and HookConnect when that is not it, so that a
// host whose sockops programs may read the connecting process (6.18) runs
// the path of kernels whose cannot (6.1) too.
func testHooks(t *testing.T) []Hook {
	t.Helper()
	h, err := probeKernel(liveKernel(), HookAuto)
	if err != nil {
		t.Fatalf("this kernel cannot run the injector: %v", err)
	}
	if h == HookConnect {
		return []Hook{HookConnect}
	}
	return []Hook{h, HookConnect}
}

// eachHook runs test once per hook of testHooks, as subtests named after
// them.
func eachHook(t *testing.T, test func(*testing.T, Hook)) {
	t.Helper()
	kernel.Require(t)
	for _, h := range testHooks(t) {
		t.Run(h.String(), func(t *testing.T) { test(t, h) })
	}
}

// startInjector starts an injector with hook h for one test (HookAuto: the
// one the kernel picks); it is shut down (twice, which must be safe) when
// the test ends.
func startInjector(t *testing.T, h Hook) *Injector {
	t.Helper()
	kernel.Require(t)
	inj := New(nil, "")
	inj.SetHook(h)
	if err := inj.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got, why := inj.Hook(); got != h && h != HookAuto {
		t.Fatalf("Start with hook %v runs %v (%s)", h, got, why)
	}
	t.Cleanup(func() {
		if err := inj.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		inj.Shutdown(context.Background())
	})
	return inj
}

// startServer runs the echoserver (an untraced process) and returns its
// address.
func startServer(t *testing.T) string {
	t.Helper()
	addr, _ := startServerProc(t)
	return addr
}

// startServerProc is startServer that also returns the server's pid.
func startServerProc(t *testing.T) (string, int) {
	t.Helper()
	srv := listener.Start(t, echoBin)
	return srv.Addr, srv.PID
}

// trackSelf makes the test process a traced client until the test ends.
func trackSelf(t *testing.T, inj *Injector) {
	t.Helper()
	if err := inj.Track(os.Getpid(), nil); err != nil {
		t.Fatalf("Track: %v", err)
	}
	t.Cleanup(func() { inj.Untrack(os.Getpid()) })
}

func cookieOf(t *testing.T, c net.Conn) uint64 {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v uint64
	var gerr error
	raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// ids is one request's context as the client probe would write it.
type ids struct {
	trace  [16]byte
	span   [8]byte
	parent [8]byte // the span the call is made for
	flags  uint8
}

func newIDs() ids {
	var x ids
	rand.Read(x.trace[:])
	rand.Read(x.span[:])
	rand.Read(x.parent[:])
	x.flags = 1
	return x
}

func (x ids) header() string {
	return fmt.Sprintf("00-%s-%s-%02x", hex.EncodeToString(x.trace[:]), hex.EncodeToString(x.span[:]), x.flags)
}

func setCtx(t *testing.T, inj *Injector, cookie uint64, x ids) {
	t.Helper()
	v := injectInjectCtx{TraceId: x.trace, SpanId: x.span, FwdId: x.parent, Flags: x.flags}
	if err := inj.CtxMap().Put(cookie, &v); err != nil {
		t.Fatal(err)
	}
}

func clearCtx(inj *Injector, cookie uint64) { _ = inj.CtxMap().Delete(cookie) }

// conn is a keep-alive client connection written to with raw writes, so
// that each test controls where sendmsg calls start and end.
type conn struct {
	net.Conn
	rd     *bufio.Reader
	cookie uint64
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{Conn: c, rd: bufio.NewReader(c), cookie: cookieOf(t, c)}
}

// roundTrip sends the request in the given writes (one sendmsg each) and
// returns the server's echo.
func (c *conn) roundTrip(t *testing.T, writes ...[]byte) echo {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for _, w := range writes {
		if n, err := c.Write(w); err != nil || n != len(w) {
			t.Fatalf("write: %d of %d: %v", n, len(w), err)
		}
	}
	return c.readEcho(t)
}

func (c *conn) readEcho(t *testing.T) echo {
	t.Helper()
	resp, err := http.ReadResponse(c.rd, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	return e
}

// waitFor polls cond for up to two seconds.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
