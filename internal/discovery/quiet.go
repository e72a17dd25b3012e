package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/status"
)

// quietOff is quiet_gen's value once quiet is off for good (QUIET_OFF in
// bpf/procwatch.bpf.c): no filing is made under it.
const quietOff = 1<<32 - 1

// quiet keeps procwatch's quiet maps (bpf/procwatch.bpf.c): executables
// whose execs in a cgroup the kernel keeps back because the selector's no
// holds for all of them (exec_quiet, under a generation that a Recheck
// moves), and the processes whose execs it must always report
// (exec_loud: traced, or reported as not traceable).
//
// Without it every exec on the node cost the agent an event, a wake and a
// read of the process's /proc files: ~200 us of CPU an exec on this VM, 5%
// of a core at 250 execs a second, for programs it never traces.
type quiet struct {
	objs *procwatchObjects // discovery's, filled by its Start
	// ready: objs is loaded (set once, after the load; a switch's Recheck
	// may come from another goroutine before).
	ready atomic.Bool
	log   *slog.Logger
	// mu orders the generation's moves and stop: a Recheck must not
	// write a live generation over stop's quietOff.
	mu  sync.Mutex
	gen atomic.Uint32
	// off: a traced process could not be filed in exec_loud (full), or
	// the generation could not be moved; no exec is kept back from then
	// on, else one could be missed.
	off   atomic.Bool
	filed *atomic.Uint64
	board *status.Board // feature QuietExecs; may be nil
}

// QuietExecs is the status feature: execs (and exits) of programs the
// selector does not trace are kept back in the kernel.
const QuietExecs = "quiet_execs"

func newQuiet(objs *procwatchObjects, log *slog.Logger, met *metrics.Registry, board *status.Board) *quiet {
	return &quiet{objs: objs, log: log, board: board, filed: met.Counter("weft_discovery_quiet_filed_total",
		"executables (in a cgroup) filed as quiet: their next execs there are not reported, the selector's no holding for them")}
}

// start says the maps are loaded and registers the kernel's counts.
func (q *quiet) start(met *metrics.Registry) {
	objs := q.objs
	q.ready.Store(true)
	for idx, kind := range []string{"exec", "exit"} {
		met.Gauge("weft_discovery_events_quiet_total",
			"exec and exit events the kernel kept back: the process's executable was filed quiet in its cgroup",
			func() float64 {
				var n uint64
				if objs.QuietStats.Lookup(uint32(idx), &n) != nil {
					return 0
				}
				return float64(n)
			}, "kind", kind)
	}
}

// stamped says execs are stamped as they begin, at where: filings may be
// made (unless quiet is already off).
func (q *quiet) stamped(where string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.off.Load() {
		q.board.Feature(QuietExecs, true, "execs of programs not traced are kept back in the kernel once one was decided (execs stamped at "+where+")")
	}
}

func (q *quiet) loaded() bool { return q != nil && q.ready.Load() }

func (q *quiet) on() bool { return q.loaded() && !q.off.Load() }

// generation is what a decision is filed under: read it before asking the
// selector, so that a Recheck meanwhile makes the filing stale.
func (q *quiet) generation() uint32 { return q.gen.Load() }

// entered is when pid's last exec began (the kernel's exec_enter), 0 if
// not known.
func (q *quiet) entered(pid int) uint64 {
	var ns uint64
	if !q.loaded() || q.objs.ExecEnter.Lookup(uint32(pid), &ns) != nil {
		return 0
	}
	return ns
}

// execedSince says whether pid began an exec after base (the kernel's
// monotonic clock): after the exec event a decision was made on, or
// after its scan read the clock.
func (q *quiet) execedSince(pid int, base uint64) bool {
	return q.entered(pid) > base
}

// monoClock reads CLOCK_MONOTONIC, the clock of the kernel's exec stamps
// (bpf_ktime_get_ns), through Go's own monotonic clock (the vDSO): system
// calls when made, none after. It may read early, never late: early only
// costs a process that began an exec just before its scan a second look;
// late could miss one. In a time namespace the vDSO's clock is offset and
// BPF's is not: the offset is taken off.
type monoClock struct {
	base  uint64    // the kernel's CLOCK_MONOTONIC at or before start
	start time.Time // with its monotonic reading
}

func newMonoClock() monoClock {
	var offset int64 // this time namespace's monotonic offset
	if data, err := os.ReadFile("/proc/self/timens_offsets"); err == nil {
		offset, _ = timensMonotonic(data)
	}
	var best monoClock
	gap := ^uint64(0)
	for range 8 { // the closest pair of readings around time.Now
		var before, after unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
		start := time.Now()
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &after)
		if g := uint64(after.Nano() - before.Nano()); g < gap {
			gap, best = g, monoClock{base: uint64(before.Nano() - offset), start: start}
		}
	}
	return best
}

func (c monoClock) now() uint64 { return c.base + uint64(time.Since(c.start)) }

// timensMonotonic reads the monotonic offset, in ns, of a time namespace's
// timens_offsets ("monotonic <seconds> <nanoseconds>" per line).
func timensMonotonic(data []byte) (int64, error) {
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "monotonic" {
			continue
		}
		sec, err1 := strconv.ParseInt(f[1], 10, 64)
		nsec, err2 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return 0, fmt.Errorf("timens_offsets: %q: %w", strings.TrimSpace(line), err)
		}
		return sec*int64(time.Second) + nsec, nil
	}
	return 0, nil
}

// file marks the executable of an exec event quiet in its cgroup.
func (q *quiet) file(ev *procwatchWatchEvent, gen uint32) {
	if !q.on() || ev.Exe.Inode == 0 {
		return
	}
	k := procwatchQuietKey{Cgroup: ev.Cgroup, Dentry: ev.Dentry, Name: ev.Name}
	k.Exe.Ino, k.Exe.Inode = ev.Exe.Ino, ev.Exe.Inode
	if err := q.objs.ExecQuiet.Put(&k, gen); err != nil {
		q.log.Debug("filing an executable quiet", "err", err)
		return
	}
	q.filed.Add(1)
}

// recheck makes every filing stale: the selector's answers may change.
func (q *quiet) recheck() {
	if !q.loaded() {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.off.Load() {
		return
	}
	g := q.gen.Add(1)
	if g == quietOff {
		g = q.gen.Add(1) // wrapped: 0
	}
	if err := q.objs.QuietGen.Put(uint32(0), g); err != nil {
		q.stopLocked("moving the quiet generation", err)
	}
}

// loud files pid as a process whose execs are always reported, or takes
// it back. The caller orders calls for one pid (discovery's mutex).
func (q *quiet) loud(pid int, loud bool) {
	if !q.loaded() {
		return
	}
	if !loud {
		if err := q.objs.ExecLoud.Delete(uint32(pid)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			q.log.Debug("exec_loud", "pid", pid, "err", err)
		}
		return
	}
	if err := q.objs.ExecLoud.Put(uint32(pid), uint8(1)); err != nil {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.stopLocked("a traced process not filed as loud", err)
	}
}

// stop is stopLocked for callers without q.mu.
func (q *quiet) stop(why string, err error) {
	if !q.loaded() {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopLocked(why, err)
}

// stopLocked turns the kept-back execs and exits off for good: quietOff
// is never a filing's generation. q.mu is held.
func (q *quiet) stopLocked(why string, err error) {
	if q.off.Swap(true) {
		return
	}
	level := slog.LevelWarn
	if errors.Is(err, errNoExecStamps) { // the kernel's lack, not a fault
		level = slog.LevelInfo
	}
	q.log.Log(context.Background(), level, "every exec reported from now on: "+why, "err", err)
	q.board.Feature(QuietExecs, false, fmt.Sprintf("every exec is reported: %s: %v", why, err))
	if err := q.objs.QuietGen.Put(uint32(0), uint32(quietOff)); err != nil {
		q.log.Error("quiet execs could not be switched off: execs may go unreported", "err", err)
	}
}
