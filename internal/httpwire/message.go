package httpwire

import "sync"

// Messages: heads and bodies flowing through a stream.

// begin starts a message at data[off] on a stream at a message boundary.
func (c *Conn) begin(ch Chunk, off int) int {
	s := &c.st[ch.Dir]
	data := ch.Data
	if c.role == RoleUnknown || c.isReq(ch.Dir) {
		// Servers ignore empty lines before a request line (RFC 9112 2.2).
		for off < len(data) && (data[off] == '\r' || data[off] == '\n') {
			off++
		}
		if off == len(data) {
			return off
		}
	}
	s.start = msgStart{time: ch.Time, goid: ch.Goid, tag: ch.Tag, first: off == 0}
	s.ph, s.buf, s.line1, s.bound, s.orphan = phHead, s.emptied(), false, false, false
	if c.role != RoleUnknown && !c.isReq(ch.Dir) {
		c.bindResponse(s)
	}
	return off
}

// headBytes adds head bytes from data[off:]; it parses the head when its
// end is found.
func (c *Conn) headBytes(ch Chunk, off int) int {
	s := &c.st[ch.Dir]
	p := ch.Data[off:]
	max := c.lim.MaxHeaderBytes
	var head []byte
	if len(s.buf) == 0 {
		// Fast path: the whole head is in this chunk; parse it in place.
		lim := p[:min(len(p), max)]
		end := findHeadEnd(lim, 0)
		if end < 0 {
			if !c.checkStart(ch.Dir, lim, &s.line1) {
				return len(ch.Data)
			}
			if len(p) >= max {
				c.tooLarge(ch.Dir, lim)
				return len(ch.Data)
			}
			s.appendHead(p, max)
			return len(ch.Data)
		}
		head, off = lim[:end], off+end
	} else {
		prev := len(s.buf)
		take := min(len(p), max-prev)
		s.appendHead(p[:take], max)
		end := findHeadEnd(s.buf, prev)
		if end < 0 {
			if !s.line1 && !c.checkStart(ch.Dir, s.buf, &s.line1) {
				return len(ch.Data)
			}
			if len(s.buf) >= max {
				c.tooLarge(ch.Dir, s.buf)
				return len(ch.Data)
			}
			return off + take
		}
		head, off = s.buf[:end], off+end-prev
	}
	c.completeHead(ch, head)
	s.releaseBuf()
	return off
}

// keptHeadBuf is the largest head buffer a stream keeps between messages;
// a larger one (a big head once) is given back, so that idle connections
// hold little.
const keptHeadBuf = 1024

// bigHeads holds head buffers that outgrew keptHeadBuf, shared by all
// connections: a connection holds one only while a head spans reads, and
// a busy agent reuses them instead of allocating per split head. It is a
// cache, not state: any buffer may be dropped.
var bigHeads = sync.Pool{}

// appendHead appends p to the stream's head buffer, moving to a pooled
// buffer when it outgrows keptHeadBuf.
func (s *stream) appendHead(p []byte, limit int) {
	need := len(s.buf) + len(p)
	if need > cap(s.buf) && need > keptHeadBuf {
		var nb []byte
		if pb, ok := bigHeads.Get().(*[]byte); ok && cap(*pb) >= need {
			nb = (*pb)[:0]
			s.pooled = pb
		} else {
			pb := new([]byte)
			*pb = make([]byte, 0, max(need, limit))
			nb, s.pooled = *pb, pb
		}
		s.buf = append(nb, s.buf...)
	}
	s.buf = append(s.buf, p...)
}

func (s *stream) releaseBuf() { s.buf = s.emptied() }

// emptied empties the head buffer, handing a large one back to the pool.
func (s *stream) emptied() []byte {
	if s.pooled != nil {
		*s.pooled = s.buf[:0]
		bigHeads.Put(s.pooled)
		s.pooled = nil
		return nil
	}
	if cap(s.buf) > keptHeadBuf {
		return nil
	}
	return s.buf[:0]
}

// checkStart checks the start line of a head. It returns false (after
// dealing with it) if the head cannot be a valid message start; *done is set
// once the line is complete and valid. A complete first line decides the
// role of a new connection.
func (c *Conn) checkStart(dir Dir, b []byte, done *bool) bool {
	k, _ := scanStartLine(b)
	switch {
	case k == lineInvalid:
	case k == linePartial:
		return true
	case c.role == RoleUnknown:
		c.setRole(k, dir)
		*done = true
		return true
	case (k == lineRequest) == c.isReq(dir):
		*done = true
		return true
	}
	c.badStart(dir, b)
	return false
}

// badStart handles bytes that cannot start a message where one should.
func (c *Conn) badStart(dir Dir, b []byte) {
	if c.role == RoleUnknown {
		if !c.probing && c.st[1-dir].ph != phHead {
			c.problem(NotHTTP)
			c.stop(stateNotHTTP)
			return
		}
		c.reportUnsynced()
		c.lose(dir, false)
		return
	}
	c.problem(Malformed)
	c.phantom(dir, b)
	c.lose(dir, false)
}

func (c *Conn) reportUnsynced() {
	if !c.unsynced {
		c.unsynced = true
		c.problem(Unsynced)
	}
}

// tooLarge handles a head longer than MaxHeaderBytes; b holds its start.
func (c *Conn) tooLarge(dir Dir, b []byte) {
	if c.role == RoleUnknown {
		c.badStart(dir, b)
		return
	}
	c.problem(HeaderTooLarge)
	c.phantom(dir, b)
	c.lose(dir, false)
}

// phantom queues a placeholder for a request whose request line (at the
// start of b) is valid but whose head could not be used: the server answers
// it, and that response must be consumed without being matched to the next
// request.
func (c *Conn) phantom(dir Dir, b []byte) {
	if c.role == RoleUnknown || !c.isReq(dir) || c.poisoned {
		return
	}
	k, n := scanStartLine(b)
	if k != lineRequest {
		return
	}
	m, _, _ := requestLine(b[:n])
	s := &c.st[dir]
	c.push(entry{phantom: true, ex: Exchange{
		Req:   Request{Method: intern(m)},
		Start: s.start.time,
	}})
}

// completeHead parses a complete head.
func (c *Conn) completeHead(ch Chunk, head []byte) {
	k, _ := scanStartLine(head)
	if !c.checkStart(ch.Dir, head, &c.st[ch.Dir].line1) {
		return
	}
	var h msgHead
	if !parseHead(head, k, &h) {
		c.badHead(ch.Dir, head)
		return
	}
	if c.isReq(ch.Dir) {
		c.requestHead(ch, &h)
	} else {
		c.responseHead(ch, &h)
	}
}

// badHead handles a head with a valid start line and invalid fields.
func (c *Conn) badHead(dir Dir, head []byte) {
	c.problem(Malformed)
	c.phantom(dir, head)
	c.lose(dir, false)
}

func (c *Conn) requestHead(ch Chunk, h *msgHead) {
	s := &c.st[ch.Dir]
	mode, length := bodyNone, int64(0)
	switch {
	case h.te && !h.chunked:
		// A server must reject this (RFC 9112 6.3); what follows is unknown.
		c.problem(Malformed)
		if !c.poisoned {
			c.push(entry{phantom: true, ex: Exchange{Req: Request{Method: h.method}}})
		}
		c.lose(ch.Dir, false)
		return
	case h.te:
		mode = bodyChunked
	case h.contentLength > 0:
		mode, length = bodyLength, h.contentLength
	}
	e := entry{ex: Exchange{
		Role: c.role,
		Req: Request{
			Method: h.method, Target: h.target, Proto: h.proto,
			Host: h.host, UserAgent: h.userAgent,
			Traceparent: h.traceparent, Tracestate: h.tracestate,
			SourceCluster:  h.sourceCluster,
			DupTraceparent: h.dupTraceparent,
			B3:             h.b3,
			ContentLength:  h.contentLength,
			Chunked:        h.chunked,
			Close:          h.close,
			HeaderBytes:    h.size,
		},
		Start:        s.start.time,
		ReqGoid:      s.start.goid,
		StartTag:     s.start.tag,
		FirstInChunk: s.start.first,
	}}
	if c.poisoned || !c.push(e) {
		return
	}
	if mode == bodyNone {
		s.ph = phIdle
		return
	}
	s.body.reset(mode, length)
	s.ph, s.bodyID = phBody, c.nextID
}

func (c *Conn) responseHead(ch Chunk, h *msgHead) {
	s := &c.st[ch.Dir]
	if !s.bound {
		c.bindResponse(s)
	}
	if s.orphan {
		if !c.poisoned {
			c.problem(Orphan)
		}
		if h.status == 101 {
			c.stop(stateUpgraded)
			return
		}
		mode, length, ok := responseFraming(h, "", false)
		if !ok {
			c.lose(ch.Dir, false) // a HEAD response or not: unknowable
			return
		}
		c.startBody(ch, mode, length)
		return
	}
	e := &c.q[0]
	if h.status < 200 && h.status != 101 {
		// Interim response (100 Continue, 103 Early Hints): the final
		// response follows.
		e.resp, s.ph = respNone, phIdle
		return
	}
	e.resp = respBody
	e.ex.RespGoid = s.start.goid
	e.ex.Resp = Response{
		Proto: h.proto, Status: h.status,
		ContentLength: h.contentLength, Chunked: h.chunked, Close: h.close,
		HeaderBytes: h.size,
	}
	if h.status == 101 || e.ex.Req.Method == "CONNECT" && h.status < 300 {
		e.ex.End = ch.Time
		c.popFront(true)
		c.stop(stateUpgraded)
		return
	}
	mode, length, _ := responseFraming(h, e.ex.Req.Method, true)
	c.startBody(ch, mode, length)
}

// responseFraming decides how a response body is delimited (RFC 9112 6.3).
// Without the request method (known false) it fails (ok false) for any
// response that could have a body, since a HEAD response has none.
func responseFraming(h *msgHead, method string, known bool) (mode bodyMode, length int64, ok bool) {
	switch {
	case known && method == "HEAD", h.status < 200, h.status == 204, h.status == 304:
		return bodyNone, 0, true
	case h.te && h.chunked:
		mode = bodyChunked
	case h.te:
		mode = bodyClose
	case h.contentLength == 0:
		return bodyNone, 0, true
	case h.contentLength > 0:
		mode, length = bodyLength, h.contentLength
	default:
		mode = bodyClose
	}
	return mode, length, known
}

// startBody follows a response head.
func (c *Conn) startBody(ch Chunk, mode bodyMode, length int64) {
	s := &c.st[ch.Dir]
	if mode == bodyNone {
		c.bodyDone(ch)
		return
	}
	s.body.reset(mode, length)
	s.ph = phBody
}

// bodyBytes feeds body bytes from data[off:].
func (c *Conn) bodyBytes(ch Chunk, off int) int {
	s := &c.st[ch.Dir]
	n, done, ok := s.body.feed(ch.Data[off:])
	c.addBody(ch.Dir, int64(n))
	if !ok {
		c.problem(BadChunk)
		c.lose(ch.Dir, false)
		return len(ch.Data)
	}
	if done {
		c.bodyDone(ch)
	}
	return off + n
}

func (c *Conn) addBody(dir Dir, n int64) {
	s := &c.st[dir]
	if c.isReq(dir) {
		for i := len(c.q) - 1; i >= 0 && s.bodyID != 0; i-- {
			if c.q[i].id == s.bodyID {
				c.q[i].ex.Req.BodyBytes += n
				return
			}
		}
		return
	}
	if s.bound && !s.orphan {
		c.q[0].ex.Resp.BodyBytes += n
	}
}

// bodyDone ends a message whose last byte is in ch.
func (c *Conn) bodyDone(ch Chunk) {
	s := &c.st[ch.Dir]
	if !c.isReq(ch.Dir) && s.bound && !s.orphan {
		c.q[0].ex.End = ch.Time
		c.popFront(true)
	}
	s.ph, s.bodyID, s.bound, s.orphan = phIdle, 0, false, false
}

// gap accounts for the n unknown bytes at the end of ch.
func (c *Conn) gap(ch Chunk, n int64) {
	s := &c.st[ch.Dir]
	if s.ph == phLost {
		return
	}
	if c.role == RoleUnknown {
		c.reportUnsynced()
		c.lose(ch.Dir, false)
		return
	}
	switch s.ph {
	case phBody:
		used, done, ok := s.body.skip(n)
		c.addBody(ch.Dir, used)
		if !ok {
			c.problem(LostSync)
			c.lose(ch.Dir, false)
			return
		}
		if !done || used == n {
			if done {
				c.bodyDone(ch)
			}
			return
		}
		c.bodyDone(ch)
		if c.state != stateActive {
			return
		}
		c.problem(LostSync)
		c.lose(ch.Dir, true) // the next message starts in the gap
	case phIdle:
		c.problem(LostSync)
		c.lose(ch.Dir, true)
	case phHead:
		c.problem(LostSync)
		c.phantom(ch.Dir, s.buf)
		c.lose(ch.Dir, false)
	}
}
