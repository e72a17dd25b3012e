package http2

import (
	"net/netip"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/h2wire"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/protocols/httpsem"
)

func TestStreamSpan(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	in := func() httpsem.Input {
		return httpsem.Input{Local: netip.MustParseAddrPort("10.0.0.1:50051"), Remote: netip.MustParseAddrPort("10.0.0.2:40000"),
			Process: &probes.Process{PID: 1}, Start: t0, End: t0.Add(time.Millisecond)}
	}
	grpc := func(role h2wire.Role, code int) *h2wire.Stream {
		return &h2wire.Stream{Role: role, ID: 1, Method: "POST", Path: "/shop.Cart/Add", Authority: "cart:50051",
			GRPC: true, Status: 200, GRPCStatus: code}
	}
	tests := []struct {
		name   string
		st     *h2wire.Stream
		kind   trace.SpanKind
		error  bool
		parent bool
	}{
		{"server OK", grpc(h2wire.RoleServer, 0), trace.SpanKindServer, false, false},
		{"server NotFound is the caller's problem", grpc(h2wire.RoleServer, 5), trace.SpanKindServer, false, false},
		{"server Internal", grpc(h2wire.RoleServer, 13), trace.SpanKindServer, true, false},
		{"server DeadlineExceeded", grpc(h2wire.RoleServer, 4), trace.SpanKindServer, true, false},
		{"client NotFound", grpc(h2wire.RoleClient, 5), trace.SpanKindClient, true, false},
		{"reset stream", func() *h2wire.Stream { s := grpc(h2wire.RoleServer, -1); s.Reset = true; return s }(), trace.SpanKindServer, true, false},
		{"caller traceparent", func() *h2wire.Stream {
			s := grpc(h2wire.RoleServer, 0)
			s.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			return s
		}(), trace.SpanKindServer, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := StreamSpan(in(), tc.st)
			a := attrMap(s.Attrs)
			if s.Name != "shop.Cart/Add" || s.Kind != tc.kind || s.Error != tc.error || s.Parent.IsValid() != tc.parent {
				t.Errorf("name %q kind %v error %v parent %v", s.Name, s.Kind, s.Error, s.Parent)
			}
			if a["rpc.system"] != "grpc" || a["rpc.service"] != "shop.Cart" || a["rpc.method"] != "Add" ||
				a["server.address"] != "cart" || a["server.port"] != int64(50051) || a["network.protocol.version"] != "2" {
				t.Errorf("attrs %v", a)
			}
			if code := tc.st.GRPCStatus; code >= 0 && a["rpc.grpc.status_code"] != int64(code) {
				t.Errorf("status code %v, want %d", a["rpc.grpc.status_code"], code)
			}
		})
	}
	// Plain HTTP/2 (not gRPC) reads like an HTTP span.
	s, _ := StreamSpan(in(), &h2wire.Stream{Role: h2wire.RoleServer, Method: "GET", Path: "/a?b=1", Status: 503, GRPCStatus: -1})
	if a := attrMap(s.Attrs); s.Name != "GET" || a["url.path"] != "/a" || a["url.query"] != "b=1" || a["url.scheme"] != "http" ||
		a["http.response.status_code"] != int64(503) || !s.Error || a["url.full"] != nil {
		t.Errorf("http/2 span %q %v error %v", s.Name, a, s.Error)
	}
	// Its client side has url.full from :scheme, :authority and :path
	// (redacted by the same policy), as an HTTP/1 client span does; without :scheme,
	// the connection's TLS says https.
	for _, tc := range []struct {
		scheme, authority string
		tls               bool
		want              string
	}{
		{"https", "api.example:8443", false, "https://api.example:8443/a?b=1"},
		{"", "api.example", true, "https://api.example/a?b=1"},
		{"", "", false, "http://10.0.0.2:40000/a?b=1"},
	} {
		cin := in()
		cin.TLS = tc.tls
		s, _ := StreamSpan(cin, &h2wire.Stream{Role: h2wire.RoleClient, Method: "GET", Path: "/a?b=1", Scheme: tc.scheme,
			Authority: tc.authority, Status: 200, GRPCStatus: -1})
		if a := attrMap(s.Attrs); a["url.full"] != tc.want || a["url.path"] != nil || s.Kind != trace.SpanKindClient {
			t.Errorf("client span with :scheme %q :authority %q tls %v: %v, want url.full %q", tc.scheme, tc.authority, tc.tls, a, tc.want)
		}
	}
}

// TestStreamSpanOption: a server stream without a valid traceparent takes
// the parent a TCP option carried (TLS); a traceparent beats it; a client
// stream ignores it.
func TestStreamSpanOption(t *testing.T) {
	opt := &httpsem.Parent{SpanID: [8]byte{7}, Sampled: true}
	tid := [16]byte{1, 2}
	mk := func(role h2wire.Role, tp string) (httpsem.Input, *h2wire.Stream) {
		return httpsem.Input{Process: &probes.Process{PID: 1}, TraceID: tid, SpanID: [8]byte{9}, Option: opt},
			&h2wire.Stream{Role: role, ID: 1, Method: "POST", Path: "/a.B/C", GRPC: true, Traceparent: tp}
	}
	in, st := mk(h2wire.RoleServer, "")
	if s, _ := StreamSpan(in, st); s.Parent != trace.SpanID(opt.SpanID) || !s.Remote || !s.Sampled || s.TraceID != trace.TraceID(tid) {
		t.Errorf("server from option: parent %v remote %v sampled %v trace %v", s.Parent, s.Remote, s.Sampled, s.TraceID)
	}
	in, st = mk(h2wire.RoleServer, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if s, _ := StreamSpan(in, st); s.Parent.String() != "00f067aa0ba902b7" || s.TraceID.String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("a traceparent must win over the option: parent %v trace %v", s.Parent, s.TraceID)
	}
	in, st = mk(h2wire.RoleClient, "")
	if s, _ := StreamSpan(in, st); s.Parent.IsValid() {
		t.Errorf("client stream took the option: parent %v", s.Parent)
	}
}

// TestStreamSpanCallerState: an HTTP/2 server span keeps the caller's valid
// tracestate (with its context only) and its X-Source-Cluster header.
func TestStreamSpanCallerState(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	in := httpsem.Input{Remote: netip.MustParseAddrPort("10.0.0.2:40000"), Process: &probes.Process{PID: 1}}
	for _, tc := range []struct {
		name                      string
		role                      h2wire.Role
		traceparent, tracestate   string
		wantState                 string
		sourceCluster, wantSource string
	}{
		{"server with context", h2wire.RoleServer, tp, "weft=aws-us-east-1-prod-01,v=1", "weft=aws-us-east-1-prod-01,v=1", "", ""},
		{"server without context", h2wire.RoleServer, "", "weft=aws-us-east-1-prod-01", "", "", ""},
		{"server with invalid state", h2wire.RoleServer, tp, "weft=a,weft=b", "", "", ""},
		{"server with header", h2wire.RoleServer, "", "", "", "eu-west-1", "eu-west-1"},
		{"client", h2wire.RoleClient, tp, "weft=x", "", "eu-west-1", "eu-west-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := StreamSpan(in, &h2wire.Stream{Role: tc.role, ID: 1, Path: "/a.B/C", GRPC: true, GRPCStatus: 0,
				Traceparent: tc.traceparent, Tracestate: tc.tracestate, SourceCluster: tc.sourceCluster})
			if s.TraceState != tc.wantState || s.SourceCluster != tc.wantSource {
				t.Errorf("TraceState %q SourceCluster %q, want %q %q", s.TraceState, s.SourceCluster, tc.wantState, tc.wantSource)
			}
		})
	}
}

func attrMap(kvs []attribute.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

// TestStreamSpanUnknownPath: a stream of a connection found mid-life whose
// :path was indexed before tracing began has no url.* attributes rather
// than a wrong one; what is known stays.
func TestStreamSpanUnknownPath(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	for _, role := range []h2wire.Role{h2wire.RoleServer, h2wire.RoleClient} {
		in := httpsem.Input{Local: netip.MustParseAddrPort("10.0.0.1:8080"), Remote: netip.MustParseAddrPort("10.0.0.2:40000"),
			Process: &probes.Process{PID: 1}, Start: t0, End: t0.Add(time.Millisecond)}
		s, _ := StreamSpan(in, &h2wire.Stream{Role: role, ID: 9, Method: "GET", Status: 503, GRPCStatus: -1, Unknown: true})
		a := attrMap(s.Attrs)
		for _, k := range []string{"url.full", "url.path", "url.scheme", "url.query"} {
			if _, ok := a[k]; ok {
				t.Errorf("%v: %s = %v for an unknown path", role, k, a[k])
			}
		}
		if s.Name != "GET" || a["http.request.method"] != "GET" || a["http.response.status_code"] != int64(503) || !s.Error {
			t.Errorf("%v: name %q error %v attrs %v", role, s.Name, s.Error, a)
		}
	}
}

// TestStreamSpanUnknownGRPC: on a connection found mid-life, a stream
// whose content-type is unknown but that has a grpc-status is a gRPC call
// (a failed one is an error); one whose path is unknown names no RPC.
func TestStreamSpanUnknownGRPC(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	in := httpsem.Input{Local: netip.MustParseAddrPort("10.0.0.1:50051"), Remote: netip.MustParseAddrPort("10.0.0.2:40000"),
		Process: &probes.Process{PID: 1}, Start: t0, End: t0.Add(time.Millisecond)}
	s, _ := StreamSpan(in, &h2wire.Stream{Role: h2wire.RoleClient, ID: 3, Method: "POST", Path: "/shop.Cart/Add", Status: 200, GRPCStatus: 5, Unknown: true})
	a := attrMap(s.Attrs)
	if s.Name != "shop.Cart/Add" || a["rpc.system"] != "grpc" || a["rpc.grpc.status_code"] != int64(5) || !s.Error {
		t.Errorf("content-type unknown: name %q error %v attrs %v", s.Name, s.Error, a)
	}
	s, _ = StreamSpan(in, &h2wire.Stream{Role: h2wire.RoleServer, ID: 5, Method: "POST", GRPC: true, Status: 200, GRPCStatus: 13, Unknown: true})
	a = attrMap(s.Attrs)
	_, svc := a["rpc.service"]
	_, m := a["rpc.method"]
	if s.Name != "POST" || svc || m || a["rpc.system"] != "grpc" || a["rpc.grpc.status_code"] != int64(13) || !s.Error {
		t.Errorf("path unknown: name %q error %v attrs %v", s.Name, s.Error, a)
	}
}

// TestStreamSpanForwarded: a client stream whose traceparent the app sent
// itself joins that context, under its span; one whose traceparent the
// app forwarded (the injector rewrote it to name this span) keeps the
// kernel's IDs, the child of the span it was made for.
func TestStreamSpanForwarded(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tid := [16]byte{1, 2}
	served := &httpsem.Parent{SpanID: [8]byte{3}, Sampled: true}
	for _, forwarded := range []bool{false, true} {
		in := httpsem.Input{Process: &probes.Process{PID: 1}, TraceID: tid, SpanID: [8]byte{9}, Parent: served,
			KernelIDs: true, Forwarded: forwarded}
		s, _ := StreamSpan(in, &h2wire.Stream{Role: h2wire.RoleClient, ID: 1, Method: "GET", Path: "/", Traceparent: tp})
		wantTrace, wantParent := "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		if forwarded {
			wantTrace, wantParent = trace.TraceID(tid).String(), trace.SpanID(served.SpanID).String()
		}
		if s.TraceID.String() != wantTrace || s.Parent.String() != wantParent || s.SpanID != trace.SpanID(in.SpanID) {
			t.Errorf("forwarded=%v: trace %v parent %v span %v, want %s %s %v", forwarded, s.TraceID, s.Parent, s.SpanID,
				wantTrace, wantParent, trace.SpanID(in.SpanID))
		}
	}
}
