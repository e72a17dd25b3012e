// Package tick puts the agent's periodic work on one grid: every period
// is counted from the same instant, the agent's start, so timers whose
// periods divide one another fire together. Each timer that fires alone
// is a wakeup of the Go runtime (a thread, and sysmon, which sleeps until
// the next timer is due): on an idle node those wakeups are most of the
// agent's CPU, and separate tickers took one each. The grid starts when
// the agent does, so agents on different nodes do not fire in step (their
// partial batches reach the collector spread out).
package tick

import "time"

// origin is the grid's zero: set once, read only.
var origin = time.Now()

// Until is how long from now to the grid's next multiple of period (a
// full period when now is on one); period itself when it is not positive.
func Until(period time.Duration) time.Duration {
	if period <= 0 {
		return period
	}
	return period - time.Since(origin)%period
}

// Timer fires at the grid's next multiple of the period it was last set
// to. Its zero value is not usable: NewTimer makes one.
type Timer struct {
	C <-chan time.Time
	t *time.Timer
}

// NewTimer fires at the grid's next multiple of period, which must be
// positive (as time.NewTicker's: a timer re-armed at once would spin).
func NewTimer(period time.Duration) *Timer {
	if period <= 0 {
		panic("tick: non-positive period")
	}
	t := time.NewTimer(Until(period))
	return &Timer{C: t.C, t: t}
}

// Reset sets the timer to the grid's next multiple of period (positive),
// whether or not it fired (Go 1.23 timers drop a stale fire on Reset).
func (t *Timer) Reset(period time.Duration) {
	if period <= 0 {
		panic("tick: non-positive period")
	}
	t.t.Reset(Until(period))
}

// Stop stops it; safe more than once.
func (t *Timer) Stop() { t.t.Stop() }

// Every calls f at each multiple of period until stop is closed.
func Every(stop <-chan struct{}, period time.Duration, f func()) {
	t := NewTimer(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			f()
			t.Reset(period)
		}
	}
}
