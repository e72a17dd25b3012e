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

// probeKernel checks, with cilium/ebpf's feature probes (real loads),
// what injection needs; a missing piece is reported wrapping
// ErrUnsupported. bpftool's feature probe misreports on locked-down
// kernels, so it is not used.
func probeKernel() error {
	checks := []struct {
		what  string
		probe func() error
	}{
		{"sockops programs", func() error { return features.HaveProgramType(ebpf.SockOps) }},
		{"sk_msg programs", func() error { return features.HaveProgramType(ebpf.SkMsg) }},
		{"sockhash maps", func() error { return features.HaveMapType(ebpf.SockHash) }},
		{"socket storage maps", func() error { return features.HaveMapType(ebpf.SkStorage) }},
		{"bpf_sock_hash_update in sockops", helper(ebpf.SockOps, asm.FnSockHashUpdate)},
		{"bpf_sk_storage_get in sockops", helper(ebpf.SockOps, asm.FnSkStorageGet)},
		{"bpf_sk_storage_get in sk_msg", helper(ebpf.SkMsg, asm.FnSkStorageGet)},
		{"bpf_msg_push_data", helper(ebpf.SkMsg, asm.FnMsgPushData)},
		{"bpf_msg_pull_data", helper(ebpf.SkMsg, asm.FnMsgPullData)},
		{"bpf_msg_pop_data", helper(ebpf.SkMsg, asm.FnMsgPopData)},
		{"bpf_loop in sk_msg", helper(ebpf.SkMsg, asm.FnLoop)},
	}
	for _, c := range checks {
		err := c.probe()
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("%w: no %s", ErrUnsupported, c.what)
		}
		if err != nil {
			return fmt.Errorf("probing for %s: %w", c.what, err)
		}
	}
	return nil
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

func helper(pt ebpf.ProgramType, fn asm.BuiltinFunc) func() error {
	return func() error { return features.HaveProgramHelper(pt, fn) }
}
