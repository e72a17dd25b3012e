package conntrack

import (
	"time"

	"golang.org/x/sys/unix"
)

// clock turns the kernel's monotonic nanoseconds (bpf_ktime_get_ns) into
// wall time, anchored once at start.
type clock struct{ bootWall time.Time }

func newClock() clock {
	mono := MonotonicNow()
	return clock{bootWall: time.Now().Add(-time.Duration(mono))}
}

func (c clock) wall(ktime uint64) time.Time { return c.bootWall.Add(time.Duration(ktime)) }

// MonotonicNow is the kernel's monotonic clock now, as sources stamp chunks.
func MonotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
