package conntrack

import (
	"bytes"
	"sync/atomic"

	"github.com/weft-dev/weft/internal/wire"
)

// Putting a connection's chunks back in order.
//
// A source records a read or a write once the call is over, but a write's
// bytes reach the peer before that: on loopback the peer can answer, and
// this process read the answer, before the write's event is recorded (its
// thread was preempted in between). Fed as they come, an HTTP/1 client's
// response would precede its request (an orphan) and every later response
// on the connection would be paired with the request before it; a server
// would read the next request before the response to the last.
//
// Each event's Sent says how many bytes the process had queued on the
// connection when it was recorded. A read whose Sent is ahead of the last
// write's followed a write still to come: it is held until that write
// comes, then fed after it. Reads held because of bytes no event will
// report (a write the source lost, or one it does not see, like
// sendfile's) are fed before the next write whose bytes they had not
// seen, or after holdFor. Writes are never held.

const (
	// holdFor is how long (ns) a read may wait for the write it follows:
	// that write is recorded microseconds to milliseconds later, unless it
	// is not coming at all.
	holdFor = 1e9
	// Bounds of what one connection holds; past either, all of it is fed.
	maxHeld      = 64
	maxHeldBytes = 256 << 10
	// finSlack: a FIN takes one sequence number and no event reports it.
	// A one-byte write racing with the read of its answer is taken in the
	// order the events came.
	finSlack = 1
)

// order is a connection's reordering state.
type order struct {
	sent      uint32 // the Sent of the last write (or of the last read fed after a wait)
	known     bool   // sent is set
	held      []*Event
	heldBytes int
}

// advance moves the count of bytes known sent forward to sent, never
// back (writes of two threads may come in either order; a write waited
// for may come after its reads were fed without it).
func (o *order) advance(sent uint32) {
	if !o.known || int32(sent-o.sent) > 0 {
		o.sent, o.known = sent, true
	}
}

// after reports whether a read stamped sent follows the bytes of a write
// stamped by.
func after(sent, by uint32) bool { return int32(sent-by) >= -finSlack }

// ahead reports whether read ev follows a write not yet reported.
func (o *order) ahead(c *Conn, ev *Event) bool {
	if !ev.Stamped {
		return false
	}
	if o.known {
		return int32(ev.Sent-o.sent) > finSlack
	}
	// No write yet: only a connection traced from its first byte knows
	// that the count starts at 0 or 1 (the SYN). (Sources stamp socket
	// I/O only: a TLS library's plaintext calls need not move the
	// socket's bytes.)
	return !c.MidStream && !ev.TLS && int32(ev.Sent) > finSlack
}

// take feeds ev, or holds it while it must wait for a write.
func (c *Conn) take(ev *Event) {
	o := &c.order
	if len(o.held) > 0 && int64(ev.Chunk.Time-o.held[0].Chunk.Time) > holdFor {
		c.release(len(o.held), c.t.reorderLate)
	}
	if ev.Chunk.Dir == wire.DirRead {
		if len(o.held) == 0 && !o.ahead(c, ev) {
			c.feed(ev)
			return
		}
		h := *ev
		h.Chunk.Data = bytes.Clone(ev.Chunk.Data) // the source reuses its buffer
		o.held = append(o.held, &h)
		o.heldBytes += len(h.Chunk.Data)
		if len(o.held) > maxHeld || o.heldBytes > maxHeldBytes {
			c.release(len(o.held), c.t.reorderFull)
		}
		return
	}
	if !ev.Stamped {
		// No count to place it by (a connection that turned TLS): the
		// reads held came before it.
		c.release(len(o.held), c.t.reorderBefore)
		c.feed(ev)
		return
	}
	if len(o.held) == 0 {
		o.advance(ev.Sent)
		c.feed(ev)
		return
	}
	// Reads that had not seen this write's bytes came first.
	n := 0
	for n < len(o.held) && !after(o.held[n].Sent, ev.Sent) {
		n++
	}
	c.release(n, c.t.reorderBefore)
	o.advance(ev.Sent)
	w := *ev
	if len(o.held) > 0 && o.held[0].Chunk.Time < w.Chunk.Time {
		// Its bytes had gone before the reads that follow it were
		// recorded: an exchange must not end before it starts.
		w.Chunk.Time = o.held[0].Chunk.Time
	}
	c.feed(&w)
	n = 0
	for n < len(o.held) && !o.ahead(c, o.held[n]) {
		n++
	}
	c.release(n, c.t.reorderAfter)
}

// release feeds the first n held reads, counting them in counter.
func (c *Conn) release(n int, counter *atomic.Uint64) {
	o := &c.order
	if n == 0 {
		return
	}
	counter.Add(uint64(n))
	for _, h := range o.held[:n] {
		o.heldBytes -= len(h.Chunk.Data)
		if h.Stamped {
			// Bytes no event reported: later reads do not wait for them.
			o.advance(h.Sent)
		}
		c.feed(h)
	}
	rest := copy(o.held, o.held[n:])
	clear(o.held[rest:])
	o.held = o.held[:rest]
}

// flushHeld feeds every held read: the connection closes, or the reads
// waited long enough (now, monotonic ns).
func (c *Conn) flushHeld(now uint64, all bool) {
	o := &c.order
	if len(o.held) > 0 && (all || int64(now-o.held[0].Chunk.Time) > holdFor) {
		c.release(len(o.held), c.t.reorderLate)
	}
}
