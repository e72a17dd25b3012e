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
	r.Gauge("weft_kernel_total", "kernel-side count", func() float64 { return 7 }, "name", "ringbuf_full")
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
	want := "# HELP weft_kernel_total kernel-side count\n# TYPE weft_kernel_total counter\nweft_kernel_total{name=\"ringbuf_full\"} 7\n" +
		"# HELP weft_skipped_total skips\n# TYPE weft_skipped_total counter\nweft_skipped_total{reason=\"bad hex\"} 2\n" +
		"# HELP weft_spans_total spans made\n# TYPE weft_spans_total counter\nweft_spans_total{family=\"sockio\"} 4\n" +
		"# HELP weft_up 1 when running\n# TYPE weft_up gauge\nweft_up 1\n"
	if b.String() != want {
		t.Fatalf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}

// A histogram is one family: its buckets in the order of their bounds
// (not of their text), +Inf last, then _sum and _count, per label set.
func TestHistogramText(t *testing.T) {
	r := New()
	bounds := []float64{0.1, 1, 2.5, 10}
	east := r.Histogram("call_seconds", "call time", bounds, "src", "east")
	west := r.Histogram("call_seconds", "call time", bounds, "src", "west")
	east.Observe(0.05)
	east.Observe(3)
	west.Observe(20)
	r.Counter("call_total", "calls").Add(3) // sorts between call_seconds_bucket and _count by text
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP call_seconds call time
# TYPE call_seconds histogram
call_seconds_bucket{src="east",le="0.1"} 1
call_seconds_bucket{src="east",le="1"} 1
call_seconds_bucket{src="east",le="2.5"} 1
call_seconds_bucket{src="east",le="10"} 2
call_seconds_bucket{src="east",le="+Inf"} 2
call_seconds_sum{src="east"} 3.05
call_seconds_count{src="east"} 2
call_seconds_bucket{src="west",le="0.1"} 0
call_seconds_bucket{src="west",le="1"} 0
call_seconds_bucket{src="west",le="2.5"} 0
call_seconds_bucket{src="west",le="10"} 0
call_seconds_bucket{src="west",le="+Inf"} 1
call_seconds_sum{src="west"} 20
call_seconds_count{src="west"} 1
# HELP call_total calls
# TYPE call_total counter
call_total 3
`
	if b.String() != want {
		t.Fatalf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestFamilyOf(t *testing.T) {
	h := map[string]bool{"lat_seconds": true}
	for _, tc := range []struct {
		name, family string
		rank         int
	}{
		{"lat_seconds_bucket", "lat_seconds", 0},
		{"lat_seconds_sum", "lat_seconds", 1},
		{"lat_seconds_count", "lat_seconds", 2},
		{"lat_seconds", "lat_seconds", 0},
		{"other_count", "other_count", 0}, // not a histogram's
		{"other_bucket", "other_bucket", 0},
		{"weft_spans_total", "weft_spans_total", 0},
	} {
		f, r := familyOf(tc.name, h)
		if f != tc.family || r != tc.rank {
			t.Errorf("familyOf(%s) = %s, %d; want %s, %d", tc.name, f, r, tc.family, tc.rank)
		}
	}
}

func TestTypeOf(t *testing.T) {
	h := map[string]bool{"lat_seconds": true}
	c := map[string]bool{"weft_spans_total": true, "weird": true}
	for _, tc := range []struct{ name, want string }{
		{"lat_seconds", "histogram"},
		{"weft_spans_total", "counter"},
		{"weird", "counter"},                    // made by Counter, whatever its name
		{"weft_sockio_kernel_total", "counter"}, // a gauge function reading a kernel count
		{"weft_export_queue_spans", "gauge"},
	} {
		if got := typeOf(tc.name, h, c); got != tc.want {
			t.Errorf("typeOf(%s) = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestLabelKey(t *testing.T) {
	for _, tc := range []struct {
		labels []string
		key    string
		le     string
	}{
		{nil, "", "+Inf"},
		{[]string{"a", "1"}, "a\x001\x00", "+Inf"},
		{[]string{"a", "1", "le", "0.25"}, "a\x001\x00", "0.25"},
		{[]string{"le", "+Inf", "a", "1"}, "a\x001\x00", "+Inf"},
		{[]string{"le", "junk"}, "", "+Inf"},
	} {
		k, le := labelKey(tc.labels)
		if k != tc.key || formatFloat(le) != tc.le {
			t.Errorf("labelKey(%q) = %q, %v; want %q, %s", tc.labels, k, le, tc.key, tc.le)
		}
	}
}

func TestEscapes(t *testing.T) {
	for _, tc := range []struct{ in, label, help string }{
		{`plain`, `plain`, `plain`},
		{`a "quoted" word`, `a \"quoted\" word`, `a "quoted" word`},
		{`back\slash`, `back\\slash`, `back\\slash`},
		{"two\nlines", `two\nlines`, `two\nlines`},
	} {
		if got := escapeLabel(tc.in); got != tc.label {
			t.Errorf("escapeLabel(%q) = %q, want %q", tc.in, got, tc.label)
		}
		if got := escapeHelp(tc.in); got != tc.help {
			t.Errorf("escapeHelp(%q) = %q, want %q", tc.in, got, tc.help)
		}
	}
	if got := formatLabels([]string{"reason", "bad \"hex\""}); got != `{reason="bad \"hex\""}` {
		t.Errorf("formatLabels: %s", got)
	}
}
