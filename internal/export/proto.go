package export

import (
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weft-dev/weft/internal/spans"
)

// The SDK's span-to-protobuf transform is internal to otlptrace, and the
// spool needs the protobuf form anyway (it is what goes to disk), so weft
// builds it itself, straight to the wire (encodeBatch, wire.go).

// spanFlags are the trace flags in the low byte, as the SDK does, plus
// whether the parent is remote (W3C: the parent came in a traceparent
// header).
func spanFlags(s *spans.Span) uint32 {
	flags := uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if s.Sampled {
		flags |= 1
	}
	if s.Remote && s.Parent.IsValid() {
		flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	return flags
}

// countSpans counts the spans in a request.
func countSpans(rss []*tracepb.ResourceSpans) int {
	n := 0
	for _, rs := range rss {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n
}
