package main

import (
	"log/slog"

	"go.opentelemetry.io/otel/attribute"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
)

// clusterConfig is this cluster's identity and what the agent knows of
// the other clusters (issue 8).
type clusterConfig struct{}

// loadClusters reads the cluster identity and the remote-cluster map.
func loadClusters(clusterName string, getenv func(string) string, log *slog.Logger) (clusterConfig, error) {
	return clusterConfig{}, nil
}

// resource is what every span's resource gets from the cluster identity.
func (c clusterConfig) resource() []attribute.KeyValue { return nil }

// wrap marks spans that cross a cluster boundary on their way to next.
func (c clusterConfig) wrap(next spans.Sink, met *metrics.Registry) spans.Sink { return next }
