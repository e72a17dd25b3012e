package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestGRPCOptionOnly: gRPC over h2c where no header is inserted (propagation
// "tcp", as on kernels before 5.17, which have no injection, or for a Go
// program that calls C, whose sockets stay out of the sockhash): the TCP
// option on the first segment of the write that opens a stream carries A's
// call to B, filed where the write is seen before its bytes leave (the
// syscalls source's write entry; with socket tracepoints, the pre-send
// hook tcp_sendmsg_locked). B's span is A's call's child, never another's.
func TestGRPCOptionOnly(t *testing.T) {
	needRoot(t)
	for _, capture := range presendSources(t) {
		t.Run(capture, func(t *testing.T) { grpcOptionRun(t, capture, "tcp", nil) })
	}
}

// TestGRPCCgoClientOption: a Go gRPC client that calls C (here getpid; in
// life librdkafka, libpq...) never has its sockets in the injector's
// sockhash, so with the default propagation its calls get no header; the
// TCP option still carries A's call to B, filed by the pre-send hook with
// socket tracepoints (6.16+) or at the write's entry with syscalls.
func TestGRPCCgoClientOption(t *testing.T) {
	needRoot(t)
	grpcOptionRun(t, presendSources(t)[0], "headers,tcp", []string{"-tags", "weftcgo"})
}

// presendSources are the capture sources that see a send before its bytes
// leave on this kernel: syscalls always, sock_tracepoints with
// tcp_sendmsg_locked (Linux 6.16+).
func presendSources(t *testing.T) []string {
	t.Helper()
	srcs := captureSources(t)
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatalf("reading kernel BTF: %v", err)
	}
	var tp *btf.Typedef
	if slices.Contains(srcs, "sock_tracepoints") && spec.TypeByName("btf_trace_tcp_sendmsg_locked", &tp) != nil {
		t.Logf("this kernel has no tcp_sendmsg_locked tracepoint: socket tracepoints file no option for Go h2c")
		return []string{"syscalls"}
	}
	return srcs
}

// grpcOptionRun: A (built with aArgs) relays n calls to B over h2c; every
// one of B's server spans that has a parent is A's call's child, and at
// most 30% are roots. No header is ever inserted.
func grpcOptionRun(t *testing.T, capture, propagation string, aArgs []string) {
	col := otelcol.Start(t)
	dir := t.TempDir()
	src := filepath.Join(repoRoot(t), "testdata/grpcserver")
	bin := goBuild(t, src, "", filepath.Join(dir, "weft-e2e-grpcopt"))
	aBin := bin
	if len(aArgs) > 0 {
		aBin = goBuild(t, src, "", filepath.Join(dir, "weft-e2e-grpcopt-a"), aArgs...)
	}
	a := startServer(t, "a", aBin)
	b := startServer(t, "b", bin)
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-propagation", propagation, "-capture", capture,
		"-pid", fmt.Sprint(a.PID()), "-pid", fmt.Sprint(b.PID()))
	ag.waitTracked(t, a.PID())
	ag.waitTracked(t, b.PID())
	const n = 20
	var lines []string
	for range n {
		lines = append(lines, "hop grpc://"+b.Addr)
	}
	cmd := exec.Command(bin, "-call", a.Addr, "-stdin")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.Output(); err != nil || strings.Count(string(out), "OK") != n {
		t.Fatalf("calls: %q %v", out, err)
	}
	pid := func(s otelcol.Span) string { return fmt.Sprint(s.Resource["process.pid"]) }
	spans := col.WaitSpans(t, 3*n, 60*time.Second, func(s otelcol.Span) bool {
		return pid(s) == fmt.Sprint(a.PID()) || pid(s) == fmt.Sprint(b.PID())
	})
	var aSrv, aCli, bSrv []otelcol.Span
	for _, s := range inStartOrder(spans) {
		switch {
		case s.Kind == 2 && pid(s) == fmt.Sprint(a.PID()):
			aSrv = append(aSrv, s)
		case s.Kind == 3 && pid(s) == fmt.Sprint(a.PID()):
			aCli = append(aCli, s)
		case s.Kind == 2 && pid(s) == fmt.Sprint(b.PID()):
			bSrv = append(bSrv, s)
		}
	}
	if len(aSrv) != n || len(aCli) != n || len(bSrv) != n {
		t.Fatalf("A server %d, A client %d, B server %d: want %d each", len(aSrv), len(aCli), len(bSrv), n)
	}
	roots := 0
	for i := range n {
		if aCli[i].ParentSpanID != aSrv[i].SpanID {
			t.Errorf("call %d: A's call has parent %q, A's request is %s", i, aCli[i].ParentSpanID, aSrv[i].SpanID)
		}
		switch {
		case bSrv[i].ParentSpanID == "":
			roots++ // the connection's first stream, or a write read together with another
		case bSrv[i].ParentSpanID != aCli[i].SpanID || bSrv[i].TraceID != aCli[i].TraceID:
			t.Errorf("call %d: B's request has parent %q in %s, not A's call %s in %s", i, bSrv[i].ParentSpanID, bSrv[i].TraceID, aCli[i].SpanID, aCli[i].TraceID)
		}
	}
	t.Logf("%d calls: B's span a root %d; options filed %v, written %v, read %v; server streams parented by an option %v",
		n, roots, ag.metric(t, `weft_sockio_kernel_total{name="h2_option"}`), ag.metric(t, `weft_tcpopt_total{name="written"}`),
		ag.metric(t, `weft_tcpopt_total{name="read"}`), ag.metric(t, `weft_gogrpc_kernel_total{name="option_parent"}`))
	if roots > n*3/10 {
		t.Errorf("%d of %d calls reached B without A's context", roots, n)
	}
	if got := ag.metric(t, `weft_inject_total{name="h2_injected"}`); got != 0 {
		t.Errorf("%v HTTP/2 headers inserted, want none", got)
	}
}

// TestGRPCReadTogether: B makes its first read late (-first-read-delay),
// as a busy server does, so that the client's SETTINGS and the segment
// with the first call's HEADERS and TCP option wait in the socket. grpc-go
// reads the 24-byte preface alone, then the rest in one read that begins
// before the option's segment. The option still goes to that call's
// stream (counted as h2_option_after_frames): the connection's first call
// is linked, not a root. Deterministic, unlike the slow-guest race
// TestShortLivedClients met on 5.10.
func TestGRPCReadTogether(t *testing.T) {
	needRoot(t)
	for _, capture := range presendSources(t) {
		t.Run(capture, func(t *testing.T) {
			col := otelcol.Start(t)
			bin := goBuild(t, filepath.Join(repoRoot(t), "testdata/grpcserver"), "", filepath.Join(t.TempDir(), "weft-e2e-grpctogether"))
			a := startServer(t, "a", bin)
			b := startServer(t, "b", bin, "-first-read-delay", "300ms")
			ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint}, "-propagation", "tcp", "-capture", capture,
				"-pid", fmt.Sprint(a.PID()), "-pid", fmt.Sprint(b.PID()))
			ag.waitTracked(t, a.PID())
			ag.waitTracked(t, b.PID())
			const n = 3
			cmd := exec.Command(bin, "-call", a.Addr, "-stdin")
			cmd.Stdin = strings.NewReader(strings.Repeat("hop grpc://"+b.Addr+"\n", n))
			if out, err := cmd.Output(); err != nil || strings.Count(string(out), "OK") != n {
				t.Fatalf("calls: %q %v", out, err)
			}
			pid := func(s otelcol.Span) string { return fmt.Sprint(s.Resource["process.pid"]) }
			spans := col.WaitSpans(t, 3*n, 60*time.Second, func(s otelcol.Span) bool {
				return pid(s) == fmt.Sprint(a.PID()) || pid(s) == fmt.Sprint(b.PID())
			})
			var aCli, bSrv []otelcol.Span
			for _, s := range inStartOrder(spans) {
				switch {
				case s.Kind == 3 && pid(s) == fmt.Sprint(a.PID()):
					aCli = append(aCli, s)
				case s.Kind == 2 && pid(s) == fmt.Sprint(b.PID()):
					bSrv = append(bSrv, s)
				}
			}
			if len(aCli) != n || len(bSrv) != n {
				t.Fatalf("A client %d, B server %d: want %d each", len(aCli), len(bSrv), n)
			}
			for i := range n {
				if bSrv[i].ParentSpanID != "" && bSrv[i].ParentSpanID != aCli[i].SpanID {
					t.Errorf("call %d: B's request has parent %q, not A's call %s", i, bSrv[i].ParentSpanID, aCli[i].SpanID)
				}
			}
			together := ag.metric(t, `weft_sockio_kernel_total{name="h2_option_after_frames"}`)
			t.Logf("B's parents %q %q %q; options read after other frames %v", bSrv[0].ParentSpanID, bSrv[1].ParentSpanID,
				bSrv[2].ParentSpanID, together)
			if bSrv[0].ParentSpanID != aCli[0].SpanID {
				t.Errorf("the connection's first call reached B without A's context")
			}
			if together < 1 {
				t.Errorf("no option was read after other frames: the test did not make the reads it is about")
			}
		})
	}
}
