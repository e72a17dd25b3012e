package inject

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// Hook is how the injector learns which process opened a connection, to
// let only tracked processes' sockets into the sockhash.
type Hook int

const (
	// HookAuto: HookSockops where the kernel allows it, else HookConnect.
	HookAuto Hook = iota
	// HookSockops: the sockops program reads the connecting process at
	// TCP_CONNECT_CB. Needs bpf_get_current_pid_tgid in sockops programs,
	// which Linux 6.1 and 5.10 do not allow (6.18 and Debian's 6.12.118 do).
	HookSockops
	// HookConnect: cgroup/connect4 and connect6 programs on the same cgroup
	// record it in connect(2), where 5.10 and 6.1 allow the helper; the
	// sockops program only adds the socket once established. One more
	// program run per connect(2) (TCP or UDP) in the cgroup.
	HookConnect
)

func (h Hook) String() string {
	switch h {
	case HookAuto:
		return "auto"
	case HookSockops:
		return "sockops"
	case HookConnect:
		return "connect"
	}
	return fmt.Sprintf("Hook(%d)", int(h))
}

// kernelProbes answers what the kernel has. The agent uses cilium/ebpf's
// feature probes (liveKernel), which load small programs and maps;
// tests substitute kernels that lack things.
type kernelProbes struct {
	progType func(ebpf.ProgramType) error
	mapType  func(ebpf.MapType) error
	helper   func(ebpf.ProgramType, asm.BuiltinFunc) error
}

func liveKernel() kernelProbes {
	return kernelProbes{features.HaveProgramType, features.HaveMapType, features.HaveProgramHelper}
}

// check is one thing injection needs, and what to say when it is missing.
type check struct {
	what  string
	probe func(kernelProbes) error
}

func progType(pt ebpf.ProgramType, what string) check {
	return check{what, func(k kernelProbes) error { return k.progType(pt) }}
}

func mapType(mt ebpf.MapType, what string) check {
	return check{what, func(k kernelProbes) error { return k.mapType(mt) }}
}

func helper(pt ebpf.ProgramType, fn asm.BuiltinFunc, what string) check {
	return check{what, func(k kernelProbes) error { return k.helper(pt, fn) }}
}

// noLoop is why injection is off on kernels before 5.17 (Debian 11's
// 5.10 among them).
const noLoop = "the sk_msg program needs bpf_loop, Linux 5.17+, which this kernel lacks " +
	"(it also needs the bpf_msg_push_data/pop_data fixes of 6.13, or stable 6.12.2, 6.6.64, 6.1.120, 5.15.174, 5.10.231)"

var (
	// What every variant needs.
	baseChecks = []check{
		progType(ebpf.SockOps, "no sockops programs"),
		progType(ebpf.SkMsg, "no sk_msg programs"),
		mapType(ebpf.SockHash, "no sockhash maps"),
		mapType(ebpf.SkStorage, "no socket storage maps"),
		helper(ebpf.SkMsg, asm.FnLoop, noLoop),
		helper(ebpf.SockOps, asm.FnSockHashUpdate, "no bpf_sock_hash_update in sockops"),
		helper(ebpf.SockOps, asm.FnSkStorageGet, "no bpf_sk_storage_get in sockops"),
		helper(ebpf.SkMsg, asm.FnSkStorageGet, "no bpf_sk_storage_get in sk_msg"),
		helper(ebpf.SkMsg, asm.FnMsgPushData, "no bpf_msg_push_data"),
		helper(ebpf.SkMsg, asm.FnMsgPullData, "no bpf_msg_pull_data"),
		helper(ebpf.SkMsg, asm.FnMsgPopData, "no bpf_msg_pop_data"),
	}
	sockopsChecks = []check{
		helper(ebpf.SockOps, asm.FnGetCurrentPidTgid, "sockops programs cannot call bpf_get_current_pid_tgid"),
	}
	connectChecks = []check{
		progType(ebpf.CGroupSockAddr, "no cgroup/connect (sock_addr) programs"),
		helper(ebpf.CGroupSockAddr, asm.FnGetCurrentPidTgid, "no bpf_get_current_pid_tgid in cgroup/connect programs"),
		helper(ebpf.CGroupSockAddr, asm.FnSkStorageGet, "no bpf_sk_storage_get in cgroup/connect programs"),
		helper(ebpf.CGroupSockAddr, asm.FnGetSocketCookie, "no bpf_get_socket_cookie in cgroup/connect programs"),
	}
)

// missing names the first thing in checks the kernel lacks ("" if
// none), or returns the error of a probe that could not tell.
func missing(k kernelProbes, checks []check) (string, error) {
	for _, c := range checks {
		err := c.probe(k)
		if errors.Is(err, ebpf.ErrNotSupported) {
			return c.what, nil
		}
		if err != nil {
			return "", fmt.Errorf("probing the kernel (%s otherwise): %w", c.what, err)
		}
	}
	return "", nil
}

// probeKernel checks, with the feature probes of k (real loads), what
// injection needs, and picks the hook (want, unless HookAuto). A missing
// piece is reported wrapping ErrUnsupported. bpftool's feature probe
// misreports on locked-down kernels, so it is not used.
func probeKernel(k kernelProbes, want Hook) (Hook, error) {
	need := func(checks []check) error {
		what, err := missing(k, checks)
		if err == nil && what != "" {
			err = fmt.Errorf("%w: %s", ErrUnsupported, what)
		}
		return err
	}
	if err := need(baseChecks); err != nil {
		return 0, err
	}
	switch want {
	case HookSockops:
		return HookSockops, need(sockopsChecks)
	case HookConnect:
		return HookConnect, need(connectChecks)
	case HookAuto:
	default:
		return 0, fmt.Errorf("inject: unknown hook %v", want)
	}
	noPid, err := missing(k, sockopsChecks)
	if err != nil {
		return 0, err
	}
	if noPid == "" {
		return HookSockops, nil
	}
	noConnect, err := missing(k, connectChecks)
	if err != nil {
		return 0, err
	}
	if noConnect != "" {
		return 0, fmt.Errorf("%w: %s, and %s", ErrUnsupported, noPid, noConnect)
	}
	return HookConnect, nil
}

// Cgroup2Root finds the cgroup v2 hierarchy at or just below path: path
// itself on a unified host, path/unified on a hybrid one (cgroup v1
// controllers with v2 mounted beside them, as on this kind of node).
func Cgroup2Root(path string) (string, error) {
	for _, p := range []string{path, filepath.Join(path, "unified")} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: no cgroup v2 mount at %s or %s/unified", ErrUnsupported, path, path)
}
