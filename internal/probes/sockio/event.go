package sockio

import (
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Values of struct event's kind and dir (bpf/sockio.h).
const (
	evData  = 1
	evClose = 3

	dirRead  = 1
	dirWrite = 2

	originNew = 1

	ctxLinked  = 1 // CTX_LINKED
	ctxSampled = 2 // CTX_SAMPLED

	afInet6 = 10
)

const eventSize = int(unsafe.Sizeof(sockioEvent{}))

// decode views a ring-buffer record as the generated mirror of struct event
// and the captured bytes after it. ok is false for a short record.
func decode(raw []byte) (ev sockioEvent, data []byte, ok bool) {
	if len(raw) < eventSize {
		return ev, nil, false
	}
	ev = *(*sockioEvent)(unsafe.Pointer(&raw[0]))
	end := eventSize + int(ev.Captured)
	if end > len(raw) {
		return ev, nil, false
	}
	return ev, raw[eventSize:end], true
}

func addrPort(family uint16, addr [16]uint8, port uint16) netip.AddrPort {
	if family == afInet6 {
		a := netip.AddrFrom16(addr).Unmap()
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[:4])), port)
}

// clock turns the kernel's monotonic nanoseconds (bpf_ktime_get_ns) into
// wall time, anchored once at start.
type clock struct{ bootWall time.Time }

func newClock() clock {
	mono := monotonicNow()
	return clock{bootWall: time.Now().Add(-time.Duration(mono))}
}

func (c clock) wall(ktime uint64) time.Time { return c.bootWall.Add(time.Duration(ktime)) }

func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
