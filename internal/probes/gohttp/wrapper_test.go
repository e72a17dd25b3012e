package gohttp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/goinspect"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/probes/sockio"
	"github.com/weft-dev/weft/internal/protocols/http1"
	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/listener"
	"github.com/weft-dev/weft/internal/testutil/spanrec"
)

// TestConnWrappers: a program whose Transport's DialContext returns a
// wrapper instead of a *net.TCPConn (testdata/gohttp-wrapper) makes calls
// from its handlers through three clients. Plain calls are linked to the
// handler's span; calls through a wrapper are skipped and counted
// (not_tcpconn), and none leaves a client span's IDs on a socket: the
// "tagged" wrapper, read as a *net.TCPConn, names another open socket of
// the program, where the probe used to put the call's IDs (and link it).
// Run on an ordinary build and on a stripped PIE one (functions from the
// pclntab, a load bias to cancel).
func TestConnWrappers(t *testing.T) {
	kernel.Require(t)
	for _, build := range []struct {
		name  string
		flags []string
	}{
		{"default", nil},
		{"stripped-pie", []string{"-buildmode=pie", "-ldflags=-s -w"}},
	} {
		t.Run(build.name, func(t *testing.T) { testConnWrappers(t, build.flags) })
	}
}

func testConnWrappers(t *testing.T, flags []string) {
	bin := buildWrapper(t, flags)
	b, err := goinspect.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	proc := processOf(t, b)
	if off := proc.GoOffsets[sockio.OffConnFD]; off != 0 {
		t.Fatalf("net.conn.fd at %d: the tagged wrapper assumes 0", off)
	}
	sysfdAt := proc.GoOffsets[sockio.OffNetFDPfd] + proc.GoOffsets[sockio.OffPollFDSysfd]

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer upstream.Close()

	met := metrics.New()
	deps := probes.Deps{Metrics: met, Config: probes.Config{MaxHeaderBytes: 8192}}
	sock := sockio.New(deps, conntrack.Protocols{
		Fallback: http1.New(http1.Config{Sink: spanrec.New(), Metrics: met, MaxHeaderBytes: 8192}),
	})
	if err := sock.Start(context.Background()); err != nil {
		t.Fatalf("starting sockio: %v", err)
	}
	defer sock.Shutdown(context.Background())
	p := New(deps, sock, nil)
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("starting gohttp: %v", err)
	}
	defer p.Shutdown(context.Background())
	maps, err := sock.Maps()
	if err != nil {
		t.Fatal(err)
	}

	pid, addr := startWrapper(t, bin, "-sysfd-at", strconv.FormatUint(sysfdAt, 10), "-decoy", upstream.Listener.Addr().String())
	proc.PID, proc.ExePath = pid, fmt.Sprintf("/proc/%d/exe", pid)
	if err := sock.Track(proc); err != nil {
		t.Fatal(err)
	}
	if err := p.Track(proc); err != nil {
		t.Fatal(err)
	}
	proc.Exe = nil // closed with b

	const calls = 5
	for _, tc := range []struct {
		via        string
		linked     uint64 // of the calls
		notTCPConn uint64
	}{
		{via: "plain", linked: calls},
		{via: "counting", notTCPConn: calls},
		{via: "tagged", notTCPConn: calls},
		{via: "plain", linked: calls}, // still, after the wrapped ones
	} {
		before := kernelCounters(t, met)
		for range calls {
			resp, err := http.Get("http://" + addr + "/call?via=" + tc.via + "&to=" + upstream.URL + "/ok")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "200" {
				t.Fatalf("via %s: %d %q", tc.via, resp.StatusCode, body)
			}
		}
		after := kernelCounters(t, met)
		d := func(name string) uint64 { return after[name] - before[name] }
		if d("calls") != calls || d("linked") != tc.linked || d("not_tcpconn") != tc.notTCPConn || d("no_socket") != 0 {
			t.Errorf("via %s: counters moved by calls %d, linked %d, not_tcpconn %d, no_socket %d; want %d, %d, %d, 0",
				tc.via, d("calls"), d("linked"), d("not_tcpconn"), d("no_socket"), calls, tc.linked, tc.notTCPConn)
		}
		// Each call's IDs are taken from client_ctxs by the send of its
		// request, which its response follows: any entry left names a
		// socket that did not carry the call.
		if n := entries(t, maps.ClientCtxs); n != 0 {
			t.Errorf("via %s: %d client span contexts left on sockets that carried no call", tc.via, n)
		}
	}
}

// buildWrapper builds testdata/gohttp-wrapper with extra go build flags.
func buildWrapper(t *testing.T, flags []string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "gohttp-wrapper")
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = "../../../testdata/gohttp-wrapper"
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building gohttp-wrapper %v: %v\n%s", flags, err, msg)
	}
	return out
}

// processOf describes the executable as discovery does for a process of
// it (PID and ExePath are the caller's).
func processOf(t *testing.T, b *goinspect.Binary) *probes.Process {
	t.Helper()
	goid, _, err := goinspect.GoidOffset(b)
	if err != nil {
		t.Fatal(err)
	}
	offs := map[string]uint64{}
	for _, f := range sockio.ClientFields {
		i := strings.LastIndexByte(f, '.')
		off, _, err := b.FieldOffset(f[:i], f[i+1:])
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		offs[f] = off
	}
	for _, f := range GoFields { // as discovery: a field the binary lacks is left out
		i := strings.LastIndexByte(f, '.')
		if off, _, err := b.FieldOffset(f[:i], f[i+1:]); err == nil {
			offs[f] = off
		}
	}
	return &probes.Process{GoVersion: b.GoVersion, GoidOffset: goid, GoOffsets: offs, Exe: b}
}

// startWrapper runs the program until the test ends; it returns its pid
// and address.
func startWrapper(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	srv := listener.Start(t, append([]string{bin}, args...)...)
	return srv.PID, srv.Addr
}

var counterLine = regexp.MustCompile(`^weft_gohttp_kernel_total\{name="([a-z_]+)"\} (\d+)$`)

// kernelCounters scrapes weft_gohttp_kernel_total by name.
func kernelCounters(t *testing.T, met *metrics.Registry) map[string]uint64 {
	t.Helper()
	var buf bytes.Buffer
	if err := met.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, line := range strings.Split(buf.String(), "\n") {
		if m := counterLine.FindStringSubmatch(line); m != nil {
			got[m[1]], _ = strconv.ParseUint(m[2], 10, 64)
		}
	}
	if len(got) == 0 {
		t.Fatalf("no weft_gohttp_kernel_total in\n%s", buf.String())
	}
	return got
}

// entries counts a hash map's entries.
func entries(t *testing.T, m *ebpf.Map) int {
	t.Helper()
	var k, v []byte
	n := 0
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
