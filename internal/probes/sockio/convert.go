package sockio

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/httpwire"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/tracecontext"
)

// Input is everything ServerSpan needs; it holds no state.
type Input struct {
	Exchange      *httpwire.Exchange
	Local, Remote netip.AddrPort
	Process       *probes.Process
	Start, End    time.Time
	TraceID       [16]byte // made by BPF when the request was first read (or sent)
	SpanID        [8]byte
	Parent        *Parent // client calls: the server span they were made for
	// Peer is the connection's peer, formatted once per connection: at tens
	// of thousands of spans a second, formatting addresses shows in profiles.
	Peer *PeerInfo
	Host *HostMemo // per connection; nil works
}

// HostMemo remembers the last Host header of a connection and what it
// resolved to: keep-alive requests repeat it.
type HostMemo struct {
	header, host string
	port         int
	set          bool
}

func (m *HostMemo) resolve(header string, fallback netip.AddrPort) (string, int) {
	if m == nil {
		return serverAddress(header, fallback)
	}
	if !m.set || m.header != header {
		m.host, m.port = serverAddress(header, fallback)
		m.header, m.set = header, true
	}
	return m.host, m.port
}

// PeerInfo is the formatted remote address of a connection.
type PeerInfo struct {
	Addr string
	Port int
}

// NewPeerInfo formats ap, or returns nil when it is not valid.
func NewPeerInfo(ap netip.AddrPort) *PeerInfo {
	if !ap.IsValid() {
		return nil
	}
	return &PeerInfo{Addr: ap.Addr().String(), Port: int(ap.Port())}
}

func (in *Input) peer() *PeerInfo {
	if in.Peer == nil {
		in.Peer = NewPeerInfo(in.Remote)
	}
	return in.Peer
}

// Parent is a span the client call was made for, known in-process.
type Parent struct {
	SpanID  [8]byte
	Sampled bool
}

// Verdict reports what ServerSpan had to ignore.
type Verdict struct {
	TraceparentProblem string // "" when absent or valid
}

// knownMethods are the methods semantic conventions name; others are _OTHER.
var knownMethods = map[string]bool{
	"CONNECT": true, "DELETE": true, "GET": true, "HEAD": true, "OPTIONS": true,
	"PATCH": true, "POST": true, "PUT": true, "TRACE": true, "QUERY": true,
}

// newSpan fills what every HTTP span shares: IDs, kind, times, resource.
func newSpan(in Input, kind trace.SpanKind) spans.Span {
	s := spans.Span{
		TraceID:  in.TraceID,
		SpanID:   in.SpanID,
		Sampled:  true,
		Kind:     kind,
		Start:    in.Start,
		End:      in.End,
		Resource: in.Process.Resource,
		Scope:    "weft/" + Name,
	}
	if s.End.Before(s.Start) {
		s.End = s.Start
	}
	return s
}

// methodAttrs names a span by its method, as the conventions ask (unknown
// methods are _OTHER, the span "HTTP"), and starts its attributes.
func methodAttrs(method string, capacity int) (string, []attribute.KeyValue) {
	attrs := make([]attribute.KeyValue, 0, capacity)
	if knownMethods[method] {
		return method, append(attrs, attribute.String("http.request.method", method))
	}
	return "HTTP", append(attrs, attribute.String("http.request.method", "_OTHER"),
		attribute.String("http.request.method_original", method))
}

// ServerSpan turns one server-side HTTP exchange into a SERVER span, following
// the OpenTelemetry HTTP semantic conventions.
func ServerSpan(in Input) (spans.Span, Verdict) {
	x := in.Exchange
	var v Verdict
	s := newSpan(in, trace.SpanKindServer)
	s.SourceCluster = x.Req.SourceCluster
	if tp := x.Req.Traceparent; tp != "" || x.Req.DupTraceparent {
		sc, err := tracecontext.ParseTraceparent(tp)
		switch {
		case x.Req.DupTraceparent:
			v.TraceparentProblem = "duplicate"
		case err != nil:
			v.TraceparentProblem = problemName(err)
		default:
			s.TraceID, s.Parent, s.Remote = trace.TraceID(sc.TraceID), trace.SpanID(sc.SpanID), true
			s.Sampled = sc.Sampled()
			if x.Req.Tracestate != "" && tracecontext.ValidTracestate(x.Req.Tracestate) {
				s.TraceState = x.Req.Tracestate
			}
		}
	}

	var attrs []attribute.KeyValue
	s.Name, attrs = methodAttrs(x.Req.Method, 16)
	path, query, _ := strings.Cut(x.Req.Target, "?")
	attrs = append(attrs, attribute.String("url.path", path), attribute.String("url.scheme", "http"))
	if query != "" {
		attrs = append(attrs, attribute.String("url.query", query))
	}
	host, port := in.Host.resolve(x.Req.Host, in.Local)
	if host != "" {
		attrs = append(attrs, attribute.String("server.address", host))
	}
	if port > 0 {
		attrs = append(attrs, attribute.Int("server.port", port))
	}
	if p := in.peer(); p != nil {
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
func ClientSpan(in Input) spans.Span {
	x := in.Exchange
	s := newSpan(in, trace.SpanKindClient)
	s.SourceCluster = x.Req.SourceCluster
	if in.Parent != nil {
		s.Parent, s.Sampled = in.Parent.SpanID, in.Parent.Sampled
	}
	// A program that traces itself sent its own traceparent (and the
	// injector left the request alone): join its trace, under its span.
	if sc, err := tracecontext.ParseTraceparent(x.Req.Traceparent); err == nil && !x.Req.DupTraceparent {
		s.TraceID, s.Parent, s.Sampled = trace.TraceID(sc.TraceID), trace.SpanID(sc.SpanID), sc.Sampled()
	}
	var attrs []attribute.KeyValue
	s.Name, attrs = methodAttrs(x.Req.Method, 12)
	host, port := in.Host.resolve(x.Req.Host, in.Remote)
	authority := x.Req.Host
	if authority == "" && in.Remote.IsValid() {
		authority = in.Remote.String()
	}
	attrs = append(attrs, attribute.String("url.full", "http://"+authority+x.Req.Target))
	if host != "" {
		attrs = append(attrs, attribute.String("server.address", host))
	}
	if port > 0 {
		attrs = append(attrs, attribute.Int("server.port", port))
	}
	if p := in.peer(); p != nil {
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

// serverAddress prefers the Host header, as the conventions ask, and falls
// back to the socket's local address.
func serverAddress(hostHeader string, local netip.AddrPort) (string, int) {
	if hostHeader != "" {
		if h, p, err := net.SplitHostPort(hostHeader); err == nil {
			if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
				return h, n
			}
			return h, 0
		}
		port := 0
		if local.IsValid() {
			port = int(local.Port())
		}
		return strings.Trim(hostHeader, "[]"), port
	}
	if local.IsValid() {
		return local.Addr().String(), int(local.Port())
	}
	return "", 0
}

func problemName(err error) string {
	for _, p := range []struct {
		err  error
		name string
	}{
		{tracecontext.ErrLength, "length"}, {tracecontext.ErrHex, "hex"},
		{tracecontext.ErrVersion, "version"}, {tracecontext.ErrZeroID, "zero_id"},
		{tracecontext.ErrFormat, "format"},
	} {
		if errors.Is(err, p.err) {
			return p.name
		}
	}
	return "other"
}
