// Package export sends weft's spans out: OTLP gRPC to a collector, or
// readable lines (console) and OTLP-shaped JSON lines (jsonl) to a writer.
//
// The OTLP path survives collector outages:
//
//	Export → queue (memory, bounded) → sender → endpoint (failover list)
//	                 ↘ spill ↘        ↗ drain, oldest first
//	                      spool (disk, bounded)
//
// Export never blocks. Batches the collector cannot take are retried with
// backoff; with a spool they go to disk once the memory queue fills or a
// batch has failed SpoolAfter times, and are sent back in order once an
// endpoint answers. Every span ends in weft_export_spans_total as exported
// or dropped (by reason); none is lost silently.
package export

import (
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/spans"
)

// ReadOnly turns a weft span into the SDK's read-only form, keeping its IDs
// and timestamps. The SDK offers no public constructor for a ReadOnlySpan
// besides tracetest.SpanStub; this is its documented use.
func ReadOnly(s spans.Span) sdktrace.ReadOnlySpan {
	flags := trace.TraceFlags(0)
	if s.Sampled {
		flags = trace.FlagsSampled
	}
	ts, _ := trace.ParseTraceState(s.TraceState)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: s.TraceID, SpanID: s.SpanID, TraceFlags: flags, TraceState: ts})
	var parent trace.SpanContext
	if s.Parent.IsValid() {
		parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: s.TraceID, SpanID: s.Parent, TraceFlags: flags, Remote: s.Remote})
	}
	status := sdktrace.Status{Code: codes.Unset}
	if s.Error {
		status = sdktrace.Status{Code: codes.Error, Description: s.StatusMsg}
	}
	return tracetest.SpanStub{
		Name:                 s.Name,
		SpanContext:          sc,
		Parent:               parent,
		SpanKind:             s.Kind,
		StartTime:            s.Start,
		EndTime:              s.End,
		Attributes:           s.Attrs,
		Status:               status,
		Resource:             s.Resource,
		InstrumentationScope: instrumentation.Scope{Name: s.Scope, Version: s.ScopeVersion},
	}.Snapshot()
}
