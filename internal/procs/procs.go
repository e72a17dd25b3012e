// Package procs reads facts about processes from a procfs tree.
//
// Every function takes the procfs root (normally "/proc") so tests can point
// it at a fake tree. The package keeps no mutable state.
package procs

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// DefaultRoot is the usual procfs mount point.
const DefaultRoot = "/proc"

// ErrGone is wrapped by errors returned for a process that no longer exists
// (it exited, or was reaped, while it was being read). Callers usually skip
// such processes quietly: errors.Is(err, procs.ErrGone).
var ErrGone = errors.New("process is gone")

// ExeKey identifies an executable file by device and inode, so processes
// that share one binary can be recognised even across mount namespaces.
type ExeKey struct{ Dev, Ino uint64 }

// Info holds what Read learns about one process.
type Info struct {
	PID int
	// StartTime is field 22 of /proc/PID/stat (clock ticks since boot).
	// Together with PID it identifies a process instance across PID reuse.
	StartTime uint64
	Comm      string
	// ExePath is the raw target of /proc/PID/exe, as seen in the process's
	// own mount namespace. It ends in " (deleted)" when the file was
	// unlinked; Deleted reports that. It is "" for kernel threads.
	ExePath string
	Deleted bool
	// ExeOpenPath opens the executable even when it was deleted or lives
	// in another mount namespace ("/proc/PID/exe"); "" for kernel threads.
	ExeOpenPath string
	ExeKey      ExeKey
	Cmdline     []string
	// CgroupV2 is the path of the "0::" line of /proc/PID/cgroup, "" if none.
	CgroupV2 string
	// CgroupV1 maps each v1 controller (or "name=..." hierarchy) to its
	// path; nil when the process has no v1 hierarchies.
	CgroupV1 map[string]string
}

// List returns the PIDs of all thread-group leaders (the numeric entries of
// procRoot), in ascending order.
func List(procRoot string) ([]int, error) {
	f, err := os.Open(procRoot)
	if err != nil {
		return nil, fmt.Errorf("procs: list: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("procs: list %s: %w", procRoot, err)
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, ok := parsePID(n); ok {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// parsePID accepts only plain decimal numbers without sign or leading zero.
func parsePID(s string) (int, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	pid, err := strconv.Atoi(s)
	return pid, err == nil && pid > 0
}

// isGone reports whether err means the process does not exist any more.
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// wrap annotates err with the pid and, for a vanished process, ErrGone.
func wrap(pid int, what string, err error) error {
	if isGone(err) {
		return fmt.Errorf("procs: pid %d: %s: %w: %w", pid, what, ErrGone, err)
	}
	return fmt.Errorf("procs: pid %d: %s: %w", pid, what, err)
}
