package sampling

import (
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/testutil/spanrec"
)

// traceWithLow is a trace ID whose decisive bytes are low (big-endian).
func traceWithLow(low uint64) trace.TraceID {
	id := trace.TraceID{0xaa}
	for i := range 8 {
		id[15-i] = byte(low >> (8 * i))
	}
	return id
}

func TestSink(t *testing.T) {
	in := traceWithLow(1 << 10)         // kept by any ratio above ~1e-16
	out := traceWithLow(^uint64(0) - 1) // dropped by any ratio below 1
	parent := trace.SpanID{1}
	tests := []struct {
		sampler, arg string
		span         spans.Span
		kept         bool
	}{
		{"", "", spans.Span{TraceID: out, Sampled: true}, true},
		{"", "", spans.Span{TraceID: in, Parent: parent, Sampled: false}, false},
		{"parentbased_traceidratio", "0.5", spans.Span{TraceID: in, Sampled: true}, true},
		{"parentbased_traceidratio", "0.5", spans.Span{TraceID: out, Sampled: true}, false},
		{"parentbased_traceidratio", "0.5", spans.Span{TraceID: out, Parent: parent, Sampled: true}, true},
		{"parentbased_traceidratio", "0.5", spans.Span{TraceID: in, Parent: parent, Sampled: false}, false},
		{"traceidratio", "0.5", spans.Span{TraceID: in, Parent: parent, Sampled: false}, true},
		{"traceidratio", "0.5", spans.Span{TraceID: out, Parent: parent, Sampled: true}, false},
		{"always_on", "", spans.Span{TraceID: out, Parent: parent, Sampled: false}, true},
		{"always_off", "", spans.Span{TraceID: in, Parent: parent, Sampled: true}, false},
		{"parentbased_always_off", "", spans.Span{TraceID: in, Sampled: true}, false},
		{"parentbased_always_off", "", spans.Span{TraceID: in, Parent: parent, Sampled: true}, true},
	}
	for _, tt := range tests {
		s, err := Parse(env(map[string]string{EnvSampler: tt.sampler, EnvArg: tt.arg}))
		if err != nil {
			t.Fatal(err)
		}
		reg, rec := metrics.New(), spanrec.New()
		NewSink(rec, s, reg).Export(tt.span)
		dropped := reg.Value("weft_spans_unsampled_total")
		got := rec.Spans()
		if kept := len(got) == 1; kept != tt.kept || dropped != map[bool]uint64{true: 0, false: 1}[tt.kept] {
			t.Errorf("%v, span %+v: exported %d, counted %d unsampled; want kept %v", s, tt.span, len(got), dropped, tt.kept)
		}
		if len(got) == 1 && !got[0].Sampled {
			t.Errorf("%v: exported a span marked unsampled", s)
		}
	}
}
