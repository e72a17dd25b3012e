// Package kernelfs makes sure the kernel filesystems BPF attachment needs are
// mounted. Tracepoint links look up event IDs in tracefs, which minimal hosts
// and fresh containers often lack.
package kernelfs

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// TracefsPath is where tracefs is expected.
const TracefsPath = "/sys/kernel/tracing"

// EnsureTracefs mounts tracefs at TracefsPath unless it (or debugfs's
// tracing directory) is already there. Safe to call many times.
func EnsureTracefs() error {
	for _, p := range []string{TracefsPath + "/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	err := unix.Mount("tracefs", TracefsPath, "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mounting tracefs at %s (tracepoints need it; mount it on the host or grant CAP_SYS_ADMIN): %w", TracefsPath, err)
	}
	return nil
}
