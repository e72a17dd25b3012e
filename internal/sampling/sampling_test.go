package sampling

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParse(t *testing.T) {
	tests := []struct {
		sampler, arg string
		want         string // String() of the result
		bound        uint64
		parentBased  bool
		err          string // a substring of the error; "" for none
	}{
		{sampler: "", want: "parentbased_always_on", bound: AllBound, parentBased: true},
		{sampler: "  ", want: "parentbased_always_on", bound: AllBound, parentBased: true},
		{sampler: "always_on", want: "always_on", bound: AllBound},
		{sampler: "ALWAYS_ON", want: "always_on", bound: AllBound},
		{sampler: "always_on", arg: "junk", want: "always_on", bound: AllBound}, // no argument taken
		{sampler: "always_off", want: "always_off", bound: 0},
		{sampler: "traceidratio", want: "traceidratio(1)", bound: AllBound},
		{sampler: "traceidratio", arg: "0.5", want: "traceidratio(0.5)", bound: 1 << 62},
		{sampler: "traceidratio", arg: " 0.25 ", want: "traceidratio(0.25)", bound: 1 << 61},
		{sampler: "traceidratio", arg: "0", want: "traceidratio(0)", bound: 0},
		{sampler: "traceidratio", arg: "1", want: "traceidratio(1)", bound: AllBound},
		{sampler: "parentbased_always_on", want: "parentbased_always_on", bound: AllBound, parentBased: true},
		{sampler: "parentbased_always_off", want: "parentbased_always_off", bound: 0, parentBased: true},
		{sampler: "parentbased_traceidratio", arg: "0.5", want: "parentbased_traceidratio(0.5)", bound: 1 << 62, parentBased: true},
		{sampler: "parentbased_traceidratio", want: "parentbased_traceidratio(1)", bound: AllBound, parentBased: true},
		{sampler: "jaeger_remote", err: `OTEL_TRACES_SAMPLER="jaeger_remote": unknown sampler`},
		{sampler: "always on", err: `OTEL_TRACES_SAMPLER="always on"`},
		{sampler: "traceidratio", arg: "half", err: `OTEL_TRACES_SAMPLER_ARG="half"`},
		{sampler: "traceidratio", arg: "1.5", err: `OTEL_TRACES_SAMPLER_ARG="1.5"`},
		{sampler: "traceidratio", arg: "-0.1", err: "outside [0, 1]"},
		{sampler: "parentbased_traceidratio", arg: "NaN", err: `OTEL_TRACES_SAMPLER_ARG="NaN"`},
		{sampler: "parentbased_traceidratio", arg: "Inf", err: "outside [0, 1]"},
	}
	for _, tt := range tests {
		s, err := Parse(env(map[string]string{EnvSampler: tt.sampler, EnvArg: tt.arg}))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q %q: error %v, want one containing %q", tt.sampler, tt.arg, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q %q: %v", tt.sampler, tt.arg, err)
			continue
		}
		if s.String() != tt.want || s.Bound() != tt.bound || s.ParentBased() != tt.parentBased {
			t.Errorf("%q %q: %v bound %#x parent-based %v, want %v %#x %v",
				tt.sampler, tt.arg, s, s.Bound(), s.ParentBased(), tt.want, tt.bound, tt.parentBased)
		}
	}
}

// sdkSampler is the OpenTelemetry SDK's sampler for what s was parsed from.
func sdkSampler(name string, ratio float64) sdktrace.Sampler {
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio)
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	}
	panic(name)
}

// parents are the parent contexts the SDK tells apart; weft sees only
// whether there is one and its flag.
var parents = []struct {
	name   string
	ctx    func(trace.TraceID) context.Context
	parent Parent
}{
	{"root", func(trace.TraceID) context.Context { return context.Background() }, Root},
	{"remote sampled", parentCtx(true, true), ParentSampled},
	{"remote unsampled", parentCtx(true, false), ParentUnsampled},
	{"local sampled", parentCtx(false, true), ParentSampled},
	{"local unsampled", parentCtx(false, false), ParentUnsampled},
}

func parentCtx(remote, sampled bool) func(trace.TraceID) context.Context {
	return func(tid trace.TraceID) context.Context {
		cfg := trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, Remote: remote}
		if sampled {
			cfg.TraceFlags = trace.FlagsSampled
		}
		return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(cfg))
	}
}

func sdkSampled(s sdktrace.Sampler, tid trace.TraceID, ctx context.Context) bool {
	r := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: "op", Kind: trace.SpanKindServer})
	return r.Decision == sdktrace.RecordAndSample
}

// traceIDs are random IDs plus, for each ratio, the IDs on either side of
// its bound, where an off-by-one would show.
func traceIDs(ratios []float64) []trace.TraceID {
	rng := rand.New(rand.NewPCG(1, 2))
	var ids []trace.TraceID
	for range 2000 {
		var id trace.TraceID
		binary.BigEndian.PutUint64(id[:8], rng.Uint64())
		binary.BigEndian.PutUint64(id[8:], rng.Uint64())
		ids = append(ids, id)
	}
	for _, r := range ratios {
		b := Bound(r)
		for _, low := range []uint64{b << 1, b<<1 | 1, (b - 1) << 1, (b-1)<<1 | 1, (b + 1) << 1, 0, ^uint64(0)} {
			var id trace.TraceID
			id[0] = 0xab
			binary.BigEndian.PutUint64(id[8:], low)
			ids = append(ids, id)
		}
	}
	return ids
}

// TestAgreesWithSDK: for every sampler, ratio, parent and many trace IDs,
// weft decides as the OpenTelemetry SDK does.
func TestAgreesWithSDK(t *testing.T) {
	ratios := []float64{0, 1e-12, 0.0001, 0.01, 0.1, 0.25, 1.0 / 3, 0.5, 0.7, 0.999999, 1}
	ids := traceIDs(ratios)
	for name := range samplers {
		for _, ratio := range ratios {
			arg := ""
			if samplers[name].takesArg {
				arg = fmtG(ratio)
			} else if ratio != 0 {
				continue // one run is enough for samplers without a ratio
			}
			s, err := Parse(env(map[string]string{EnvSampler: name, EnvArg: arg}))
			if err != nil {
				t.Fatal(err)
			}
			sdk := sdkSampler(name, s.Ratio())
			for _, p := range parents {
				bad := 0
				for _, id := range ids {
					want := sdkSampled(sdk, id, p.ctx(id))
					if got := s.Sampled(id, p.parent); got != want {
						if bad++; bad <= 3 {
							t.Errorf("%v, %s parent, trace %s: sampled %v, SDK says %v", s, p.name, id, got, want)
						}
					}
				}
			}
		}
	}
}

// fmtG writes a ratio so that parsing it gives the same float64 back.
func fmtG(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// TestRatioIsPlausible: the kept fraction of random trace IDs is near the
// ratio (a gross error in the bound would show here first).
func TestRatioIsPlausible(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, r := range []float64{0.01, 0.1, 0.5, 0.9} {
		kept := 0
		const n = 100000
		for range n {
			var id [16]byte
			binary.BigEndian.PutUint64(id[8:], rng.Uint64())
			if RatioSampled(id, Bound(r)) {
				kept++
			}
		}
		if got := float64(kept) / n; got < r*0.9-0.002 || got > r*1.1+0.002 {
			t.Errorf("ratio %v kept %v of random traces", r, got)
		}
	}
}

func FuzzAgreesWithSDK(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0, 0, 0, 0, 0, 0, 0}, 0.5, uint8(0), uint8(2))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0.999999, uint8(1), uint8(5))
	f.Add([]byte{}, 0.0, uint8(2), uint8(4))
	f.Add([]byte{1}, 1e-300, uint8(3), uint8(0))
	names := []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}
	f.Fuzz(func(t *testing.T, raw []byte, ratio float64, parent, which uint8) {
		var id trace.TraceID
		copy(id[:], raw)
		name := names[int(which)%len(names)]
		s, err := Parse(env(map[string]string{EnvSampler: name, EnvArg: fmtG(ratio)}))
		if samplers[name].takesArg && !(ratio >= 0 && ratio <= 1) {
			if err == nil {
				t.Fatalf("%s with ratio %v: no error", name, ratio)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s with ratio %v: %v", name, ratio, err)
		}
		p := parents[int(parent)%len(parents)]
		if !id.IsValid() && p.parent != Root {
			return // probes never make a zero trace ID; the SDK ignores such a parent
		}
		want := sdkSampled(sdkSampler(name, s.Ratio()), id, p.ctx(id))
		if got := s.Sampled(id, p.parent); got != want {
			t.Fatalf("%v, %s parent, trace %s: sampled %v, SDK says %v", s, p.name, id, got, want)
		}
	})
}
