package main

import (
	"log/slog"

	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// kernelRelease is the running kernel's release ("6.1.0-57-amd64"), for
// /status beside the features it gives the agent.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// allowBPFMemory lifts RLIMIT_MEMLOCK where the kernel still charges BPF
// maps to it (before 5.11: Debian 11's 5.10 among them), so the ring
// buffers and tables can be made. cilium/ebpf's rlimit probes which
// accounting the kernel uses and does nothing on newer ones. It needs
// CAP_SYS_RESOURCE there; without it the load fails later with the
// reason, so this only warns.
func allowBPFMemory(log *slog.Logger) {
	if err := rlimit.RemoveMemlock(); err != nil {
		log.Warn("RLIMIT_MEMLOCK not lifted: BPF maps may fail to load on this kernel (before 5.11 they count against it; grant CAP_SYS_RESOURCE)", "err", err)
	}
}
