package clusters

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spanmetrics"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/testutil/spanrec"
)

func crossAttrs(s spans.Span) (src, dst string, n int) {
	for _, kv := range s.Attrs {
		switch kv.Key {
		case KeySource:
			src, n = kv.Value.AsString(), n+1
		case KeyTarget:
			dst, n = kv.Value.AsString(), n+1
		}
	}
	return src, dst, n
}

// TestSink: marks are added (and only once), every span is passed on, the
// probe's slice is not written past its length, and the stage counts:
// marks, malformed claims, refused ones.
func TestSink(t *testing.T) {
	reg := metrics.New()
	next := spanrec.New()
	s := NewSink(next, Config{Own: east, Peers: mustPeers(t, west+"=10.20.0.0/16;"+east+"=10.0.0.0/16")}, reg)
	peer := func(a string) attribute.KeyValue { return attribute.String("network.peer.address", a) }

	backing := make([]attribute.KeyValue, 1, 8)
	backing[0] = peer("10.20.0.1")
	s.Export(spans.Span{Kind: trace.SpanKindClient, Attrs: backing})
	s.Export(spans.Span{Kind: trace.SpanKindServer, TraceState: "weft=" + eu, Attrs: []attribute.KeyValue{peer("10.0.0.2")}})
	s.Export(spans.Span{Kind: trace.SpanKindServer, SourceCluster: "bad value", Attrs: []attribute.KeyValue{peer("198.51.100.1")}})
	s.Export(spans.Span{Kind: trace.SpanKindServer, Attrs: []attribute.KeyValue{peer("10.0.0.1")}})
	s.Export(spans.Span{Kind: trace.SpanKindClient, Attrs: []attribute.KeyValue{peer("10.20.0.1"),
		attribute.String(KeySource, "probe"), attribute.String(KeyTarget, "knows")}})
	s.Export(spans.Span{Kind: trace.SpanKindServer, SourceCluster: west, Attrs: []attribute.KeyValue{peer("203.0.113.7")}})
	s.Export(spans.Span{Kind: trace.SpanKindServer, TraceState: "weft=" + east, Attrs: []attribute.KeyValue{peer("10.20.0.9")}})

	got := next.Spans()
	if len(got) != 7 {
		t.Fatalf("%d spans passed on, want 7", len(got))
	}
	if backing[:2][1] != (attribute.KeyValue{}) {
		t.Error("the probe's attribute slice was written past its length")
	}
	for i, want := range []struct {
		src, dst string
		n        int
	}{{east, west, 2}, {eu, east, 2}, {External, east, 2}, {"", "", 0}, {"probe", "knows", 2}, {External, east, 2}, {west, east, 2}} {
		if src, dst, n := crossAttrs(got[i]); src != want.src || dst != want.dst || n != want.n {
			t.Errorf("span %d: %s → %s (%d attributes), want %s → %s (%d)", i, src, dst, n, want.src, want.dst, want.n)
		}
	}
	var text strings.Builder
	reg.WriteText(&text)
	for _, want := range []string{
		`weft_cross_cluster_spans_total{kind="client",via="address"} 1`,
		`weft_cross_cluster_spans_total{kind="server",via="tracestate"} 1`,
		`weft_cross_cluster_spans_total{kind="server",via="external"} 2`,
		`weft_cross_cluster_spans_total{kind="server",via="address"} 1`,
		`weft_cross_cluster_spans_total{kind="server",via="header"} 0`,
		`weft_cross_cluster_claims_ignored_total{via="header"} 1`,
		`weft_cross_cluster_claims_ignored_total{via="tracestate"} 0`,
		`weft_cross_cluster_claims_refused_total{via="header",reason="untrusted_source"} 1`,
		`weft_cross_cluster_claims_refused_total{via="header",reason="denies_crossing"} 0`,
		`weft_cross_cluster_claims_refused_total{via="tracestate",reason="untrusted_source"} 0`,
		`weft_cross_cluster_claims_refused_total{via="tracestate",reason="denies_crossing"} 1`,
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("metrics lack %s\n%s", want, text.String())
		}
	}
}

// TestSinkFeedsSpanMetrics: in the agent's order (marks, then span
// metrics), a marked CLIENT span lands in cross_cluster_request_duration_seconds.
func TestSinkFeedsSpanMetrics(t *testing.T) {
	reg := metrics.New()
	next := spanrec.New()
	s := NewSink(spanmetrics.New(next, reg, east), Config{Own: east, Peers: mustPeers(t, west+"=10.20.0.0/16")}, reg)
	t0 := time.Unix(1000, 0)
	s.Export(spans.Span{Kind: trace.SpanKindClient, Parent: trace.SpanID{1}, Start: t0, End: t0.Add(30 * time.Millisecond),
		Attrs: []attribute.KeyValue{attribute.String("network.peer.address", "10.20.0.5")}})
	s.Export(spans.Span{Kind: trace.SpanKindServer, TraceState: "weft=" + west, Start: t0, End: t0.Add(time.Second),
		Attrs: []attribute.KeyValue{attribute.String("network.peer.address", "10.20.0.6")}})
	var text strings.Builder
	reg.WriteText(&text)
	if want := `weft_cross_cluster_spans_total{kind="server",via="tracestate"} 1`; !strings.Contains(text.String(), want) {
		t.Errorf("the server span was not marked: metrics lack %s", want)
	}
	if want := `cross_cluster_request_duration_seconds_count{source_cluster="` + east + `",target_cluster="` + west + `"} 1`; !strings.Contains(text.String(), want) {
		t.Errorf("metrics lack %s\n%s", want, text.String())
	}
	// Server spans are the callee's view: not in the caller's histogram.
	if strings.Contains(text.String(), `source_cluster="`+west+`"`) {
		t.Errorf("a server span was measured as a cross-cluster call:\n%s", text.String())
	}
}
