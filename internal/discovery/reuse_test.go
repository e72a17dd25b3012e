package discovery

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/procs"
)

// recordTracker records what discovery tells the families.
type recordTracker struct{ calls []string }

func (r *recordTracker) Track(p *probes.Process) error {
	exe := p.ExePath
	if target, err := os.Readlink(exe); err == nil { // discovery's open file: /proc/self/fd/N
		exe = target
	}
	r.calls = append(r.calls, fmt.Sprintf("track %d %s", p.PID, filepath.Base(exe)))
	return nil
}
func (r *recordTracker) Untrack(pid int) { r.calls = append(r.calls, fmt.Sprintf("untrack %d", pid)) }

// exeSelector selects processes whose executable's base name is want.
type exeSelector string

func (s exeSelector) Selected(p procs.Info, _ []uint16) (bool, string) {
	return filepath.Base(p.ExePath) == string(s), "exe " + string(s)
}

// fakeProc writes /proc/PID for a process started at start (clock ticks)
// running exe.
func fakeProc(t *testing.T, root string, pid int, start uint64, exe string) {
	t.Helper()
	dir := filepath.Join(root, fmt.Sprint(pid))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (%s) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0", pid, filepath.Base(exe), start)
	for name, body := range map[string]string{"stat": stat, "cmdline": exe + "\x00", "cgroup": "0::/\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(exe, filepath.Join(dir, "exe")); err != nil {
		t.Fatal(err)
	}
}

// TestPIDReuse: discovery knows a process by PID and start time. When the
// PID comes back as another process (its exit event lost), the old one is
// untracked and the new one decided afresh: a stale entry never selects
// another program.
func TestPIDReuse(t *testing.T) {
	root := t.TempDir()
	bin := t.TempDir()
	for _, name := range []string{"shop", "other"} {
		// Not Go (a shell script): traced at the socket layer, no ELF needed.
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recordTracker{}
	d := New(Config{Selector: exeSelector("shop"), ProcRoot: root}, slog.New(slog.DiscardHandler), metrics.New(), rec)
	const pid = 4242
	fakeProc(t, root, pid, 100, filepath.Join(bin, "shop"))
	d.consider(pid, nil, nil, false)
	d.consider(pid, nil, nil, false) // a rescan: nothing changes
	fakeProc(t, root, pid, 900, filepath.Join(bin, "other"))
	d.consider(pid, nil, nil, false) // the PID reused by a program not selected
	fakeProc(t, root, pid, 1500, filepath.Join(bin, "shop"))
	d.consider(pid, nil, nil, false) // and again by the selected one
	want := []string{"track 4242 shop", "untrack 4242", "track 4242 shop"}
	if !slices.Equal(rec.calls, want) {
		t.Errorf("calls\n%s\nwant\n%s", strings.Join(rec.calls, "\n"), strings.Join(want, "\n"))
	}
}
