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
type AttrPool struct {
	p sync.Pool // of *[]attribute.KeyValue
}

// poolSlots is the size of the arrays a pool makes: an HTTP server
// span's attributes. Smaller requests get one too, so that every array
// that comes back fits the next request.
const poolSlots = 16

// Attrs returns an empty attribute slice with room for n.
func (a *AttrPool) Attrs(n int) []attribute.KeyValue {
	if a == nil {
		return make([]attribute.KeyValue, 0, n)
	}
	if p, ok := a.p.Get().(*[]attribute.KeyValue); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]attribute.KeyValue, 0, max(n, poolSlots))
}

// Recycle takes back s's attributes; nothing may use them afterwards.
// Arrays far from the pool's sizes are left to the collector.
func (a *AttrPool) Recycle(s *Span) {
	attrs := s.Attrs
	s.Attrs = nil
	if a == nil || cap(attrs) < 8 || cap(attrs) > 32 {
		return
	}
	attrs = attrs[:cap(attrs)]
	clear(attrs) // hold no strings alive
	attrs = attrs[:0]
	a.p.Put(&attrs)
}
