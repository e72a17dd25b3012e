package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// setMemoryLimit gives the Go runtime a soft memory limit of 80 % of the
// agent's cgroup limit (the DaemonSet's resources.limits.memory), unless
// GOMEMLIMIT is set: the collector then works harder before the kernel's
// OOM killer would. Without a cgroup limit nothing changes.
func setMemoryLimit(log *slog.Logger, readFile func(string) ([]byte, error)) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit, ok := cgroupMemoryMax(readFile)
	if !ok {
		return
	}
	soft := limit / 10 * 8
	debug.SetMemoryLimit(soft)
	log.Info("memory limit from the cgroup", "cgroup_bytes", limit, "go_soft_limit_bytes", soft)
}

// cgroupMemoryMax reads this process's cgroup v2 memory.max (or v1
// memory.limit_in_bytes); false when there is none.
func cgroupMemoryMax(readFile func(string) ([]byte, error)) (int64, bool) {
	b, err := readFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			file = "/sys/fs/cgroup" + parts[2] + "/memory.max"
		case strings.Contains(","+parts[1]+",", ",memory,"):
			file = "/sys/fs/cgroup/memory" + parts[2] + "/memory.limit_in_bytes"
		default:
			continue
		}
		v, err := readFile(file)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		// "max", or v1's near-2^63 "unlimited".
		if err != nil || n <= 0 || n >= 1<<60 {
			continue
		}
		return n, true
	}
	return 0, false
}
