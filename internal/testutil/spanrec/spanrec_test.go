package spanrec

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/spans"
)

// fatalTB records a Fatalf and ends its goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with a fatalTB on its own goroutine and returns what it
// failed with ("" if it did not).
func run(fn func(testing.TB)) string {
	f := &fatalTB{}
	done := make(chan struct{})
	go func() { defer close(done); fn(f) }()
	<-done
	return f.msg
}

func TestConcurrentExport(t *testing.T) {
	var r Recorder
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				r.Export(spans.Span{Name: fmt.Sprint(g, "/", i)})
			}
		})
	}
	got := r.WaitFor(t, 800, 5*time.Second)
	wg.Wait()
	if len(got) != 800 || r.Len() != 800 {
		t.Fatalf("%d spans (Len %d), want 800", len(got), r.Len())
	}
	snap := r.Spans()
	r.Export(spans.Span{Name: "late"})
	if len(snap) != 800 {
		t.Error("a snapshot changed after a later Export")
	}
	r.Reset()
	if r.Len() != 0 || len(r.Spans()) != 0 {
		t.Error("spans left after Reset")
	}
}

func TestWaitForWakesOnExport(t *testing.T) {
	r := New()
	go func() {
		time.Sleep(20 * time.Millisecond)
		r.Export(spans.Span{Name: "GET"})
	}()
	start := time.Now()
	if got := r.WaitFor(t, 1, 5*time.Second); len(got) != 1 || got[0].Name != "GET" {
		t.Fatalf("got %+v", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("woke after %v", d)
	}
}

func TestWaitForTimeout(t *testing.T) {
	r := New()
	r.Export(spans.Span{Name: "only", Kind: trace.SpanKindServer})
	msg := run(func(tb testing.TB) { r.WaitFor(tb, 2, 50*time.Millisecond) })
	if !strings.Contains(msg, "1 spans after 50ms, want at least 2") || !strings.Contains(msg, `server "only"`) {
		t.Errorf("failure message %q", msg)
	}
}

func TestWaitUntil(t *testing.T) {
	r := New()
	go func() {
		for _, n := range []string{"a", "b", "c"} {
			r.Export(spans.Span{Name: n})
		}
	}()
	got := r.WaitUntil(t, 5*time.Second, "a span named c", func(ss []spans.Span) bool {
		return len(ss) > 0 && ss[len(ss)-1].Name == "c"
	})
	if len(got) != 3 {
		t.Errorf("%d spans", len(got))
	}
	msg := run(func(tb testing.TB) {
		r.WaitUntil(tb, 20*time.Millisecond, "a span named d", func(ss []spans.Span) bool { return false })
	})
	if !strings.Contains(msg, "a span named d; 3 spans") {
		t.Errorf("failure message %q", msg)
	}
}

func TestWaitExactly(t *testing.T) {
	r := New()
	r.Export(spans.Span{})
	start := time.Now()
	if got := r.WaitExactly(t, 1, time.Second); len(got) != 1 {
		t.Fatalf("%d spans", len(got))
	}
	if d := time.Since(start); d < Settle {
		t.Errorf("returned after %v, without watching for Settle (%v)", d, Settle)
	}
	// The extra span is in before the call: one sent from a goroutine
	// during the Settle would have to be scheduled within it, which a
	// loaded machine does not promise.
	r.Export(spans.Span{Name: "extra"})
	msg := run(func(tb testing.TB) {
		r.WaitExactly(tb, 1, time.Second)
	})
	if !strings.Contains(msg, "2 spans, want exactly 1") {
		t.Errorf("failure message %q", msg)
	}
}
