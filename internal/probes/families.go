package probes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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
	started int
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

// Start starts every family in order; on an error it stops those started.
func (f *Families) Start(ctx context.Context) error {
	for _, p := range f.list[f.started:] {
		if err := p.Start(ctx); err != nil {
			f.Shutdown(context.WithoutCancel(ctx))
			return fmt.Errorf("starting probe family %s: %w", p.Name(), err)
		}
		f.started++
	}
	return nil
}

// Shutdown stops the started families in reverse order; safe twice.
func (f *Families) Shutdown(ctx context.Context) error {
	var errs []error
	for ; f.started > 0; f.started-- {
		p := f.list[f.started-1]
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
