// Package kernel is the one gate for tests that need the kernel: root, and
// for most of them BPF. Under -short (`make unit`) such a test is skipped;
// otherwise (`make test`, run as root) a missing requirement fails it, so
// the full suite can never pass with its kernel tests silently left out.
//
// Every test that loads BPF, attaches probes, mounts, enters or creates
// namespaces, or writes cgroups calls Require or RequireRoot first, and
// never t.Skip on its own account.
package kernel

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/rlimit"
)

// hint says how to run a kernel test, or how to leave it out.
const hint = "run the suite as root (make test) or pass -short to leave kernel tests out (make unit)"

// Require marks a test that loads BPF programs into the kernel. Under
// -short it skips the test. Otherwise it fails the test unless the process
// is root, can load a BPF program, and the kernel has BTF (weft's programs
// are CO-RE).
func Require(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("loads BPF into the kernel: not in -short")
	}
	if msg := missing(os.Geteuid(), true, probeBPF); msg != "" {
		tb.Fatal(msg)
	}
}

// RequireRoot marks a test that needs root but no BPF: mounting, network
// namespaces, writing cgroups. Under -short it skips the test; otherwise
// it fails the test unless the process is root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs root: not in -short")
	}
	if msg := missing(os.Geteuid(), false, probeBPF); msg != "" {
		tb.Fatal(msg)
	}
}

// missing says what the test lacks ("" if nothing): root, and with bpf
// what probe reports.
func missing(euid int, bpf bool, probe func() error) string {
	if euid != 0 {
		return fmt.Sprintf("needs root, but euid is %d: %s", euid, hint)
	}
	if !bpf {
		return ""
	}
	if err := probe(); err != nil {
		return fmt.Sprintf("needs BPF, but this root process cannot use it: %v (%s)", err, hint)
	}
	return ""
}

// probeBPF loads a kprobe program (what the probes load; it needs
// CAP_BPF and CAP_PERFMON or CAP_SYS_ADMIN, which a container's root may
// lack) and reads the kernel's BTF. It runs once per test binary.
var probeBPF = sync.OnceValue(func() error {
	// Before 5.11 BPF maps count against RLIMIT_MEMLOCK (the agent lifts
	// it at start too).
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("lifting RLIMIT_MEMLOCK for BPF maps: %w", err)
	}
	if err := features.HaveProgramType(ebpf.Kprobe); err != nil {
		return fmt.Errorf("loading a kprobe program: %w", err)
	}
	if _, err := btf.LoadKernelSpec(); err != nil {
		return fmt.Errorf("kernel BTF (/sys/kernel/btf/vmlinux, needed for CO-RE): %w", err)
	}
	return nil
})
