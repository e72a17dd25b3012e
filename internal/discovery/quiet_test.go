package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weft-dev/weft/internal/kernelfs"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/selection"
	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/kernel"
)

// syncTracker records Track and Untrack calls from discovery's workers.
type syncTracker struct {
	mu    sync.Mutex
	calls []string
}

func (s *syncTracker) Track(p *probes.Process) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf("track %d", p.PID))
	return nil
}

func (s *syncTracker) Untrack(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf("untrack %d", pid))
}

func (s *syncTracker) has(call string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.calls, call)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// quietFixture copies sleep and sh into a temporary directory under the
// names a "weft-loud-*" glob says no (weft-quiet-sleep) and yes
// (weft-loud-sh) to.
func quietFixture(t *testing.T) (dir, quietSleep, loudSh string) {
	dir = t.TempDir()
	quietSleep = filepath.Join(dir, "weft-quiet-sleep")
	loudSh = filepath.Join(dir, "weft-loud-sh")
	copyFile(t, "/bin/sleep", quietSleep)
	copyFile(t, "/bin/sh", loudSh)
	return dir, quietSleep, loudSh
}

// filedQuiet says whether d's exec_quiet holds path under the live
// generation. (The filed count alone does not say: any exec on the
// machine that the selector says no to is filed too.)
func filedQuiet(t *testing.T, d *Discoverer, path string) bool {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	var (
		k   procwatchQuietKey
		gen uint32
	)
	live := d.quiet.generation()
	for it := d.objs.ExecQuiet.Iterate(); it.Next(&k, &gen); {
		if k.Exe.Ino == st.Ino && gen == live {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestQuietExecs (real kernel, real processes): once user space has said
// no to a program's exec in a cgroup, the kernel keeps back its next
// execs and their exits there; a traced process that execs that program
// is still reported (and untracked); another name of the same file (a
// hard link) that the selector says yes to is not kept back; and a
// Recheck (a tracing switch moved) makes every filing stale.
func TestQuietExecs(t *testing.T) {
	kernel.Require(t)
	dir, quietSleep, loudSh := quietFixture(t)
	loudSleep := filepath.Join(dir, "weft-loud-sleep") // the same inode as quietSleep
	if err := os.Link(quietSleep, loudSleep); err != nil {
		t.Fatal(err)
	}

	met := metrics.New()
	tr := &syncTracker{}
	// SyscallsTraced: on 6.3 to 6.10 stamps at execve's entry (what the
	// syscalls source allows), so that quiet's logic is tested there too.
	d := New(Config{Selector: selection.Standalone{ExeGlobs: []string{"weft-loud-*"}}, SyscallsTraced: true},
		slog.New(slog.DiscardHandler), met, tr)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())

	kept := func(idx uint32) uint64 {
		var n uint64
		if err := d.objs.QuietStats.Lookup(idx, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// keptBack: whether the kernel kept pid's exec back (it is in
	// quiet_pids until its exit).
	keptBack := func(pid int) bool {
		var v uint8
		return d.objs.QuietPids.Lookup(uint32(pid), &v) == nil
	}
	// start runs argv in the background until the test ends; its exec has
	// happened when it returns.
	start := func(argv ...string) *exec.Cmd {
		t.Helper()
		cmd := exec.Command(argv[0], argv[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("%v: %v", argv, err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	stop := func(cmd *exec.Cmd) {
		cmd.Process.Kill()
		cmd.Wait()
	}

	// The first process of weft-quiet-sleep is read and said no to: filed.
	first := start(quietSleep, "30")
	eventually(t, "weft-quiet-sleep filed quiet", func() bool { return filedQuiet(t, d, quietSleep) })
	if keptBack(first.Process.Pid) {
		t.Fatal("the first exec was kept back")
	}
	stop(first)
	// The next ones are kept back, their exits too.
	// (Start returns once the exec is past closing the child's
	// descriptors, which is before the exec tracepoint: wait for it.)
	next := start(quietSleep, "30")
	eventually(t, "the second exec of a quiet file kept back", func() bool { return keptBack(next.Process.Pid) })
	exits := kept(1)
	stop(next)
	eventually(t, "its exit kept back", func() bool { return kept(1) > exits && !keptBack(next.Process.Pid) })
	const n = 50
	execs, exits := kept(0), kept(1)
	for range n {
		if err := exec.Command(quietSleep, "0").Run(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, fmt.Sprintf("%d more execs and exits kept back", n), func() bool { return kept(0) >= execs+n && kept(1) >= exits+n })

	// Another name of the same file (a hard link), which the selector
	// says yes to, is reported and tracked.
	loud := start(loudSleep, "30")
	eventually(t, "the hard link weft-loud-sleep tracked", func() bool { return tr.has(fmt.Sprintf("track %d", loud.Process.Pid)) })
	if keptBack(loud.Process.Pid) {
		t.Error("the hard link's exec was kept back (tracked by a rescan)")
	}

	// A traced shell that execs the quiet file: reported, untracked.
	sh := start(loudSh, "-c", "sleep 1; exec "+quietSleep+" 30")
	pid := sh.Process.Pid
	eventually(t, "the shell tracked", func() bool { return tr.has(fmt.Sprintf("track %d", pid)) })
	eventually(t, "the shell's exec of the quiet file reported and untracked", func() bool { return tr.has(fmt.Sprintf("untrack %d", pid)) })
	if keptBack(pid) {
		t.Error("the traced shell's exec was kept back")
	}

	// Traced shells that exec another program at once, while discovery
	// reads and tracks them: what they run then is decided, whether the
	// exec was kept back (the shell not loud yet: it is decided again) or
	// read in /proc; and the shell's file is never filed quiet by a
	// decision on the other program (the exec stamp moved).
	other := filepath.Join(dir, "weft-quiet-other")
	copyFile(t, "/bin/sleep", other)
	// (At once, and after delays that land the exec in the middle of the
	// shell's decision, or after it.)
	delays := []string{"", "10", "30", "100", "200", "400", "800", "1600", "3200"} // shell loop rounds
	for i := range 2 * len(delays) {
		target := quietSleep
		if i%2 == 1 {
			target = other
		}
		script := "exec " + target + " 30"
		if dl := delays[i/2]; dl != "" {
			script = "i=0; while [ $i -lt " + dl + " ]; do i=$((i+1)); done; " + script
		}
		c := start(loudSh, "-c", script)
		pid := c.Process.Pid
		eventually(t, "the exec'ing shell decided", func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			inst, ok := d.known[pid]
			return ok && !inst.selected
		})
		tr.mu.Lock()
		tracks, untracks := 0, 0
		for _, c := range tr.calls {
			switch c {
			case fmt.Sprintf("track %d", pid):
				tracks++
			case fmt.Sprintf("untrack %d", pid):
				untracks++
			}
		}
		tr.mu.Unlock()
		if tracks != untracks {
			t.Errorf("pid %d runs %s, still tracked as the shell (%d tracks, %d untracks)", pid, filepath.Base(target), tracks, untracks)
		}
		stop(c)
	}
	sh2 := start(loudSh, "-c", "sleep 30")
	eventually(t, "a shell after them tracked", func() bool { return tr.has(fmt.Sprintf("track %d", sh2.Process.Pid)) })
	if keptBack(sh2.Process.Pid) {
		t.Error("the shell's file was filed quiet by a decision on what it exec'd")
	}

	// A Recheck: the next exec is reported (and filed again), then kept.
	d.Recheck()
	if filedQuiet(t, d, quietSleep) {
		t.Fatal("still filed under the live generation after a Recheck")
	}
	again := start(quietSleep, "30")
	eventually(t, "weft-quiet-sleep filed again after a Recheck", func() bool { return filedQuiet(t, d, quietSleep) })
	if keptBack(again.Process.Pid) {
		t.Error("an exec kept back after a Recheck")
	}
	last := start(quietSleep, "30")
	eventually(t, "kept back once filed again", func() bool { return keptBack(last.Process.Pid) })
}

// TestQuietExecStamps (real kernel): where the kernel has no
// sched_prepare_exec (Linux 6.3 to 6.10; forced here by naming a
// tracepoint no kernel has), execs are stamped at execve's entry only if
// the capture traces the syscall entry path anyway; else nothing is kept
// back, and the status says why.
func TestQuietExecStamps(t *testing.T) {
	kernel.Require(t)
	quietSleep := filepath.Join(t.TempDir(), "weft-quiet-sleep")
	copyFile(t, "/bin/sleep", quietSleep)
	if err := kernelfs.EnsureTracefs(); err != nil {
		t.Fatal(err)
	}
	hasPrepareExec := false
	for _, root := range []string{kernelfs.TracefsPath, "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(root, "events/sched/sched_prepare_exec")); err == nil {
			hasPrepareExec = true
		}
	}
	for _, tc := range []struct {
		name           string
		prepareExec    string
		syscallsTraced bool
		on             bool
		why            string
	}{
		{"sched_prepare_exec", "sched_prepare_exec", false, true, "stamped at sched_prepare_exec"},
		{"execve entry, syscalls traced anyway", "weft_no_such_tracepoint", true, true, "stamped at execve's entry"},
		{"no place to stamp", "weft_no_such_tracepoint", false, false, "every syscall of the node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepareExec == "sched_prepare_exec" && !hasPrepareExec {
				// Before Linux 6.11 the kernel's own tracepoint is
				// missing: the third case's outcome.
				tc.on, tc.why = false, "every syscall of the node"
			}
			met := metrics.New()
			board := status.New(met)
			d := New(Config{Selector: selection.Standalone{ExeGlobs: []string{"weft-loud-*"}},
				SyscallsTraced: tc.syscallsTraced, Status: board}, slog.New(slog.DiscardHandler), met, &syncTracker{})
			d.prepareExec = tc.prepareExec
			if err := d.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer d.Shutdown(context.Background())
			var f status.Feature
			for _, g := range board.Features() {
				if g.Name == QuietExecs {
					f = g
				}
			}
			if f.Name == "" || f.On != tc.on || !strings.Contains(f.Why, tc.why) {
				t.Fatalf("status feature %s = %+v, want on=%v, why with %q", QuietExecs, f, tc.on, tc.why)
			}
			var text strings.Builder
			if err := met.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("weft_kernel_feature{feature=%q} %d\n", QuietExecs, map[bool]int{true: 1}[tc.on])
			if !strings.Contains(text.String(), want) {
				t.Errorf("metrics lack %q", want)
			}
			// The first exec is read and said no to; whether the next
			// is kept back is what the stamps decide.
			// (It lives until read: a process gone first is not decided.)
			first := exec.Command(quietSleep, "30")
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { first.Process.Kill(); first.Wait() }()
			if tc.on {
				eventually(t, "the first exec filed quiet", func() bool { return filedQuiet(t, d, quietSleep) })
			}
			next := exec.Command(quietSleep, "30")
			if err := next.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { next.Process.Kill(); next.Wait() }()
			keptBack := func() bool {
				var v uint8
				return d.objs.QuietPids.Lookup(uint32(next.Process.Pid), &v) == nil
			}
			if tc.on {
				eventually(t, "the next exec kept back", keptBack)
				return
			}
			// Off: no generation is live, so the kernel can keep nothing
			// back, and nothing is filed.
			var gen uint32
			if err := d.objs.QuietGen.Lookup(uint32(0), &gen); err != nil || gen != quietOff {
				t.Errorf("quiet_gen = %#x (%v), want quietOff", gen, err)
			}
			eventually(t, "the next exec decided", func() bool {
				d.mu.Lock()
				defer d.mu.Unlock()
				_, ok := d.known[next.Process.Pid]
				return ok
			})
			if keptBack() || met.Value("weft_discovery_quiet_filed_total") != 0 {
				t.Errorf("without exec stamps: the exec kept back %v, %d filed", keptBack(), met.Value("weft_discovery_quiet_filed_total"))
			}
		})
	}
}

// TestMonoClock: the clock a scan's decision is stamped with never reads
// later than the kernel's monotonic clock, and not much earlier.
func TestMonoClock(t *testing.T) {
	c := newMonoClock()
	for range 1000 {
		var before, after unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
		now := c.now()
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &after)
		if now > uint64(after.Nano()) {
			t.Fatalf("read %d, later than CLOCK_MONOTONIC %d", now, after.Nano())
		}
		if b := uint64(before.Nano()); now < b && b-now > uint64(10*time.Millisecond) {
			t.Fatalf("read %d, %v before CLOCK_MONOTONIC", now, time.Duration(b-now))
		}
	}
}

// TestMonoClockStamps (real kernel): a scan's clock and the kernel's exec
// stamps are one clock: readings before a fork and after its exec bracket
// the exec's stamp.
func TestMonoClockStamps(t *testing.T) {
	kernel.Require(t)
	d := New(Config{Selector: selection.Standalone{ExeGlobs: []string{"weft-loud-*"}}, SyscallsTraced: true},
		slog.New(slog.DiscardHandler), metrics.New(), &syncTracker{})
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	for range 5 {
		before := d.mono.now()
		cmd := exec.Command("/bin/sleep", "30")
		if err := cmd.Start(); err != nil { // returns once the exec is under way
			t.Fatal(err)
		}
		after := d.mono.now()
		stamp := d.quiet.entered(cmd.Process.Pid)
		cmd.Process.Kill()
		cmd.Wait()
		if stamp < before || stamp > after {
			t.Fatalf("exec stamped %d, outside the clock's %d..%d", stamp, before, after)
		}
	}
}

func TestTimensMonotonic(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"monotonic           0         0\nboottime            0         0\n", 0, false},
		{"monotonic         100       250\nboottime            7         0\n", 100_000_000_250, false},
		{"boottime 5 0\nmonotonic -3 500000000\n", -2_500_000_000, false},
		{"", 0, false},
		{"monotonic x 0\n", 0, true},
	} {
		got, err := timensMonotonic([]byte(tc.in))
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%q: %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestQuietRedecide (real kernel, real processes): a process whose exec
// of a quiet file lands after its decision read /proc (the old program,
// selected) and before it is filed loud is kept back by the kernel; the
// decision then sees the exec stamp and decides again: untracked. The
// window is held open by a hook between the two.
func TestQuietRedecide(t *testing.T) {
	kernel.Require(t)
	dir, quietSleep, loudSh := quietFixture(t)
	fifo := filepath.Join(dir, "go")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	met := metrics.New()
	tr := &syncTracker{}
	// SyscallsTraced: on 6.3 to 6.10 stamps at execve's entry (what the
	// syscalls source allows), so that quiet's logic is tested there too.
	d := New(Config{Selector: selection.Standalone{ExeGlobs: []string{"weft-loud-*"}}, SyscallsTraced: true},
		slog.New(slog.DiscardHandler), met, tr)
	var once atomic.Bool
	held := make(chan error, 1)
	d.afterRead = func(pid int, exe string) {
		if exe != loudSh || once.Swap(true) {
			return
		}
		// The first decision on the shell has read /proc: now it execs
		// the quiet file, held until the kernel has kept that exec back
		// (/proc shows the new program a little before).
		err := os.WriteFile(fifo, []byte("go\n"), 0)
		deadline := time.Now().Add(30 * time.Second)
		for err == nil {
			var v uint8
			if d.objs.QuietPids.Lookup(uint32(pid), &v) == nil {
				break
			}
			if time.Now().After(deadline) {
				err = errors.New("the shell's exec of the quiet file was not kept back")
			}
			time.Sleep(time.Millisecond)
		}
		held <- err
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	first := exec.Command(quietSleep, "30") // lives until read
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { first.Process.Kill(); first.Wait() }()
	eventually(t, "weft-quiet-sleep filed quiet", func() bool { return filedQuiet(t, d, quietSleep) })

	// The shell blocks opening the fifo until the hook writes it.
	cmd := exec.Command(loudSh, "-c", "read x < "+fifo+"; exec "+quietSleep+" 600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	select {
	case err := <-held:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no decision read the shell's /proc")
	}
	eventually(t, "the shell tracked, then untracked on its kept-back exec", func() bool {
		return tr.has(fmt.Sprintf("track %d", pid)) && tr.has(fmt.Sprintf("untrack %d", pid))
	})
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("untracked by its exit, not by the second decision: %v", err)
	}
}

func FuzzTimensMonotonic(f *testing.F) {
	f.Add([]byte("monotonic 1 2\nboottime 0 0\n"))
	f.Add([]byte("monotonic -9223372036 -854775808\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		timensMonotonic(data) // any input: a value or an error, no panic
	})
}
