// Package http1 is the HTTP/1.x protocol: httpwire parses a connection's
// chunks into exchanges, ServerSpan and ClientSpan make them spans under
// the OpenTelemetry HTTP semantic conventions.
package http1

import (
	"sync/atomic"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/httpwire"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/protocols/httpsem"
	"github.com/weft-dev/weft/internal/redact"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/wire"
)

// Config is what the protocol needs.
type Config struct {
	Sink           spans.Sink
	Metrics        *metrics.Registry
	MaxHeaderBytes int             // longer heads are skipped and counted
	Redact         redact.Policy   // what url.* attributes lose (redact.Default() in the agent)
	Attrs          *spans.AttrPool // spans' attribute arrays, given back by the exporter (nil: none)
	// Forwarded says (once per span) whether the injector rewrote the
	// forwarded traceparent of the client call with this span ID (nil:
	// never, as with injection off).
	Forwarded func(span [8]byte) bool
}

// Protocol makes HTTP/1 parsers. It is the fallback: any connection no
// other protocol claims is tried as HTTP/1.
type Protocol struct {
	cfg Config
	met counters
}

type counters struct {
	server, client         *atomic.Uint64
	clientLinked, clientNo *atomic.Uint64
	problems, tpInvalid    *metrics.ByLabel
	b3Ignored              *metrics.ByLabel
	incomplete             *metrics.ByLabel
	parentFrom             *metrics.ByLabel
}

// New makes the protocol.
func New(cfg Config) *Protocol {
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	m := cfg.Metrics
	return &Protocol{cfg: cfg, met: counters{
		server:       m.Counter("weft_spans_total", "spans made, by family and kind", "family", httpsem.Family, "kind", "server"),
		client:       m.Counter("weft_spans_total", "spans made, by family and kind", "family", httpsem.Family, "kind", "client"),
		clientLinked: m.Counter("weft_client_calls_total", "client calls by whether their parent span was known in-process", "parent", "linked"),
		clientNo:     m.Counter("weft_client_calls_total", "client calls by whether their parent span was known in-process", "parent", "unknown"),
		problems:     m.ByLabel("weft_http_problems_total", "HTTP exchanges skipped or resynchronised, by reason", "reason"),
		tpInvalid:    m.ByLabel("weft_traceparent_invalid_total", "incoming traceparent headers ignored, by reason", "reason"),
		b3Ignored:    m.ByLabel("weft_b3_ignored_total", "incoming B3 headers ignored (the request is then a root), by reason", "reason"),
		incomplete:   m.ByLabel("weft_http_incomplete_total", "exchanges emitted without a complete response", "reason"),
		parentFrom:   m.ByLabel("weft_server_parent_total", "server spans with a remote parent, by where it came from: header, option (TCP), both (agreeing) or header_wins (disagreeing)", "from"),
	}}
}

// Name implements conntrack.Protocol.
func (p *Protocol) Name() string { return "http1" }

// Sniff never claims: HTTP/1 is the fallback.
func (p *Protocol) Sniff(*conntrack.Conn, wire.Chunk) bool { return false }

// NewParser implements conntrack.Protocol.
func (p *Protocol) NewParser(c *conntrack.Conn) conntrack.Parser {
	return &parser{p: p, c: c, wire: httpwire.NewConn(httpwire.Limits{
		MaxHeaderBytes: p.cfg.MaxHeaderBytes,
		MidStream:      c.MidStream,
	})}
}

// stuckAfter is how long (ns) an exchange may wait without a byte before
// Idle flushes it (after a lost byte stream).
const stuckAfter = 5e9

type parser struct {
	p              *Protocol
	c              *conntrack.Conn
	wire           *httpwire.Conn
	peer           *httpsem.PeerInfo
	host           httpsem.HostMemo
	pendingSinceNs uint64 // first chunk after the last completed exchange
}

func (x *parser) Feed(ch wire.Chunk) {
	if x.pendingSinceNs == 0 {
		x.pendingSinceNs = ch.Time
	}
	x.emit(x.wire.Feed(ch))
}

func (x *parser) Idle(now uint64) {
	if x.pendingSinceNs != 0 && now-x.c.LastActive() > stuckAfter {
		x.emit(x.wire.Idle(now, stuckAfter))
	}
}

func (x *parser) Close(now uint64) { x.emit(x.wire.Close(now)) }

func (x *parser) Size() int { return x.wire.Size() }

func (x *parser) emit(done []httpwire.Exchange, problems []httpwire.Problem) {
	for _, p := range problems {
		x.p.met.problems.Inc(p.String())
	}
	if len(done) == 0 {
		return
	}
	x.pendingSinceNs = 0
	proc := x.c.Process()
	if proc == nil {
		// Not reached while the table closes a process's connections
		// before forgetting it; counted, never silent, if it is.
		x.p.met.problems.Add("no_process", len(done))
		return
	}
	if x.peer == nil {
		x.peer = httpsem.NewPeerInfo(x.c.Remote)
	}
	for i := range done {
		ex := &done[i]
		if ex.Incomplete != "" {
			x.p.met.incomplete.Inc(ex.Incomplete)
		}
		in := httpsem.Input{Local: x.c.Local, Remote: x.c.Remote, Peer: x.peer, Host: &x.host, Process: proc, Redact: x.p.cfg.Redact, Attrs: x.p.cfg.Attrs,
			Start: x.c.Wall(ex.Start), End: x.c.Wall(ex.End), TLS: x.c.TLS}
		ids := x.ids(ex)
		in.TraceID, in.SpanID = ids.Trace, ids.Span
		var s spans.Span
		switch ex.Role {
		case httpwire.RoleServer:
			var verdict httpsem.Verdict
			if ids.Option {
				in.Option = &httpsem.Parent{SpanID: ids.Parent, Sampled: ids.Sampled}
			}
			s, verdict = ServerSpan(in, ex)
			if verdict.TraceparentProblem != "" {
				x.p.met.tpInvalid.Inc(verdict.TraceparentProblem)
			}
			if verdict.B3Problem != "" {
				x.p.met.b3Ignored.Inc(verdict.B3Problem)
			}
			if verdict.Context != "" {
				x.p.met.parentFrom.Inc(verdict.Context)
			}
			x.p.met.server.Add(1)
		case httpwire.RoleClient:
			if ids.Linked {
				in.Parent = &httpsem.Parent{SpanID: ids.Parent, Sampled: ids.Sampled}
				x.p.met.clientLinked.Add(1)
				if ex.Req.Traceparent != "" && x.p.cfg.Forwarded != nil {
					in.Forwarded = x.p.cfg.Forwarded(ids.Span)
				}
			} else {
				x.p.met.clientNo.Add(1)
			}
			s = ClientSpan(in, ex)
			x.p.met.client.Add(1)
		default:
			continue
		}
		// Unsampled spans go on too: metrics count them, the sampler
		// stage (internal/sampling) drops them.
		x.p.cfg.Sink.Export(s)
	}
}

// ids returns the IDs the kernel made when the request's first byte was
// read (or sent), or fresh ones for a request it could not tell apart
// (pipelined requests sharing one read).
func (x *parser) ids(ex *httpwire.Exchange) conntrack.IDs {
	if ex.FirstInChunk {
		if ids, ok := x.c.ChunkIDs(ex.StartTag); ok {
			return ids
		}
	}
	var ids conntrack.IDs
	ids.Trace, ids.Span = conntrack.NewIDs()
	return ids
}
