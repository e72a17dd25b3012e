package discovery

import (
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/cilium/ebpf"

	"github.com/weft-dev/weft/internal/metrics"
)

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
	objs *procwatchObjects
	log  *slog.Logger
	gen  atomic.Uint32
	// off: a traced process could not be filed in exec_loud (full); no
	// exec is kept back from then on, else its exec could be missed.
	off   atomic.Bool
	filed *atomic.Uint64
}

func newQuiet(log *slog.Logger, met *metrics.Registry) *quiet {
	return &quiet{log: log, filed: met.Counter("weft_discovery_quiet_filed_total",
		"executables (in a cgroup) filed as quiet: their next execs there are not reported, the selector's no holding for them")}
}

// start takes the loaded maps and registers the kernel's counts.
func (q *quiet) start(objs *procwatchObjects, met *metrics.Registry) {
	q.objs = objs
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

func (q *quiet) on() bool { return q != nil && q.objs != nil && !q.off.Load() }

// generation is what a decision is filed under: read it before asking the
// selector, so that a Recheck meanwhile makes the filing stale.
func (q *quiet) generation() uint32 { return q.gen.Load() }

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
	if !q.on() {
		return
	}
	g := q.gen.Add(1)
	if err := q.objs.QuietGen.Put(uint32(0), g); err != nil {
		q.stop("moving the quiet generation", err)
	}
}

// loud files pid as a process whose execs are always reported, or takes
// it back. The caller orders calls for one pid (discovery's mutex).
func (q *quiet) loud(pid int, loud bool) {
	if q == nil || q.objs == nil {
		return
	}
	if !loud {
		if err := q.objs.ExecLoud.Delete(uint32(pid)); err != nil && !isNotExist(err) {
			q.log.Debug("exec_loud", "pid", pid, "err", err)
		}
		return
	}
	if err := q.objs.ExecLoud.Put(uint32(pid), uint8(1)); err != nil {
		q.stop("a traced process not filed as loud", err)
	}
}

// stop turns the kept-back execs off for good: generation 0 is never the
// current one again, so no filing matches.
func (q *quiet) stop(why string, err error) {
	if q.off.Swap(true) {
		return
	}
	q.log.Warn("every exec reported from now on: "+why, "err", err)
	_ = q.objs.QuietGen.Put(uint32(0), uint32(1<<32-1))
}

func isNotExist(err error) bool { return errors.Is(err, ebpf.ErrKeyNotExist) }
