package export

import (
	"math"
	"strconv"
	"sync/atomic"

	"github.com/weft-dev/weft/internal/metrics"
)

// Reasons a span is dropped, the reason label of weft_export_spans_total.
const (
	DropQueueFull   = "queue_full"  // memory queue full and no room to spill
	DropSpoolFull   = "spool_full"  // evicted, oldest first, to keep the spool under its byte bound
	DropSpoolAge    = "spool_age"   // spooled longer than the age bound
	DropSpoolError  = "spool_error" // the spool could not be written or read back
	DropRejected    = "rejected"    // the collector refused them (partial success or InvalidArgument)
	DropShutdown    = "shutdown"    // still in memory at shutdown with no spool to keep them
	spansMetric     = "weft_export_spans_total"
	spansMetricHelp = "spans handed to the OTLP exporter, by outcome (exported, dropped, spooled) and drop reason"
)

// stats are the exporter's self-metrics, kept in the agent's registry.
type stats struct {
	reg      *metrics.Registry
	exported *atomic.Uint64
	spooled  *atomic.Uint64
}

func newStats(reg *metrics.Registry) *stats {
	if reg == nil {
		reg = metrics.New()
	}
	return &stats{
		reg:      reg,
		exported: reg.Counter(spansMetric, spansMetricHelp, "outcome", "exported"),
		spooled:  reg.Counter(spansMetric, spansMetricHelp, "outcome", "spooled"),
	}
}

func (s *stats) dropped(reason string, n int) {
	if n > 0 {
		s.reg.Counter(spansMetric, spansMetricHelp, "outcome", "dropped", "reason", reason).Add(uint64(n))
	}
}

// Dropped returns how many spans were dropped for reason.
func (s *stats) Dropped(reason string) uint64 {
	return s.reg.Value(spansMetric, "outcome", "dropped", "reason", reason)
}

// latencyBuckets are the upper bounds, in seconds, of the export latency histogram.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// histogram is a Prometheus-style cumulative histogram built from the
// registry's counters (which has no histogram type): name_bucket{le=...},
// name_count and name_sum.
type histogram struct {
	bounds  []float64
	buckets []*atomic.Uint64 // one per bound, then +Inf
	count   *atomic.Uint64
	sumNano atomic.Uint64
}

func newHistogram(reg *metrics.Registry, name, help string, bounds []float64, labels ...string) *histogram {
	h := &histogram{bounds: bounds, count: reg.Counter(name+"_count", help, labels...)}
	for _, b := range bounds {
		h.buckets = append(h.buckets, reg.Counter(name+"_bucket", help, append(labels[:len(labels):len(labels)], "le", strconv.FormatFloat(b, 'g', -1, 64))...))
	}
	h.buckets = append(h.buckets, reg.Counter(name+"_bucket", help, append(labels[:len(labels):len(labels)], "le", "+Inf")...))
	reg.Gauge(name+"_sum", help, func() float64 { return float64(h.sumNano.Load()) / 1e9 }, labels...)
	return h
}

// observe records one value in seconds.
func (h *histogram) observe(seconds float64) {
	for i, b := range h.bounds {
		if seconds <= b {
			h.buckets[i].Add(1)
		}
	}
	h.buckets[len(h.buckets)-1].Add(1)
	h.count.Add(1)
	h.sumNano.Add(uint64(math.Max(0, seconds) * 1e9))
}
