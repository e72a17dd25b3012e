package k8smeta

import (
	"golang.org/x/sys/unix"

	"github.com/weft-dev/weft/internal/procs"
	"github.com/weft-dev/weft/internal/selection"
)

// Selector selects the processes of this node's pods whose tracing switch
// (the weft.dev/trace annotation of the pod or its namespace) is on. The
// pod comes from the process's cgroup, as kubelet laid it out.
type Selector struct {
	Store    *Store
	ProcRoot string // "/proc" normally
	// Unified says the node's cgroups are v2 only (UnifiedCgroups): then
	// the kernel's cgroup id of a process tells its pod from others', and
	// a no may carry to the cgroup's next execs (QuietScope).
	Unified bool
}

// UnifiedCgroups says whether /sys/fs/cgroup is cgroup v2 (not v1, not
// the hybrid layout): on v1 and hybrid nodes the v2 cgroup id a BPF
// program sees may be shared by pods and host processes.
func UnifiedCgroups() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// Selected implements selection.Selector.
func (s Selector) Selected(p procs.Info, _ []uint16) (bool, string) {
	ref, err := ReadCgroup(s.ProcRoot, p.PID)
	if err != nil || (ref.PodUID == "" && ref.ContainerID == "") {
		return false, "" // not in a pod
	}
	uid := ref.PodUID
	if uid == "" {
		if a, ok := s.Store.Lookup(ref); ok {
			uid = a[KeyPodUID]
		}
	}
	if uid != "" && s.Store.EnabledPod(uid) {
		return true, "pod " + uid + " has tracing on"
	}
	return false, ""
}

// QuietScope implements selection.QuietScoper: a no carries to the
// cgroup's next processes when it is certain until a tracing switch moves
// (the agent rechecks then): the process is in no pod, or in a pod whose
// switch the store knows to be off. A pod not known yet (the informer may
// lag its first containers) gives ScopeNone, as does a node whose cgroups
// are not v2 only (Unified).
func (s Selector) QuietScope(p procs.Info) selection.Scope {
	if !s.Unified {
		return selection.ScopeNone
	}
	ref, err := ReadCgroup(s.ProcRoot, p.PID)
	if err != nil {
		return selection.ScopeNone
	}
	if ref.PodUID == "" && ref.ContainerID == "" {
		return selection.ScopeCgroup
	}
	uid := ref.PodUID
	if uid == "" {
		a, ok := s.Store.Lookup(ref)
		if !ok {
			return selection.ScopeNone
		}
		uid = a[KeyPodUID]
	}
	if on, known := s.Store.Switch(uid); known && !on {
		return selection.ScopeCgroup
	}
	return selection.ScopeNone
}

// ExecScope implements selection.ExecScoper: a pod's switch covers the
// processes of its containers, each in its own cgroup.
func (s Selector) ExecScope(p procs.Info) selection.Scope {
	if ok, _ := s.Selected(p, nil); ok {
		return selection.ScopeCgroup
	}
	return selection.ScopeNone
}
