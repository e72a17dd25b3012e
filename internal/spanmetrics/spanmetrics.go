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
	"go.opentelemetry.io/otel/sdk/resource"
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
	// byRes memoises each resource's counters: finding k8s.cluster.name
	// in a resource (a binary search of string compares) and two map
	// lookups under the lock were a twentieth of the agent's CPU per span
	// at saturation. Resources are shared per process, so it stays small;
	// it is emptied past maxResources (a resource replaced on a pod
	// update would otherwise stay alive in it).
	byRes map[*resource.Resource]resCounters
}

// resCounters are a resource's counters; orphans is made at the first
// root span, so that a cluster without any has no series.
type resCounters struct {
	cluster        string
	total, orphans *atomic.Uint64
}

// maxResources bounds Sink.byRes.
const maxResources = 4096

// New wraps next; cluster labels spans whose resource names none.
func New(next spans.Sink, reg *metrics.Registry, cluster string) *Sink {
	return &Sink{next: next, reg: reg, cluster: cluster, total: map[string]*atomic.Uint64{},
		orphans: map[string]*atomic.Uint64{}, cross: map[[2]string]*metrics.Histogram{},
		byRes: map[*resource.Resource]resCounters{}}
}

// Export implements spans.Sink.
func (s *Sink) Export(sp spans.Span) {
	c := s.countersOf(sp.Resource, !sp.Parent.IsValid())
	c.total.Add(1)
	if !sp.Parent.IsValid() {
		c.orphans.Add(1)
	}
	if sp.Kind == trace.SpanKindClient {
		if src, dst, ok := crossing(sp.Attrs); ok {
			s.histogram(src, dst).Observe(sp.End.Sub(sp.Start).Seconds())
		}
	}
	s.next.Export(sp)
}

// countersOf returns the counters of the cluster a resource names (or the
// Sink's own when it names none), orphans among them when root is set.
func (s *Sink) countersOf(res *resource.Resource, root bool) resCounters {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byRes[res]
	if ok && (c.orphans != nil || !root) {
		return c
	}
	if !ok {
		c.cluster = s.cluster
		if res != nil {
			if v, ok := res.Set().Value("k8s.cluster.name"); ok && v.AsString() != "" {
				c.cluster = v.AsString()
			}
		}
		c.total = s.counterLocked(s.total, "spans_total", "spans made, by the cluster they ran in", c.cluster)
		if len(s.byRes) >= maxResources {
			clear(s.byRes)
		}
	}
	if root {
		c.orphans = s.counterLocked(s.orphans, "spans_without_parent_context_total", "spans with no parent context (trace roots), by cluster", c.cluster)
	}
	s.byRes[res] = c
	return c
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

func (s *Sink) counterLocked(cache map[string]*atomic.Uint64, name, help, cluster string) *atomic.Uint64 {
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
