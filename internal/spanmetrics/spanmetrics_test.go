package spanmetrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/testutil/spanrec"
)

func TestSink(t *testing.T) {
	reg := metrics.New()
	next := spanrec.New()
	s := New(next, reg, "us-east-1")
	east := resource.NewSchemaless(attribute.String("k8s.cluster.name", "aws-us-east-1-prod-01"))
	t0 := time.Unix(1000, 0)
	s.Export(spans.Span{Kind: trace.SpanKindServer, Resource: east, Start: t0, End: t0.Add(time.Millisecond)})          // root
	s.Export(spans.Span{Kind: trace.SpanKindServer, Parent: trace.SpanID{1}, Start: t0, End: t0.Add(time.Millisecond)}) // no resource: the configured cluster
	s.Export(spans.Span{Kind: trace.SpanKindClient, Parent: trace.SpanID{2}, Resource: east, Start: t0, End: t0.Add(300 * time.Millisecond),
		Attrs: []attribute.KeyValue{attribute.String("cross_cluster.source", "aws-us-east-1-prod-01"), attribute.String("cross_cluster.target", "aws-us-west-2-prod-01")}})
	if n := next.Len(); n != 3 {
		t.Fatalf("%d spans passed on, want 3", n)
	}
	var text strings.Builder
	reg.WriteText(&text)
	for _, want := range []string{
		`spans_total{cluster="aws-us-east-1-prod-01"} 2`,
		`spans_total{cluster="us-east-1"} 1`,
		`spans_without_parent_context_total{cluster="aws-us-east-1-prod-01"} 1`,
		`cross_cluster_request_duration_seconds_count{source_cluster="aws-us-east-1-prod-01",target_cluster="aws-us-west-2-prod-01"} 1`,
		`cross_cluster_request_duration_seconds_bucket{source_cluster="aws-us-east-1-prod-01",target_cluster="aws-us-west-2-prod-01",le="0.5"} 1`,
		`cross_cluster_request_duration_seconds_bucket{source_cluster="aws-us-east-1-prod-01",target_cluster="aws-us-west-2-prod-01",le="0.25"} 0`,
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("metrics lack %s\n%s", want, text.String())
		}
	}
	if strings.Contains(text.String(), `spans_without_parent_context_total{cluster="us-east-1"}`) {
		t.Error("a span with a parent counted as without parent context")
	}
}

// Counters are memoised per resource: many resources of one cluster, more
// than the memo holds, and a root after non-roots still count exactly.
func TestSinkManyResources(t *testing.T) {
	reg := metrics.New()
	s := New(spanrec.New(), reg, "local")
	t0 := time.Unix(1000, 0)
	n := maxResources + 10
	for i := range n {
		res := resource.NewSchemaless(attribute.String("k8s.cluster.name", "c1"), attribute.Int("process.pid", i))
		s.Export(spans.Span{Kind: trace.SpanKindServer, Parent: trace.SpanID{1}, Resource: res, Start: t0, End: t0})
		s.Export(spans.Span{Kind: trace.SpanKindServer, Parent: trace.SpanID{1}, Resource: res, Start: t0, End: t0})
		if i%2 == 0 {
			s.Export(spans.Span{Kind: trace.SpanKindServer, Resource: res, Start: t0, End: t0}) // root
		}
	}
	var text strings.Builder
	reg.WriteText(&text)
	for _, want := range []string{
		fmt.Sprintf(`spans_total{cluster="c1"} %d`, 2*n+(n+1)/2),
		fmt.Sprintf(`spans_without_parent_context_total{cluster="c1"} %d`, (n+1)/2),
	} {
		if !strings.Contains(text.String(), want+"\n") {
			t.Errorf("metrics lack %s\n%s", want, text.String())
		}
	}
	if len(s.byRes) > maxResources {
		t.Errorf("memo holds %d resources, bound %d", len(s.byRes), maxResources)
	}
}
