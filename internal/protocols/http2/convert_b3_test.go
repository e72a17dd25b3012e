package http2

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/h2wire"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/protocols/httpsem"
	"github.com/weft-dev/weft/internal/tracecontext"
)

// TestStreamSpanB3: a gRPC server stream without traceparent or TCP option
// continues the B3 context its metadata carries when the kernel's IDs are
// in that trace (the gRPC probe read the same fields); malformed B3 is
// named and ignored; a traceparent (even invalid) or an option wins.
func TestStreamSpanB3(t *testing.T) {
	const (
		t128 = "80f198ee56343ba864fe8b2a57d3eff7"
		t64  = "a3ce929d0e0e4736"
		span = "e457b5a2e4d86bd1"
		par  = "05e3ac9a4f6e3b90"
		tp   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	)
	hexTrace := func(s string) trace.TraceID { id, _ := trace.TraceIDFromHex(s); return id }
	kernelTrace := hexTrace(t128)
	pad64 := strings.Repeat("0", 16) + t64
	other := hexTrace("0123456789abcdef0123456789abcdef")
	for _, tc := range []struct {
		name        string
		b3          tracecontext.B3
		traceparent string
		option      bool
		client      bool
		kernel      trace.TraceID // the kernel's trace ID; zero: IDs made in user space
		// want: the span's trace and parent ("" parent: a root in the
		// kernel's trace), sampled, and the B3 and traceparent problems
		trace, parent        string
		sampled              bool
		b3Problem, tpProblem string
	}{
		{name: "single", b3: tracecontext.B3{Single: t128 + "-" + span + "-1-" + par}, kernel: kernelTrace,
			trace: t128, parent: span, sampled: true},
		{name: "single deferred", b3: tracecontext.B3{Single: t128 + "-" + span}, kernel: kernelTrace,
			trace: t128, parent: span, sampled: true},
		{name: "single 64-bit", b3: tracecontext.B3{Single: t64 + "-" + span + "-1"}, kernel: hexTrace(pad64),
			trace: pad64, parent: span, sampled: true},
		{name: "single unsampled", b3: tracecontext.B3{Single: t128 + "-" + span + "-0"}, kernel: kernelTrace,
			trace: t128, parent: span, sampled: false},
		{name: "multi", b3: tracecontext.B3{TraceID: t128, SpanID: span, Sampled: "1"}, kernel: kernelTrace,
			trace: t128, parent: span, sampled: true},
		{name: "multi unsampled", b3: tracecontext.B3{TraceID: t128, SpanID: span, Sampled: "false"}, kernel: kernelTrace,
			trace: t128, parent: span, sampled: false},
		{name: "multi debug", b3: tracecontext.B3{TraceID: t64, SpanID: span, Sampled: "0", Flags: "1"}, kernel: hexTrace(pad64),
			trace: pad64, parent: span, sampled: true},
		{name: "single wins over multi", b3: tracecontext.B3{Single: t128 + "-" + span, TraceID: t64, SpanID: par}, kernel: kernelTrace,
			trace: t128, parent: span, sampled: true},
		{name: "malformed single, valid multi", b3: tracecontext.B3{Single: "nonsense", TraceID: t128, SpanID: span}, kernel: kernelTrace,
			trace: t128, parent: span, sampled: true},
		// The kernel did not take it (its IDs are in another trace): the
		// span stays with its calls, a root.
		{name: "not in kernel", b3: tracecontext.B3{Single: t128 + "-" + span}, kernel: other,
			trace: other.String(), sampled: true, b3Problem: "not_in_kernel"},
		// IDs made in user space (no gRPC probe): nothing else carries
		// them, so the span takes the B3 trace as its own.
		{name: "user-space IDs", b3: tracecontext.B3{Single: t128 + "-" + span + "-1"},
			trace: t128, parent: span, sampled: true},
		{name: "short span", b3: tracecontext.B3{Single: t128 + "-" + span[:10] + "-1"}, kernel: other,
			trace: other.String(), sampled: true, b3Problem: "length"},
		{name: "zero trace", b3: tracecontext.B3{Single: strings.Repeat("0", 32) + "-" + span}, kernel: other,
			trace: other.String(), sampled: true, b3Problem: "zero_id"},
		{name: "uppercase", b3: tracecontext.B3{TraceID: strings.ToUpper(t128), SpanID: span}, kernel: other,
			trace: other.String(), sampled: true, b3Problem: "hex"},
		{name: "no span", b3: tracecontext.B3{TraceID: t128, Sampled: "1"}, kernel: other,
			trace: other.String(), sampled: true, b3Problem: "missing_id"},
		{name: "bad sampled", b3: tracecontext.B3{TraceID: t128, SpanID: span, Sampled: "yes"}, kernel: other,
			trace: other.String(), sampled: true, b3Problem: "sampled"},
		{name: "sampling only", b3: tracecontext.B3{Single: "0"}, kernel: other, trace: other.String(), sampled: true},
		{name: "traceparent wins", b3: tracecontext.B3{Single: t128 + "-" + span}, traceparent: tp, kernel: other,
			trace: "4bf92f3577b34da6a3ce929d0e0e4736", parent: "00f067aa0ba902b7", sampled: true},
		// An invalid traceparent still wins: B3 is not read, as in the kernel.
		{name: "invalid traceparent", b3: tracecontext.B3{Single: t128 + "-" + span}, traceparent: "00-xyz", kernel: other,
			trace: other.String(), sampled: true, tpProblem: "length"},
		// Weft's own client sent the option: it wins over B3 (which may be
		// forwarded from the caller's own request).
		{name: "option wins", b3: tracecontext.B3{Single: t128 + "-" + span}, option: true, kernel: other,
			trace: other.String(), parent: "0700000000000000", sampled: true},
		{name: "client ignores B3", b3: tracecontext.B3{Single: t128 + "-" + span}, client: true, kernel: other,
			trace: other.String(), sampled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := httpsem.Input{Process: &probes.Process{PID: 1}, SpanID: [8]byte{9}}
			if tc.kernel.IsValid() {
				in.TraceID, in.KernelIDs = tc.kernel, true
			} else {
				in.TraceID = other
			}
			if tc.option {
				in.Option = &httpsem.Parent{SpanID: [8]byte{7}, Sampled: true}
			}
			role := h2wire.RoleServer
			if tc.client {
				role = h2wire.RoleClient
			}
			s, v := StreamSpan(in, &h2wire.Stream{Role: role, ID: 1, Path: "/a.B/C", GRPC: true, Traceparent: tc.traceparent, B3: tc.b3})
			parent := ""
			if s.Parent.IsValid() {
				parent = s.Parent.String()
			}
			if s.TraceID.String() != tc.trace || parent != tc.parent || s.Remote != (tc.parent != "") || s.Sampled != tc.sampled {
				t.Errorf("trace %s parent %q remote %v sampled %v, want %s %q %v", s.TraceID, parent, s.Remote, s.Sampled, tc.trace, tc.parent, tc.sampled)
			}
			if s.SpanID != trace.SpanID(in.SpanID) {
				t.Errorf("span ID %s, want the kernel's", s.SpanID)
			}
			if v.B3Problem != tc.b3Problem || v.TraceparentProblem != tc.tpProblem {
				t.Errorf("problems b3 %q traceparent %q, want %q %q", v.B3Problem, v.TraceparentProblem, tc.b3Problem, tc.tpProblem)
			}
		})
	}
}
