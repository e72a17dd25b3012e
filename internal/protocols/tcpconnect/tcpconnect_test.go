package tcpconnect

import (
	"net/netip"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/spans"
)

func TestErrorType(t *testing.T) {
	for _, tc := range []struct {
		errno int
		want  string
	}{
		{0, "connect_abandoned"},
		{111, "ECONNREFUSED"},
		{110, "ETIMEDOUT"},
		{113, "EHOSTUNREACH"},
		{101, "ENETUNREACH"},
		{9999, "errno_unknown"},
	} {
		if got := ErrorType(tc.errno); got != tc.want {
			t.Errorf("ErrorType(%d) = %q, want %q", tc.errno, got, tc.want)
		}
	}
}

func TestSpan(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	ids := conntrack.IDs{Trace: [16]byte{1}, Span: [8]byte{2}, Parent: [8]byte{3}, Linked: true, Sampled: true, Made: true}
	base := conntrack.FailedConnect{Process: &probes.Process{PID: 7}, Remote: netip.MustParseAddrPort("10.1.2.3:5432"),
		Start: t0, End: t0.Add(3 * time.Second), Errno: 110, IDs: ids}
	attr := func(s spans.Span, k string) attribute.Value {
		for _, a := range s.Attrs {
			if string(a.Key) == k {
				return a.Value
			}
		}
		return attribute.Value{}
	}
	s := Span(base)
	if s.Name != "connect" || s.Kind != trace.SpanKindClient || !s.Error || s.Parent != trace.SpanID(ids.Parent) ||
		s.TraceID != trace.TraceID(ids.Trace) || s.SpanID != trace.SpanID(ids.Span) || !s.End.Equal(t0.Add(3*time.Second)) {
		t.Errorf("span %+v", s)
	}
	if attr(s, "error.type").AsString() != "ETIMEDOUT" || attr(s, "server.address").AsString() != "10.1.2.3" ||
		attr(s, "server.port").AsInt64() != 5432 || s.StatusMsg != "connect: connection timed out" {
		t.Errorf("attributes %v, status %q", s.Attrs, s.StatusMsg)
	}

	root := base
	root.IDs.Linked, root.Errno, root.End = false, 0, t0.Add(-time.Second)
	s = Span(root)
	if s.Parent.IsValid() || attr(s, "error.type").AsString() != "connect_abandoned" || !s.End.Equal(t0) {
		t.Errorf("unlinked, abandoned, end before start: %+v", s)
	}

	noPeer := base
	noPeer.Remote = netip.AddrPort{}
	if s := Span(noPeer); attr(s, "server.address").Type() != attribute.INVALID {
		t.Errorf("no peer: %v", s.Attrs)
	}
}
