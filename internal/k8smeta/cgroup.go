package k8smeta

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Ref is what a process's cgroup path says about it: the container it runs
// in and the pod that container belongs to. Either may be empty.
type Ref struct {
	ContainerID string // 64 lowercase hex digits, no runtime prefix
	PodUID      string // as in the Pod object: dashes, not underscores
}

// ReadCgroup parses /proc/<pid>/cgroup under procRoot ("/proc" normally).
func ReadCgroup(procRoot string, pid int) (Ref, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return Ref{}, fmt.Errorf("k8smeta: read cgroup of pid %d: %w", pid, err)
	}
	return ParseCgroup(string(b)), nil
}

// ParseCgroup reads the text of /proc/PID/cgroup, cgroup v1 (one line per
// hierarchy) or v2 ("0::/path"), as laid out by kubelet's cgroupfs and
// systemd drivers under containerd, CRI-O or Docker:
//
//	/kubepods/burstable/pod<uid>/<id>                                      cgroupfs
//	/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<u_i_d>.slice/cri-containerd-<id>.scope
//	.../kubepods-pod<u_i_d>.slice/crio-<id>.scope                           systemd, Guaranteed QoS
//	.../docker-<id>.scope, /docker/<id>                                     Docker
//	/system.slice/containerd.service/kubepods-…-pod<u_i_d>.slice:cri-containerd:<id>
//
// Paths relative to another cgroup namespace ("/../../kubepods…") work too.
// The first line that names a container wins; a pod UID alone is kept if
// no line names a container.
func ParseCgroup(text string) Ref {
	var best Ref
	for line := range strings.SplitSeq(text, "\n") {
		// hierarchy-ID:controllers:path; the path may itself contain ':'.
		_, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		_, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		r := parsePath(path)
		if r.ContainerID != "" {
			return r
		}
		if best.PodUID == "" {
			best.PodUID = r.PodUID
		}
	}
	return best
}

func parsePath(path string) Ref {
	var r Ref
	for part := range strings.SplitSeq(path, "/") {
		// systemd's "slice:prefix:id" form for cgroup v1 under containerd.
		for seg := range strings.SplitSeq(part, ":") {
			if uid := podUID(seg); uid != "" {
				r.PodUID = uid
			} else if id := containerID(seg); id != "" {
				r.ContainerID = id
			}
		}
	}
	return r
}

// containerPrefixes are the runtimes' scope-name prefixes. "crio-conmon-"
// (CRI-O's monitor process) is deliberately absent: it is not the container.
var containerPrefixes = []string{"cri-containerd-", "crio-", "docker-", "containerd-", "libpod-"}

func containerID(seg string) string {
	seg = strings.TrimSuffix(seg, ".scope")
	for _, p := range containerPrefixes {
		if s, ok := strings.CutPrefix(seg, p); ok {
			seg = s
			break
		}
	}
	if len(seg) != 64 || !isHex(seg) {
		return ""
	}
	return seg
}

// podUID matches "pod<uid>" (cgroupfs) and "kubepods[-<qos>]-pod<u_i_d>.slice"
// (systemd, which cannot have '-' in a unit-name component).
func podUID(seg string) string {
	if s, ok := strings.CutSuffix(seg, ".slice"); ok {
		i := strings.LastIndex(s, "-pod")
		if !strings.HasPrefix(s, "kubepods") || i < 0 {
			return ""
		}
		seg = s[i+1:]
	}
	s, ok := strings.CutPrefix(seg, "pod")
	if !ok {
		return ""
	}
	s = strings.ReplaceAll(s, "_", "-")
	// UIDs of API pods are UUIDs (36); static pods' are an MD5 in hex (32).
	if (len(s) != 36 && len(s) != 32) || !isHex(strings.ReplaceAll(s, "-", "")) {
		return ""
	}
	return s
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}
