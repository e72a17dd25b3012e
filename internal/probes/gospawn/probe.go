// Package gospawn is the goroutine-start probe family: one uprobe at the
// RET sites of runtime.newproc1, so that a goroutine's calls are linked to
// the request it was started for at any depth below the handler, and
// stay that request's after the server goroutine has moved on. Without
// it, the other Go probes link a goroutine through itself or its parent
// only. It costs one trap per goroutine started in a traced process, so
// by default (ModeAuto) it attaches to an executable only once one of its
// processes shows the need: a Go call that no goroutine link reached while
// the process serves requests (sockio's go_roots).
package gospawn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/weft-dev/weft/internal/goinspect"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/probes/sockio"
	"github.com/weft-dev/weft/internal/status"
)

// Name is the family's name.
const Name = "gospawn"

// newproc1 makes every new goroutine (go statements, and the runtime's
// own); its result is the new g, which carries goid and parentGoid.
const newproc1 = "runtime.newproc1"

var statNames = map[gospawnGospawnStat]string{
	gospawnGospawnStatSP_STARTED: "started",
	gospawnGospawnStatSP_LINKED:  "linked",
}

// Modes: how far Go calls are linked up their goroutines.
const (
	ModeParent = "parent" // never probe goroutine starts
	ModeAuto   = "auto"   // probe an executable's once its calls need it
	ModeTree   = "tree"   // probe every traced Go executable's
)

// Config says when the family attaches.
type Config struct {
	Mode string // ModeParent, ModeAuto (the zero value) or ModeTree
	// Poll is how often auto mode reads go_roots (default 500 ms).
	Poll time.Duration
}

// waiter is a process auto mode has not switched on, and its executable.
type waiter struct {
	proc *probes.Process
	key  probes.ExeKey
}

// Probe attaches the newproc1 uprobe to the executables of traced Go
// processes.
type Probe struct {
	deps probes.Deps
	cfg  Config
	log  *slog.Logger
	sock *sockio.Probe
	objs gospawnObjects
	maps sockio.Maps

	uprobes probes.Uprobes
	set     *probes.UprobeSet[int] // per executable: its RET sites

	batchFallbacks *atomic.Uint64

	mu       sync.Mutex
	waiting  map[int]waiter // auto: traced Go processes not switched on yet
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// New makes an unstarted probe that shares sockio's maps: start it after
// sockio.
func New(d probes.Deps, sock *sockio.Probe, cfg Config) *Probe {
	d = d.WithDefaults()
	if cfg.Mode == "" {
		cfg.Mode = ModeAuto
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	return &Probe{deps: d, cfg: cfg, log: d.Log.With("probe", Name), sock: sock, set: probes.NewUprobeSet[int](),
		waiting: map[int]waiter{}, stop: make(chan struct{})}
}

// Name implements probes.Probe.
func (p *Probe) Name() string { return Name }

// After implements probes.Dependent: the hooks use sockio's maps.
func (p *Probe) After() []probes.Probe { return []probes.Probe{p.sock} }

// Start loads the program with sockio's maps in place of its own.
func (p *Probe) Start(ctx context.Context) error {
	if p.cfg.Mode == ModeParent {
		return nil
	}
	spec, err := loadGospawn()
	if err != nil {
		return fmt.Errorf("reading gospawn BPF object: %w", err)
	}
	if p.uprobes, err = probes.NewUprobes(); err != nil {
		return err
	}
	if err := p.uprobes.Prepare(spec, "go_started"); err != nil {
		return err
	}
	maps, err := p.sock.Maps()
	if err != nil {
		return fmt.Errorf("gospawn uses sockio's maps: %w", err)
	}
	p.maps = maps
	repl := map[string]*ebpf.Map{"procs": maps.Procs, "goctx": maps.Goctx, "gospawn": maps.Gospawn, "go_roots": maps.GoRoots}
	if err := spec.LoadAndAssign(&p.objs, &ebpf.CollectionOptions{MapReplacements: repl, Cache: p.deps.BTF.Cache()}); err != nil {
		return fmt.Errorf("loading gospawn BPF program: %w", err)
	}
	p.set.SetLoaded()
	names := make(map[uint32]string, len(statNames))
	for idx, name := range statNames {
		names[uint32(idx)] = name
	}
	probes.KernelCounters(p.deps.Metrics, "weft_gospawn_kernel_total", "goroutine-start probe counters by name", p.objs.GospawnStats, names)
	p.set.LinksGauge(p.deps.Metrics, Name)
	if p.cfg.Mode == ModeAuto {
		p.deps.Metrics.Gauge("weft_gospawn_waiting", "traced Go processes whose goroutine starts auto mode does not probe (yet)",
			func() float64 { p.mu.Lock(); defer p.mu.Unlock(); return float64(len(p.waiting)) })
		p.batchFallbacks = probes.BatchFallbacks(p.deps.Metrics, "go_roots")
		p.wg.Add(1)
		go p.watch()
	}
	return nil
}

// watch switches auto mode on for the processes whose calls needed it.
func (p *Probe) watch() {
	defer p.wg.Done()
	probes.Every(p.stop, p.cfg.Poll, p.poll)
}

// poll reads go_roots for the waiting processes and switches on those
// with roots, and every waiting process of an executable whose goroutine
// starts are probed already (the uprobe traps in all of them anyway).
func (p *Probe) poll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiting) == 0 {
		return
	}
	hot := map[probes.ExeKey]string{} // executable → why its processes go on
	root := func(pid uint32, n uint64) {
		w, ok := p.waiting[int(pid)]
		if !ok || n == 0 {
			return
		}
		if _, ok := hot[w.key]; !ok {
			p.log.Info("goroutine starts probed: calls from goroutines below the handler's children were roots",
				"pid", pid, "roots", n)
			hot[w.key] = fmt.Sprintf("auto: switched on after %d calls of pid %d were roots while serving", n, pid)
		}
	}
	// go_roots holds only the processes whose calls were roots (those
	// switched on too): read whole in batches when many wait.
	pids := make([]uint32, 0, len(p.waiting))
	for pid := range p.waiting {
		pids = append(pids, uint32(pid))
	}
	if err := probes.ReadEntries(p.maps.GoRoots, pids, root, p.batchFallbacks); err != nil {
		p.log.Debug("polling go_roots", "err", err)
	}
	p.set.Locked(func(exes *probes.Exes[int], loaded bool) {
		for _, w := range p.waiting {
			if _, ok := hot[w.key]; !ok {
				if _, attached := exes.Info(w.key); attached {
					hot[w.key] = "auto: its executable's goroutine starts are probed already"
				}
			}
		}
	})
	// Under p.mu, so that an Untrack (which forgets the process first)
	// comes before or after a switch, never in the middle.
	for pid, w := range p.waiting {
		why, ok := hot[w.key]
		if !ok {
			continue
		}
		delete(p.waiting, pid)
		if err := p.attachTo(w.proc, why); err != nil {
			p.log.Warn("switching goroutine starts on", "pid", pid, "err", err)
		}
	}
}

func (p *Probe) forget(pid int) {
	p.mu.Lock()
	delete(p.waiting, pid)
	p.mu.Unlock()
	if p.maps.GoRoots != nil {
		_ = p.maps.GoRoots.Delete(uint32(pid))
	}
}

// Track attaches the uprobe to a Go process's executable, once per
// executable, and switches the process on (tree mode); in auto mode it
// waits until the process's calls need it.
func (p *Probe) Track(proc *probes.Process) error {
	if proc.GoVersion == "" {
		return nil
	}
	if p.cfg.Mode == ModeParent {
		p.deps.Status.Set(proc.PID, status.GoroutineTree, false,
			"off (WEFT_GO_GOROUTINES=parent); calls link through the goroutine and its parent")
		return nil
	}
	if _, ok := proc.GoOffsets[sockio.OffParentGoid]; !ok || proc.GoidOffset == 0 {
		p.deps.Status.Set(proc.PID, status.GoroutineTree, false,
			fmt.Sprintf("%s layout unknown (no DWARF, not in weft's table): runtime.g.goid, %s", proc.GoVersion, sockio.OffParentGoid))
		return nil
	}
	if p.cfg.Mode == ModeAuto {
		key, err := probes.ExeKeyOf(proc.ExePath)
		if err != nil {
			return nil // the process is gone; discovery will untrack it
		}
		attached := false
		p.set.Locked(func(exes *probes.Exes[int], loaded bool) {
			_, attached = exes.Info(key)
		})
		if !attached {
			cp := *proc
			cp.Exe = nil // closed after Track; attach opens its own
			// A count left by an earlier process with this pid is not its.
			_ = p.maps.GoRoots.Delete(uint32(proc.PID))
			p.mu.Lock()
			p.waiting[proc.PID] = waiter{proc: &cp, key: key}
			p.mu.Unlock()
			p.deps.Status.Set(proc.PID, status.GoroutineTree, false,
				"auto: not needed yet (switched on when a call from a goroutine below the handler's children would be a root)")
			return nil
		}
		return p.attachTo(proc, "auto: its executable's goroutine starts are probed already")
	}
	return p.attachTo(proc, "")
}

// attachTo attaches to proc's executable if need be and switches proc on.
func (p *Probe) attachTo(proc *probes.Process, why string) error {
	key, err := probes.ExeKeyOf(proc.ExePath)
	if err != nil {
		return nil // the process is gone; discovery will untrack it
	}
	p.set.Locked(func(exes *probes.Exes[int], loaded bool) {
		if loaded {
			err = p.track(exes, proc, key, why)
		}
	})
	return err
}

// track attaches to a new executable or counts a process of a known one;
// called under the set's lock.
func (p *Probe) track(exes *probes.Exes[int], proc *probes.Process, key probes.ExeKey, why string) error {
	rets, known := exes.Info(key)
	var ls []link.Link
	if !known {
		var err error
		rets, ls, err = p.attach(proc)
		if err != nil {
			// Calls still link through a goroutine's parent; say so.
			p.deps.Metrics.Counter("weft_uprobe_attach_failures_total", "uprobes that did not attach, by family", "family", Name).Add(1)
			p.log.Warn("calls of this process link through one generation of goroutines only", "pid", proc.PID, "err", err)
			p.deps.Status.Set(proc.PID, status.GoroutineTree, false, err.Error())
			return nil
		}
	}
	if err := p.objs.SpawnProcs.Put(uint32(proc.PID), uint8(1)); err != nil {
		for _, l := range ls {
			l.Close()
		}
		p.deps.Status.Set(proc.PID, status.GoroutineTree, false, err.Error())
		return fmt.Errorf("switching goroutine starts on for pid %d: %w", proc.PID, err)
	}
	if !known {
		exes.Attached(key, ls, rets)
		p.log.Info("uprobe attached", "pid", proc.PID, "func", newproc1, "ret_sites", rets)
	}
	exes.Use(proc.PID, key)
	on := fmt.Sprintf("%s at %d RET sites: one hit per goroutine started", newproc1, rets)
	if why != "" {
		on = why + "; " + on
	}
	p.deps.Status.Set(proc.PID, status.GoroutineTree, true, on)
	return nil
}

// attach finds newproc1's RET sites and attaches the uprobe there.
func (p *Probe) attach(proc *probes.Process) (int, []link.Link, error) {
	b, release, err := proc.Inspect()
	if err != nil {
		return 0, nil, err
	}
	defer release()
	f, err := b.Func(newproc1)
	if errors.Is(err, goinspect.ErrNoFunc) {
		return 0, nil, fmt.Errorf("%s not found (inlined or renamed in %s)", newproc1, proc.GoVersion)
	}
	if err != nil {
		return 0, nil, err
	}
	rets, err := b.ReturnOffsets(f)
	if err != nil {
		return 0, nil, err
	}
	if len(rets) == 0 {
		return 0, nil, fmt.Errorf("%s has no RET instruction to read its result at", newproc1)
	}
	ex, err := link.OpenExecutable(proc.ExePath)
	if err != nil {
		return 0, nil, fmt.Errorf("opening %s for uprobes: %w", proc.ExePath, err)
	}
	ls, err := p.uprobes.Attach(ex, newproc1, p.objs.GoStarted, rets...)
	if err != nil {
		return 0, nil, fmt.Errorf("attaching to %s in %s: %w", newproc1, proc.ExePath, err)
	}
	return len(rets), ls, nil
}

// Untrack forgets the process and detaches the uprobe when the last
// process of its executable goes.
func (p *Probe) Untrack(pid int) {
	p.forget(pid)
	p.set.Release(pid, func() { p.objs.SpawnProcs.Delete(uint32(pid)) })
}

// Shutdown stops auto mode's watch and detaches every uprobe; safe twice
// and without Start.
func (p *Probe) Shutdown(context.Context) error {
	p.stopOnce.Do(func() { close(p.stop) })
	p.wg.Wait()
	p.set.Shutdown(p.objs.Close)
	return nil
}
