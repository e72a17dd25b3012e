// Package http2 is the HTTP/2 protocol (h2c, gRPC included): h2wire
// rebuilds a connection's streams from its chunks, StreamSpan makes each
// stream a span (gRPC by the RPC conventions, else HTTP).
package http2

import (
	"sync/atomic"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/h2wire"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/protocols/httpsem"
	"github.com/weft-dev/weft/internal/redact"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/wire"
)

// Config is what the protocol needs.
type Config struct {
	Sink    spans.Sink
	Metrics *metrics.Registry
	Redact  redact.Policy   // what url.* attributes lose (redact.Default() in the agent)
	Attrs   *spans.AttrPool // spans' attribute arrays, given back by the exporter (nil: none)
	// Names, when not nil, is asked to have a process's Go probes send
	// its streams' :path with their IDs: its HTTP/2 connections, open
	// before tracing began, keep paths in HPACK entries never seen.
	Names StreamNamer
	// Forwarded says (once per span) whether the injector rewrote the
	// forwarded traceparent of the client stream with this span ID (nil:
	// never, as with injection off).
	Forwarded func(span [8]byte) bool
}

// StreamNamer has a process's HTTP/2 streams named by its Go probes
// (conntrack.IDs.Path); gogrpc implements it.
type StreamNamer interface {
	WantNames(pid uint32)
}

// Protocol makes HTTP/2 parsers for connections that start with the
// client preface.
type Protocol struct {
	cfg Config
	met counters
}

type counters struct {
	problems, spans, tpInvalid, b3Ignored, chunkIDs *metrics.ByLabel
	kernelIDs, midStream, named                     *atomic.Uint64
}

// New makes the protocol.
func New(cfg Config) *Protocol {
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	m := cfg.Metrics
	return &Protocol{cfg: cfg, met: counters{
		problems:  m.ByLabel("weft_http2_problems_total", "HTTP/2 connections or streams skipped, by reason", "reason"),
		spans:     m.ByLabel("weft_spans_total", "spans made, by family and kind", "kind", "family", httpsem.Family),
		tpInvalid: m.ByLabel("weft_traceparent_invalid_total", "incoming traceparent headers ignored, by reason", "reason"),
		b3Ignored: m.ByLabel("weft_b3_ignored_total", "incoming B3 headers ignored (the request is then a root), by reason", "reason"),
		kernelIDs: m.Counter("weft_http2_streams_linked_total", "HTTP/2 stream spans whose IDs the gRPC probe made in the kernel (so linked in-process and propagated)"),
		chunkIDs:  m.ByLabel("weft_http2_chunk_ids_total", "HTTP/2 streams of programs not in Go that took the kernel's IDs of the chunk that opened them: client calls (in a TCP option), server requests (the option's parent)", "kind"),
		named:     m.Counter("weft_http2_streams_named_by_probe_total", "HTTP/2 streams of connections found mid-life whose :path, indexed before tracing began, came from a Go probe"),
		midStream: m.Counter("weft_http2_conns_mid_stream_total", "HTTP/2 connections found open when tracing began, picked up at a frame boundary (their header fields indexed before that are unknown)"),
	}}
}

// Name implements conntrack.Protocol.
func (p *Protocol) Name() string { return "http2" }

// Sniff claims a connection on its client preface, whichever side wrote
// it; one open before tracing began (an agent restart, tracing switched on
// for a running pod), on a chunk that starts at a frame boundary.
func (p *Protocol) Sniff(c *conntrack.Conn, ch wire.Chunk) bool {
	return wire.StartsH2Preface(ch.Data) || (c.MidStream && h2wire.FramesAt(ch.Data, ch.Len))
}

// NewParser implements conntrack.Protocol.
func (p *Protocol) NewParser(c *conntrack.Conn) conntrack.Parser {
	if c.MidStream {
		p.met.midStream.Add(1)
	}
	return &parser{p: p, c: c, wire: h2wire.NewConn(h2wire.Limits{MidStream: c.MidStream})}
}

type parser struct {
	p    *Protocol
	c    *conntrack.Conn
	wire *h2wire.Conn
	peer *httpsem.PeerInfo
	host httpsem.HostMemo
}

func (x *parser) Feed(ch wire.Chunk) { x.emit(x.wire.Feed(ch)) }
func (x *parser) Idle(uint64)        {}
func (x *parser) Close(now uint64)   { x.emit(x.wire.Close(now)) }
func (x *parser) Size() int          { return x.wire.Size() }

func (x *parser) emit(done []h2wire.Stream, problems []h2wire.Problem) {
	for _, p := range problems {
		x.p.met.problems.Inc(p.String())
	}
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
		st := &done[i]
		in := httpsem.Input{Local: x.c.Local, Remote: x.c.Remote, Peer: x.peer, Host: &x.host, Process: proc, Redact: x.p.cfg.Redact, Attrs: x.p.cfg.Attrs,
			Start: x.c.Wall(st.Start), End: x.c.Wall(st.End), TLS: x.c.TLS}
		x.ids(&in, st)
		s, verdict := StreamSpan(in, st)
		if verdict.TraceparentProblem != "" {
			x.p.met.tpInvalid.Inc(verdict.TraceparentProblem)
		}
		if verdict.B3Problem != "" {
			x.p.met.b3Ignored.Inc(verdict.B3Problem)
		}
		// Unsampled spans go on too: metrics count them, the sampler
		// stage (internal/sampling) drops them.
		x.p.met.spans.Inc("http2_" + s.Kind.String())
		x.p.cfg.Sink.Export(s)
	}
}

// ids gives a stream's span the IDs the kernel made for it, which the
// server's handler and the next hop already carry; else fresh ones.
func (x *parser) ids(in *httpsem.Input, st *h2wire.Stream) {
	if k, ok := x.c.StreamIDs(st.ID, st.StartGoid); ok {
		in.TraceID, in.SpanID, in.KernelIDs = k.Trace, k.Span, true
		if st.Unknown {
			x.name(st, &k)
		}
		if k.Linked && st.Role == h2wire.RoleClient {
			in.Parent = &httpsem.Parent{SpanID: k.Parent, Sampled: k.Sampled}
			if st.Traceparent != "" && x.p.cfg.Forwarded != nil {
				in.Forwarded = x.p.cfg.Forwarded(k.Span)
			}
		}
		if k.Option && st.Role == h2wire.RoleServer {
			// The caller's span came in a TCP option (TLS: no header).
			in.Option = &httpsem.Parent{SpanID: k.Parent, Sampled: k.Sampled}
		}
		x.p.met.kernelIDs.Add(1)
		return
	}
	in.TraceID, in.SpanID = conntrack.NewIDs()
	if st.StartGoid != 0 || !st.FirstInChunk {
		return // Go's streams have their probes' IDs; a chunk's are for its first stream
	}
	// Not Go: the kernel made IDs for the first stream a write opens
	// (and put them in a TCP option), and a read that began at an
	// option's segment carries it for the first stream it opens.
	k, ok := x.c.ChunkIDs(st.StartTag)
	switch {
	case !ok:
	case st.Role == h2wire.RoleClient && !k.Option:
		in.TraceID, in.SpanID, in.KernelIDs = k.Trace, k.Span, true
		if k.Linked {
			in.Parent = &httpsem.Parent{SpanID: k.Parent, Sampled: k.Sampled}
		}
		x.p.met.chunkIDs.Inc("client")
	case st.Role == h2wire.RoleServer && k.Option && k.AtStart:
		in.TraceID = k.Trace
		in.Option = &httpsem.Parent{SpanID: k.Parent, Sampled: k.Sampled}
		x.p.met.chunkIDs.Inc("server_option")
	}
}

// name completes a stream of a connection found mid-life from what its Go
// probe read: the :path HPACK had indexed before tracing began, and
// whether it is a gRPC call (content-type may be just as unknown). A
// process whose probe sent no path is asked to.
func (x *parser) name(st *h2wire.Stream, k *conntrack.IDs) {
	if k.GRPC && st.ContentType == "" {
		st.GRPC = true
	}
	switch {
	case st.Path != "":
	case k.Path != "":
		st.Path = k.Path
		x.p.met.named.Add(1)
	case x.p.cfg.Names != nil:
		x.p.cfg.Names.WantNames(x.c.PID)
	}
}
