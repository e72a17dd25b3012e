// Package discovery finds the processes to trace: a /proc scan at start, an
// exec tracepoint for programs started later, and a periodic rescan for
// selections (listening ports) that exec alone cannot decide. Selected
// processes are handed to a Tracker (the probe families).
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/weft-dev/weft/internal/kernelfs"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/procs"
	"github.com/weft-dev/weft/internal/ringpoll"
	"github.com/weft-dev/weft/internal/selection"
	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/tick"
)

// Tracker is told which processes to trace.
type Tracker interface {
	Track(p *probes.Process) error
	Untrack(pid int)
}

// SkipReporter is what a Tracker may also be told: a selected process it
// will not get, and why (its executable could not be read), and when such a
// process is gone.
type SkipReporter interface {
	Skipped(pid int, exe string, why error)
	Forget(pid int)
}

// Config says what to select and how often to look again.
type Config struct {
	Selector   selection.Selector
	NeedsPorts bool          // scan listening sockets for port selection
	Rescan     time.Duration // default 2s
	ProcRoot   string        // default /proc
	Resource   ResourceConfig
	GoFields   []string // struct fields to look up in Go binaries ("pkg.Type.field")
	// ExecSel is sockio's exec_sel map (bpf/execsel.h): filled here, it
	// lets the kernel select the next processes of an executable at exec.
	// nil: selection waits for user space.
	ExecSel *ebpf.Map
	// SyscallsTraced: the capture already traces syscalls' entry (sockio's
	// syscalls source), so stamping execs at execve's entry adds nothing.
	// Without it, and without sched_prepare_exec (Linux 6.11+), execs are
	// not stamped and none is kept back: a syscalls tracepoint puts every
	// syscall of the node on the traced entry path (measured here: getppid
	// 172 -> 213 ns), a cost to every program rather than to the agent.
	SyscallsTraced bool
	// Status shows whether execs of untraced programs are kept back in
	// the kernel (feature "quiet_execs"), and why not. May be nil.
	Status *status.Board
}

type instance struct {
	startTime uint64
	exe       string // what it ran when traced
	selected  bool
	skipped   bool // selected, but not traced: reported to the SkipReporter
}

// Discoverer runs selection and keeps the tracker in step with it.
type Discoverer struct {
	cfg     Config
	log     *slog.Logger
	met     *metrics.Registry
	tracker Tracker
	inspect *inspector

	objs  procwatchObjects
	links []link.Link
	rd    *ringbuf.Reader
	gate  *ringpoll.Gate // rd's Pending and Close

	mu    sync.Mutex
	known map[int]instance

	execLag *metrics.Histogram // exec event → tracked
	execs   *atomic.Uint64     // weft_discovery_events_total by kind, looked up once:
	exits   *atomic.Uint64     // a busy node execs thousands of processes a second
	exec    *execSel
	quiet   *quiet
	// prepareExec: the sched tracepoint where an exec begins (Linux
	// 6.11+); a test names one no kernel has, to take the fallback.
	prepareExec string
	// mono reads the kernel's monotonic clock, as exec stamps are taken.
	mono monoClock
	// afterRead, if set (tests), runs once a decision has read /proc.
	afterRead func(pid int, exe string)
	lostSeen  uint64 // procwatch's lost events at the last rescan (rescan's goroutine only)

	stop     chan struct{}
	waker    *ringpoll.Waker // nil: the event loop polls every watchPoll
	wg       sync.WaitGroup
	recheck  chan struct{} // Recheck's request for a rescan that decides again
	loaded   bool
	stopOnce sync.Once
}

// New makes a discoverer; Start begins the work.
func New(cfg Config, log *slog.Logger, met *metrics.Registry, t Tracker) *Discoverer {
	if cfg.Rescan <= 0 {
		cfg.Rescan = 2 * time.Second
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	d := &Discoverer{cfg: cfg, log: log.With("component", "discovery"), met: met, tracker: t,
		inspect: newInspector(cfg.Resource, cfg.GoFields), known: map[int]instance{}, stop: make(chan struct{}), recheck: make(chan struct{}, 1),
		exec:  newExecSel(cfg.ExecSel, log, met),
		execs: met.Counter("weft_discovery_events_total", "exec and exit events seen", "kind", "exec"),
		exits: met.Counter("weft_discovery_events_total", "exec and exit events seen", "kind", "exit"),
		execLag: met.Histogram("weft_discovery_exec_to_traced_seconds",
			"from a selected process's exec to its families' Track: what a short-lived process runs untraced",
			[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5})}
	d.quiet = newQuiet(&d.objs, log, met, cfg.Status)
	d.prepareExec = "sched_prepare_exec"
	d.mono = newMonoClock()
	return d
}

// Start attaches the exec/exit tracepoints, then scans /proc: a process
// started between the two is seen by one or the other.
func (d *Discoverer) Start(ctx context.Context) error {
	if err := kernelfs.EnsureTracefs(); err != nil {
		return err
	}
	var opts *ebpf.CollectionOptions
	if d.cfg.ExecSel != nil {
		opts = &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"exec_sel": d.cfg.ExecSel}}
	}
	if err := loadProcwatchObjects(&d.objs, opts); err != nil {
		return fmt.Errorf("loading procwatch BPF programs: %w", err)
	}
	d.loaded = true
	d.quiet.start(d.met)
	l1, err := link.Tracepoint("sched", "sched_process_exec", d.objs.OnExec, nil)
	if err != nil {
		d.Shutdown(ctx)
		return fmt.Errorf("attaching sched_process_exec: %w", err)
	}
	d.links = append(d.links, l1)
	l2, err := link.Tracepoint("sched", "sched_process_exit", d.objs.OnExit, nil)
	if err != nil {
		d.Shutdown(ctx)
		return fmt.Errorf("attaching sched_process_exit: %w", err)
	}
	d.links = append(d.links, l2)
	if where, err := d.attachExecBegin(); err != nil {
		// Without the exec stamps a filing could name the wrong file:
		// every exec is reported.
		d.quiet.stop("stamping execs as they begin", err)
	} else {
		d.quiet.stamped(where)
	}
	if d.rd, err = ringbuf.NewReader(d.objs.WatchEvents); err != nil {
		d.Shutdown(ctx)
		return fmt.Errorf("opening procwatch ring buffer: %w", err)
	}
	d.gate = ringpoll.NewGate(d.rd)
	if d.waker, err = ringpoll.NewWaker(d.objs.WatchEvents); err != nil {
		d.log.Warn("exec and exit events are read every "+watchPoll.String()+" only", "err", err)
	}
	t0 := time.Now()
	d.rescan(false)
	d.log.Info("initial scan done", "took", time.Since(t0).Round(time.Millisecond))
	// The scan's garbage (every executable's symbols and DWARF, read once)
	// goes back to the kernel now rather than over the scavenger's next
	// minutes: the agent's resident size after start is what it keeps.
	debug.FreeOSMemory()
	d.wg.Add(2)
	go d.events()
	go d.ticker()
	return nil
}

// errNoExecStamps: no sched_prepare_exec, and the syscall entry path is
// not traced already (Config.SyscallsTraced).
var errNoExecStamps = errors.New("no sched_prepare_exec (Linux 6.11+), and execve's entry would put every syscall of the node on the traced path")

// attachExecBegin attaches on_exec_begin where an exec begins, before the
// executable is switched: sched_prepare_exec (6.11+), else, if the syscall
// entry path is traced anyway, the entry of execve and execveat.
// It says where.
func (d *Discoverer) attachExecBegin() (string, error) {
	if l, err := link.Tracepoint("sched", d.prepareExec, d.objs.OnExecBegin, nil); err == nil {
		d.links = append(d.links, l)
		return d.prepareExec, nil
	}
	if !d.cfg.SyscallsTraced {
		return "", errNoExecStamps
	}
	d.log.Debug("no sched_prepare_exec (Linux 6.11+): execs stamped at execve's entry")
	for _, name := range []string{"sys_enter_execve", "sys_enter_execveat"} {
		l, err := link.Tracepoint("syscalls", name, d.objs.OnExecBegin, nil)
		if err != nil {
			return "", fmt.Errorf("attaching syscalls/%s (no sched_prepare_exec either): %w", name, err)
		}
		d.links = append(d.links, l)
	}
	return "execve's entry (the syscalls capture traces it anyway)", nil
}

// execWorkers handle exec and exit events side by side: the first process
// of a new executable takes its inspection and the families' attach (up to
// a second), and the processes started meanwhile, short-lived ones above
// all, must not wait behind it. A process's events always go to the same
// worker, so its exit never overtakes its exec.
const execWorkers = 4

func (d *Discoverer) events() {
	defer d.wg.Done()
	var queues [execWorkers]chan procwatchWatchEvent
	var workers sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan procwatchWatchEvent, 256)
		workers.Add(1)
		go func(q <-chan procwatchWatchEvent) {
			defer workers.Done()
			for ev := range q {
				d.handle(ev)
			}
		}(queues[i])
	}
	defer func() {
		for _, q := range queues {
			close(q)
		}
		workers.Wait()
	}()
	// Drained without ever waiting in the reader (see ringpoll): each
	// event wakes the waker; the timer covers a waker that failed, and
	// else only a wakeup lost (never seen): every timer wake is a wake of
	// the whole runtime, on an idle node the agent's main cost.
	var rec ringbuf.Record
	d.rd.SetDeadline(ringpoll.Past)
	every := watchPoll
	if d.waker != nil {
		every = watchSafety
	}
	timer := tick.NewTimer(every)
	defer timer.Stop()
	for {
	drain:
		for d.gate.Pending() {
			err := d.rd.ReadInto(&rec)
			switch {
			case errors.Is(err, ringbuf.ErrClosed):
				return
			case errors.Is(err, os.ErrDeadlineExceeded):
				break drain
			case err != nil:
				d.log.Warn("reading procwatch ring buffer", "err", err)
				break drain
			}
			ev, ok := decodeWatch(rec.RawSample)
			if !ok {
				continue
			}
			// Fibonacci hashing: pids come in strides (a shell's fork and
			// exec), which pid%N would send to one worker.
			queues[(ev.Pid*2654435761)>>16%execWorkers] <- ev
		}
		select {
		case <-d.waker.C():
		case <-timer.C:
		case <-d.stop:
			return
		}
		timer.Reset(every)
	}
}

// watchPoll is how often the exec and exit events are read when the
// netpoller cannot wake the loop (ringpoll.NewWaker failed).
const watchPoll = 100 * time.Millisecond

// watchSafety is how often they are read with a working waker.
const watchSafety = time.Second

// handle acts on one exec or exit event. An exec's delay from the
// kernel's event to the families' Track is measured: what a short-lived
// process loses before it is traced.
func (d *Discoverer) handle(ev procwatchWatchEvent) {
	switch ev.Kind {
	case watchExec:
		d.execs.Add(1)
		if d.execed(int(ev.Pid), &ev) {
			if lag, ok := sinceKtime(ev.KtimeNs); ok {
				d.execLag.Observe(lag.Seconds())
			}
		}
		if ev.Preselected != 0 {
			d.claim(int(ev.Pid), ev)
		}
	case watchExit:
		d.exits.Add(1)
		d.exited(int(ev.Pid))
	}
}

// sinceKtime is how long ago a bpf_ktime_get_ns (CLOCK_MONOTONIC) time was.
func sinceKtime(ns uint64) (time.Duration, bool) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil || ns == 0 {
		return 0, false
	}
	return time.Duration(ts.Nano() - int64(ns)), true
}

func (d *Discoverer) ticker() {
	defer d.wg.Done()
	t := tick.NewTimer(d.cfg.Rescan)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.rescan(false)
			t.Reset(d.cfg.Rescan)
		case <-d.recheck:
			d.rescan(true)
		}
	}
}

// Recheck asks for a rescan that decides again for every process, traced
// or not: the selector's answer may have changed (a pod's tracing switch).
func (d *Discoverer) Recheck() {
	d.quiet.recheck() // at once: the execs from now on are reported
	select {
	case d.recheck <- struct{}{}:
	default: // one is pending already
	}
}

// rescan walks /proc: selects new processes and forgets vanished ones.
func (d *Discoverer) rescan(again bool) {
	pids, err := procs.List(d.cfg.ProcRoot)
	if err != nil {
		d.log.Warn("listing processes", "err", err)
		return
	}
	var ports map[int][]uint16
	if d.cfg.NeedsPorts {
		if ports, err = procs.ListeningPorts(d.cfg.ProcRoot); err != nil {
			d.log.Warn("listing listening ports", "err", err)
		}
	}
	// A process decided before needs no second look unless something
	// could change the answer: a selection by port (its sockets move), a
	// Recheck (again), or exec/exit events the kernel dropped. Exec and
	// exit events keep the rest current; reading every process's /proc
	// files each rescan was the idle agent's largest cost.
	full := again || d.cfg.NeedsPorts || d.eventsLost()
	alive := make(map[int]bool, len(pids))
	for _, pid := range pids {
		alive[pid] = true
		if !full {
			d.mu.Lock()
			_, seen := d.known[pid]
			d.mu.Unlock()
			if seen {
				continue
			}
		}
		d.consider(pid, ports[pid], nil, again)
	}
	if again {
		d.exec.recheck()
	}
	d.mu.Lock()
	var gone []int
	for pid := range d.known {
		if !alive[pid] {
			gone = append(gone, pid)
		}
	}
	d.mu.Unlock()
	for _, pid := range gone {
		// Known but not listed: gone, or started (and tracked from its
		// exec event) after the listing was read. Only the first exited.
		if _, err := os.Stat(filepath.Join(d.cfg.ProcRoot, strconv.Itoa(pid))); err == nil {
			continue
		}
		d.exited(pid)
	}
}

// eventsLost says whether the kernel dropped exec/exit events since the
// last call (the ring buffer was full): then every process is read again.
func (d *Discoverer) eventsLost() bool {
	var n uint64
	if d.objs.Lost == nil || d.objs.Lost.Lookup(uint32(0), &n) != nil {
		return true
	}
	if n == d.lostSeen {
		return false
	}
	d.lostSeen = n
	return true
}

// execed re-evaluates a process: exec may have made it another program.
// It says whether the process is now tracked.
func (d *Discoverer) execed(pid int, ev *procwatchWatchEvent) bool {
	var ports []uint16
	if d.cfg.NeedsPorts {
		if all, err := procs.ListeningPorts(d.cfg.ProcRoot); err == nil {
			ports = all[pid]
		}
	}
	return d.consider(pid, ports, ev, false)
}

// consider decides whether pid is traced; it says whether this call
// started tracking it. exec is the event when the process has just
// exec'd, nil from a scan.
func (d *Discoverer) consider(pid int, ports []uint16, exec *procwatchWatchEvent, again bool) bool {
	if pid == os.Getpid() {
		return false
	}
	// What /proc shows is the program of the exec the decision is on only
	// if the process has begun no exec since: since the exec's event or,
	// from a scan, since just before /proc is read (the clock, not a map
	// read: with -port every process is decided again at every rescan).
	// An exec kept back is stamped again when it is (procwatch's on_exec):
	// one that began before the clock reading but switched the program
	// after /proc was read still has a later stamp.
	var base uint64
	if exec != nil {
		base = exec.KtimeNs
	} else {
		base = d.mono.now()
	}
	tracked, loud := d.decide(pid, ports, exec, again, base)
	if loud && d.quiet.execedSince(pid, base) {
		// Now filed loud, its execs are reported. One before that, while
		// it was read and tracked, may have been kept back (its program
		// filed quiet): decide again on what it runs now.
		ev := &procwatchWatchEvent{Kind: watchExec, Pid: uint32(pid), KtimeNs: d.quiet.entered(pid)}
		tracked, _ = d.decide(pid, ports, ev, false, ev.KtimeNs)
	}
	return tracked
}

// decide is consider's one look at pid, read after its exec stamped base:
// whether this call started tracking it, and whether it filed it loud.
func (d *Discoverer) decide(pid int, ports []uint16, exec *procwatchWatchEvent, again bool, base uint64) (tracked, loud bool) {
	execed := exec != nil
	gen := d.quiet.generation() // before the selector's inputs are read
	info, err := procs.Read(d.cfg.ProcRoot, pid)
	if err != nil {
		if !errors.Is(err, procs.ErrGone) {
			d.log.Debug("reading process", "pid", pid, "err", err)
		}
		return false, false
	}
	if d.afterRead != nil {
		d.afterRead(pid, info.ExePath)
	}
	d.mu.Lock()
	prev, seen := d.known[pid]
	d.mu.Unlock()
	same := seen && prev.startTime == info.StartTime && !execed
	if execed && seen && prev.selected && prev.startTime == info.StartTime && prev.exe == info.ExePath {
		// The exec of the program already traced, reported after a scan
		// found it (a wrapper such as `ip netns exec` or `env` execs it):
		// tracking it again would drop what is in flight for nothing.
		same = true
	}
	if same && !again && (prev.selected || !d.cfg.NeedsPorts) {
		return false, false // already decided, and nothing that could change the answer moved
	}
	if seen && !same && prev.selected {
		d.tracker.Untrack(pid)
		if execed {
			d.log.Info("traced process exec'd another program", "pid", pid, "exe", info.ExePath, "was", prev.exe)
		}
	}
	if seen && !same && prev.skipped {
		d.tracker.(SkipReporter).Forget(pid)
	}
	ok, why := d.cfg.Selector.Selected(info, ports)
	if same && prev.selected {
		if ok {
			return false, false // still traced
		}
		d.tracker.Untrack(pid)
		d.log.Info("process no longer selected", "pid", pid)
	}
	if !ok {
		d.remember(pid, instance{startTime: info.StartTime})
		// Filed only if /proc showed the event's exec's program.
		if exec != nil && base != 0 && selection.QuietScopeOf(d.cfg.Selector, info) >= selection.ScopeCgroup &&
			!d.quiet.execedSince(pid, base) {
			d.quiet.file(exec, gen)
		}
		return false, false
	}
	p, done, err := d.inspect.process(info)
	defer done() // the families read the executable in Track, once for all
	if err != nil {
		d.met.Counter("weft_processes_skipped_total", "selected processes not traced, by reason", "reason", "inspect").Add(1)
		d.log.Warn("selected process not traced", "pid", pid, "exe", info.ExePath, "err", err)
		sr, reports := d.tracker.(SkipReporter)
		if reports {
			sr.Skipped(pid, info.ExePath, err)
		}
		d.remember(pid, instance{startTime: info.StartTime, skipped: reports}) // decided; not retried every rescan
		return false, reports
	}
	scope := selection.ScopeOf(d.cfg.Selector, info)
	if exec != nil && exec.Exe.Inode != 0 && scope != selection.ScopeNone && d.exec.on() {
		// The families file templates for this file's next processes.
		p.Exec = &probes.ExecKey{Ino: exec.Exe.Ino, Inode: exec.Exe.Inode}
	}
	err = d.tracker.Track(p)
	p.Exe = nil // closed by done; a family tracking again opens its own
	if err != nil {
		d.met.Counter("weft_processes_skipped_total", "selected processes not traced, by reason", "reason", "track").Add(1)
		d.log.Warn("tracking process failed", "pid", pid, "err", err)
		d.remember(pid, instance{startTime: info.StartTime})
		return false, false
	}
	d.remember(pid, instance{startTime: info.StartTime, exe: info.ExePath, selected: true})
	if p.Exec != nil {
		d.exec.allow(p, scope, exec.Cgroup)
	}
	d.met.Counter("weft_processes_tracked_total", "processes selected and tracked").Add(1)
	d.log.Info("tracing process", "pid", pid, "exe", info.ExePath, "why", why, "go", p.GoVersion, "goid_offset", p.GoidOffset)
	return true, true
}

// remember records what was decided for pid; a process traced or reported
// as not traceable is filed loud (its execs always reported), any other
// taken back.
func (d *Discoverer) remember(pid int, inst instance) {
	d.mu.Lock()
	defer d.mu.Unlock()
	prev, seen := d.known[pid]
	d.known[pid] = inst
	if loud := inst.selected || inst.skipped; loud != (seen && (prev.selected || prev.skipped)) {
		d.quiet.loud(pid, loud)
	}
}

func (d *Discoverer) exited(pid int) {
	d.mu.Lock()
	prev, seen := d.known[pid]
	delete(d.known, pid)
	if seen && (prev.selected || prev.skipped) {
		d.quiet.loud(pid, false)
	}
	d.mu.Unlock()
	if seen && prev.selected {
		d.tracker.Untrack(pid)
		d.log.Info("traced process exited", "pid", pid)
	}
	if seen && prev.skipped {
		d.tracker.(SkipReporter).Forget(pid)
	}
}

// Shutdown detaches the tracepoints and stops the loops; safe twice.
func (d *Discoverer) Shutdown(ctx context.Context) error {
	d.stopOnce.Do(func() {
		close(d.stop)
		for _, l := range d.links {
			l.Close()
		}
		if d.rd != nil {
			d.gate.Close()
			d.waker.Close()
		}
		d.wg.Wait()
		if d.loaded {
			d.objs.Close()
		}
		d.inspect.close()
	})
	return nil
}
