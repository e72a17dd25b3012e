// Package export sends weft's spans out: OTLP gRPC to a collector, or
// readable lines (console) and OTLP-shaped JSON lines (jsonl) to a writer.
package export

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/spans"
)

// OTLPConfig bounds the in-memory queue in front of the exporter.
type OTLPConfig struct {
	QueueSize     int           // spans held while the collector is slow or down
	BatchSize     int           // spans per export call
	FlushInterval time.Duration // longest a span waits in a partial batch
}

// OTLP batches spans and sends them with otlptracegrpc, which reads the
// OTEL_EXPORTER_OTLP_* variables itself. Spans that do not fit the queue, or
// whose export failed, are counted in Dropped: never lost silently.
type OTLP struct {
	cfg  OTLPConfig
	log  *slog.Logger
	exp  sdktrace.SpanExporter
	in   chan spans.Span
	done chan struct{}

	Exported atomic.Uint64
	Dropped  atomic.Uint64

	stopOnce sync.Once
}

// NewOTLP makes the exporter; it connects lazily, so a collector that is down
// at start delays nothing.
func NewOTLP(ctx context.Context, cfg OTLPConfig, log *slog.Logger) (*OTLP, error) {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 8192
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 512
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("creating OTLP gRPC exporter: %w", err)
	}
	return &OTLP{cfg: cfg, log: log, exp: exp, in: make(chan spans.Span, cfg.QueueSize), done: make(chan struct{})}, nil
}

// Start runs the batching loop.
func (o *OTLP) Start() { go o.loop() }

// Export queues a span, or counts it as dropped when the queue is full.
func (o *OTLP) Export(s spans.Span) {
	select {
	case o.in <- s:
	default:
		o.Dropped.Add(1)
	}
}

func (o *OTLP) loop() {
	defer close(o.done)
	batch := make([]sdktrace.ReadOnlySpan, 0, o.cfg.BatchSize)
	tick := time.NewTicker(o.cfg.FlushInterval)
	defer tick.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := o.exp.ExportSpans(ctx, batch)
		cancel()
		if err != nil {
			o.Dropped.Add(uint64(len(batch)))
			o.log.Warn("exporting spans failed; counted as dropped", "spans", len(batch), "err", err)
		} else {
			o.Exported.Add(uint64(len(batch)))
		}
		batch = batch[:0]
	}
	for {
		select {
		case s, ok := <-o.in:
			if !ok {
				flush()
				return
			}
			batch = append(batch, ReadOnly(s))
			if len(batch) >= o.cfg.BatchSize {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// Shutdown flushes what is queued and closes the connection; safe twice.
func (o *OTLP) Shutdown(ctx context.Context) error {
	var err error
	o.stopOnce.Do(func() {
		close(o.in)
		select {
		case <-o.done:
		case <-ctx.Done():
		}
		err = o.exp.Shutdown(ctx)
	})
	return err
}

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
