package http1

import (
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/httpwire"
	"github.com/weft-dev/weft/internal/protocols/httpsem"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/tracecontext"
)

// ServerSpan turns one server-side HTTP exchange into a SERVER span, following
// the OpenTelemetry HTTP semantic conventions.
func ServerSpan(in httpsem.Input, x *httpwire.Exchange) (spans.Span, httpsem.Verdict) {
	var v httpsem.Verdict
	s := httpsem.NewSpan(in, trace.SpanKindServer)
	s.SourceCluster = x.Req.SourceCluster
	if tp := x.Req.Traceparent; tp != "" || x.Req.DupTraceparent {
		sc, err := tracecontext.ParseTraceparent(tp)
		switch {
		case x.Req.DupTraceparent:
			v.TraceparentProblem = "duplicate"
		case err != nil:
			v.TraceparentProblem = httpsem.ProblemName(err)
		default:
			s.TraceID, s.Parent, s.Remote = trace.TraceID(sc.TraceID), trace.SpanID(sc.SpanID), true
			s.Sampled = sc.Sampled()
			if x.Req.Tracestate != "" && tracecontext.ValidTracestate(x.Req.Tracestate) {
				s.TraceState = x.Req.Tracestate
			}
		}
	} else {
		v.B3Problem = httpsem.FromB3(&s, x.Req.B3)
	}
	v.Context = fromOption(&s, in)

	var attrs []attribute.KeyValue
	s.Name, attrs = httpsem.MethodAttrs(in.Attrs, x.Req.Method, 16)
	path, query := in.Redact.Target(x.Req.Target)
	attrs = append(attrs, attribute.String("url.path", path), attribute.String("url.scheme", in.Scheme()))
	if query != "" {
		attrs = append(attrs, attribute.String("url.query", query))
	}
	host, port := in.Host.Resolve(x.Req.Host, in.Local)
	if host != "" {
		attrs = append(attrs, attribute.String("server.address", host))
	}
	if port > 0 {
		attrs = append(attrs, attribute.Int("server.port", port))
	}
	if p := in.PeerOf(); p != nil {
		attrs = append(attrs,
			attribute.String("client.address", p.Addr),
			attribute.String("network.peer.address", p.Addr),
			attribute.Int("network.peer.port", p.Port))
	}
	if ver, ok := strings.CutPrefix(x.Req.Proto, "HTTP/"); ok {
		attrs = append(attrs, attribute.String("network.protocol.version", ver))
	}
	if x.Req.UserAgent != "" {
		attrs = append(attrs, attribute.String("user_agent.original", x.Req.UserAgent))
	}
	if x.Req.BodyBytes > 0 {
		attrs = append(attrs, attribute.Int64("http.request.body.size", x.Req.BodyBytes))
	}
	if x.ReqGoid != 0 || x.RespGoid != 0 {
		// The response is written by the handler's goroutine; the request may
		// have been read by net/http's background reader.
		g := x.RespGoid
		if g == 0 {
			g = x.ReqGoid
		}
		attrs = append(attrs, attribute.Int64("weft.goroutine.id", int64(g)))
	}
	switch {
	case x.Resp.Status > 0:
		attrs = append(attrs, attribute.Int("http.response.status_code", x.Resp.Status))
		if x.Resp.BodyBytes > 0 {
			attrs = append(attrs, attribute.Int64("http.response.body.size", x.Resp.BodyBytes))
		}
		if x.Resp.Status >= 500 {
			s.Error = true
			attrs = append(attrs, attribute.String("error.type", strconv.Itoa(x.Resp.Status)))
		}
	case x.Incomplete != "":
		s.Error, s.StatusMsg = true, x.Incomplete
		attrs = append(attrs, attribute.String("error.type", "_OTHER"))
	}
	s.Attrs = attrs
	return s, v
}

// ClientSpan turns one client-side HTTP exchange into a CLIENT span. Its
// parent, when known, is the server span the call was made for.
func ClientSpan(in httpsem.Input, x *httpwire.Exchange) spans.Span {
	s := httpsem.NewSpan(in, trace.SpanKindClient)
	s.SourceCluster = x.Req.SourceCluster
	if in.Parent != nil {
		s.Parent, s.Sampled = in.Parent.SpanID, in.Parent.Sampled
	}
	// A program that traces itself sent its own traceparent (and the
	// injector left the request alone): join its trace, under its span.
	// A proxy forwarding the traceparent of the request it serves is not
	// one: when the injector wrote this span's ID over that header's
	// parent-id (in.Forwarded), the span keeps the kernel's IDs.
	if sc, err := tracecontext.ParseTraceparent(x.Req.Traceparent); err == nil && !x.Req.DupTraceparent &&
		!in.Forwarded {
		s.TraceID, s.Parent, s.Sampled = trace.TraceID(sc.TraceID), trace.SpanID(sc.SpanID), sc.Sampled()
	}
	var attrs []attribute.KeyValue
	s.Name, attrs = httpsem.MethodAttrs(in.Attrs, x.Req.Method, 12)
	host, port := in.Host.Resolve(x.Req.Host, in.Remote)
	authority := x.Req.Host
	if authority == "" && in.Remote.IsValid() {
		authority = in.Remote.String()
	}
	attrs = append(attrs, attribute.String("url.full", in.Redact.Full(in.Scheme(), authority, x.Req.Target)))
	if host != "" {
		attrs = append(attrs, attribute.String("server.address", host))
	}
	if port > 0 {
		attrs = append(attrs, attribute.Int("server.port", port))
	}
	if p := in.PeerOf(); p != nil {
		attrs = append(attrs,
			attribute.String("network.peer.address", p.Addr),
			attribute.Int("network.peer.port", p.Port))
	}
	if ver, ok := strings.CutPrefix(x.Req.Proto, "HTTP/"); ok {
		attrs = append(attrs, attribute.String("network.protocol.version", ver))
	}
	if x.ReqGoid != 0 {
		attrs = append(attrs, attribute.Int64("weft.goroutine.id", int64(x.ReqGoid)))
	}
	switch {
	case x.Resp.Status > 0:
		attrs = append(attrs, attribute.Int("http.response.status_code", x.Resp.Status))
		// Semantic conventions: a client span is an error for 4xx and 5xx.
		if x.Resp.Status >= 400 {
			s.Error = true
			attrs = append(attrs, attribute.String("error.type", strconv.Itoa(x.Resp.Status)))
		}
	case x.Incomplete != "":
		s.Error, s.StatusMsg = true, x.Incomplete
		attrs = append(attrs, attribute.String("error.type", "connection_closed"))
	}
	s.Attrs = attrs
	return s
}

// fromOption gives s the parent a TCP option carried when the request had
// no valid traceparent header, and says where the parent came from.
func fromOption(s *spans.Span, in httpsem.Input) string {
	o := in.Option
	switch {
	case o == nil && s.Remote:
		return "header"
	case o == nil:
		return ""
	case !s.Remote:
		s.TraceID, s.Parent, s.Remote, s.Sampled = trace.TraceID(in.TraceID), trace.SpanID(o.SpanID), true, o.Sampled
		return "option"
	case s.Parent == trace.SpanID(o.SpanID) && s.TraceID == trace.TraceID(in.TraceID):
		return "both"
	}
	return "header_wins"
}
