// Package spanmetrics counts the spans weft makes in the metrics the
// project's alerts (deploy/prometheus/alerts.yaml) are written against:
//
//	spans_total{cluster}
//	spans_without_parent_context_total{cluster}   root spans: no caller context reached them
//	cross_cluster_request_duration_seconds{source_cluster,target_cluster}
//	                                              CLIENT spans that carry cross_cluster.source/target
//
// It wraps the exporting sink, so every span is counted whether or not its
// export succeeds (that is counted by the exporter).
package spanmetrics

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
)

// durationBuckets are upper bounds in seconds for cross-cluster calls.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Sink counts spans, then hands them to next.
type Sink struct {
	next    spans.Sink
	reg     *metrics.Registry
	cluster string // when a span's resource has no k8s.cluster.name

	mu      sync.Mutex
	total   map[string]*atomic.Uint64
	orphans map[string]*atomic.Uint64
	cross   map[[2]string]*metrics.Histogram
}

// New wraps next; cluster labels spans whose resource names none.
func New(next spans.Sink, reg *metrics.Registry, cluster string) *Sink {
	return &Sink{next: next, reg: reg, cluster: cluster, total: map[string]*atomic.Uint64{},
		orphans: map[string]*atomic.Uint64{}, cross: map[[2]string]*metrics.Histogram{}}
}

// Export implements spans.Sink.
func (s *Sink) Export(sp spans.Span) {
	cluster := s.cluster
	if sp.Resource != nil {
		if v, ok := sp.Resource.Set().Value("k8s.cluster.name"); ok && v.AsString() != "" {
			cluster = v.AsString()
		}
	}
	s.counter(s.total, "spans_total", "spans made, by the cluster they ran in", cluster).Add(1)
	if !sp.Parent.IsValid() {
		s.counter(s.orphans, "spans_without_parent_context_total", "spans with no parent context (trace roots), by cluster", cluster).Add(1)
	}
	if sp.Kind == trace.SpanKindClient {
		if src, dst, ok := crossing(sp.Attrs); ok {
			s.histogram(src, dst).Observe(sp.End.Sub(sp.Start).Seconds())
		}
	}
	s.next.Export(sp)
}

func crossing(attrs []attribute.KeyValue) (src, dst string, ok bool) {
	for _, kv := range attrs {
		switch kv.Key {
		case "cross_cluster.source":
			src = kv.Value.AsString()
		case "cross_cluster.target":
			dst = kv.Value.AsString()
		}
	}
	return src, dst, src != "" && dst != ""
}

func (s *Sink) counter(cache map[string]*atomic.Uint64, name, help, cluster string) *atomic.Uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := cache[cluster]
	if !ok {
		c = s.reg.Counter(name, help, "cluster", cluster)
		cache[cluster] = c
	}
	return c
}

func (s *Sink) histogram(src, dst string) *metrics.Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{src, dst}
	h, ok := s.cross[k]
	if !ok {
		h = s.reg.Histogram("cross_cluster_request_duration_seconds", "duration of calls from one cluster to another, seen by the caller",
			durationBuckets, "source_cluster", src, "target_cluster", dst)
		s.cross[k] = h
	}
	return h
}
