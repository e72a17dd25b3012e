package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/weft-dev/weft/internal/export"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
)

// newSink builds the exporter named by -exporter; the second result is
// non-nil when it needs a Shutdown.
func newSink(ctx context.Context, name string, met *metrics.Registry, log *slog.Logger) (spans.Sink, component, error) {
	switch name {
	case "console":
		return export.NewConsole(os.Stdout), nil, nil
	case "jsonl":
		j := export.NewJSONL(os.Stdout)
		return j, j, nil
	case "otlp":
		o, err := export.NewOTLP(ctx, export.OTLPConfig{}, log.With("component", "export"))
		if err != nil {
			return nil, nil, err
		}
		met.Gauge("weft_export_spans_total", "spans handed to the OTLP exporter, by outcome",
			func() float64 { return float64(o.Exported.Load()) }, "outcome", "exported")
		met.Gauge("weft_export_spans_total", "spans handed to the OTLP exporter, by outcome",
			func() float64 { return float64(o.Dropped.Load()) }, "outcome", "dropped")
		o.Start()
		return o, o, nil
	default:
		return nil, nil, fmt.Errorf("unknown exporter %q: want otlp, console or jsonl", name)
	}
}
