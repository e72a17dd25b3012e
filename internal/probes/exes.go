package probes

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/weft-dev/weft/internal/metrics"
)

// ExeKey names an executable file (device and inode), whatever path a
// process reached it by: uprobes attach per file.
type ExeKey struct{ Dev, Ino uint64 }

// ExeKeyOf stats path; an error means the file (or process) is gone.
func ExeKeyOf(path string) (ExeKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return ExeKey{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return ExeKey{Dev: st.Dev, Ino: st.Ino}, nil
}

// Exes keeps a family's uprobe links per executable, shared by the
// processes that run it, with what the family learnt of the file (T), and
// closes them when the last of those processes goes: a uprobe traps in
// every process that maps the file, traced or not. Not safe for concurrent
// use: families hold their own lock.
//
// An executable whose processes are selected at exec in the kernel
// (Linger) keeps its links after its last process goes, so that the next
// run (a CLI, a Job) is traced from its first instruction with no attach;
// at most MaxIdle such idle executables per family, the longest idle
// detached first.
type Exes[T any] struct {
	exes  map[ExeKey]*exe[T]
	byPID map[int]ExeKey
	idle  []ExeKey // lingering executables without processes, oldest first
}

// MaxIdle bounds the executables a family keeps attached without a
// process: each costs a trap per hit in untraced processes of that file.
const MaxIdle = 32

type exe[T any] struct {
	links  []link.Link
	info   T
	pids   map[int]bool
	linger bool
}

// NewExes makes an empty set.
func NewExes[T any]() *Exes[T] {
	return &Exes[T]{exes: map[ExeKey]*exe[T]{}, byPID: map[int]ExeKey{}}
}

// Info returns what was recorded for an executable already attached.
func (e *Exes[T]) Info(key ExeKey) (T, bool) {
	x, ok := e.exes[key]
	if !ok {
		var zero T
		return zero, false
	}
	return x.info, true
}

// Attached records an executable's links, then Use says which processes
// run it.
func (e *Exes[T]) Attached(key ExeKey, links []link.Link, info T) {
	e.exes[key] = &exe[T]{links: links, info: info, pids: map[int]bool{}}
}

// Grow adds links to an attached executable and replaces what is
// recorded for it; false if it is not attached (the links are then the
// caller's to close).
func (e *Exes[T]) Grow(key ExeKey, links []link.Link, info T) bool {
	x, ok := e.exes[key]
	if !ok {
		return false
	}
	x.links = append(x.links, links...)
	x.info = info
	return true
}

// PIDs returns the processes counted for an attached executable, in order.
func (e *Exes[T]) PIDs(key ExeKey) []int {
	x, ok := e.exes[key]
	if !ok {
		return nil
	}
	pids := make([]int, 0, len(x.pids))
	for pid := range x.pids {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

// Use counts a process of an attached executable.
func (e *Exes[T]) Use(pid int, key ExeKey) {
	if x, ok := e.exes[key]; ok {
		x.pids[pid] = true
		e.byPID[pid] = key
		if i := slices.Index(e.idle, key); i >= 0 {
			e.idle = slices.Delete(e.idle, i, i+1)
		}
	}
}

// Linger keeps an attached executable's links after its last process
// goes (its processes are selected at exec).
func (e *Exes[T]) Linger(key ExeKey) {
	if x, ok := e.exes[key]; ok {
		x.linger = true
	}
}

// Release forgets a process, detaching its executable's uprobes if it was
// the last; false if the process was not counted.
func (e *Exes[T]) Release(pid int) bool {
	key, ok := e.byPID[pid]
	if !ok {
		return false
	}
	delete(e.byPID, pid)
	x := e.exes[key]
	delete(x.pids, pid)
	if len(x.pids) == 0 {
		if !x.linger {
			closeLinks(x.links)
			delete(e.exes, key)
			return true
		}
		e.idle = append(e.idle, key)
		for len(e.idle) > MaxIdle {
			old := e.idle[0]
			e.idle = e.idle[1:]
			closeLinks(e.exes[old].links)
			delete(e.exes, old)
		}
	}
	return true
}

// Links counts the uprobes attached.
func (e *Exes[T]) Links() int {
	n := 0
	for _, x := range e.exes {
		n += len(x.links)
	}
	return n
}

// CloseAll detaches everything.
func (e *Exes[T]) CloseAll() {
	for k, x := range e.exes {
		closeLinks(x.links)
		delete(e.exes, k)
	}
	clear(e.byPID)
	e.idle = nil
}

func closeLinks(links []link.Link) {
	for _, l := range links {
		l.Close()
	}
}

// UprobeSet is the bookkeeping every uprobe family shares: its
// executables' links (Exes) under one lock, whether its BPF objects are
// loaded, and a shutdown that closes both once.
type UprobeSet[T any] struct {
	mu     sync.Mutex
	loaded bool
	exes   *Exes[T]
	once   sync.Once
	exec   link.Link // the family's exec program's (bpf/execsel.h), if any
}

// NewUprobeSet makes an empty set.
func NewUprobeSet[T any]() *UprobeSet[T] { return &UprobeSet[T]{exes: NewExes[T]()} }

// SetLoaded records that the family's objects are loaded.
func (s *UprobeSet[T]) SetLoaded() { s.mu.Lock(); s.loaded = true; s.mu.Unlock() }

// Locked runs f under the set's lock with the executables and whether the
// objects are loaded (Track's check-attach-record sequence).
func (s *UprobeSet[T]) Locked(f func(exes *Exes[T], loaded bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.exes, s.loaded)
}

// Release forgets a process, detaching its executable's uprobes if it was
// the last; forget, when not nil, runs while the objects are loaded (to
// drop its per-process map entries), also for a process never counted: an
// exec program may have filed entries for it (bpf/execsel.h).
func (s *UprobeSet[T]) Release(pid int, forget func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exes.Release(pid)
	if s.loaded && forget != nil {
		forget()
	}
}

// Shutdown detaches every uprobe and closes the objects; safe twice and
// without a load.
func (s *UprobeSet[T]) Shutdown(closeObjs func() error) {
	s.once.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.exes.CloseAll()
		if s.exec != nil {
			s.exec.Close()
			s.exec = nil
		}
		if s.loaded {
			closeObjs()
			s.loaded = false
		}
	})
}

// AttachExec attaches the family's exec program (bpf/execsel.h), which
// Shutdown detaches. Without it the family still works; only processes
// selected at exec wait for user space.
func (s *UprobeSet[T]) AttachExec(prog *ebpf.Program) error {
	l, err := AttachExec(prog)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.exec = l
	s.mu.Unlock()
	return nil
}

// AttachExec attaches an exec program (bpf/execsel.h) to
// sched_process_exec.
func AttachExec(prog *ebpf.Program) (link.Link, error) {
	l, err := link.Tracepoint("sched", "sched_process_exec", prog, nil)
	if err != nil {
		return nil, fmt.Errorf("attaching the exec program to sched_process_exec: %w", err)
	}
	return l, nil
}

// LinksGauge serves the number of uprobe links attached as
// weft_uprobes_attached{family}.
func (s *UprobeSet[T]) LinksGauge(met *metrics.Registry, family string) {
	met.Gauge("weft_uprobes_attached", "uprobes attached, by family",
		func() float64 { s.mu.Lock(); defer s.mu.Unlock(); return float64(s.exes.Links()) }, "family", family)
}
