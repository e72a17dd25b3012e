// Package ringpoll waits for a BPF ring buffer the way the agent's event
// loops need: in the Go runtime's netpoller, never inside a system call.
package ringpoll

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Waker tells an event loop when BPF woke the ring buffer's readers (a
// record submitted without BPF_RB_NO_WAKEUP, or with BPF_RB_FORCE_WAKEUP),
// through the Go runtime's netpoller. The loop then drains the ring with a
// ringbuf.Reader whose deadline is in the past, which never waits.
//
// Why not the reader's own blocking wait: a goroutine parked in epoll_wait
// holds its P, so the runtime's sysmon cannot sleep deeply; it retakes the
// P, which resets it to its 20 µs tick, and with GOMAXPROCS=1 every other
// goroutine waits for that. At a few thousand requests a second that was
// the agent's largest cost (measured: a quarter of its CPU in sysmon's
// nanosleeps and the context switches they cost on a VM). Waiting in the
// netpoller parks no thread in a system call.
type Waker struct {
	f *os.File
	c chan struct{}
}

// NewWaker registers a duplicate of the ring buffer map's descriptor with
// the netpoller. It fails if the runtime cannot poll it; the loop then
// wakes on its timer only. Every wakeup after NewWaker returns reaches C;
// records already in the ring are the caller's to drain.
func NewWaker(m *ebpf.Map) (*Waker, error) {
	fd, err := unix.FcntlInt(uintptr(m.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicating the ring buffer descriptor: %w", err)
	}
	// O_NONBLOCK is on the open file, shared with the reader's descriptor:
	// neither map operations nor epoll look at it.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ring buffer descriptor: %w", err)
	}
	f := os.NewFile(uintptr(fd), m.String())
	// A descriptor the netpoller took has deadlines; one it did not would
	// make every wait below return at once.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("ring buffer not pollable by the runtime: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ring buffer descriptor: %w", err)
	}
	w := &Waker{f: f, c: make(chan struct{}, 1)}
	waiting := make(chan struct{})
	go w.run(rc, waiting)
	// Read clears the descriptor's readiness when it starts, so a wakeup
	// before then would be lost: return only once it has started.
	<-waiting
	return w, nil
}

func (w *Waker) run(rc syscall.RawConn, waiting chan<- struct{}) {
	var once sync.Once
	started := func() { once.Do(func() { close(waiting) }) }
	defer started() // Read failed before its first call
	// One Read for the Waker's life: the callback says "not yet" every
	// time, so Read parks until the netpoller sees the descriptor readable
	// (an edge: a wakeup) and calls it again. Read resets the descriptor's
	// readiness once, when it starts: a Read per wakeup would drop one that
	// came between two Reads, and a ring whose records ask for a wakeup
	// only when the reader has caught up would then wake nothing more.
	first := true
	_ = rc.Read(func(uintptr) bool {
		if first {
			started()
		} else {
			select {
			case w.c <- struct{}{}:
			default:
			}
		}
		first = false
		return false
	}) // returns once the descriptor is closed
}

// C receives when BPF woke the readers; nil for a nil Waker (never).
func (w *Waker) C() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.c
}

// Close stops the waiting goroutine; safe on nil and twice.
func (w *Waker) Close() {
	if w != nil {
		w.f.Close()
	}
}

// Past is a read deadline that has passed: a ringbuf.Reader given it
// returns what the ring holds and never waits.
var Past = time.Unix(1, 0)

// Gate reads whether a ring holds anything, safely against the reader's
// Close (which unmaps the pages the positions are in).
type Gate struct {
	mu     sync.Mutex
	closed bool
	rd     *ringbuf.Reader
}

// NewGate wraps rd; close rd through the Gate from then on.
func NewGate(rd *ringbuf.Reader) *Gate { return &Gate{rd: rd} }

// Pending says whether the ring holds anything to read, from the positions
// in its shared pages: no system call. A reader asked to read an empty
// ring makes one (epoll_wait, to learn it need not wait), and a system
// call from an otherwise idle agent wakes the runtime's sysmon from its
// deep sleep into a millisecond of 20 µs ticks: a loop that wakes on a
// timer skips the reader when there is nothing to read. False once closed.
func (g *Gate) Pending() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.closed && g.rd.AvailableBytes() > 0
}

// Closed says whether Close was called.
func (g *Gate) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Close closes the reader (a read in progress returns ringbuf.ErrClosed);
// safe twice.
func (g *Gate) Close() error {
	g.mu.Lock()
	was := g.closed
	g.closed = true
	g.mu.Unlock()
	if was {
		return nil
	}
	return g.rd.Close()
}
