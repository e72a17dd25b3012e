package httpwire

// Conn reconstructs HTTP/1.x exchanges from one TCP connection's syscalls.
// It is not safe for concurrent use. See the package documentation for the
// resynchronisation rules.
type Conn struct {
	lim     Limits
	role    Role
	state   connState
	probing bool // a message start has not been seen where one was expected: need whole start lines
	// poisoned: requests may have been lost in a way that makes matching
	// later responses unprovable; no new requests are taken, and the
	// connection is given up once the queued ones are answered.
	poisoned bool
	unsynced bool   // Unsynced was reported
	seq      uint64 // chunks fed so far
	st       [2]stream
	q        []entry // requests awaiting or receiving their response, oldest first
	nextID   uint64
	out      []Exchange
	probs    []Problem
}

type connState uint8

const (
	stateActive   connState = iota
	stateNotHTTP            // not HTTP/1.x
	stateUpgraded           // 101 Switching Protocols or a CONNECT tunnel
	stateGivenUp            // poisoned and drained
	stateClosed
)

// phase is where a stream is within its messages.
type phase uint8

const (
	phIdle phase = iota // at a message boundary
	phHead              // inside a head
	phBody              // inside a body
	phLost              // framing lost: skipping until a chunk starts with a start line
)

// msgStart records the chunk that held a message's first byte.
type msgStart struct {
	time, goid, tag uint64
	first           bool
}

// stream is one direction of the connection.
type stream struct {
	ph     phase
	buf    []byte  // head bytes, when a head spans chunks
	pooled *[]byte // buf came from bigHeads; nil when it is the stream's own
	start  msgStart
	body   framer
	bodyID uint64 // request stream: the entry whose body is being read; 0 for none
	line1  bool   // the current head's start line is complete and checked
	bound  bool   // response stream: the current response was matched (or found orphan)
	orphan bool   // response stream: the current response has no request
	last   uint64 // Time of the previous chunk in this direction
	// seq of the latest chunk in this direction, and of the latest chunk
	// with bytes skipped because framing was lost. skipped: some bytes
	// were skipped (for a MidStream connection, those before the first
	// chunk: skippedSeq 0).
	seenSeq, skippedSeq uint64
	skipped             bool
}

type respState uint8

const (
	respNone     respState = iota // no response bytes yet
	respHead                      // the response head is in progress
	respBody                      // the final head is parsed; the body is in progress
	respLostHead                  // the response began but its head is unknown: the exchange is skipped
	respLostBody                  // the head is parsed, then the body's framing was lost
)

type entry struct {
	id      uint64
	ex      Exchange
	phantom bool // a request known to exist but not parsed: its response is consumed silently
	// pipelined: queued while an earlier request's response was not known
	// to be over (not lost, not finished): the client did not wait for it,
	// so responses may follow each other within one write.
	pipelined bool
	pushSeq   uint64 // Conn.seq when queued
	// respLast: Time of the latest response chunk when this request was
	// queued. A client that does not pipeline sent this request after the
	// previous response's last byte, so that is where a lost previous
	// response ended.
	respLast uint64
	resp     respState
}

// NewConn returns a Conn for a new connection. Zero Limits fields take
// their defaults.
func NewConn(l Limits) *Conn {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxPending <= 0 {
		l.MaxPending = DefaultMaxPending
	}
	c := &Conn{lim: l, probing: l.MidStream}
	if l.MidStream {
		for d := range c.st {
			c.st[d].ph, c.st[d].skipped = phLost, true
		}
	}
	return c
}

// Size estimates the bytes c holds: its head buffers and queued
// exchanges (for the connection table's memory budget).
func (c *Conn) Size() int {
	const base, perEntry = 512, 512
	return base + cap(c.st[0].buf) + cap(c.st[1].buf) + len(c.q)*perEntry
}

// Role returns the traced process's role, once known.
func (c *Conn) Role() Role { return c.role }

// Done reports whether the Conn ignores all further input: the connection
// is not HTTP/1.x, was upgraded to another protocol, was given up after an
// ambiguous loss, or was closed. A caller may then keep only a tombstone.
func (c *Conn) Done() bool { return c.state != stateActive }

// Feed processes one syscall's bytes. Chunks must be fed in syscall order
// across both directions. The returned slices are valid until the next call
// on c.
func (c *Conn) Feed(ch Chunk) (done []Exchange, problems []Problem) {
	c.out, c.probs = c.out[:0], c.probs[:0]
	if c.state != stateActive || ch.Dir > DirWrite || ch.Len <= 0 {
		return nil, nil
	}
	if len(ch.Data) > ch.Len {
		ch.Data = ch.Data[:ch.Len]
	}
	c.seq++
	c.consume(ch)
	s := &c.st[ch.Dir]
	s.last, s.seenSeq = ch.Time, c.seq
	if s.ph == phLost {
		s.skippedSeq, s.skipped = c.seq, true
	}
	return c.result()
}

func (c *Conn) result() ([]Exchange, []Problem) {
	var done []Exchange
	var problems []Problem
	if len(c.out) > 0 {
		done = c.out
	}
	if len(c.probs) > 0 {
		problems = c.probs
	}
	return done, problems
}

func (c *Conn) consume(ch Chunk) {
	s := &c.st[ch.Dir]
	switch {
	case c.role == RoleUnknown && s.ph != phHead:
		if !c.sniff(ch) {
			return
		}
	case s.ph == phLost:
		if !c.resync(ch) {
			return
		}
	}
	data := ch.Data
	for off := 0; off < len(data); {
		if c.state != stateActive {
			return
		}
		switch s.ph {
		case phIdle:
			off = c.begin(ch, off)
		case phHead:
			off = c.headBytes(ch, off)
		case phBody:
			off = c.bodyBytes(ch, off)
		case phLost:
			return // the rest of the chunk, and its gap, are skipped
		}
	}
	if gap := int64(ch.Len - len(data)); gap > 0 && c.state == stateActive {
		c.gap(ch, gap)
	}
}

// isReq reports whether dir carries requests. The role must be known.
func (c *Conn) isReq(dir Dir) bool {
	return (c.role == RoleServer) == (dir == DirRead)
}

func (c *Conn) setRole(k lineKind, dir Dir) {
	if (k == lineRequest) == (dir == DirRead) {
		c.role = RoleServer
	} else {
		c.role = RoleClient
	}
	// A response head already under way is matched now.
	for d := DirRead; d <= DirWrite; d++ {
		if s := &c.st[d]; !c.isReq(d) && s.ph == phHead && !s.bound {
			c.bindResponse(s)
		}
	}
}

// bindResponse matches the response starting on s with the oldest request.
func (c *Conn) bindResponse(s *stream) {
	s.bound = true
	s.orphan = len(c.q) == 0
	if !s.orphan {
		c.q[0].resp = respHead
	}
}

func (c *Conn) problem(p Problem) { c.probs = append(c.probs, p) }

func (c *Conn) stop(st connState) {
	c.state = st
	for d := range c.st {
		c.st[d].buf = c.st[d].emptied()
	}
	c.q = nil
}

// emit reports a finished exchange.
func (c *Conn) emit(ex Exchange) {
	if ex.End < ex.Start {
		ex.End = ex.Start
	}
	c.out = append(c.out, ex)
}

// push queues a parsed (or phantom) request.
func (c *Conn) push(e entry) bool {
	if len(c.q) >= c.lim.MaxPending {
		c.problem(TooManyPending)
		c.poison()
		return false
	}
	c.nextID++
	e.id, e.pushSeq = c.nextID, c.seq
	for i := range c.q {
		r := c.q[i].resp
		e.pipelined = e.pipelined || r != respLostHead && r != respLostBody
	}
	e.respLast = c.st[c.respDir()].last
	c.q = append(c.q, e)
	return true
}

// popFront removes the oldest request; it is emitted unless it is a phantom
// or emit is false.
func (c *Conn) popFront(emit bool) {
	e := c.q[0]
	copy(c.q, c.q[1:])
	c.q = c.q[:len(c.q)-1]
	if emit && !e.phantom {
		c.emit(e.ex)
	}
	if c.poisoned && len(c.q) == 0 {
		c.stop(stateGivenUp)
	}
}

// poison stops taking requests: their matching with responses could be wrong.
func (c *Conn) poison() {
	if !c.poisoned {
		c.problem(Ambiguous)
	}
	c.poisoned = true
	req := DirRead
	if c.role == RoleClient {
		req = DirWrite
	}
	c.st[req].ph, c.st[req].buf, c.st[req].bodyID = phLost, c.st[req].emptied(), 0
	if len(c.q) == 0 {
		c.stop(stateGivenUp)
	}
}

// respDir is the direction responses flow in. The role must be known.
func (c *Conn) respDir() Dir {
	if c.role == RoleClient {
		return DirRead
	}
	return DirWrite
}

// lostEnd returns where the oldest request's lost response ended, if that
// can be proven: with another request queued after it without pipelining,
// at the latest response chunk before that request; else at the latest
// response chunk. Neither holds if the request stream skipped bytes since
// the oldest request: requests unseen there were answered in between.
func (c *Conn) lostEnd() (end uint64, ok bool) {
	if req := &c.st[1-c.respDir()]; req.skipped && req.skippedSeq >= c.q[0].pushSeq {
		return 0, false
	}
	if len(c.q) > 1 {
		return c.q[1].respLast, !c.q[1].pipelined
	}
	return c.st[c.respDir()].last, true
}

// popLost removes the oldest request, whose response was lost: it is
// emitted with IncompleteLostSync if its End is known, else dropped.
func (c *Conn) popLost() {
	e := &c.q[0]
	end, ok := c.lostEnd()
	emit := e.resp == respLostBody && ok
	if emit {
		e.ex.End, e.ex.Incomplete = end, IncompleteLostSync
	}
	c.popFront(emit)
}

// giveUp abandons the connection: which response belongs to which request
// can no longer be proven.
func (c *Conn) giveUp() {
	if !c.poisoned {
		c.problem(Ambiguous)
	}
	c.stop(stateGivenUp)
}

// lose marks dir's framing as lost. started: a new message began in the
// lost bytes (at a message boundary).
func (c *Conn) lose(dir Dir, started bool) {
	s := &c.st[dir]
	if c.role != RoleUnknown && !c.isReq(dir) {
		switch {
		case started && s.ph == phIdle && len(c.q) > 0:
			c.q[0].resp = respLostHead
		case s.bound && !s.orphan && s.ph == phHead:
			c.q[0].resp = respLostHead
		case s.bound && !s.orphan && s.ph == phBody:
			c.q[0].resp = respLostBody
		}
	}
	if c.role == RoleUnknown {
		c.probing = true
	}
	s.ph, s.buf, s.bodyID, s.bound, s.orphan = phLost, s.emptied(), 0, false, false
}
