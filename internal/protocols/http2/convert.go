package http2

import (
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/h2wire"
	"github.com/weft-dev/weft/internal/protocols/httpsem"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/tracecontext"
)

// grpcServerErrors are the status codes the gRPC conventions count as a
// server's own failure; every non-OK code is an error for a client.
var grpcServerErrors = map[int]bool{2: true, 4: true, 12: true, 13: true, 14: true, 15: true}

// StreamSpan turns one HTTP/2 stream into a span: a gRPC call by the RPC
// semantic conventions when its content type says gRPC, else an HTTP span.
func StreamSpan(in httpsem.Input, st *h2wire.Stream) (spans.Span, httpsem.Verdict) {
	kind := trace.SpanKindServer
	if st.Role == h2wire.RoleClient {
		kind = trace.SpanKindClient
	}
	s := httpsem.NewSpan(in, kind)
	s.SourceCluster = st.SourceCluster
	var v httpsem.Verdict
	if kind == trace.SpanKindServer && st.Traceparent != "" {
		if sc, err := tracecontext.ParseTraceparent(st.Traceparent); err != nil {
			v.TraceparentProblem = httpsem.ProblemName(err)
		} else {
			s.TraceID, s.Parent, s.Remote = trace.TraceID(sc.TraceID), trace.SpanID(sc.SpanID), true
			s.Sampled = sc.Sampled()
			// As for HTTP/1: the caller's tracestate travels with its
			// context (the weft member names the caller's cluster).
			if st.Tracestate != "" && tracecontext.ValidTracestate(st.Tracestate) {
				s.TraceState = st.Tracestate
			}
		}
	}
	if kind == trace.SpanKindServer && !s.Remote && in.Option != nil {
		// No valid traceparent: the caller's span came in a TCP option,
		// and the kernel's IDs are already in its trace.
		s.Parent, s.Remote, s.Sampled = trace.SpanID(in.Option.SpanID), true, in.Option.Sampled
	}
	if kind == trace.SpanKindServer && st.Traceparent == "" && in.Option == nil {
		// Neither: B3 metadata (meshes) gives the parent, as the gRPC
		// probe read it when it made the kernel's IDs; the option, which
		// weft's own client sent, wins over B3 as an injected traceparent
		// would (the B3 may be the caller's, forwarded from its request).
		v.B3Problem = httpsem.B3Parent(&s, st.B3, in.KernelIDs)
	}
	if kind == trace.SpanKindClient {
		if in.Parent != nil {
			s.Parent, s.Sampled = in.Parent.SpanID, in.Parent.Sampled
		}
		// A program that traces itself sent its own traceparent (and the
		// injector left the call alone): join its trace, under its span.
		// Unless it forwarded the served request's, which the injector
		// rewrote to name this span: then the kernel's IDs stand.
		if sc, err := tracecontext.ParseTraceparent(st.Traceparent); err == nil && !in.Forwarded {
			s.TraceID, s.Parent, s.Sampled = trace.TraceID(sc.TraceID), trace.SpanID(sc.SpanID), sc.Sampled()
		}
	}
	fallback := in.Local
	if kind == trace.SpanKindClient {
		fallback = in.Remote
	}
	host, port := in.Host.Resolve(st.Authority, fallback)
	var attrs []attribute.KeyValue
	// On a connection found mid-life, content-type may be unknown (indexed
	// before tracing began) where a grpc-status is not: only gRPC sends it.
	if st.GRPC || (st.Unknown && st.GRPCStatus >= 0) {
		if st.Path == "" {
			// The path is unknown (mid-life, as above): the method names
			// the span, and no rpc.service or rpc.method is guessed.
			s.Name = st.Method
			attrs = append(in.Attrs.Attrs(12), attribute.String("rpc.system", "grpc"))
		} else {
			full := strings.TrimPrefix(st.Path, "/")
			s.Name = full
			service, method, _ := strings.Cut(full, "/")
			attrs = append(in.Attrs.Attrs(12), attribute.String("rpc.system", "grpc"),
				attribute.String("rpc.service", service), attribute.String("rpc.method", method))
		}
		if st.GRPCStatus >= 0 {
			attrs = append(attrs, attribute.Int("rpc.grpc.status_code", st.GRPCStatus))
			if st.GRPCStatus != 0 && (kind == trace.SpanKindClient || grpcServerErrors[st.GRPCStatus]) {
				s.Error, s.StatusMsg = true, st.GRPCMessage
			}
		}
	} else {
		s.Name, attrs = httpsem.MethodAttrs(in.Attrs, st.Method, 12)
		// As for HTTP/1: a client span has url.full, a server span
		// url.path, url.query and url.scheme. :scheme says what the
		// client meant; without it, the connection (TLS or not) says.
		scheme := st.Scheme
		if scheme != "http" && scheme != "https" {
			scheme = in.Scheme()
		}
		switch {
		case st.Path == "" && st.Unknown:
			// A connection found mid-life whose :path was indexed before
			// tracing began: the target is unknown, so no url.* at all
			// rather than a wrong one.
		case kind == trace.SpanKindClient:
			authority := st.Authority
			if authority == "" && in.Remote.IsValid() {
				authority = in.Remote.String()
			}
			attrs = append(attrs, attribute.String("url.full", in.Redact.Full(scheme, authority, st.Path)))
		default:
			path, query := in.Redact.Target(st.Path)
			attrs = append(attrs, attribute.String("url.path", path), attribute.String("url.scheme", scheme))
			if query != "" {
				attrs = append(attrs, attribute.String("url.query", query))
			}
		}
		if st.Status > 0 {
			attrs = append(attrs, attribute.Int("http.response.status_code", st.Status))
			if st.Status >= 500 || (kind == trace.SpanKindClient && st.Status >= 400) {
				s.Error = true
			}
		}
	}
	attrs = append(attrs, attribute.String("network.protocol.name", "http"), attribute.String("network.protocol.version", "2"))
	if host != "" {
		attrs = append(attrs, attribute.String("server.address", host))
	}
	if port > 0 {
		attrs = append(attrs, attribute.Int("server.port", port))
	}
	if p := in.PeerOf(); p != nil {
		attrs = append(attrs, attribute.String("network.peer.address", p.Addr), attribute.Int("network.peer.port", p.Port))
	}
	if st.Reset || st.Incomplete != "" {
		s.Error = true
		if s.StatusMsg == "" {
			s.StatusMsg = st.Incomplete
			if st.Reset {
				s.StatusMsg = "stream reset"
			}
		}
	}
	s.Attrs = attrs
	return s, v
}
