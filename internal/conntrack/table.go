package conntrack

import (
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
	// the connection speaks this protocol.
	Sniff(ch wire.Chunk) bool
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
}

// Protocols is the list of protocols a Table knows: Fallback parses a
// connection from its first byte until one of Sniffed claims it.
type Protocols struct {
	Fallback Protocol
	Sniffed  []Protocol
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
}

// earlyChunks is how many chunks a connection's protocol may be sniffed
// in (an HTTP/2 server may write its SETTINGS, and its ack, before it
// reads the client's preface).
const earlyChunks = 4

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

	evData, evClose *atomic.Uint64
}

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
	return &Table{cfg: cfg, clock: newClock(), procs: map[uint32]*probes.Process{}, conns: map[connKey]*Conn{},
		evData: ev("data"), evClose: ev("close")}
}

// Track starts accepting a process's events.
func (t *Table) Track(p *probes.Process) { t.procs[uint32(p.PID)] = p }

// Untrack flushes a process's connections and drops further events of it.
func (t *Table) Untrack(pid uint32, now uint64) {
	delete(t.procs, pid)
	for k, c := range t.conns {
		if k.pid == pid {
			c.parser.Close(now)
			delete(t.conns, k)
		}
	}
}

// Conns counts the connections held.
func (t *Table) Conns() int { return len(t.conns) }

// Handle takes one event.
func (t *Table) Handle(ev *Event) {
	if _, traced := t.procs[ev.PID]; !traced {
		return // raced with Untrack
	}
	key := connKey{ev.PID, ev.Conn}
	switch ev.Kind {
	case KindData:
		t.evData.Add(1)
		t.get(key, ev).feed(ev)
	case KindClose:
		t.evClose.Add(1)
		if c, ok := t.conns[key]; ok {
			c.parser.Close(ev.Chunk.Time)
			delete(t.conns, key)
		}
	}
}

func (t *Table) get(key connKey, ev *Event) *Conn {
	c, ok := t.conns[key]
	if !ok {
		c = &Conn{PID: key.pid, Local: ev.Local, Remote: ev.Remote, MidStream: ev.MidStream, t: t}
		c.parser = t.cfg.Protocols.Fallback.NewParser(c)
		t.conns[key] = c
	}
	return c
}

// Sweep lets parsers flush stuck exchanges and forgets connections idle
// for so long that their close was probably lost.
func (t *Table) Sweep(now uint64) {
	for k, c := range t.conns {
		if now-c.lastNs > forgetAfter {
			c.parser.Close(now)
			delete(t.conns, k)
			continue
		}
		c.parser.Idle(now)
	}
}

// FlushAll closes every connection (shutdown).
func (t *Table) FlushAll(now uint64) {
	for k, c := range t.conns {
		c.parser.Close(now)
		delete(t.conns, k)
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

	t       *Table
	parser  Parser
	claimed bool
	early   []wire.Chunk // copies, while the protocol is not yet known
	seq     uint64       // chunk tags
	recent  [idsRing]tagged
	lastNs  uint64
}

func (c *Conn) feed(ev *Event) {
	c.seq++
	ch := ev.Chunk
	ch.Tag = c.seq
	if ev.IDs.Made {
		c.recent[c.seq%idsRing] = tagged{tag: c.seq, ids: ev.IDs}
	}
	c.lastNs = ch.Time
	if !c.claimed && c.seq <= earlyChunks {
		c.sniff(ch)
	}
	c.parser.Feed(ch)
}

// sniff hands the connection to the first protocol that claims it,
// replaying what came before to its parser.
func (c *Conn) sniff(ch wire.Chunk) {
	for _, p := range c.t.cfg.Protocols.Sniffed {
		if p.Sniff(ch) {
			c.parser, c.claimed = p.NewParser(c), true
			for _, e := range c.early {
				c.parser.Feed(e)
			}
			c.early = nil
			return
		}
	}
	if c.seq == earlyChunks {
		c.early = nil // the fallback keeps the connection
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
