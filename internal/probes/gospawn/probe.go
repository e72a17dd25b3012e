// Package gospawn is the goroutine-start probe family: one uprobe at the
// RET sites of runtime.newproc1, so that a goroutine's calls are linked to
// the request it was started for at any depth below the handler, and
// stay that request's after the server goroutine has moved on. Without
// it, the other Go probes link a goroutine through itself or its parent
// only. It costs one trap per goroutine started in a traced process, so
// it runs only when asked (Config.On).
package gospawn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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

// Config says whether the family runs.
type Config struct {
	// On: probe goroutine starts (WEFT_GO_GOROUTINES=tree). Off, the
	// family loads nothing and says why in each Go process's status.
	On bool
}

// Probe attaches the newproc1 uprobe to the executables of traced Go
// processes.
type Probe struct {
	deps probes.Deps
	cfg  Config
	log  *slog.Logger
	sock *sockio.Probe
	objs gospawnObjects

	uprobes probes.Uprobes
	set     *probes.UprobeSet[int] // per executable: its RET sites
}

// New makes an unstarted probe that shares sockio's maps: start it after
// sockio.
func New(d probes.Deps, sock *sockio.Probe, cfg Config) *Probe {
	d = d.WithDefaults()
	return &Probe{deps: d, cfg: cfg, log: d.Log.With("probe", Name), sock: sock, set: probes.NewUprobeSet[int]()}
}

// Name implements probes.Probe.
func (p *Probe) Name() string { return Name }

// Start loads the program with sockio's maps in place of its own.
func (p *Probe) Start(ctx context.Context) error {
	if !p.cfg.On {
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
	repl := map[string]*ebpf.Map{"procs": maps.Procs, "goctx": maps.Goctx, "gospawn": maps.Gospawn}
	if err := spec.LoadAndAssign(&p.objs, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		return fmt.Errorf("loading gospawn BPF program: %w", err)
	}
	p.set.SetLoaded()
	names := make(map[uint32]string, len(statNames))
	for idx, name := range statNames {
		names[uint32(idx)] = name
	}
	probes.KernelCounters(p.deps.Metrics, "weft_gospawn_kernel_total", "goroutine-start probe counters by name", p.objs.GospawnStats, names)
	p.set.LinksGauge(p.deps.Metrics, Name)
	return nil
}

// Track attaches the uprobe to a Go process's executable, once per
// executable, and switches the process on.
func (p *Probe) Track(proc *probes.Process) error {
	if proc.GoVersion == "" {
		return nil
	}
	if !p.cfg.On {
		p.deps.Status.Set(proc.PID, status.GoroutineTree, false,
			"off (WEFT_GO_GOROUTINES=tree links calls through any depth of goroutines, at one uprobe hit per goroutine started); calls link through the goroutine and its parent")
		return nil
	}
	if _, ok := proc.GoOffsets[sockio.OffParentGoid]; !ok || proc.GoidOffset == 0 {
		p.deps.Status.Set(proc.PID, status.GoroutineTree, false,
			fmt.Sprintf("%s layout unknown (no DWARF, not in weft's table): runtime.g.goid, %s", proc.GoVersion, sockio.OffParentGoid))
		return nil
	}
	key, err := probes.ExeKeyOf(proc.ExePath)
	if err != nil {
		return nil // the process is gone; discovery will untrack it
	}
	p.set.Locked(func(exes *probes.Exes[int], loaded bool) {
		if loaded {
			err = p.track(exes, proc, key)
		}
	})
	return err
}

// track attaches to a new executable or counts a process of a known one;
// called under the set's lock.
func (p *Probe) track(exes *probes.Exes[int], proc *probes.Process, key probes.ExeKey) error {
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
	p.deps.Status.Set(proc.PID, status.GoroutineTree, true,
		fmt.Sprintf("%s at %d RET sites: one hit per goroutine started", newproc1, rets))
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
	p.set.Release(pid, func() { p.objs.SpawnProcs.Delete(uint32(pid)) })
}

// Shutdown detaches every uprobe; safe twice and without Start.
func (p *Probe) Shutdown(context.Context) error {
	p.set.Shutdown(p.objs.Close)
	return nil
}
