package sockio

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ringWaker tells the event loop when BPF forced a wakeup of the ring
// buffer (WAKEUP_BYTES waiting), through the Go runtime's netpoller.
//
// Why not the ring reader's own blocking wait: a goroutine parked in
// epoll_wait holds its P for the whole timeout, so the runtime's sysmon
// cannot sleep deeply; every pollEvery it retakes that P, which resets it
// to its 20 µs tick. At a few thousand requests a second that was the
// agent's largest cost (measured: a quarter of its CPU in sysmon's
// nanosleeps and the context switches they cost on a VM). Waiting in the
// netpoller (and on a timer) parks no thread in a system call.
type ringWaker struct {
	f *os.File
	c chan struct{}
}

// newRingWaker registers a duplicate of the ring buffer map's descriptor
// with the netpoller. It fails if the runtime cannot poll it; the loop then
// wakes on its timer only.
func newRingWaker(m *ebpf.Map) (*ringWaker, error) {
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
	f := os.NewFile(uintptr(fd), "sockio-events")
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
	w := &ringWaker{f: f, c: make(chan struct{}, 1)}
	go w.run(rc)
	return w, nil
}

func (w *ringWaker) run(rc syscall.RawConn) {
	for {
		waited := false
		// The first call says "not yet": Read then parks until the
		// netpoller sees the descriptor readable (an edge: a forced
		// wakeup), and calls again.
		err := rc.Read(func(uintptr) bool {
			done := waited
			waited = true
			return done
		})
		if err != nil { // closed
			return
		}
		select {
		case w.c <- struct{}{}:
		default:
		}
	}
}

// C receives when BPF forced a wakeup; nil for a nil waker (never).
func (w *ringWaker) C() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.c
}

// Close stops the waiting goroutine; safe on nil and twice.
func (w *ringWaker) Close() {
	if w != nil {
		w.f.Close()
	}
}
