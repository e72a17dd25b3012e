package inject

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/weft-dev/weft/internal/testutil/kernel"
)

// TestCgroup2Root finds this host's cgroup v2 hierarchy from the cgroup
// mount point (hybrid: its "unified" folder), from the v2 mount itself, and
// says clearly when a folder holds none.
func TestCgroup2Root(t *testing.T) {
	var want string
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			want = p
			break
		}
	}
	if want == "" {
		t.Fatal("this host has no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	}
	for _, in := range []string{"/sys/fs/cgroup", want} {
		got, err := Cgroup2Root(in)
		if err != nil || got != want {
			t.Errorf("Cgroup2Root(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	empty := t.TempDir()
	os.Mkdir(filepath.Join(empty, "unified"), 0o755)
	if _, err := Cgroup2Root(empty); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Cgroup2Root(plain folder) = %v, want ErrUnsupported", err)
	}
}

// fakeKernel lacks the helpers in noHelper (by program type) and the
// program types in noProg; everything else it has.
func fakeKernel(noProg []ebpf.ProgramType, noHelper map[ebpf.ProgramType][]asm.BuiltinFunc) kernelProbes {
	return kernelProbes{
		progType: func(pt ebpf.ProgramType) error {
			if slices.Contains(noProg, pt) {
				return ebpf.ErrNotSupported
			}
			return nil
		},
		mapType: func(ebpf.MapType) error { return nil },
		helper: func(pt ebpf.ProgramType, fn asm.BuiltinFunc) error {
			if slices.Contains(noProg, pt) || slices.Contains(noHelper[pt], fn) {
				return ebpf.ErrNotSupported
			}
			return nil
		},
	}
}

// TestProbeKernel: which hook each kind of kernel gets, and what an
// unsupported one is told. Decided by the feature probes' answers alone.
func TestProbeKernel(t *testing.T) {
	noPidInSockops := map[ebpf.ProgramType][]asm.BuiltinFunc{ebpf.SockOps: {asm.FnGetCurrentPidTgid}} // 6.1
	for _, tc := range []struct {
		name     string
		k        kernelProbes
		want     Hook
		got      Hook
		errParts []string // the error says all of these (and wraps ErrUnsupported)
	}{
		{name: "6.18: sockops reads the process", k: fakeKernel(nil, nil), want: HookAuto, got: HookSockops},
		{name: "6.18, connect forced", k: fakeKernel(nil, nil), want: HookConnect, got: HookConnect},
		{name: "6.1: cgroup/connect reads it", k: fakeKernel(nil, noPidInSockops), want: HookAuto, got: HookConnect},
		{name: "6.1, sockops forced", k: fakeKernel(nil, noPidInSockops), want: HookSockops,
			errParts: []string{"sockops programs cannot call bpf_get_current_pid_tgid"}},
		{name: "5.10: no bpf_loop", k: fakeKernel(nil, map[ebpf.ProgramType][]asm.BuiltinFunc{
			ebpf.SockOps: {asm.FnGetCurrentPidTgid}, ebpf.SkMsg: {asm.FnLoop}}), want: HookAuto,
			errParts: []string{"needs bpf_loop, Linux 5.17+", "bpf_msg_push_data/pop_data fixes", "5.10.231"}},
		{name: "no pid anywhere", k: fakeKernel(nil, map[ebpf.ProgramType][]asm.BuiltinFunc{
			ebpf.SockOps: {asm.FnGetCurrentPidTgid}, ebpf.CGroupSockAddr: {asm.FnSkStorageGet}}), want: HookAuto,
			errParts: []string{"sockops programs cannot call bpf_get_current_pid_tgid", "no bpf_sk_storage_get in cgroup/connect programs"}},
		{name: "no sock_addr programs", k: fakeKernel([]ebpf.ProgramType{ebpf.CGroupSockAddr}, noPidInSockops), want: HookAuto,
			errParts: []string{"no cgroup/connect (sock_addr) programs"}},
		{name: "no sk_msg", k: fakeKernel([]ebpf.ProgramType{ebpf.SkMsg}, nil), want: HookAuto,
			errParts: []string{"no sk_msg programs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := probeKernel(tc.k, tc.want)
			if tc.errParts == nil {
				if err != nil || got != tc.got {
					t.Fatalf("probeKernel(%v) = %v, %v; want %v", tc.want, got, err, tc.got)
				}
				return
			}
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("probeKernel(%v) = %v, %v; want ErrUnsupported", tc.want, got, err)
			}
			for _, p := range tc.errParts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not say %q", err, p)
				}
			}
		})
	}
	// A probe that cannot tell is an error of its own, not "unsupported".
	broken := fakeKernel(nil, nil)
	broken.helper = func(ebpf.ProgramType, asm.BuiltinFunc) error { return errors.New("EPERM") }
	if _, err := probeKernel(broken, HookAuto); err == nil || errors.Is(err, ErrUnsupported) {
		t.Errorf("a failing probe: %v, want an error that is not ErrUnsupported", err)
	}
}

// TestKernelChoice runs on the kernel under test (this host, or a guest of
// scripts/vm/run.sh): the injector starts with the hook the feature probes
// pick, or, on a kernel without bpf_loop, fails to start with
// ErrUnsupported saying so, leaving the injector inert.
func TestKernelChoice(t *testing.T) {
	kernel.Require(t)
	inj := New(nil, "")
	t.Cleanup(func() { inj.Shutdown(context.Background()) })
	err := inj.Start(context.Background())
	if features.HaveProgramHelper(ebpf.SkMsg, asm.FnLoop) != nil {
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "needs bpf_loop, Linux 5.17+") {
			t.Fatalf("Start without bpf_loop: %v; want ErrUnsupported naming bpf_loop", err)
		}
		if inj.CtxMap() != nil {
			t.Error("a failed injector has a ctx map")
		}
		t.Logf("injection off, as it must be: %v", err)
		return
	}
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	want := HookConnect
	if features.HaveProgramHelper(ebpf.SockOps, asm.FnGetCurrentPidTgid) == nil {
		want = HookSockops
	}
	got, why := inj.Hook()
	if got != want || why == "" {
		t.Fatalf("running hook %v (%q), want %v", got, why, want)
	}
	t.Logf("hook %v: %s", got, why)
}
