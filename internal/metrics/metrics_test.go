package metrics

import (
	"strings"
	"testing"
)

func TestCountersAndText(t *testing.T) {
	r := New()
	r.Counter("weft_spans_total", "spans made", "family", "sockio").Add(3)
	r.Counter("weft_spans_total", "spans made", "family", "sockio").Add(1)
	r.Counter("weft_skipped_total", "skips", "reason", "bad hex").Add(2)
	r.Gauge("weft_up", "1 when running", func() float64 { return 1 })
	if got := r.Value("weft_spans_total", "family", "sockio"); got != 4 {
		t.Fatalf("counter = %d, want 4", got)
	}
	if got := r.Value("weft_absent"); got != 0 {
		t.Fatalf("absent counter = %d", got)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "# HELP weft_skipped_total skips\nweft_skipped_total{reason=\"bad hex\"} 2\n" +
		"# HELP weft_spans_total spans made\nweft_spans_total{family=\"sockio\"} 4\n" +
		"# HELP weft_up 1 when running\nweft_up 1\n"
	if b.String() != want {
		t.Fatalf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}
