// Package httpsem holds what HTTP/1 and HTTP/2 spans share under the
// OpenTelemetry HTTP semantic conventions: the converter input, the span
// frame, method naming, server address and peer formatting.
package httpsem

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/redact"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/tracecontext"
)

// Scope is the instrumentation scope of spans read at the socket layer.
const Scope = "weft/sockio"

// Family is the family label of their metrics.
const Family = "sockio"

// Input is everything a converter needs besides the exchange; it holds no
// state.
type Input struct {
	Local, Remote netip.AddrPort
	Process       *probes.Process
	Start, End    time.Time
	TraceID       [16]byte // made by BPF when the request was first read (or sent)
	SpanID        [8]byte
	Parent        *Parent // client calls: the server span they were made for
	// Forwarded: a client call whose own traceparent was the served
	// request's, copied, and had its parent-id rewritten to this span by
	// the injector: the span keeps these IDs, not the header's.
	Forwarded bool
	// Option: server requests, the caller's span as a TCP header option
	// carried it (TraceID is its trace); a valid traceparent header wins.
	Option *Parent
	// Peer is the connection's peer, formatted once per connection: at tens
	// of thousands of spans a second, formatting addresses shows in profiles.
	Peer *PeerInfo
	Host *HostMemo // per connection; nil works
	// Attrs gives the span its attribute array (nil: a new one).
	Attrs *spans.AttrPool
	// Redact scrubs secrets from url.* attributes; the zero policy still
	// replaces userinfo, as the conventions require.
	Redact redact.Policy
	// TLS: the exchange was read as a TLS library's plaintext (https).
	TLS bool
	// KernelIDs: TraceID and SpanID were made in the kernel, where the
	// request's calls find them (HTTP/2 streams; else fresh ones made in
	// user space, which nothing else carries).
	KernelIDs bool
}

// Scheme is the URL scheme of in's exchange.
func (in *Input) Scheme() string {
	if in.TLS {
		return "https"
	}
	return "http"
}

// HostMemo remembers the last Host header of a connection and what it
// resolved to: keep-alive requests repeat it.
type HostMemo struct {
	header, host string
	port         int
	set          bool
}

// Resolve returns server.address and server.port for a Host (or
// :authority) header, falling back to an address.
func (m *HostMemo) Resolve(header string, fallback netip.AddrPort) (string, int) {
	if m == nil {
		return ServerAddress(header, fallback)
	}
	if !m.set || m.header != header {
		m.host, m.port = ServerAddress(header, fallback)
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

// PeerOf returns the input's peer, formatting it if not given.
func (in *Input) PeerOf() *PeerInfo {
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

// Verdict reports what a converter had to ignore.
type Verdict struct {
	TraceparentProblem string // "" when absent or valid
	B3Problem          string // "" when absent, valid or not read (a traceparent came)
	// Context says where the server span's parent came from: "" none,
	// "header", "option", "both" (header and option agree) or
	// "header_wins" (they disagree: the header is taken).
	Context string
}

// knownMethods are the methods semantic conventions name; others are _OTHER.
var knownMethods = map[string]bool{
	"CONNECT": true, "DELETE": true, "GET": true, "HEAD": true, "OPTIONS": true,
	"PATCH": true, "POST": true, "PUT": true, "TRACE": true, "QUERY": true,
}

// NewSpan fills what every HTTP span shares: IDs, kind, times, resource.
func NewSpan(in Input, kind trace.SpanKind) spans.Span {
	s := spans.Span{
		TraceID:  in.TraceID,
		SpanID:   in.SpanID,
		Sampled:  true,
		Kind:     kind,
		Start:    in.Start,
		End:      in.End,
		Resource: in.Process.Resource,
		Scope:    Scope,
	}
	if s.End.Before(s.Start) {
		s.End = s.Start
	}
	return s
}

// MethodAttrs names a span by its method, as the conventions ask (unknown
// methods are _OTHER, the span "HTTP"), and starts its attributes.
func MethodAttrs(pool *spans.AttrPool, method string, capacity int) (string, []attribute.KeyValue) {
	attrs := pool.Attrs(capacity)
	if knownMethods[method] {
		return method, append(attrs, attribute.String("http.request.method", method))
	}
	return "HTTP", append(attrs, attribute.String("http.request.method", "_OTHER"),
		attribute.String("http.request.method_original", method))
}

// ServerAddress prefers the Host header, as the conventions ask, and falls
// back to an address (the socket's local one for servers).
func ServerAddress(hostHeader string, local netip.AddrPort) (string, int) {
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

// ProblemName names a traceparent parse error for the
// weft_traceparent_invalid_total reason label.
func ProblemName(err error) string {
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

// FromB3 gives a server span without a traceparent the parent its B3
// headers carry, if any, and names why they were ignored ("" when absent
// or taken) for the weft_b3_ignored_total reason label. The kernel reads
// the same headers (bpf/tracectx.h) so that the calls the request causes
// join the same trace; where it does not (kernels whose capture source
// scans without bpf_loop) the span's trace ID, the kernel's, differs from
// the B3 one, and the headers are ignored ("not_in_kernel") rather than
// split the trace.
func FromB3(s *spans.Span, b tracecontext.B3) string { return B3Parent(s, b, true) }

// B3Parent is FromB3 for a span whose IDs the kernel made (kernel) or
// user space did: those nothing else carries, so the span takes the B3
// trace ID as its own, as it would a traceparent's.
func B3Parent(s *spans.Span, b tracecontext.B3, kernel bool) string {
	if !b.Present() {
		return ""
	}
	sc, err := tracecontext.ExtractB3(b)
	if err != nil {
		return B3ProblemName(err)
	}
	switch {
	case !sc.IsValid():
	case kernel && trace.TraceID(sc.TraceID) != s.TraceID:
		return "not_in_kernel"
	default:
		s.TraceID, s.Parent, s.Remote = trace.TraceID(sc.TraceID), trace.SpanID(sc.SpanID), true
		s.Sampled = sc.Sampled()
	}
	return ""
}

// B3ProblemName names a B3 parse error for the weft_b3_ignored_total
// reason label.
func B3ProblemName(err error) string {
	for _, p := range []struct {
		err  error
		name string
	}{
		{tracecontext.ErrB3Length, "length"}, {tracecontext.ErrB3Hex, "hex"},
		{tracecontext.ErrB3ZeroID, "zero_id"}, {tracecontext.ErrB3Format, "format"},
		{tracecontext.ErrB3Sampled, "sampled"}, {tracecontext.ErrB3Missing, "missing_id"},
	} {
		if errors.Is(err, p.err) {
			return p.name
		}
	}
	return "other"
}
