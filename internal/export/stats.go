package export

import (
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
	DropTooLarge    = "too_large"   // a span alone larger than a request may be (Config.MaxBatchBytes)
	spansMetric     = "weft_export_spans_total"
	spansMetricHelp = "spans handed to the OTLP exporter, by outcome (exported, dropped, spooled) and drop reason"
)

// stats are the exporter's self-metrics, kept in the agent's registry.
type stats struct {
	reg      *metrics.Registry
	exported *atomic.Uint64
	spooled  *atomic.Uint64
	// spoolReadErrors counts spool file reads that failed and were kept
	// for a later attempt (see spool.read); dropped files count as
	// spool_error instead.
	spoolReadErrors *atomic.Uint64
	// drops holds each reason's counter, looked up once: an agent behind
	// its load drops span after span, and must not pay a series lookup
	// (a formatted key, a lock) for each. Read-only after newStats.
	drops map[string]*atomic.Uint64
}

func newStats(reg *metrics.Registry) *stats {
	if reg == nil {
		reg = metrics.New()
	}
	s := &stats{
		reg:      reg,
		exported: reg.Counter(spansMetric, spansMetricHelp, "outcome", "exported"),
		spooled:  reg.Counter(spansMetric, spansMetricHelp, "outcome", "spooled"),
		spoolReadErrors: reg.Counter("weft_export_spool_read_errors_total",
			"spool file reads that failed and were kept for a later attempt (EMFILE, EIO, ...)"),
		drops: map[string]*atomic.Uint64{},
	}
	for _, r := range []string{DropQueueFull, DropSpoolFull, DropSpoolAge, DropSpoolError, DropRejected, DropShutdown, DropTooLarge} {
		s.drops[r] = reg.Counter(spansMetric, spansMetricHelp, "outcome", "dropped", "reason", r)
	}
	return s
}

func (s *stats) dropped(reason string, n int) {
	if n <= 0 {
		return
	}
	c := s.drops[reason]
	if c == nil {
		c = s.reg.Counter(spansMetric, spansMetricHelp, "outcome", "dropped", "reason", reason)
	}
	c.Add(uint64(n))
}

// Dropped returns how many spans were dropped for reason.
func (s *stats) Dropped(reason string) uint64 {
	return s.reg.Value(spansMetric, "outcome", "dropped", "reason", reason)
}

// latencyBuckets are the upper bounds, in seconds, of the export latency histogram.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
