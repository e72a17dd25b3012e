package sampling

import (
	"sync/atomic"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
)

// Sink drops the spans the sampler decides against and hands the rest on,
// marked sampled. It sits after the span metrics, so dropped spans are
// still counted there.
type Sink struct {
	next      spans.Sink
	sampler   Sampler
	unsampled *atomic.Uint64
}

// NewSink wraps next; dropped spans are counted in weft_spans_unsampled_total.
func NewSink(next spans.Sink, s Sampler, reg *metrics.Registry) *Sink {
	return &Sink{next: next, sampler: s, unsampled: reg.Counter("weft_spans_unsampled_total",
		"spans not exported because the head sampler or the caller's sampled flag decided against them")}
}

// Export implements spans.Sink.
func (k *Sink) Export(s spans.Span) {
	if !k.sampler.Sampled(s.TraceID, SpanParent(s)) {
		k.unsampled.Add(1)
		return
	}
	// A sampler that ignores the parent may keep a span whose parent's
	// flag was off: what is exported says what was decided.
	s.Sampled = true
	k.next.Export(s)
}

// SpanParent is what a probe's span says of its parent: probes set Sampled
// to the parent's flag when there is a parent (in-process or from an
// incoming traceparent), and leave it true for a root.
func SpanParent(s spans.Span) Parent {
	switch {
	case !s.Parent.IsValid():
		return Root
	case s.Sampled:
		return ParentSampled
	}
	return ParentUnsampled
}
