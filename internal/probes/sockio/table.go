package sockio

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/weft-dev/weft/internal/h2wire"
	"github.com/weft-dev/weft/internal/httpwire"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/spans"
)

// idsRing remembers the IDs BPF made for the last few request-starting
// reads of a connection, by chunk tag, until the exchange is complete.
const idsRing = 8

type ids struct {
	tag    uint64
	trace  [16]byte
	span   [8]byte
	parent [8]byte
	flags  uint8 // ctxLinked, ctxSampled
}

type conn struct {
	pid            uint32
	origin         uint8
	local, remote  netip.AddrPort
	peer           *PeerInfo // remote, formatted once
	host           HostMemo
	wire           *httpwire.Conn
	h2             *h2wire.Conn // set when the connection starts with the HTTP/2 preface
	early          []httpwire.Chunk
	seq            uint64 // chunk tags
	recent         [idsRing]ids
	lastNs         uint64
	pendingSinceNs uint64 // first chunk after the last completed exchange
}

type connKey struct {
	pid uint32
	id  uint64
}

// table keeps per-connection parsers and turns finished exchanges into
// spans. It is used by one goroutine at a time (Probe.mu).
type table struct {
	deps  probes.Deps
	clock clock
	procs map[uint32]*probes.Process
	conns map[connKey]*conn
	count counters
	// streamIDs hands over the IDs the kernel made for an HTTP/2 stream
	// (the gRPC probe's), keyed as the goroutine that moved its frames saw
	// it; nil or false when there are none.
	streamIDs func(k sockioH2Key) (sockioH2Span, bool)
}

// counters are looked up once: the event path must not format series names.
type counters struct {
	met                             *metrics.Registry
	evData, evClose                 *atomic.Uint64
	evMalformed                     *atomic.Uint64
	spans                           *atomic.Uint64
	clientSpans                     *atomic.Uint64
	clientLinked, clientRoot        *atomic.Uint64
	h2problems, streamSpans         map[string]*atomic.Uint64
	streamKernelIDs                 *atomic.Uint64
	problems, tpInvalid, incomplete map[string]*atomic.Uint64
}

func newCounters(m *metrics.Registry) counters {
	ev := func(kind string) *atomic.Uint64 {
		return m.Counter("weft_sockio_events_total", "sockio ring-buffer events by kind", "kind", kind)
	}
	return counters{
		met: m, evData: ev("data"), evClose: ev("close"), evMalformed: ev("malformed"),
		spans:        m.Counter("weft_spans_total", "spans made, by family and kind", "family", Name, "kind", "server"),
		clientSpans:  m.Counter("weft_spans_total", "spans made, by family and kind", "family", Name, "kind", "client"),
		clientLinked: m.Counter("weft_client_calls_total", "client calls by whether their parent span was known in-process", "parent", "linked"),
		clientRoot:   m.Counter("weft_client_calls_total", "client calls by whether their parent span was known in-process", "parent", "unknown"),
		problems:     map[string]*atomic.Uint64{},
		h2problems:   map[string]*atomic.Uint64{}, streamSpans: map[string]*atomic.Uint64{},
		streamKernelIDs: m.Counter("weft_http2_streams_linked_total", "HTTP/2 stream spans whose IDs the gRPC probe made in the kernel (so linked in-process and propagated)"),
		tpInvalid:       map[string]*atomic.Uint64{},
		incomplete:      map[string]*atomic.Uint64{},
	}
}

// labelled counts one event of a series with labels, made on first use and
// cached by its first label's value.
func (c *counters) labelled(cache map[string]*atomic.Uint64, name, help, label, value string, more ...string) {
	ctr, ok := cache[value]
	if !ok {
		ctr = c.met.Counter(name, help, append(more, label, value)...)
		cache[value] = ctr
	}
	ctr.Add(1)
}

// reason counts one event of a labelled family, making the series on first use.
func (c *counters) reason(cache map[string]*atomic.Uint64, name, help, reason string) {
	ctr, ok := cache[reason]
	if !ok {
		ctr = c.met.Counter(name, help, "reason", reason)
		cache[reason] = ctr
	}
	ctr.Add(1)
}

func newTable(d probes.Deps) *table {
	return &table{
		deps:  d,
		clock: newClock(),
		procs: map[uint32]*probes.Process{},
		conns: map[connKey]*conn{},
		count: newCounters(d.Metrics),
	}
}

func (t *table) track(p *probes.Process) { t.procs[uint32(p.PID)] = p }

func (t *table) untrack(pid uint32, now uint64) {
	delete(t.procs, pid)
	for k, c := range t.conns {
		if k.pid == pid {
			t.finish(c, now)
			delete(t.conns, k)
		}
	}
}

func (t *table) handle(raw []byte) {
	ev, data, ok := decode(raw)
	if !ok {
		t.count.evMalformed.Add(1)
		return
	}
	if _, traced := t.procs[ev.Tgid]; !traced {
		return // raced with Untrack
	}
	key := connKey{ev.Tgid, ev.ConnId}
	switch ev.Kind {
	case evData:
		t.count.evData.Add(1)
		c := t.get(key, &ev)
		t.data(c, &ev, data)
	case evClose:
		t.count.evClose.Add(1)
		if c, ok := t.conns[key]; ok {
			t.finish(c, ev.TsNs)
			delete(t.conns, key)
		}
	}
}

// get finds or makes a connection's state. A socket that predates the agent
// (found on first use) may be mid-message: its parser waits for a clear
// start instead of giving up on the first bytes.
func (t *table) get(key connKey, ev *sockioEvent) *conn {
	c, ok := t.conns[key]
	if !ok {
		c = &conn{pid: key.pid, origin: ev.Origin,
			local:  addrPort(ev.Ep.Family, ev.Ep.Laddr, ev.Ep.Lport),
			remote: addrPort(ev.Ep.Family, ev.Ep.Raddr, ev.Ep.Rport),
			wire: httpwire.NewConn(httpwire.Limits{
				MaxHeaderBytes: t.deps.Config.MaxHeaderBytes,
				MidStream:      ev.Origin != originNew,
			})}
		t.conns[key] = c
	}
	return c
}

func (t *table) data(c *conn, ev *sockioEvent, data []byte) {
	c.seq++
	if ev.NewRequest != 0 || ev.CtxFlags != 0 {
		c.recent[c.seq%idsRing] = ids{tag: c.seq, trace: ev.TraceId, span: ev.SpanId, parent: ev.ParentId, flags: ev.CtxFlags}
	}
	ch := httpwire.Chunk{Dir: httpwire.DirRead, Time: ev.TsNs, Len: int(ev.Len), Data: data, Goid: ev.Goid, Tag: c.seq}
	if ev.Dir == dirWrite {
		ch.Dir = httpwire.DirWrite
	}
	c.lastNs = ev.TsNs
	if c.pendingSinceNs == 0 {
		c.pendingSinceNs = ev.TsNs
	}
	if c.h2 == nil && c.seq <= earlyChunks {
		if isH2Preface(data) {
			// A server may write its SETTINGS before it reads the client's
			// preface: replay what came before to the HTTP/2 parser.
			c.h2 = h2wire.NewConn(h2wire.Limits{})
			for _, e := range c.early {
				streams, problems := c.h2.Feed(e)
				t.emitStreams(c, streams, problems)
			}
			c.early = nil
		} else {
			e := ch
			e.Data = append([]byte(nil), data...)
			c.early = append(c.early, e)
		}
	}
	if c.h2 != nil {
		streams, problems := c.h2.Feed(ch)
		t.emitStreams(c, streams, problems)
		return
	}
	done, problems := c.wire.Feed(ch)
	t.emit(c, done, problems)
}

// earlyChunks is how many chunks may come before the client preface (a
// server's SETTINGS, its ack): kept until the protocol is known.
const earlyChunks = 4

// h2Preface starts every HTTP/2 connection (gRPC's included), client side.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// isH2Settings reports an HTTP/2 SETTINGS frame (type 4, stream 0, a whole
// number of 6-byte settings), which an HTTP/2 server may write first.
func isH2Settings(d []byte) bool {
	if len(d) < 9 || d[3] != 4 || d[5]|d[6]|d[7]|d[8] != 0 {
		return false
	}
	n := int(d[0])<<16 | int(d[1])<<8 | int(d[2])
	return n%6 == 0
}

func isH2Preface(data []byte) bool {
	n := min(len(data), len(h2Preface))
	return n >= 8 && string(data[:n]) == h2Preface[:n]
}

// finish flushes a connection that closed or whose process went away.
func (t *table) finish(c *conn, now uint64) {
	if c.h2 != nil {
		streams, problems := c.h2.Close(now)
		t.emitStreams(c, streams, problems)
		return
	}
	done, problems := c.wire.Close(now)
	t.emit(c, done, problems)
}

// emitStreams makes spans of finished HTTP/2 streams (gRPC calls).
func (t *table) emitStreams(c *conn, done []h2wire.Stream, problems []h2wire.Problem) {
	for _, p := range problems {
		t.count.reason(t.count.h2problems, "weft_http2_problems_total", "HTTP/2 connections or streams skipped, by reason", p.String())
	}
	proc := t.procs[c.pid]
	if proc == nil {
		return
	}
	if c.peer == nil {
		c.peer = NewPeerInfo(c.remote)
	}
	for i := range done {
		st := &done[i]
		in := Input{Local: c.local, Remote: c.remote, Peer: c.peer, Host: &c.host, Process: proc,
			Start: t.clock.wall(st.Start), End: t.clock.wall(st.End)}
		t.streamInput(&in, c, st)
		s, verdict := StreamSpan(in, st)
		if verdict.TraceparentProblem != "" {
			t.count.reason(t.count.tpInvalid, "weft_traceparent_invalid_total", "incoming traceparent headers ignored, by reason", verdict.TraceparentProblem)
		}
		// Unsampled spans go on too: metrics count them, the sampler
		// stage (internal/sampling) drops them.
		t.count.labelled(t.count.streamSpans, "weft_spans_total", "spans made, by family and kind", "kind", "http2_"+s.Kind.String(), "family", Name)
		t.deps.Sink.Export(s)
	}
}

// streamInput gives a stream's span the IDs the kernel made for it, which
// the server's handler and the next hop already carry; else fresh ones.
func (t *table) streamInput(in *Input, c *conn, st *h2wire.Stream) {
	if t.streamIDs != nil {
		if k, ok := t.streamIDs(sockioH2Key{Tgid: c.pid, StreamId: st.ID, Goid: st.StartGoid}); ok {
			in.TraceID, in.SpanID = k.TraceId, k.SpanId
			if k.Flags&ctxLinked != 0 && st.Role == h2wire.RoleClient {
				in.Parent = &Parent{SpanID: k.ParentId, Sampled: k.Flags&ctxSampled != 0}
			}
			t.count.streamKernelIDs.Add(1)
			return
		}
	}
	in.TraceID, in.SpanID, _ = t.idsFor(c, nil)
}

// sweep flushes exchanges stuck after a lost byte stream and forgets idle
// connections whose close the ring buffer may have dropped.
func (t *table) sweep(now uint64) {
	const stuck, forget = 5e9, 600e9
	for k, c := range t.conns {
		if c.pendingSinceNs != 0 && now-c.lastNs > stuck {
			done, problems := c.wire.Idle(now, stuck)
			t.emit(c, done, problems)
		}
		if now-c.lastNs > forget {
			t.finish(c, now)
			delete(t.conns, k)
		}
	}
}

func (t *table) flushAll(now uint64) {
	for k, c := range t.conns {
		t.finish(c, now)
		delete(t.conns, k)
	}
}

func (t *table) emit(c *conn, done []httpwire.Exchange, problems []httpwire.Problem) {
	for _, p := range problems {
		t.count.reason(t.count.problems, "weft_http_problems_total", "HTTP exchanges skipped or resynchronised, by reason", p.String())
	}
	if len(done) == 0 {
		return
	}
	c.pendingSinceNs = 0
	proc := t.procs[c.pid]
	if proc == nil {
		return
	}
	for i := range done {
		x := &done[i]
		if x.Incomplete != "" {
			t.count.reason(t.count.incomplete, "weft_http_incomplete_total", "exchanges emitted without a complete response", x.Incomplete)
		}
		if c.peer == nil {
			c.peer = NewPeerInfo(c.remote)
		}
		in := Input{Exchange: x, Local: c.local, Remote: c.remote, Peer: c.peer, Host: &c.host, Process: proc, Start: t.clock.wall(x.Start), End: t.clock.wall(x.End)}
		var s spans.Span
		switch x.Role {
		case httpwire.RoleServer:
			in.TraceID, in.SpanID, _ = t.idsFor(c, x)
			var verdict Verdict
			s, verdict = ServerSpan(in)
			if verdict.TraceparentProblem != "" {
				t.count.reason(t.count.tpInvalid, "weft_traceparent_invalid_total", "incoming traceparent headers ignored, by reason", verdict.TraceparentProblem)
			}
		case httpwire.RoleClient:
			var r ids
			in.TraceID, in.SpanID, r = t.idsFor(c, x)
			if r.flags&ctxLinked != 0 {
				in.Parent = &Parent{SpanID: r.parent, Sampled: r.flags&ctxSampled != 0}
				t.count.clientLinked.Add(1)
			} else {
				t.count.clientRoot.Add(1)
			}
			s = ClientSpan(in)
		default:
			continue
		}
		// Unsampled spans go on too: metrics count them, the sampler
		// stage (internal/sampling) drops them.
		if x.Role == httpwire.RoleServer {
			t.count.spans.Add(1)
		} else {
			t.count.clientSpans.Add(1)
		}
		t.deps.Sink.Export(s)
	}
}

// idsFor returns the IDs BPF made when the request's first byte was read,
// or fresh ones for a request BPF could not tell apart (pipelined requests
// sharing one read).
func (t *table) idsFor(c *conn, x *httpwire.Exchange) (trace [16]byte, span [8]byte, r ids) {
	if x != nil && x.FirstInChunk {
		r = c.recent[x.StartTag%idsRing]
		if r.tag == x.StartTag {
			return r.trace, r.span, r
		}
	}
	if _, err := rand.Read(trace[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // never on Linux ≥ 3.17
	}
	rand.Read(span[:])
	return trace, span, ids{}
}
