package metrics

import (
	"math"
	"strconv"
	"sync/atomic"
)

// Histogram is a Prometheus cumulative histogram built from the registry's
// counters: name_bucket{le=...}, name_count and name_sum, written as one
// family of # TYPE histogram.
type Histogram struct {
	bounds  []float64
	buckets []*atomic.Uint64 // one per bound, then +Inf
	count   *atomic.Uint64
	sumNano atomic.Uint64
}

// Histogram returns a new histogram series of family name with the given
// bucket bounds (ascending, in seconds) and labels.
func (reg *Registry) Histogram(name, help string, bounds []float64, labels ...string) *Histogram {
	reg.mu.Lock()
	reg.histograms[name] = true
	reg.setHelp(name, help)
	reg.mu.Unlock()
	h := &Histogram{bounds: bounds, count: reg.Counter(name+"_count", help, labels...)}
	for _, b := range bounds {
		h.buckets = append(h.buckets, reg.Counter(name+"_bucket", help, append(labels[:len(labels):len(labels)], "le", strconv.FormatFloat(b, 'g', -1, 64))...))
	}
	h.buckets = append(h.buckets, reg.Counter(name+"_bucket", help, append(labels[:len(labels):len(labels)], "le", "+Inf")...))
	reg.Gauge(name+"_sum", help, func() float64 { return float64(h.sumNano.Load()) / 1e9 }, labels...)
	return h
}

// Observe records one value in seconds.
func (h *Histogram) Observe(seconds float64) {
	for i, b := range h.bounds {
		if seconds <= b {
			h.buckets[i].Add(1)
		}
	}
	h.buckets[len(h.buckets)-1].Add(1)
	h.count.Add(1)
	h.sumNano.Add(uint64(math.Max(0, seconds) * 1e9))
}
