package discovery

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
)

// TestExitedLike: a process gone before it was read is described by the
// last one of its executable, with its own PID and nothing of the last
// one's that is that process's alone.
func TestExitedLike(t *testing.T) {
	last := &probes.Process{PID: 10, StartTime: 99, ExePath: "/proc/self/fd/7", GoVersion: "go1.26",
		GoidOffset: 152, Exec: &probes.ExecKey{Ino: 1, Inode: 2},
		Resource: resource.NewSchemaless(attribute.String("service.name", "cli"), attribute.Int("process.pid", 10))}
	g, err := exitedLike(last, 42)
	if err != nil {
		t.Fatal(err)
	}
	if g.PID != 42 || g.StartTime != 0 || g.Exec != nil || g.ExePath != "/proc/42/exe" || g.GoidOffset != 152 {
		t.Fatalf("got %+v", g)
	}
	if v, _ := g.Resource.Set().Value("process.pid"); v.AsInt64() != 42 {
		t.Fatalf("process.pid %v, want 42", v.AsInt64())
	}
	if v, _ := g.Resource.Set().Value("service.name"); v.AsString() != "cli" {
		t.Fatalf("service.name %q", v.AsString())
	}
	if v, _ := last.Resource.Set().Value("process.pid"); v.AsInt64() != 10 {
		t.Fatal("the last process's resource changed")
	}
}

// exitedTracker records Exited too.
type exitedTracker struct{ recordTracker }

func (e *exitedTracker) Exited(p *probes.Process) {
	e.calls = append(e.calls, fmt.Sprintf("exited %d", p.PID))
}

// TestClaimZombie: a process the kernel selected at exec that exited
// before user space read it is handed over as exited, its events kept,
// also while it is a zombie (its /proc entry still there, its executable
// link gone); a live one user space did not track gives its entries back.
func TestClaimZombie(t *testing.T) {
	root := t.TempDir()
	bin := t.TempDir()
	exe := filepath.Join(bin, "cli")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rec := &exitedTracker{}
	d := New(Config{Selector: exeSelector("shop"), ProcRoot: root}, slog.New(slog.DiscardHandler), metrics.New(), rec)
	key := probes.ExecKey{Ino: 3, Inode: 7}
	d.exec.last[key] = &probes.Process{PID: 10, ExePath: exe}
	ev := procwatchWatchEvent{Pid: 77}
	ev.Exe.Ino, ev.Exe.Inode = key.Ino, key.Inode

	// A zombie: stat says Z, no exe link.
	dir := filepath.Join(root, "77")
	if err := os.MkdirAll(filepath.Join(dir, "task", "77"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "stat"), []byte("77 (cli) Z 1 1 1 0 -1 4194564 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0"), 0o644)
	d.claim(77, ev)
	// Gone altogether.
	ev.Pid = 78
	d.claim(78, ev)
	// Alive, not tracked (not selected by user space).
	fakeProc(t, root, 79, 600, exe)
	ev.Pid = 79
	d.claim(79, ev)

	want := []string{"exited 77", "untrack 77", "exited 78", "untrack 78", "untrack 79"}
	if !slices.Equal(rec.calls, want) {
		t.Errorf("calls\n%s\nwant\n%s", strings.Join(rec.calls, "\n"), strings.Join(want, "\n"))
	}
}
