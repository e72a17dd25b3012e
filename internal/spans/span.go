// Package spans holds weft's span record: what probes produce and exporters
// send. It keeps IDs and timestamps exactly as observed, so exporters never
// regenerate them.
package spans

import (
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
)

// Span is one finished operation seen by a probe.
type Span struct {
	TraceID    trace.TraceID
	SpanID     trace.SpanID
	Parent     trace.SpanID // zero for a root span
	Sampled    bool
	TraceState string
	Remote     bool // the parent came from another process (incoming traceparent)
	// SourceCluster is the request's X-Source-Cluster header as received:
	// the caller's own word for its cluster. It is input to the
	// cross-cluster marks (internal/clusters), not exported as such.
	SourceCluster string

	Name  string
	Kind  trace.SpanKind
	Start time.Time
	End   time.Time
	Attrs []attribute.KeyValue

	Error        bool
	StatusMsg    string
	Resource     *resource.Resource // shared by every span of one process
	Scope        string             // instrumentation scope: the probe family
	ScopeVersion string
}

// Sink receives finished spans. Export must not block for long: sinks queue
// and count what they cannot keep.
type Sink interface {
	Export(s Span)
}

// AttrPool recycles spans' attribute arrays: an HTTP span's (16 slots,
// 1 KiB) was the largest allocation the agent made per span. Protocols
// take arrays from it; the exporter gives each back once its span is
// encoded and nothing holds it. The zero value is ready; a nil pool
// allocates and forgets.
//
// It is a bounded stack under a mutex rather than a sync.Pool: the arrays
// come back a batch at a time (RecycleAll, one lock for 512), and
// sync.Pool's Put took a fresh 24-byte box per array plus a push into its
// per-P chain: 330 ns a span at saturation, 7% of the exporter's CPU.
type AttrPool struct {
	mu   sync.Mutex
	free [][]attribute.KeyValue
}

// poolSlots is the size of the arrays a pool makes: an HTTP server
// span's attributes. Smaller requests get one too, so that every array
// that comes back fits the next request.
const poolSlots = 16

// poolKeep bounds the arrays a pool holds (2 MiB of 16-slot arrays): four
// export batches, more than the spans built between two recycles.
const poolKeep = 2048

// Attrs returns an empty attribute slice with room for n.
func (a *AttrPool) Attrs(n int) []attribute.KeyValue {
	if a == nil {
		return make([]attribute.KeyValue, 0, n)
	}
	a.mu.Lock()
	if k := len(a.free) - 1; k >= 0 && cap(a.free[k]) >= n {
		attrs := a.free[k]
		a.free[k] = nil
		a.free = a.free[:k]
		a.mu.Unlock()
		return attrs
	}
	a.mu.Unlock()
	return make([]attribute.KeyValue, 0, max(n, poolSlots))
}

// Recycle takes back s's attributes; nothing may use them afterwards.
// Arrays far from the pool's sizes are left to the collector.
func (a *AttrPool) Recycle(s *Span) {
	if a == nil {
		s.Attrs = nil
		return
	}
	attrs := keepable(s)
	if attrs == nil {
		return
	}
	a.mu.Lock()
	if len(a.free) < poolKeep {
		a.free = append(a.free, attrs)
	}
	a.mu.Unlock()
}

// RecycleAll is Recycle for each of ss, under one lock.
func (a *AttrPool) RecycleAll(ss []Span) {
	if a == nil {
		for i := range ss {
			ss[i].Attrs = nil
		}
		return
	}
	// Cleared before the lock, which the protocols' Attrs wait on: the
	// kept arrays are moved to the front of ss's attributes.
	k := 0
	for i := range ss {
		if attrs := keepable(&ss[i]); attrs != nil {
			ss[k].Attrs = attrs
			k++
		}
	}
	a.mu.Lock()
	for i := range k {
		if len(a.free) < poolKeep {
			a.free = append(a.free, ss[i].Attrs)
		}
		ss[i].Attrs = nil
	}
	a.mu.Unlock()
}

// keepable takes s's attributes from it and returns them cleared and
// empty if the pool keeps arrays of their size (those it makes, or a
// caller's larger request's), else nil.
func keepable(s *Span) []attribute.KeyValue {
	attrs := s.Attrs
	s.Attrs = nil
	if cap(attrs) < poolSlots || cap(attrs) > 2*poolSlots {
		return nil
	}
	attrs = attrs[:cap(attrs)]
	clear(attrs) // hold no strings alive
	return attrs[:0]
}
