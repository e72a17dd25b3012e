package clusters

import (
	"slices"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
)

// Sink marks the spans that cross a cluster boundary, then hands every
// span to next. Metrics:
//
//	weft_cross_cluster_spans_total{kind,via}                spans marked: kind client or server, via what named the other side
//	weft_cross_cluster_claims_ignored_total{via}            tracestate members or X-Source-Cluster headers that are no cluster name
//	weft_cross_cluster_claims_refused_total{via,reason}     well-formed claims not believed: reason untrusted_source
//	                                                        (caller's address loopback nor listed) or denies_crossing
//	                                                        (this cluster named from another cluster's address)
type Sink struct {
	next      spans.Sink
	cfg       Config
	client    *atomic.Uint64
	server    [numVia]*atomic.Uint64
	badTS     *atomic.Uint64
	badHdr    *atomic.Uint64
	refusedTS [numRefusal]*atomic.Uint64 // by Refusal; RefusedNone unused
	refusedH  [numRefusal]*atomic.Uint64
}

// NewSink wraps next. Counters are made here, so that they read 0 from
// the start and no span takes a lock for them.
func NewSink(next spans.Sink, cfg Config, met *metrics.Registry) *Sink {
	const marked = "weft_cross_cluster_spans_total"
	const markedHelp = "spans marked with cross_cluster.source/target, by span kind and what named the other cluster"
	const ignored = "weft_cross_cluster_claims_ignored_total"
	const ignoredHelp = "callers' cluster claims that are not a cluster name, ignored, by where they came from"
	const refused = "weft_cross_cluster_claims_refused_total"
	const refusedHelp = "callers' well-formed cluster claims not believed, by where they came from and why: " +
		"untrusted_source (the caller's address is neither loopback nor in a listed cluster), " +
		"denies_crossing (this cluster named from another cluster's address)"
	s := &Sink{next: next, cfg: cfg,
		client: met.Counter(marked, markedHelp, "kind", "client", "via", ViaAddress.String()),
		badTS:  met.Counter(ignored, ignoredHelp, "via", ViaTracestate.String()),
		badHdr: met.Counter(ignored, ignoredHelp, "via", ViaHeader.String()),
	}
	for v := ViaAddress; v < numVia; v++ {
		s.server[v] = met.Counter(marked, markedHelp, "kind", "server", "via", v.String())
	}
	for r := RefusedUntrusted; r < numRefusal; r++ {
		s.refusedTS[r] = met.Counter(refused, refusedHelp, "via", ViaTracestate.String(), "reason", r.String())
		s.refusedH[r] = met.Counter(refused, refusedHelp, "via", ViaHeader.String(), "reason", r.String())
	}
	return s
}

// Export implements spans.Sink.
func (s *Sink) Export(sp spans.Span) {
	d := s.cfg.Decide(&sp)
	if d.BadTracestate {
		s.badTS.Add(1)
	}
	if d.BadHeader {
		s.badHdr.Add(1)
	}
	if r := d.RefusedTracestate; r != RefusedNone && r < numRefusal {
		s.refusedTS[r].Add(1)
	}
	if r := d.RefusedHeader; r != RefusedNone && r < numRefusal {
		s.refusedH[r].Add(1)
	}
	if d.Crosses() && !marked(sp.Attrs) {
		// Clip: the probe's slice may have room past its length that
		// another holder of it could see written.
		sp.Attrs = append(slices.Clip(sp.Attrs), attribute.String(KeySource, d.Source), attribute.String(KeyTarget, d.Target))
		if sp.Kind == trace.SpanKindClient {
			s.client.Add(1)
		} else {
			s.server[d.Via].Add(1)
		}
	}
	s.next.Export(sp)
}

// marked reports whether a span carries crossing attributes already (from
// a probe that knows better); they are left alone.
func marked(attrs []attribute.KeyValue) bool {
	for _, kv := range attrs {
		if kv.Key == KeySource || kv.Key == KeyTarget {
			return true
		}
	}
	return false
}
