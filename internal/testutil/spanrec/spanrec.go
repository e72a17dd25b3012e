// Package spanrec is the in-memory span sink for tests: a spans.Sink that
// keeps every span it is given, safe for probes and pipelines exporting
// from their own goroutines while the test reads and waits.
package spanrec

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/spans"
)

// Settle is how long WaitExactly keeps watching, once the expected spans
// are in, for spans that must not follow.
const Settle = 300 * time.Millisecond

// Recorder keeps the spans exported to it, in order. The zero value is
// ready to use; it must not be copied after first use.
type Recorder struct {
	mu      sync.Mutex
	spans   []spans.Span
	changed chan struct{} // closed (and replaced) on every Export and Reset
}

var _ spans.Sink = (*Recorder)(nil)

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{} }

// Export keeps s. It never blocks for long.
func (r *Recorder) Export(s spans.Span) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, s)
	r.wake()
}

// Spans returns a snapshot of the spans so far, oldest first; later
// exports do not change it.
func (r *Recorder) Spans() []spans.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Len is the number of spans so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spans)
}

// Reset forgets every span so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = nil
	r.wake()
}

// WaitFor waits until at least n spans are in and returns them; after
// timeout it fails the test. Call it from the test's goroutine.
func (r *Recorder) WaitFor(tb testing.TB, n int, timeout time.Duration) []spans.Span {
	tb.Helper()
	got, ok := r.wait(timeout, func(got []spans.Span) bool { return len(got) >= n })
	if !ok {
		tb.Fatalf("spanrec: %d spans after %v, want at least %d:\n%s", len(got), timeout, n, list(got))
	}
	return got
}

// WaitExactly waits until n spans are in, then watches for Settle more,
// and fails the test unless exactly n arrived.
func (r *Recorder) WaitExactly(tb testing.TB, n int, timeout time.Duration) []spans.Span {
	tb.Helper()
	r.WaitFor(tb, n, timeout)
	time.Sleep(Settle)
	got := r.Spans()
	if len(got) != n {
		tb.Fatalf("spanrec: %d spans, want exactly %d:\n%s", len(got), n, list(got))
	}
	return got
}

// WaitUntil waits until cond holds for the spans so far and returns them;
// after timeout it fails the test, saying what was awaited. cond sees a
// snapshot and may keep it.
func (r *Recorder) WaitUntil(tb testing.TB, timeout time.Duration, what string, cond func([]spans.Span) bool) []spans.Span {
	tb.Helper()
	got, ok := r.wait(timeout, cond)
	if !ok {
		tb.Fatalf("spanrec: not within %v: %s; %d spans:\n%s", timeout, what, len(got), list(got))
	}
	return got
}

// wait returns the spans once cond holds for them, or, with false, those
// there are at the timeout.
func (r *Recorder) wait(timeout time.Duration, cond func([]spans.Span) bool) ([]spans.Span, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got := slices.Clone(r.spans)
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		changed := r.changed
		r.mu.Unlock()
		if cond(got) {
			return got, true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return r.Spans(), false
		}
	}
}

// wake tells waiters the spans changed; r.mu is held.
func (r *Recorder) wake() {
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// list shows spans one a line, the first 50 of them.
func list(ss []spans.Span) string {
	var b strings.Builder
	for i, s := range ss {
		if i == 50 {
			fmt.Fprintf(&b, "  … %d more\n", len(ss)-i)
			break
		}
		fmt.Fprintf(&b, "  %s %q trace %s span %s parent %s\n", s.Kind, s.Name, s.TraceID, s.SpanID, s.Parent)
	}
	return b.String()
}
