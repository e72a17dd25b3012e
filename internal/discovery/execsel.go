package discovery

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/procs"
	"github.com/weft-dev/weft/internal/selection"
)

// ExitedReporter is what a Tracker may also be told: a process the kernel
// selected at exec (bpf/execsel.h) that was gone before it could be read.
// p is made from the last process of the same executable (and cgroup)
// tracked, with its own PID: the events it left are its spans. Untrack
// follows.
type ExitedReporter interface {
	Exited(p *probes.Process)
}

// maxLast bounds the executables whose last process is remembered.
const maxLast = 1024

// execSel keeps the kernel's selection at exec (sockio's exec_sel map) in
// step with the selector: once a process exec'd from a file is selected
// with a Scope that carries to the file's other processes, the kernel
// selects the next ones at their exec, before their first instruction.
type execSel struct {
	m   *ebpf.Map
	log *slog.Logger

	mu    sync.Mutex
	added map[procwatchExecSelKey]bool
	last  map[probes.ExecKey]*probes.Process

	outcome map[string]*atomic.Uint64
}

func newExecSel(m *ebpf.Map, log *slog.Logger, met *metrics.Registry) *execSel {
	e := &execSel{m: m, log: log, added: map[procwatchExecSelKey]bool{}, last: map[probes.ExecKey]*probes.Process{},
		outcome: map[string]*atomic.Uint64{}}
	for _, o := range []string{"tracked", "exited", "not_tracked"} {
		e.outcome[o] = met.Counter("weft_discovery_exec_selected_total",
			"processes the kernel selected at exec, by what user space then did: tracked them, handed over the events of one already gone, or took the kernel's entries back", "outcome", o)
	}
	return e
}

func (e *execSel) on() bool { return e != nil && e.m != nil }

// allow files p's executable (p.Exec) as selected at exec: in the cgroup
// the process exec'd in, or in any; and remembers p for a next process
// that is gone before it can be read.
func (e *execSel) allow(p *probes.Process, scope selection.Scope, cgroup uint64) {
	k := procwatchExecSelKey{}
	k.Exe.Ino, k.Exe.Inode = p.Exec.Ino, p.Exec.Inode
	if scope == selection.ScopeCgroup {
		k.Cgroup = cgroup
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.last) >= maxLast {
		clear(e.last)
	}
	last := *p
	last.Exe = nil
	e.last[*p.Exec] = &last
	if e.added[k] {
		return
	}
	if err := e.m.Put(&k, uint8(1)); err != nil {
		e.log.Warn("executable not selected at exec: its next processes wait for user space", "exe", p.ExePath, "err", err)
		return
	}
	e.added[k] = true
}

// recheck drops the entries of a cgroup: the switch that selected it may
// have changed. The next process of each that user space selects files it
// again.
func (e *execSel) recheck() {
	if !e.on() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k := range e.added {
		if k.Cgroup != 0 {
			_ = e.m.Delete(&k)
			delete(e.added, k)
		}
	}
}

func (e *execSel) lastOf(k probes.ExecKey) *probes.Process {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last[k]
}

// claim settles a process the kernel selected at its exec: user space has
// tracked it by now, or else the kernel's entries for it are taken back,
// after the events it left are handed over if it has already exited.
func (d *Discoverer) claim(pid int, ev procwatchWatchEvent) {
	d.mu.Lock()
	inst, ok := d.known[pid]
	d.mu.Unlock()
	if ok && inst.selected {
		d.exec.outcome["tracked"].Add(1)
		return
	}
	// Gone as procs.Read sees it: a zombie (exited, not yet reaped) still
	// has its /proc entry, and taking it for alive dropped the events of
	// a short-lived client (TestShortLivedClients, 1 run in 50).
	if _, err := procs.Read(d.cfg.ProcRoot, pid); errors.Is(err, procs.ErrGone) {
		last := d.exec.lastOf(probes.ExecKey{Ino: ev.Exe.Ino, Inode: ev.Exe.Inode})
		if er, reports := d.tracker.(ExitedReporter); reports && last != nil {
			g, err := exitedLike(last, pid)
			if err == nil {
				er.Exited(g)
				d.tracker.Untrack(pid)
				d.exec.outcome["exited"].Add(1)
				return
			}
			d.log.Warn("events of an exited process dropped", "pid", pid, "err", err)
		}
	}
	d.tracker.Untrack(pid)
	d.exec.outcome["not_tracked"].Add(1)
}

// exitedLike is the process pid as far as it can be known once gone: last,
// a process of the same executable and cgroup, with pid's own PID.
func exitedLike(last *probes.Process, pid int) (*probes.Process, error) {
	p := *last
	p.PID, p.StartTime, p.Exe, p.Exec = pid, 0, nil, nil
	p.ExePath = fmt.Sprintf("/proc/%d/exe", pid)
	if last.Resource != nil {
		attrs := last.Resource.Attributes()
		for i, kv := range attrs {
			if kv.Key == "process.pid" {
				attrs[i] = attribute.Int("process.pid", pid)
			}
		}
		p.Resource = resource.NewWithAttributes(last.Resource.SchemaURL(), attrs...)
	}
	return &p, nil
}
