package conntrack

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/wire"
)

// Protocol recognises connections that speak it and makes their parsers.
type Protocol interface {
	Name() string
	// Sniff reports whether a chunk among a connection's first ones shows
	// the connection speaks this protocol. c.MidStream says whether the
	// connection was open before tracing began (its first chunks may be
	// in the middle of a message).
	Sniff(c *Conn, ch wire.Chunk) bool
	// NewParser starts following a connection.
	NewParser(c *Conn) Parser
}

// Parser follows one connection's chunks, in order across both
// directions, and makes spans of the exchanges it completes.
type Parser interface {
	Feed(ch wire.Chunk)
	// Idle is called about once a second: a parser may flush exchanges
	// stuck after lost bytes.
	Idle(now uint64)
	// Close flushes what is left: the connection closed or its process
	// went away.
	Close(now uint64)
	// Size estimates the bytes the parser holds, for the table's budget.
	Size() int
}

// Protocols is the list of protocols a Table knows: Fallback parses a
// connection from its first byte until one of Sniffed claims it.
type Protocols struct {
	Fallback Protocol
	Sniffed  []Protocol
	// Failed, when not nil, is told of connects that failed before a
	// byte was sent (no protocol ever saw them).
	Failed FailedConnects
}

// FailedConnect is a connect of a traced process that ended before the
// connection was established.
type FailedConnect struct {
	Process       *probes.Process
	Local, Remote netip.AddrPort
	Start, End    time.Time
	Errno         int // the socket's error; 0 when the process gave up (closed it)
	IDs           IDs // the call's, made in the kernel at the connect
}

// FailedConnects takes failed connects.
type FailedConnects interface {
	ConnectFailed(f FailedConnect)
}

// StreamIDs finds the IDs the kernel made for one stream of a multiplexed
// connection (HTTP/2), keyed as the goroutine that moved its first frame
// saw it. The capture family supplies it; nil when there are none.
type StreamIDs func(pid, stream uint32, goid uint64) (IDs, bool)

// Config is what a Table needs.
type Config struct {
	Protocols Protocols
	Metrics   *metrics.Registry
	StreamIDs StreamIDs
	// MaxConns and MaxBytes bound the table: past either, the least
	// recently active connections are evicted (counted). Zero takes the
	// defaults.
	MaxConns int
	MaxBytes int
}

// Defaults of the table's bounds: with ~1–2 KiB per idle keep-alive
// connection and at most a head's worth (8 KiB) or an HTTP/2 connection's
// decoders (~13 KiB) per busy one, well inside the DaemonSet's memory limit.
const (
	DefaultMaxConns = 32768
	DefaultMaxBytes = 64 << 20
)

// earlyChunks is how many chunks a connection's protocol may be sniffed
// in (an HTTP/2 server may write its SETTINGS, and its ack, before it
// reads the client's preface).
const earlyChunks = 4

// midChunks is how many chunks a connection found mid-life may be sniffed
// in: its first ones may fall inside a message (a large HTTP/2 DATA
// frame), so a protocol may only see where it starts later. Only the first
// earlyChunks are kept for replay.
const midChunks = 32

// Idle bounds for Sweep: a connection silent this long (ns) is forgotten
// (its close may have been lost).
const forgetAfter = 600e9

// Table keeps the traced processes' connections. It is used by one
// goroutine at a time (the capture family's lock).
type Table struct {
	cfg   Config
	clock clock
	procs map[uint32]*probes.Process
	conns map[connKey]*Conn
	lru   Conn // sentinel of the ring of connections, most recently active first
	bytes int  // sum of the connections' parser sizes
	// evicted remembers connections evicted while open: their next bytes
	// start a new state that must not assume a message starts there.
	// Bounded; cleared when full (a forgotten one is then mid-stream and
	// resynchronises or is declared not HTTP, counted either way).
	evicted map[connKey]struct{}

	// parked holds the events of processes the kernel traces and the
	// table does not know yet: selected at exec in the kernel
	// (bpf/execsel.h), their first bytes come before user space has read
	// /proc and called Track. Track replays them; ExpireParked drops
	// (counted) those never claimed.
	parked      map[uint32]*parkedEvents
	parkedBytes int

	evData, evClose        *atomic.Uint64
	evictCount, evictBytes *atomic.Uint64
	parkReplayed, parkDrop *atomic.Uint64
	// reads held for the write they follow (reorder.go), by how they
	// were fed: after it, before it, or without it (late or full).
	reorderAfter, reorderBefore, reorderLate, reorderFull *atomic.Uint64
	gaugeConns, gaugeBytes                                atomic.Int64
}

// Bounds of the events parked for processes not yet tracked: enough for
// a short-lived process's few exchanges while user space reads /proc.
const (
	maxParkedPIDs   = 256
	maxParkedEvents = 512     // per process
	maxParkedBytes  = 4 << 20 // all processes
	parkFor         = 3e9     // ns: then the process is not coming
)

type parkedEvents struct {
	since  uint64 // monotonic ns of the first
	events []*Event
}

// maxEvictedMemo bounds Table.evicted.
const maxEvictedMemo = 65536

type connKey struct {
	pid uint32
	id  uint64
}

// New makes an empty table.
func New(cfg Config) *Table {
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	ev := func(kind string) *atomic.Uint64 {
		return cfg.Metrics.Counter("weft_sockio_events_total", "sockio ring-buffer events by kind", "kind", kind)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	evict := func(reason string) *atomic.Uint64 {
		return cfg.Metrics.Counter("weft_conntrack_evictions_total", "connections whose parser state was dropped to keep the table in its bounds, by bound", "reason", reason)
	}
	t := &Table{cfg: cfg, clock: newClock(), procs: map[uint32]*probes.Process{}, conns: map[connKey]*Conn{},
		evicted: map[connKey]struct{}{},
		evData:  ev("data"), evClose: ev("close"), evictCount: evict("count"), evictBytes: evict("bytes"),
		parked: map[uint32]*parkedEvents{},
		parkReplayed: cfg.Metrics.Counter("weft_conntrack_parked_total",
			"events of processes traced in the kernel before user space tracked them (selected at exec), by outcome", "outcome", "replayed"),
		parkDrop: cfg.Metrics.Counter("weft_conntrack_parked_total",
			"events of processes traced in the kernel before user space tracked them (selected at exec), by outcome", "outcome", "dropped")}
	reorder := func(outcome string) *atomic.Uint64 {
		return cfg.Metrics.Counter("weft_conntrack_reads_held_total",
			"reads recorded before the write they follow had been, held and fed in order, by outcome: after_write (put after it), before_write (they had not seen its bytes after all), late or full (fed without it)", "outcome", outcome)
	}
	t.reorderAfter, t.reorderBefore, t.reorderLate, t.reorderFull = reorder("after_write"), reorder("before_write"), reorder("late"), reorder("full")
	t.lru.prev, t.lru.next = &t.lru, &t.lru
	cfg.Metrics.Gauge("weft_conntrack_connections", "connections the table holds state for", func() float64 { return float64(t.gaugeConns.Load()) })
	cfg.Metrics.Gauge("weft_conntrack_bytes", "estimated bytes of the connections' parser state", func() float64 { return float64(t.gaugeBytes.Load()) })
	return t
}

// Track starts accepting a process's events, first those parked for it.
func (t *Table) Track(p *probes.Process) {
	pid := uint32(p.PID)
	t.procs[pid] = p
	if pe, ok := t.parked[pid]; ok {
		delete(t.parked, pid)
		for _, ev := range pe.events {
			t.parkedBytes -= len(ev.Chunk.Data)
			t.parkReplayed.Add(1)
			t.Handle(ev)
		}
	}
}

// park keeps a copy of an event of a process not tracked (yet).
func (t *Table) park(ev *Event) {
	pe, ok := t.parked[ev.PID]
	if !ok {
		if len(t.parked) >= maxParkedPIDs {
			t.parkDrop.Add(1)
			return
		}
		pe = &parkedEvents{since: ev.Chunk.Time}
		t.parked[ev.PID] = pe
	}
	if len(pe.events) >= maxParkedEvents || t.parkedBytes+len(ev.Chunk.Data) > maxParkedBytes {
		t.parkDrop.Add(1)
		return
	}
	c := *ev
	c.Chunk.Data = bytes.Clone(ev.Chunk.Data)
	t.parkedBytes += len(c.Chunk.Data)
	pe.events = append(pe.events, &c)
}

// ExpireParked drops the events parked longer than parkFor before now
// (monotonic ns), and all of them when all is set (shutdown): their
// process was never tracked (it was not selected after all, or it is
// gone and nothing is known of it).
func (t *Table) ExpireParked(now uint64, all bool) {
	for pid, pe := range t.parked {
		if all || now-pe.since > parkFor {
			for _, ev := range pe.events {
				t.parkedBytes -= len(ev.Chunk.Data)
			}
			t.parkDrop.Add(uint64(len(pe.events)))
			delete(t.parked, pid)
		}
	}
}

// Untrack flushes a process's connections and drops further events of it.
// The connections close while the process is still known, so that the
// spans their parsers complete at close name it.
func (t *Table) Untrack(pid uint32, now uint64) {
	for k, c := range t.conns {
		if k.pid == pid {
			c.flushHeld(now, true)
			c.parser.Close(now)
			t.remove(k, c)
		}
	}
	delete(t.procs, pid)
}

// Conns counts the connections held.
func (t *Table) Conns() int { return len(t.conns) }

// Handle takes one event.
func (t *Table) Handle(ev *Event) {
	if _, traced := t.procs[ev.PID]; !traced {
		// Traced in the kernel before Track (selected at exec), or
		// raced with Untrack: parked until Track or expiry.
		t.park(ev)
		return
	}
	key := connKey{ev.PID, ev.Conn}
	switch ev.Kind {
	case KindData:
		t.evData.Add(1)
		c := t.get(key, ev)
		c.take(ev)
		t.touch(c)
		t.enforce(c)
	case KindConnectFailed:
		if f := t.cfg.Protocols.Failed; f != nil {
			f.ConnectFailed(FailedConnect{Process: t.procs[ev.PID], Local: ev.Local, Remote: ev.Remote,
				Start: t.clock.wall(ev.Start), End: t.clock.wall(ev.Chunk.Time), Errno: ev.Errno, IDs: ev.IDs})
		}
	case KindClose:
		t.evClose.Add(1)
		delete(t.evicted, key)
		if c, ok := t.conns[key]; ok {
			c.flushHeld(ev.Chunk.Time, true)
			c.parser.Close(ev.Chunk.Time)
			t.remove(key, c)
		}
	}
}

// touch moves c to the front of the ring and updates its size.
func (t *Table) touch(c *Conn) {
	c.prev.next, c.next.prev = c.next, c.prev
	c.next, c.prev = t.lru.next, &t.lru
	t.lru.next.prev = c
	t.lru.next = c
	size := c.parser.Size() + c.order.heldBytes
	t.bytes += size - c.size
	c.size = size
	t.gaugeBytes.Store(int64(t.bytes))
}

// enforce evicts the least recently active connections (never keep, the
// one just fed) until the table is within its bounds.
func (t *Table) enforce(keep *Conn) {
	for len(t.conns) > t.cfg.MaxConns || t.bytes > t.cfg.MaxBytes {
		old := t.lru.prev
		if old == keep || old == &t.lru {
			return
		}
		if len(t.conns) > t.cfg.MaxConns {
			t.evictCount.Add(1)
		} else {
			t.evictBytes.Add(1)
		}
		// Dropped, not flushed: an exchange cut here would be a span with
		// an invented end. Its loss is the eviction counted.
		if len(t.evicted) >= maxEvictedMemo {
			clear(t.evicted)
		}
		t.evicted[old.key] = struct{}{}
		t.remove(old.key, old)
	}
}

// remove forgets a connection.
func (t *Table) remove(k connKey, c *Conn) {
	delete(t.conns, k)
	if c.prev != nil {
		c.prev.next, c.next.prev = c.next, c.prev
		c.prev, c.next = nil, nil
	}
	t.bytes -= c.size
	t.gaugeBytes.Store(int64(t.bytes))
	t.gaugeConns.Store(int64(len(t.conns)))
}

func (t *Table) get(key connKey, ev *Event) *Conn {
	c, ok := t.conns[key]
	if !ok {
		_, wasEvicted := t.evicted[key]
		delete(t.evicted, key)
		// lastNs from its first event, fed or held: Sweep must not
		// take a connection whose first read waits for its write for
		// one silent since boot.
		c = &Conn{PID: key.pid, Local: ev.Local, Remote: ev.Remote, MidStream: ev.MidStream || wasEvicted, t: t, key: key,
			lastNs: ev.Chunk.Time}
		c.parser = t.cfg.Protocols.Fallback.NewParser(c)
		c.prev, c.next = &t.lru, t.lru.next // linked at the front; touch keeps it there
		t.lru.next.prev = c
		t.lru.next = c
		t.conns[key] = c
		t.gaugeConns.Store(int64(len(t.conns)))
	}
	c.TLS = c.TLS || ev.TLS
	return c
}

// Sweep lets parsers flush stuck exchanges and forgets connections idle
// for so long that their close was probably lost.
func (t *Table) Sweep(now uint64) {
	for k, c := range t.conns {
		if now-c.lastNs > forgetAfter {
			c.flushHeld(now, true)
			c.parser.Close(now)
			t.remove(k, c)
			continue
		}
		c.flushHeld(now, false)
		c.parser.Idle(now)
		size := c.parser.Size() + c.order.heldBytes
		t.bytes += size - c.size
		c.size = size
	}
	t.gaugeBytes.Store(int64(t.bytes))
}

// FlushAll closes every connection (shutdown).
func (t *Table) FlushAll(now uint64) {
	for k, c := range t.conns {
		c.flushHeld(now, true)
		c.parser.Close(now)
		t.remove(k, c)
	}
}

// idsRing remembers the IDs the kernel made for a connection's last few
// request-starting chunks, by tag, until their exchange is complete.
const idsRing = 8

type tagged struct {
	tag uint64
	ids IDs
}

// Conn is one traced connection as protocols see it.
type Conn struct {
	PID           uint32
	Local, Remote netip.AddrPort
	MidStream     bool
	TLS           bool // its plaintext comes from a TLS library: scheme https

	t          *Table
	key        connKey
	prev, next *Conn // the table's activity ring
	size       int   // parser.Size() when last measured
	parser     Parser
	claimed    bool
	early      []wire.Chunk // copies, while the protocol is not yet known
	seq        uint64       // chunk tags
	recent     [idsRing]tagged
	lastNs     uint64
	order      order // reads waiting for the write they follow
}

func (c *Conn) feed(ev *Event) {
	c.seq++
	ch := ev.Chunk
	ch.Tag = c.seq
	if ev.IDs.Made {
		c.recent[c.seq%idsRing] = tagged{tag: c.seq, ids: ev.IDs}
	}
	c.lastNs = ch.Time
	if !c.claimed && (c.seq <= earlyChunks || c.MidStream && c.seq <= midChunks) {
		c.sniff(ch)
	}
	c.parser.Feed(ch)
}

// sniff hands the connection to the first protocol that claims it,
// replaying what came before to its parser.
func (c *Conn) sniff(ch wire.Chunk) {
	for _, p := range c.t.cfg.Protocols.Sniffed {
		if p.Sniff(c, ch) {
			c.parser, c.claimed = p.NewParser(c), true
			for _, e := range c.early {
				c.parser.Feed(e)
			}
			c.early = nil
			return
		}
	}
	if c.seq >= earlyChunks {
		c.early = nil // the fallback keeps the connection (unless a later sniff of a mid-life one claims it)
		return
	}
	e := ch
	e.Data = append([]byte(nil), ch.Data...) // the source reuses its buffer
	c.early = append(c.early, e)
}

// Process is the connection's process, nil once it is untracked.
func (c *Conn) Process() *probes.Process { return c.t.procs[c.PID] }

// Wall turns a chunk's monotonic time into wall time.
func (c *Conn) Wall(ns uint64) time.Time { return c.t.clock.wall(ns) }

// LastActive is the time of the connection's last chunk.
func (c *Conn) LastActive() uint64 { return c.lastNs }

// ChunkIDs returns the IDs the kernel made for the request that starts in
// the chunk tagged tag, if it made any and they are still remembered.
func (c *Conn) ChunkIDs(tag uint64) (IDs, bool) {
	r := c.recent[tag%idsRing]
	if r.tag != tag || tag == 0 {
		return IDs{}, false
	}
	return r.ids, true
}

// StreamIDs returns (and forgets) the IDs the kernel made for a stream of
// this connection.
func (c *Conn) StreamIDs(stream uint32, goid uint64) (IDs, bool) {
	if c.t.cfg.StreamIDs == nil {
		return IDs{}, false
	}
	return c.t.cfg.StreamIDs(c.PID, stream, goid)
}

// NewIDs makes fresh random IDs, for exchanges the kernel made none for.
func NewIDs() (trace [16]byte, span [8]byte) {
	if _, err := rand.Read(trace[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // never on Linux ≥ 3.17
	}
	rand.Read(span[:])
	return trace, span
}
