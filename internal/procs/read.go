package procs

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

const deletedSuffix = " (deleted)"

// Read gathers Info for one process. All files are read through one open
// /proc/PID directory, so they describe the same process instance even if
// the PID is reused meanwhile. A process that exits before or during the
// read yields an error wrapping ErrGone; so does a zombie.
func Read(procRoot string, pid int) (Info, error) {
	d, err := openDir(filepath.Join(procRoot, strconv.Itoa(pid)))
	if err != nil {
		return Info{}, wrap(pid, "open", err)
	}
	defer d.close()

	raw, err := d.read("stat")
	if err != nil {
		return Info{}, wrap(pid, "stat", err)
	}
	st, err := parseStat(raw)
	if err != nil {
		return Info{}, fmt.Errorf("procs: pid %d: %w", pid, err)
	}
	info := Info{PID: pid, StartTime: st.startTime, Comm: st.comm}

	// base is where exe and cmdline are read: "" for the process itself,
	// or "task/TID/" of a live thread when the leader has exited.
	base := ""
	if !st.kthread() {
		if base, err = readExe(d, pid, &info); err != nil {
			return Info{}, wrap(pid, "exe", err)
		}
	}
	if raw, err = d.read(base + "cmdline"); err != nil {
		return Info{}, wrap(pid, "cmdline", err)
	}
	info.Cmdline = splitCmdline(raw)
	if raw, err = d.read("cgroup"); err != nil {
		return Info{}, wrap(pid, "cgroup", err)
	}
	info.CgroupV2, info.CgroupV1 = parseCgroup(raw)
	return info, nil
}

// readExe fills the executable fields and returns the prefix it used. When
// the thread-group leader has exited while other threads go on, the
// leader's exe link (like its cmdline and fd table) is empty, but those of
// the other threads still work, so they are tried before giving up.
func readExe(d dir, pid int, info *Info) (base string, err error) {
	target, err := d.readlink("exe", nil)
	if isGone(err) {
		for _, b := range otherTasks(d, pid) {
			if t, terr := d.readlink(b+"exe", nil); terr == nil {
				base, target, err = b, t, nil
				break
			}
		}
	}
	if err != nil {
		return "", err
	}
	st, err := d.stat(base + "exe")
	if err != nil {
		return "", err
	}
	info.ExePath = target
	info.Deleted = strings.HasSuffix(target, deletedSuffix)
	info.ExeOpenPath = d.name(base + "exe")
	info.ExeKey = ExeKey{Dev: uint64(st.Dev), Ino: st.Ino}
	return base, nil
}

// otherTasks returns "task/TID/" for the threads of d other than its leader.
func otherTasks(d dir, pid int) []string {
	td, err := d.sub("task")
	if err != nil {
		return nil
	}
	defer td.close()
	names, _ := td.names()
	var out []string
	for _, n := range names {
		if n != strconv.Itoa(pid) {
			out = append(out, "task/"+n+"/")
		}
	}
	return out
}
