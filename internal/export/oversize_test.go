package export

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestOversizeBatches: a real collector refuses requests over its
// receiver's limit (4 MiB decoded, the OTLP receiver's default). Spans
// with large attributes (heads near -max-header-bytes, 8 KiB) fill a
// default batch of 512 past it: batches are sealed by size too, so every
// one arrives, once. A single span over the limit can never be sent: it is
// dropped and counted (too_large), and the spans after it still go.
func TestOversizeBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real collector")
	}
	col := otelcol.Start(t)
	cfg := fastConfig(url(col))
	cfg.BatchSize = 512
	cfg.QueueSize = 10_000
	reg := metrics.New()
	o := startPipeline(t, cfg, reg)

	big := strings.Repeat("x", 9000)
	n := 0
	for range 3 * 512 {
		s := testSpan(3, n)
		s.Attrs = append(s.Attrs, attribute.String("url.full", big))
		o.Export(s)
		n++
	}
	huge := testSpan(4, 0)
	huge.Attrs = append(huge.Attrs, attribute.String("blob", strings.Repeat("y", 5<<20)))
	o.Export(huge)
	for range 100 {
		o.Export(testSpan(3, n))
		n++
	}
	waitIdle(t, o, 60*time.Second)
	col.WaitSpans(t, n, 60*time.Second, nil)
	got := received(t, col)
	checkExactlyOnce(t, got, 3, n)
	if got[spanKey(4, 0)] != 0 {
		t.Error("the span over the limit arrived: the test proves nothing")
	}
	want := map[string]uint64{DropTooLarge: 1}
	if d := dropped(reg); len(d) != 1 || d[DropTooLarge] != 1 {
		t.Errorf("dropped %v, want %v", d, want)
	}
	if exported := reg.Value(spansMetric, "outcome", "exported"); exported != uint64(n) {
		t.Errorf("exported %d, want %d", exported, n)
	}
}
