package httpsem

import (
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/tracecontext"
)

// TestB3Parent: kernel-made IDs keep their trace and take the B3 parent
// only when they are in the B3 trace; user-space IDs take the B3 trace.
func TestB3Parent(t *testing.T) {
	const (
		t128 = "80f198ee56343ba864fe8b2a57d3eff7"
		span = "e457b5a2e4d86bd1"
	)
	b3Trace, _ := trace.TraceIDFromHex(t128)
	other, _ := trace.TraceIDFromHex("0123456789abcdef0123456789abcdef")
	for _, tc := range []struct {
		name          string
		b3            tracecontext.B3
		own           trace.TraceID
		kernel        bool
		trace, parent string
		sampled       bool
		problem       string
	}{
		{"absent", tracecontext.B3{}, other, true, other.String(), "", true, ""},
		{"kernel took it", tracecontext.B3{Single: t128 + "-" + span + "-0"}, b3Trace, true, t128, span, false, ""},
		{"kernel did not", tracecontext.B3{Single: t128 + "-" + span}, other, true, other.String(), "", true, "not_in_kernel"},
		{"user space", tracecontext.B3{TraceID: t128, SpanID: span, Flags: "1"}, other, false, t128, span, true, ""},
		{"malformed", tracecontext.B3{Single: t128 + "_" + span}, other, false, other.String(), "", true, "format"},
		{"sampling only", tracecontext.B3{Sampled: "1"}, other, false, other.String(), "", true, ""},
	} {
		s := spans.Span{TraceID: tc.own, SpanID: trace.SpanID{1}, Sampled: true}
		problem := B3Parent(&s, tc.b3, tc.kernel)
		parent := ""
		if s.Parent.IsValid() {
			parent = s.Parent.String()
		}
		if s.TraceID.String() != tc.trace || parent != tc.parent || s.Remote != (parent != "") || s.Sampled != tc.sampled || problem != tc.problem {
			t.Errorf("%s: trace %s parent %q remote %v sampled %v problem %q, want %s %q %v %q",
				tc.name, s.TraceID, parent, s.Remote, s.Sampled, problem, tc.trace, tc.parent, tc.sampled, tc.problem)
		}
	}
}

// FuzzB3Parent: whatever the headers, a span either takes exactly the
// context ExtractB3 gives (and then has a valid parent) or keeps its own
// IDs, with a problem named exactly when ExtractB3 rejects them.
func FuzzB3Parent(f *testing.F) {
	f.Add("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1", "", "", "", "", false)
	f.Add("", "a3ce929d0e0e4736", "e457b5a2e4d86bd1", "true", "1", true)
	f.Add("d", "", "e457b5a2e4d86bd1", "", "", false)
	f.Fuzz(func(t *testing.T, single, tid, sid, sampled, flags string, kernel bool) {
		b := tracecontext.B3{Single: single, TraceID: tid, SpanID: sid, Sampled: sampled, Flags: flags}
		own := trace.TraceID{0xee}
		s := spans.Span{TraceID: own, SpanID: trace.SpanID{1}, Sampled: true}
		problem := B3Parent(&s, b, kernel)
		sc, err := tracecontext.ExtractB3(b)
		switch {
		case err != nil:
			if problem == "" || problem == "not_in_kernel" || s.Remote || s.TraceID != own {
				t.Fatalf("%+v: error %v, problem %q remote %v", b, err, problem, s.Remote)
			}
		case !sc.IsValid():
			if problem != "" || s.Remote {
				t.Fatalf("%+v: no context, problem %q remote %v", b, problem, s.Remote)
			}
		case kernel && trace.TraceID(sc.TraceID) != own:
			if problem != "not_in_kernel" || s.Remote || s.TraceID != own {
				t.Fatalf("%+v: kernel IDs elsewhere, problem %q remote %v", b, problem, s.Remote)
			}
		default:
			if problem != "" || !s.Remote || s.TraceID != trace.TraceID(sc.TraceID) || s.Parent != trace.SpanID(sc.SpanID) ||
				s.Sampled != sc.Sampled() || !s.Parent.IsValid() {
				t.Fatalf("%+v: taken as trace %s parent %s sampled %v, want %+v", b, s.TraceID, s.Parent, s.Sampled, sc)
			}
		}
	})
}
