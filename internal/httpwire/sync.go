package httpwire

// Finding message starts: the connection's first bytes, and resynchronising
// after a loss. Both happen only at the start of a chunk.

// sniff examines a chunk on a connection whose role is unknown, on a stream
// with no head under way. It returns true if the chunk starts a message (the
// stream is then at phIdle).
func (c *Conn) sniff(ch Chunk) bool {
	s := &c.st[ch.Dir]
	d := ch.Data
	if isTLSRecord(d) || isH2Preface(d) {
		c.problem(NotHTTP)
		c.stop(stateNotHTTP)
		return false
	}
	if len(d) == 0 {
		// The first bytes were not captured: wait for a clear start.
		c.probing = true
		c.reportUnsynced()
		s.ph = phLost
		return false
	}
	if !c.probing {
		d = skipBlankLines(d)
	}
	k, _ := scanStartLine(d)
	if k == lineRequest && c.probing && (!resyncRequest(d) || !c.answeredSince(ch.Dir, 1-ch.Dir)) {
		// Possibly inside a request line, or after unseen pipelined
		// requests.
		c.reportUnsynced()
		s.ph = phLost
		return false
	}
	if k == lineRequest || k == lineResponse || k == linePartial && !c.probing {
		s.ph = phIdle
		return true
	}
	if c.probing {
		c.reportUnsynced()
		s.ph = phLost
		return false
	}
	c.badStart(ch.Dir, d)
	return false
}

// resync examines a chunk on a stream whose framing was lost. It returns
// true if the chunk starts a message that can be matched without doubt (the
// stream is then at phIdle).
func (c *Conn) resync(ch Chunk) bool {
	s := &c.st[ch.Dir]
	if c.isReq(ch.Dir) {
		if c.poisoned || !resyncRequest(ch.Data) {
			return false
		}
		// Skipped bytes may have held requests. A server answers a request
		// before reading the next (unless the client pipelines), so some
		// response bytes must have come since; otherwise the responses
		// still to come may belong to requests we never saw.
		if !c.answeredSince(ch.Dir, 1-ch.Dir) {
			c.poison()
			return false
		}
		// No queued request may still await or receive its response (lost
		// responses are taken as over). Otherwise this is either body data
		// that looks like a request, or a request pipelined after requests
		// unseen in the skipped bytes: matching responses could go wrong
		// either way.
		for i := range c.q {
			if r := c.q[i].resp; r != respLostHead && r != respLostBody {
				c.poison()
				return false
			}
		}
		s.ph = phIdle
		return true
	}
	switch k := statusStart(ch.Data); {
	case k == lineResponse:
	case k == linePartial && len(ch.Data) >= len("HTTP/") && len(ch.Data) == ch.Len:
		// A status line written in pieces.
	case k == linePartial:
		c.blind()
		return false
	default:
		return false
	}
	// Responses still lost end before this chunk if a later request was
	// sent after them (not pipelined).
	for len(c.q) > 0 && (c.q[0].resp == respLostHead || c.q[0].resp == respLostBody) {
		if len(c.q) < 2 {
			// With no request waiting, a status line may be body data
			// of the lost response.
			return false
		}
		if c.q[1].pipelined {
			c.giveUp()
			return false
		}
		c.popLost()
		if c.state != stateActive {
			return false
		}
	}
	if len(c.q) == 0 {
		return false
	}
	if len(c.q) > 1 && s.skipped && s.skippedSeq >= c.q[0].pushSeq {
		// The client pipelines, and response bytes were skipped since the
		// oldest request was read: its response may have begun in them, and
		// this one be the next request's.
		c.giveUp()
		return false
	}
	s.ph = phIdle
	return true
}

// answeredSince reports whether the response direction resp saw a chunk
// after the latest bytes the request direction req skipped.
func (c *Conn) answeredSince(req, resp Dir) bool {
	return !c.st[req].skipped || c.st[resp].seenSeq > c.st[req].skippedSeq
}

// blind handles a chunk on a lost response stream whose start could not be
// examined (nothing or too little captured). A response may have begun
// there: that of the latest request, since a client that does not
// pipeline waits for each response before sending the next request.
func (c *Conn) blind() {
	for i := range c.q {
		if c.q[i].pipelined {
			c.giveUp()
			return
		}
	}
	if n := len(c.q); n > 0 && c.q[n-1].resp == respNone {
		c.q[n-1].resp = respLostHead
	}
}

// skipBlankLines drops CR and LF bytes at the start of b: servers ignore
// empty lines before a request line (RFC 9112 section 2.2).
func skipBlankLines(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}

// statusStart classifies b as the start of a status line (complete,
// partial) or not.
func statusStart(b []byte) lineKind {
	if !prefixOf(b, "HTTP/") {
		return lineInvalid
	}
	if len(b) < len("HTTP/") {
		return linePartial
	}
	k, _ := scanStatusLine(b)
	return k
}
