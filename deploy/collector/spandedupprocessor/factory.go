package spandedupprocessor

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
)

// typeStr is the name configs use: the design's span_dedup.
var typeStr = component.MustNewType("span_dedup")

// NewFactory returns the span_dedup processor's factory.
func NewFactory() processor.Factory {
	return processor.NewFactory(typeStr, createDefaultConfig,
		processor.WithTraces(createTraces, component.StabilityLevelBeta))
}

func createDefaultConfig() component.Config {
	return &Config{MaxSpans: defaultMaxSpans}
}

func createTraces(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	return newDedup(set, cfg.(*Config), next)
}
