package probes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/weft-dev/weft/internal/status"
)

// Families are the probe families the agent runs, in the order they start:
// a family that uses another's kernel maps comes after it (its constructor
// takes that family). They shut down in reverse. Families tells each of
// them about every selected process (discovery's Tracker) and logs what
// they could do for it.
type Families struct {
	list    []Probe
	board   *status.Board
	log     *slog.Logger
	started []bool // by index in list
}

// Dependent is a family that names the families whose kernel objects it
// uses (those its constructor took): it starts as soon as they have, beside
// the families that do not need it. A family that is not Dependent starts
// after every family listed before it.
type Dependent interface {
	After() []Probe
}

// NewFamilies keeps ps in order.
func NewFamilies(log *slog.Logger, board *status.Board, ps ...Probe) *Families {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Families{list: ps, board: board, log: log}
}

// Names lists the families in start order.
func (f *Families) Names() []string {
	names := make([]string, len(f.list))
	for i, p := range f.list {
		names[i] = p.Name()
	}
	return names
}

// Start starts every family once the families it depends on have started
// (Dependent; else every earlier one): families that do not depend on each
// other load and verify their BPF at the same time, on as many CPUs. On an
// error it stops those started and returns the error of the first family
// in the list that failed; a family whose dependency failed first is not
// started. Safe twice.
//
// Families start after sockio has, not once its maps exist: starting them
// on its maps alone, beside its own loads, raised the agent's peak RSS at
// start from 65 to 75-86 MiB for no start time measurable on 2 CPUs.
func (f *Families) Start(ctx context.Context) error {
	if slices.Contains(f.started, true) {
		return nil
	}
	n := len(f.list)
	f.started = make([]bool, n)
	done := make([]chan struct{}, n)
	errs := make([]error, n)
	for i := range done {
		done[i] = make(chan struct{})
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, p := range f.list {
		deps := f.dependencies(i)
		wg.Go(func() {
			defer close(done[i])
			for _, d := range deps {
				if <-done[d]; errs[d] != nil {
					errs[i] = errDependencyFailed
					return
				}
			}
			t0 := time.Now()
			if err := p.Start(ctx); err != nil {
				errs[i] = fmt.Errorf("starting probe family %s: %w", p.Name(), err)
				return
			}
			f.log.Debug("probe family started", "family", p.Name(), "took", time.Since(t0))
			mu.Lock()
			f.started[i] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && err != errDependencyFailed {
			f.Shutdown(context.WithoutCancel(ctx))
			return err
		}
	}
	return nil
}

// errDependencyFailed marks a family not started because one it depends
// on failed; that one's error is the one returned.
var errDependencyFailed = errors.New("a family it depends on failed to start")

// dependencies returns the indices of the families list[i] starts after:
// those it names that come before it in the list (Dependent), else all
// before it.
func (f *Families) dependencies(i int) []int {
	d, ok := f.list[i].(Dependent)
	if !ok {
		all := make([]int, i)
		for j := range all {
			all[j] = j
		}
		return all
	}
	var deps []int
	for _, want := range d.After() {
		for j := range i {
			if f.list[j] == want {
				deps = append(deps, j)
			}
		}
	}
	return deps
}

// Shutdown stops the started families in reverse list order (a family
// after those it uses); safe twice.
func (f *Families) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(f.started) - 1; i >= 0; i-- {
		if !f.started[i] {
			continue
		}
		f.started[i] = false
		p := f.list[i]
		if err := p.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Track gives a selected process to every family.
func (f *Families) Track(p *Process) error {
	exe := p.ExePath
	if p.Resource != nil {
		if v, ok := p.Resource.Set().Value("process.executable.path"); ok {
			exe = v.AsString()
		}
	}
	f.board.Add(p.PID, exe, p.GoVersion, p.Modules)
	var errs []error
	for _, pr := range f.list {
		if err := pr.Track(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pr.Name(), err))
		}
	}
	if st, ok := f.board.Get(p.PID); ok {
		on, off := st.Summary()
		f.log.Info("capabilities", "pid", p.PID, "on", on, "off", off)
	}
	return errors.Join(errs...)
}

// Untrack takes a process from every family.
func (f *Families) Untrack(pid int) {
	for _, pr := range f.list {
		pr.Untrack(pid)
	}
	f.board.Remove(pid)
}

// ExitedTracker is a family that keeps, in user space, what it captured
// of a process before Track (sockio's parked events).
type ExitedTracker interface {
	// TrackExited takes the events a process left that exited before it
	// could be tracked; Untrack follows.
	TrackExited(p *Process)
}

// Exited hands a process the kernel selected at exec, gone before it
// could be read, to the families that hold its events (discovery's
// ExitedReporter). It is not put on the status board.
func (f *Families) Exited(p *Process) {
	for _, pr := range f.list {
		if et, ok := pr.(ExitedTracker); ok {
			et.TrackExited(p)
		}
	}
}

// Skipped puts a selected process weft cannot trace on the status board.
func (f *Families) Skipped(pid int, exe string, why error) { f.board.Skip(pid, exe, why) }

// Forget takes a skipped process off the board once it is gone.
func (f *Families) Forget(pid int) { f.board.Remove(pid) }
