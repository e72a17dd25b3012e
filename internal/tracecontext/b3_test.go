package tracecontext

import (
	"errors"
	"strings"
	"testing"
)

const (
	b3Trace   = "4bf92f3577b34da6a3ce929d0e0e4736"
	b3Trace64 = "a3ce929d0e0e4736"
	b3Span    = "00f067aa0ba902b7"
	b3Parent  = "e457b5a2e4d86bd1"
)

func TestParseB3(t *testing.T) {
	padded := strings.Repeat("0", 16) + b3Trace64
	tests := []struct {
		in          string
		err         error
		trace, span string // "" for no context
		sampled     bool
	}{
		{in: b3Trace + "-" + b3Span, trace: b3Trace, span: b3Span, sampled: true},
		{in: b3Trace + "-" + b3Span + "-1", trace: b3Trace, span: b3Span, sampled: true},
		{in: b3Trace + "-" + b3Span + "-0", trace: b3Trace, span: b3Span},
		{in: b3Trace + "-" + b3Span + "-d", trace: b3Trace, span: b3Span, sampled: true},
		{in: b3Trace + "-" + b3Span + "-1-" + b3Parent, trace: b3Trace, span: b3Span, sampled: true},
		{in: b3Trace + "-" + b3Span + "-0-" + b3Parent, trace: b3Trace, span: b3Span},
		// A 64-bit trace ID is left-padded to 128 bits.
		{in: b3Trace64 + "-" + b3Span, trace: padded, span: b3Span, sampled: true},
		{in: b3Trace64 + "-" + b3Span + "-0", trace: padded, span: b3Span},
		{in: b3Trace64 + "-" + b3Span + "-1-" + b3Parent, trace: padded, span: b3Span, sampled: true},
		// Sampling state only: no context, not an error.
		{in: "0"}, {in: "1"}, {in: "d"},

		{in: "", err: ErrB3Length},
		{in: "x", err: ErrB3Sampled},
		{in: "true", err: ErrB3Length},
		{in: b3Trace, err: ErrB3Length},
		{in: b3Trace + "-" + b3Span[:15], err: ErrB3Length},
		{in: b3Trace[:20] + "-" + b3Span, err: ErrB3Format},
		{in: b3Trace + "_" + b3Span, err: ErrB3Format},
		{in: b3Trace + "-" + b3Span + "1", err: ErrB3Format},
		{in: b3Trace + "-" + b3Span + "-", err: ErrB3Length},
		{in: b3Trace + "-" + b3Span + "-x", err: ErrB3Sampled},
		{in: b3Trace + "-" + b3Span + "-true", err: ErrB3Sampled},
		{in: b3Trace + "-" + b3Span + "-1" + b3Parent, err: ErrB3Format},
		{in: b3Trace + "-" + b3Span + "-1-" + b3Parent[:15], err: ErrB3Length},
		{in: b3Trace + "-" + b3Span + "-1-" + b3Parent + "0", err: ErrB3Length},
		{in: b3Trace + "-" + b3Span + "-1-" + "000000000000000g", err: ErrB3Hex},
		{in: b3Trace + "-" + b3Span + "-1-" + strings.Repeat("0", 16), err: ErrB3ZeroID},
		{in: strings.ToUpper(b3Trace) + "-" + b3Span, err: ErrB3Hex},
		{in: b3Trace + "-" + "00f067aa0ba902bz", err: ErrB3Hex},
		{in: strings.Repeat("0", 32) + "-" + b3Span, err: ErrB3ZeroID},
		{in: strings.Repeat("0", 16) + "-" + b3Span, err: ErrB3ZeroID},
		{in: b3Trace + "-" + strings.Repeat("0", 16), err: ErrB3ZeroID},
		// A traceparent is not a b3 value.
		{in: good, err: ErrB3Format},
	}
	for _, tt := range tests {
		sc, err := ParseB3(tt.in)
		checkB3(t, "ParseB3("+tt.in+")", sc, err, tt.err, tt.trace, tt.span, tt.sampled)
	}
}

func checkB3(t *testing.T, what string, sc SpanContext, err, wantErr error, trace, span string, sampled bool) {
	t.Helper()
	switch {
	case wantErr != nil:
		if !errors.Is(err, wantErr) || sc != (SpanContext{}) {
			t.Errorf("%s = %+v, %v; want %v", what, sc, err, wantErr)
		}
	case err != nil:
		t.Errorf("%s error %v", what, err)
	case trace == "":
		if sc != (SpanContext{}) {
			t.Errorf("%s = %+v, want no context", what, sc)
		}
	case sc.TraceID.String() != trace || sc.SpanID.String() != span || sc.Sampled() != sampled:
		t.Errorf("%s = %s %s sampled %v, want %s %s %v", what, sc.TraceID, sc.SpanID, sc.Sampled(), trace, span, sampled)
	}
}

func TestParseB3Multi(t *testing.T) {
	padded := strings.Repeat("0", 16) + b3Trace64
	tests := []struct {
		trace, span, sampled, flags string
		err                         error
		wantTrace                   string
		wantSampled                 bool
	}{
		{trace: b3Trace, span: b3Span, wantTrace: b3Trace, wantSampled: true},
		{trace: b3Trace, span: b3Span, sampled: "1", wantTrace: b3Trace, wantSampled: true},
		{trace: b3Trace, span: b3Span, sampled: "true", wantTrace: b3Trace, wantSampled: true},
		{trace: b3Trace, span: b3Span, sampled: "True", wantTrace: b3Trace, wantSampled: true},
		{trace: b3Trace, span: b3Span, sampled: "0", wantTrace: b3Trace},
		{trace: b3Trace, span: b3Span, sampled: "false", wantTrace: b3Trace},
		{trace: b3Trace, span: b3Span, sampled: "0", flags: "1", wantTrace: b3Trace, wantSampled: true},
		{trace: b3Trace, span: b3Span, sampled: "0", flags: "0", wantTrace: b3Trace},
		{trace: b3Trace64, span: b3Span, sampled: "1", wantTrace: padded, wantSampled: true},
		// Sampling headers only, or nothing: no context.
		{sampled: "1"}, {flags: "1"}, {},

		{trace: b3Trace, err: ErrB3Missing},
		{span: b3Span, sampled: "1", err: ErrB3Missing},
		{trace: b3Trace, span: b3Span, sampled: "yes", err: ErrB3Sampled},
		{trace: b3Trace, span: b3Span, sampled: "d", err: ErrB3Sampled},
		{trace: b3Trace[:31], span: b3Span, err: ErrB3Length},
		{trace: b3Trace, span: b3Span + "0", err: ErrB3Length},
		{trace: b3Trace, span: "00f067aa0ba902bG", err: ErrB3Hex},
		{trace: strings.Repeat("0", 32), span: b3Span, err: ErrB3ZeroID},
		{trace: b3Trace, span: strings.Repeat("0", 16), err: ErrB3ZeroID},
	}
	for _, tt := range tests {
		sc, err := ParseB3Multi(tt.trace, tt.span, tt.sampled, tt.flags)
		span := ""
		if tt.wantTrace != "" {
			span = b3Span
		}
		checkB3(t, "ParseB3Multi("+strings.Join([]string{tt.trace, tt.span, tt.sampled, tt.flags}, ",")+")",
			sc, err, tt.err, tt.wantTrace, span, tt.wantSampled)
	}
}

func TestExtractB3(t *testing.T) {
	single := b3Trace + "-" + b3Span + "-0"
	other := "11111111111111111111111111111111"
	tests := []struct {
		name    string
		in      B3
		err     error
		trace   string
		sampled bool
	}{
		{name: "none"},
		{name: "single", in: B3{Single: single}, trace: b3Trace},
		{name: "multi", in: B3{TraceID: b3Trace, SpanID: b3Span, Sampled: "1"}, trace: b3Trace, sampled: true},
		{name: "single wins", in: B3{Single: single, TraceID: other, SpanID: b3Span}, trace: b3Trace},
		{name: "bad single, good multi", in: B3{Single: "zz", TraceID: other, SpanID: b3Span}, trace: other, sampled: true},
		{name: "sampling only", in: B3{Single: "1"}},
		{name: "sampling only, multi", in: B3{Single: "0", TraceID: other, SpanID: b3Span}, trace: other, sampled: true},
		{name: "bad single", in: B3{Single: b3Trace + "-"}, err: ErrB3Length},
		{name: "both bad: the single's reason", in: B3{Single: "x", TraceID: other}, err: ErrB3Sampled},
		{name: "bad multi", in: B3{SpanID: b3Span}, err: ErrB3Missing},
	}
	for _, tt := range tests {
		sc, err := ExtractB3(tt.in)
		span := ""
		if tt.trace != "" {
			span = b3Span
		}
		checkB3(t, tt.name, sc, err, tt.err, tt.trace, span, tt.sampled)
		if got := tt.in.Present(); got != (tt.in != B3{}) {
			t.Errorf("%s: Present() = %v", tt.name, got)
		}
	}
}

func TestB3ErrorsDistinct(t *testing.T) {
	errs := []error{ErrB3Length, ErrB3Hex, ErrB3ZeroID, ErrB3Format, ErrB3Sampled, ErrB3Missing}
	for i, a := range errs {
		for j, b := range errs {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v matches %v", a, b)
			}
		}
	}
}

func FuzzParseB3(f *testing.F) {
	f.Add(b3Trace + "-" + b3Span + "-1-" + b3Parent)
	f.Add(b3Trace64 + "-" + b3Span + "-d")
	f.Add(b3Trace + "-" + b3Span)
	f.Add("0")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		sc, err := ParseB3(v)
		if err != nil {
			if sc != (SpanContext{}) {
				t.Fatalf("error %v with non-zero result", err)
			}
			n := 0
			for _, e := range []error{ErrB3Length, ErrB3Hex, ErrB3ZeroID, ErrB3Format, ErrB3Sampled} {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %v matches %d sentinels", err, n)
			}
			return
		}
		if sc == (SpanContext{}) {
			if len(v) != 1 {
				t.Fatalf("no context and no error for %q", v)
			}
			return
		}
		if !sc.IsValid() || sc.Flags&^FlagSampled != 0 {
			t.Fatalf("accepted invalid %q: %+v", v, sc)
		}
		// The IDs are the value's first two fields, the trace ID padded.
		trace, rest, _ := strings.Cut(v, "-")
		if strings.TrimLeft(sc.TraceID.String(), "0") != strings.TrimLeft(trace, "0") ||
			!strings.HasPrefix(rest, sc.SpanID.String()) {
			t.Fatalf("%q parsed as %s %s", v, sc.TraceID, sc.SpanID)
		}
		// The same IDs sent as multi headers give the same context.
		sampled := "0"
		if sc.Sampled() {
			sampled = "1"
		}
		m, err := ParseB3Multi(trace, rest[:b3SpanLen], sampled, "")
		if err != nil || m != sc {
			t.Fatalf("multi of %q: %+v %v, want %+v", v, m, err, sc)
		}
	})
}
