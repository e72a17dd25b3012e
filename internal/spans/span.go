// Package spans holds weft's span record: what probes produce and exporters
// send. It keeps IDs and timestamps exactly as observed, so exporters never
// regenerate them.
package spans

import (
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
