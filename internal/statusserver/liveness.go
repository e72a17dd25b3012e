package statusserver

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Liveness knows whether the agent's long-running goroutines still make
// progress. Components register a heartbeat with the longest silence they
// can keep while healthy, and beat as they work; /healthz fails while any
// of them is silent for longer, or says it is wedged.
//
// Only a goroutine that no longer runs is a liveness failure: a collector
// outage, a full export queue or a node without traffic are not, since a
// restart fixes none of them. Components beat from their loops whatever
// the outcome of their work (the sockio reader beats on its 100 ms poll
// timer too), so an idle agent is alive.
//
// A nil *Liveness is valid: Register returns nil heartbeats, whose methods
// do nothing, and ServeHTTP always answers ok.
type Liveness struct {
	elapsed func() int64 // monotonic nanoseconds since NewLiveness; beats store this

	mu    sync.Mutex
	beats []*Heartbeat // in registration order
}

// NewLiveness returns an empty Liveness reading time from now (time.Now if
// nil; tests pass a fake clock).
func NewLiveness(now func() time.Time) *Liveness {
	if now == nil {
		// time.Since of a time.Now reads only the monotonic clock, a
		// fraction of the cost of time.Now, which reads the wall clock too.
		base := time.Now()
		return &Liveness{elapsed: func() int64 { return int64(time.Since(base)) }}
	}
	base := now()
	return &Liveness{elapsed: func() int64 { return int64(now().Sub(base)) }}
}

// Heartbeat is one component's handle. Beat is safe for concurrent use and
// cheap enough for a hot loop: one monotonic clock read and one atomic
// store.
type Heartbeat struct {
	live *Liveness
	name string
	max  time.Duration

	last   atomic.Int64 // live.elapsed() at the last beat
	wedged atomic.Pointer[wedge]
}

type wedge struct {
	reason string
	since  int64 // live.elapsed() when first wedged
}

// Register adds a component that must beat at least every maxSilence;
// its window starts now. Names need not be unique (they are only shown).
// It panics if maxSilence is not positive, like time.NewTicker.
func (l *Liveness) Register(name string, maxSilence time.Duration) *Heartbeat {
	if l == nil {
		return nil
	}
	if maxSilence <= 0 {
		panic("statusserver: non-positive maxSilence for " + name)
	}
	h := &Heartbeat{live: l, name: name, max: maxSilence}
	h.Beat()
	l.mu.Lock()
	l.beats = append(l.beats, h)
	l.mu.Unlock()
	return h
}

// Beat records that the component made progress now.
func (h *Heartbeat) Beat() {
	if h == nil {
		return
	}
	h.last.Store(h.live.elapsed())
}

// Wedged marks the component as stuck whatever its beats, until Ok: for a
// component that can tell it will not recover (a goroutine that lost its
// state, a sender stuck past every timeout). Do not call it for conditions
// outside the agent, such as an unreachable collector. Calling it again
// keeps the time it was first wedged and updates the reason.
func (h *Heartbeat) Wedged(reason string) {
	if h == nil {
		return
	}
	since := h.live.elapsed()
	if old := h.wedged.Load(); old != nil {
		since = old.since
	}
	h.wedged.Store(&wedge{reason: reason, since: since})
}

// Ok clears Wedged and beats.
func (h *Heartbeat) Ok() {
	if h == nil {
		return
	}
	h.wedged.Store(nil)
	h.Beat()
}

// Stop unregisters the component (it is shutting down on purpose); its
// later beats are ignored. Safe twice.
func (h *Heartbeat) Stop() {
	if h == nil {
		return
	}
	l := h.live
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, b := range l.beats {
		if b == h {
			l.beats = append(l.beats[:i:i], l.beats[i+1:]...)
			return
		}
	}
}

// Component is one registered component as Check saw it.
type Component struct {
	Name       string
	MaxSilence time.Duration
	Silence    time.Duration // since its last beat
	Wedged     string        // the reason given to Wedged; "" if not wedged
	WedgedFor  time.Duration
}

// Alive reports whether the component beat within its window and is not
// wedged.
func (c Component) Alive() bool { return c.Wedged == "" && c.Silence <= c.MaxSilence }

func (c Component) String() string {
	switch {
	case c.Wedged != "":
		return fmt.Sprintf("%s: wedged for %s: %s", c.Name, round(c.WedgedFor), c.Wedged)
	case !c.Alive():
		return fmt.Sprintf("%s: no progress for %s (max %s)", c.Name, round(c.Silence), c.MaxSilence)
	}
	return fmt.Sprintf("%s: ok (last beat %s ago, max %s)", c.Name, round(c.Silence), c.MaxSilence)
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// Check returns every registered component, in registration order, and
// whether all are alive.
func (l *Liveness) Check() ([]Component, bool) {
	if l == nil {
		return nil, true
	}
	l.mu.Lock()
	beats := append([]*Heartbeat(nil), l.beats...)
	l.mu.Unlock()
	now := l.elapsed()
	all := true
	out := make([]Component, 0, len(beats))
	for _, h := range beats {
		c := Component{Name: h.name, MaxSilence: h.max, Silence: time.Duration(max(now-h.last.Load(), 0))}
		if w := h.wedged.Load(); w != nil {
			c.Wedged, c.WedgedFor = w.reason, time.Duration(max(now-w.since, 0))
		}
		all = all && c.Alive()
		out = append(out, c)
	}
	return out, all
}

// ServeHTTP is /healthz: 200 "ok" while every component is alive, else 503
// naming those that are not and for how long. ?verbose lists them all.
func (l *Liveness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	comps, ok := l.Check()
	_, verbose := r.URL.Query()["verbose"]
	var b strings.Builder
	if ok {
		b.WriteString("ok\n")
	} else {
		b.WriteString("unhealthy\n")
	}
	for _, c := range comps {
		if verbose || !c.Alive() {
			b.WriteString(c.String() + "\n")
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write([]byte(b.String()))
}
