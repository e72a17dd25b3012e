package tick

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestUntil: the wait always lands on a multiple of the period counted
// from origin, within one period.
func TestUntil(t *testing.T) {
	for _, p := range []time.Duration{time.Millisecond, 7 * time.Millisecond, 250 * time.Millisecond, time.Second} {
		now := time.Now()
		d := Until(p)
		if d <= 0 || d > p {
			t.Errorf("Until(%v) = %v, want in (0, %v]", p, d, p)
		}
		// the instant it names is on the grid (the clock moved a little
		// between the two readings: at most the time Until took)
		off := now.Add(d).Sub(origin) % p
		if slack := time.Since(now); off > slack && p-off > slack {
			t.Errorf("Until(%v) = %v lands %v off the grid", p, d, off)
		}
	}
	if d := Until(0); d != 0 {
		t.Errorf("Until(0) = %v", d)
	}
	if d := Until(-time.Second); d != -time.Second {
		t.Errorf("Until(-1s) = %v", d)
	}
}

// TestEvery: f runs once per period until stop closes, and Every returns.
func TestEvery(t *testing.T) {
	var n atomic.Int32
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { Every(stop, 5*time.Millisecond, func() { n.Add(1) }); close(done) }()
	for n.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Every did not return after stop")
	}
}

// TestNonPositive: a timer of no period panics, as time.NewTicker does,
// rather than spin.
func TestNonPositive(t *testing.T) {
	for _, f := range []func(){
		func() { NewTimer(0) },
		func() { NewTimer(-time.Second) },
		func() { NewTimer(time.Second).Reset(0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}
