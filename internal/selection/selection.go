// Package selection decides which processes the agent traces.
package selection

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/weft-dev/weft/internal/procs"
)

// Selector decides whether a process is traced.
type Selector interface {
	// Selected reports whether the process should be traced and a short
	// reason, e.g. "pid 123", "exe /usr/bin/foo matches /usr/bin/f*" or
	// "listens on 8080". ports are the process's listening TCP ports.
	Selected(p procs.Info, ports []uint16) (bool, string)
}

// Standalone selects processes by PID, executable glob or listening port;
// any match selects. A Standalone with no criteria selects nothing.
//
// An exe glob is matched with path.Match against the full executable path
// (without a " (deleted)" suffix) and, when the glob has no '/', also
// against its base name. Kernel threads have no executable and never match.
type Standalone struct {
	PIDs     []int
	ExeGlobs []string
	Ports    []uint16
}

var _ Selector = Standalone{}

// Selected implements Selector. PIDs are checked first, then globs, then
// ports, and the first match gives the reason.
func (s Standalone) Selected(p procs.Info, ports []uint16) (bool, string) {
	if slices.Contains(s.PIDs, p.PID) {
		return true, fmt.Sprintf("pid %d", p.PID)
	}
	if exe := exePath(p); exe != "" {
		base := path.Base(exe)
		for _, g := range s.ExeGlobs {
			if match(g, exe) || (!strings.Contains(g, "/") && match(g, base)) {
				return true, fmt.Sprintf("exe %s matches %s", exe, g)
			}
		}
	}
	for _, want := range s.Ports {
		if slices.Contains(ports, want) {
			return true, fmt.Sprintf("listens on %d", want)
		}
	}
	return false, ""
}

// ExecScope implements ExecScoper: an executable glob that matches holds
// for every process of that file; a PID or a port does not.
func (s Standalone) ExecScope(p procs.Info) Scope {
	if exe := exePath(p); exe != "" {
		base := path.Base(exe)
		for _, g := range s.ExeGlobs {
			if match(g, exe) || (!strings.Contains(g, "/") && match(g, base)) {
				return ScopeAny
			}
		}
	}
	return ScopeNone
}

// NeedsPorts reports whether Selected looks at ports, so the caller can
// skip procs.ListeningPorts when it does not.
func (s Standalone) NeedsPorts() bool { return len(s.Ports) > 0 }

// exePath is the executable path to match globs against.
func exePath(p procs.Info) string {
	if p.Deleted {
		return strings.TrimSuffix(p.ExePath, " (deleted)")
	}
	return p.ExePath
}

// match is path.Match for patterns already validated by ParseStandalone;
// a malformed pattern simply does not match.
func match(glob, name string) bool {
	ok, err := path.Match(glob, name)
	return ok && err == nil
}

// Scope is how far a selector's yes for one process carries to the other
// processes of the same executable file, so that the kernel can select
// them at exec (bpf/execsel.h), before user space has read /proc.
type Scope int

const (
	ScopeNone   Scope = iota // only this process (a PID, a port)
	ScopeCgroup              // the processes of this file in the same cgroup (a pod's switch)
	ScopeAny                 // every process of this file (an executable glob)
)

// ExecScoper is a Selector that knows the Scope of its yes.
type ExecScoper interface {
	ExecScope(p procs.Info) Scope
}

// ScopeOf is s's Scope for a process it selected: ScopeNone when s does
// not say.
func ScopeOf(s Selector, p procs.Info) Scope {
	if es, ok := s.(ExecScoper); ok {
		return es.ExecScope(p)
	}
	return ScopeNone
}

// QuietScoper is a Selector that knows how far its no carries: a Scope of
// ScopeCgroup says every process of the same executable file in the same
// cgroup gets the same no until the selector's inputs change (the caller
// hears of that: a Recheck), so the kernel need not report their execs.
type QuietScoper interface {
	QuietScope(p procs.Info) Scope
}

// QuietScopeOf is s's QuietScope for a process it did not select:
// ScopeNone when s does not say.
func QuietScopeOf(s Selector, p procs.Info) Scope {
	if qs, ok := s.(QuietScoper); ok {
		return qs.QuietScope(p)
	}
	return ScopeNone
}

// QuietScope implements QuietScoper. A glob on the base name says the same
// for every process exec'd by that name (the kernel's key names the file
// and the name). Nothing else carries, so these give ScopeNone: a glob
// with a '/' (one file has other paths: bind mounts, other mount
// namespaces), a PID (a listed one may exec anything), a port (a process
// may be exec'd holding a listening socket).
func (s Standalone) QuietScope(procs.Info) Scope {
	if len(s.PIDs) > 0 || len(s.Ports) > 0 {
		return ScopeNone
	}
	for _, g := range s.ExeGlobs {
		if strings.Contains(g, "/") {
			return ScopeNone
		}
	}
	return ScopeCgroup
}

// QuietScope implements QuietScoper: the narrowest of its selectors' (all
// of them said no).
func (a Any) QuietScope(p procs.Info) Scope {
	if len(a) == 0 {
		return ScopeNone
	}
	narrowest := ScopeAny
	for _, s := range a {
		narrowest = min(narrowest, QuietScopeOf(s, p))
	}
	return narrowest
}

// ExecScope implements ExecScoper: the widest of its selectors'.
func (a Any) ExecScope(p procs.Info) Scope {
	best := ScopeNone
	for _, s := range a {
		best = max(best, ScopeOf(s, p))
	}
	return best
}

// Any selects a process when one of its selectors does.
type Any []Selector

// Selected implements Selector: the first selector that selects gives the
// reason.
func (a Any) Selected(p procs.Info, ports []uint16) (bool, string) {
	for _, s := range a {
		if ok, why := s.Selected(p, ports); ok {
			return true, why
		}
	}
	return false, ""
}
