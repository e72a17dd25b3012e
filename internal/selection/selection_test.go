package selection

import (
	"testing"

	"github.com/weft-dev/weft/internal/procs"
)

func TestSelected(t *testing.T) {
	foo := procs.Info{PID: 123, ExePath: "/usr/bin/foo"}
	gone := procs.Info{PID: 9, ExePath: "/opt/app/server (deleted)", Deleted: true}
	kthread := procs.Info{PID: 2, Comm: "kthreadd"}

	tests := []struct {
		name   string
		sel    Standalone
		p      procs.Info
		ports  []uint16
		want   bool
		reason string
	}{
		{name: "empty selects nothing", p: foo, ports: []uint16{80}},
		{name: "pid", sel: Standalone{PIDs: []int{5, 123}}, p: foo, want: true, reason: "pid 123"},
		{name: "other pid", sel: Standalone{PIDs: []int{5}}, p: foo},
		{name: "full path glob", sel: Standalone{ExeGlobs: []string{"/usr/bin/f*"}}, p: foo, want: true,
			reason: "exe /usr/bin/foo matches /usr/bin/f*"},
		{name: "exact path", sel: Standalone{ExeGlobs: []string{"/usr/bin/foo"}}, p: foo, want: true,
			reason: "exe /usr/bin/foo matches /usr/bin/foo"},
		{name: "base name glob", sel: Standalone{ExeGlobs: []string{"fo?"}}, p: foo, want: true,
			reason: "exe /usr/bin/foo matches fo?"},
		{name: "path glob is not matched against base", sel: Standalone{ExeGlobs: []string{"/foo"}}, p: foo},
		{name: "star does not cross slash", sel: Standalone{ExeGlobs: []string{"/usr/*"}}, p: foo},
		{name: "glob mismatch", sel: Standalone{ExeGlobs: []string{"bar", "/usr/local/bin/*"}}, p: foo},
		{name: "deleted exe matches without suffix", sel: Standalone{ExeGlobs: []string{"/opt/app/server"}}, p: gone,
			want: true, reason: "exe /opt/app/server matches /opt/app/server"},
		{name: "deleted exe base name", sel: Standalone{ExeGlobs: []string{"server"}}, p: gone, want: true,
			reason: "exe /opt/app/server matches server"},
		{name: "escaped comma", sel: Standalone{ExeGlobs: []string{`/opt/a\,b`}}, p: procs.Info{ExePath: "/opt/a,b"},
			want: true, reason: `exe /opt/a,b matches /opt/a\,b`},
		{name: "kernel thread never matches a glob", sel: Standalone{ExeGlobs: []string{"*"}}, p: kthread},
		{name: "star matches any base name", sel: Standalone{ExeGlobs: []string{"*"}}, p: foo, want: true,
			reason: "exe /usr/bin/foo matches *"},
		{name: "port", sel: Standalone{Ports: []uint16{443, 8080}}, p: foo, ports: []uint16{22, 8080}, want: true,
			reason: "listens on 8080"},
		{name: "port mismatch", sel: Standalone{Ports: []uint16{443}}, p: foo, ports: []uint16{8080}},
		{name: "port without ports", sel: Standalone{Ports: []uint16{443}}, p: foo},
		{name: "pid wins over exe and port", sel: Standalone{PIDs: []int{123}, ExeGlobs: []string{"foo"}, Ports: []uint16{80}},
			p: foo, ports: []uint16{80}, want: true, reason: "pid 123"},
		{name: "exe wins over port", sel: Standalone{ExeGlobs: []string{"foo"}, Ports: []uint16{80}},
			p: foo, ports: []uint16{80}, want: true, reason: "exe /usr/bin/foo matches foo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s Selector = tc.sel
			got, reason := s.Selected(tc.p, tc.ports)
			if got != tc.want || reason != tc.reason {
				t.Fatalf("Selected = %v, %q; want %v, %q", got, reason, tc.want, tc.reason)
			}
		})
	}
}

func TestNeedsPorts(t *testing.T) {
	if (Standalone{PIDs: []int{1}, ExeGlobs: []string{"x"}}).NeedsPorts() {
		t.Error("NeedsPorts true without ports")
	}
	if !(Standalone{Ports: []uint16{80}}).NeedsPorts() {
		t.Error("NeedsPorts false with ports")
	}
}

// TestExecScope: an exe glob's yes carries to every process of the file;
// a PID's or a port's does not; Any takes the widest.
func TestExecScope(t *testing.T) {
	s := Standalone{PIDs: []int{7}, ExeGlobs: []string{"api*"}, Ports: []uint16{80}}
	for _, tc := range []struct {
		p    procs.Info
		want Scope
	}{
		{procs.Info{PID: 1, ExePath: "/usr/bin/api-server"}, ScopeAny},
		{procs.Info{PID: 1, ExePath: "/usr/bin/api-server (deleted)", Deleted: true}, ScopeAny},
		{procs.Info{PID: 7, ExePath: "/usr/bin/other"}, ScopeNone},
		{procs.Info{PID: 2, ExePath: "/usr/bin/web"}, ScopeNone},
	} {
		if got := ScopeOf(s, tc.p); got != tc.want {
			t.Errorf("ScopeOf(%s) = %v, want %v", tc.p.ExePath, got, tc.want)
		}
		if got := ScopeOf(Any{Standalone{}, s}, tc.p); got != tc.want {
			t.Errorf("Any: ScopeOf(%s) = %v, want %v", tc.p.ExePath, got, tc.want)
		}
	}
	if got := ScopeOf(fixed(true), procs.Info{PID: 1}); got != ScopeNone {
		t.Errorf("a selector that does not say: %v, want ScopeNone", got)
	}
}

type fixed bool

func (f fixed) Selected(procs.Info, []uint16) (bool, string) { return bool(f), "fixed" }

// TestQuietScope: a Standalone's no carries to the file's processes in the
// cgroup when it selects by base-name globs only (not a path glob, a PID
// or a port); Any takes the narrowest, and a selector that does not say
// makes it ScopeNone.
func TestQuietScope(t *testing.T) {
	p := procs.Info{PID: 3, ExePath: "/usr/bin/web"}
	for _, tc := range []struct {
		name string
		s    Selector
		want Scope
	}{
		{"name globs", Standalone{ExeGlobs: []string{"api*", "web"}}, ScopeCgroup},
		{"no criteria", Standalone{}, ScopeCgroup},
		{"a path glob", Standalone{ExeGlobs: []string{"api*", "/opt/*"}}, ScopeNone},
		{"ports", Standalone{ExeGlobs: []string{"api*"}, Ports: []uint16{80}}, ScopeNone},
		{"pids", Standalone{PIDs: []int{7}, ExeGlobs: []string{"api*"}}, ScopeNone},
		{"any of globs", Any{Standalone{ExeGlobs: []string{"a"}}, Standalone{}}, ScopeCgroup},
		{"any with pids", Any{Standalone{ExeGlobs: []string{"a"}}, Standalone{PIDs: []int{7}}}, ScopeNone},
		{"any with one that does not say", Any{Standalone{}, fixed(false)}, ScopeNone},
		{"empty any", Any{}, ScopeNone},
		{"does not say", fixed(false), ScopeNone},
	} {
		if got := QuietScopeOf(tc.s, p); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
