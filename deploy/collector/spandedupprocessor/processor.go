// Package spandedupprocessor is the span_dedup processor: it passes each
// span (trace ID, span ID) once and drops later copies, so a span that
// reaches a collector by two paths, or twice by one (an at-least-once
// queue or spool replaying a batch whose first send did arrive), is
// stored once.
//
// It must run where every copy of a span arrives: after a trace-ID load
// balancer (each trace has one owner), or in a single collector. It
// remembers the last max_spans distinct spans: a copy arriving later than
// that passes. A span the next consumer refuses is forgotten again, so the
// sender's retry of that batch is not taken for a copy of itself.
package spandedupprocessor

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/metric"
)

const scopeName = "github.com/weft-dev/weft/deploy/collector/spandedupprocessor"

type dedup struct {
	next consumer.Traces

	mu   sync.Mutex
	seen *seenSet

	passed, duplicates metric.Int64Counter
}

func newDedup(set processor.Settings, cfg *Config, next consumer.Traces) (*dedup, error) {
	meter := set.TelemetrySettings.MeterProvider.Meter(scopeName)
	passed, err := meter.Int64Counter("otelcol_processor_span_dedup_passed_spans",
		metric.WithDescription("Spans passed on: the first copy of each"), metric.WithUnit("{spans}"))
	if err != nil {
		return nil, fmt.Errorf("span_dedup: %w", err)
	}
	dups, err := meter.Int64Counter("otelcol_processor_span_dedup_duplicate_spans",
		metric.WithDescription("Copies of spans already passed on, dropped"), metric.WithUnit("{spans}"))
	if err != nil {
		return nil, fmt.Errorf("span_dedup: %w", err)
	}
	return &dedup{next: next, seen: newSeenSet(cfg.MaxSpans), passed: passed, duplicates: dups}, nil
}

func (*dedup) Start(context.Context, component.Host) error { return nil }
func (*dedup) Shutdown(context.Context) error              { return nil }

func (*dedup) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

// ConsumeTraces removes the copies of spans already passed on (or in
// flight), passes the rest on, and forgets them again if the next consumer
// refuses them.
func (d *dedup) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	d.mu.Lock()
	fresh, dropped := filter(td, d.seen.add)
	d.mu.Unlock()
	if dropped > 0 {
		d.duplicates.Add(ctx, int64(dropped))
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := d.next.ConsumeTraces(ctx, td); err != nil {
		d.mu.Lock()
		for _, k := range fresh {
			d.seen.forget(k)
		}
		d.mu.Unlock()
		return err
	}
	d.passed.Add(ctx, int64(len(fresh)))
	return nil
}

// filter removes from td every span for which add reports false, and the
// scopes and resources left empty. It returns the keys add accepted and
// how many spans it removed.
func filter(td ptrace.Traces, add func(spanKey) bool) (fresh []spanKey, dropped int) {
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(s ptrace.Span) bool {
				k := makeKey(s.TraceID(), s.SpanID())
				if add(k) {
					fresh = append(fresh, k)
					return false
				}
				dropped++
				return true
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	return fresh, dropped
}
