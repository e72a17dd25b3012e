package procs

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// pfKthread is PF_KTHREAD in the flags field of /proc/PID/stat.
const pfKthread = 0x00200000

type stat struct {
	comm      string
	flags     uint64
	startTime uint64
}

func (s stat) kthread() bool { return s.flags&pfKthread != 0 }

var errBadStat = errors.New("malformed stat line")

// parseStat parses /proc/PID/stat. The comm field is in parentheses and may
// itself contain spaces and ')', so fields are counted from the last ')'.
func parseStat(b []byte) (stat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return stat{}, errBadStat
	}
	// rest[0] is field 3 (state); field n is rest[n-3].
	rest := strings.Fields(string(b[end+1:]))
	if len(rest) < 20 {
		return stat{}, errBadStat
	}
	flags, err1 := strconv.ParseUint(rest[9-3], 10, 64)
	start, err2 := strconv.ParseUint(rest[22-3], 10, 64)
	if err1 != nil || err2 != nil {
		return stat{}, errBadStat
	}
	return stat{comm: string(b[open+1 : end]), flags: flags, startTime: start}, nil
}

// splitCmdline splits the NUL-separated /proc/PID/cmdline. A process that
// rewrote its argv may leave no NULs; the whole text is then one element.
func splitCmdline(b []byte) []string {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// parseCgroup parses /proc/PID/cgroup lines "ID:controllers:path". The
// "0::" line is cgroup v2; other lines are v1 hierarchies whose
// comma-separated controllers each map to the path. Paths may contain ':'.
func parseCgroup(b []byte) (v2 string, v1 map[string]string) {
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimRight(line, "\n"), ":", 3)
		if len(parts) != 3 {
			continue
		}
		id, ctrls, p := parts[0], parts[1], parts[2]
		if id == "0" && ctrls == "" {
			v2 = p
			continue
		}
		for c := range strings.SplitSeq(ctrls, ",") {
			if c == "" {
				continue
			}
			if v1 == nil {
				v1 = make(map[string]string)
			}
			v1[c] = p
		}
	}
	return v2, v1
}
