package httpwire

// Close flushes the connection at close(2) time t: a close-delimited
// response completes; every other queued request is emitted with its
// Incomplete reason. Requests without any response get End = t. The Conn
// ignores all input afterwards.
func (c *Conn) Close(t uint64) (done []Exchange, problems []Problem) {
	c.out, c.probs = c.out[:0], c.probs[:0]
	if c.state != stateActive {
		c.state = stateClosed
		return nil, nil
	}
	if c.role != RoleUnknown {
		req, resp := &c.st[DirRead], &c.st[DirWrite]
		if c.role == RoleClient {
			req, resp = resp, req
		}
		for i := range c.q {
			e := &c.q[i]
			if e.phantom || e.resp == respLostHead {
				continue
			}
			lostEnd, lostOK := uint64(0), false
			if i == 0 && e.resp == respLostBody {
				if lostEnd, lostOK = c.lostEnd(); !lostOK {
					continue
				}
			}
			ex := e.ex
			switch {
			case i > 0 || e.resp == respNone:
				ex.End, ex.Incomplete = t, IncompleteNoResponse
			case e.resp == respBody && resp.ph == phBody && resp.body.mode == bodyClose:
				ex.End = resp.last // complete: the body ends at close
			case e.resp == respBody:
				ex.End, ex.Incomplete = resp.last, IncompleteRespBody
			case e.resp == respLostBody:
				ex.End, ex.Incomplete = lostEnd, IncompleteLostSync
			default: // respHead
				ex.End, ex.Incomplete = resp.last, IncompleteRespHead
			}
			c.emit(ex)
		}
		if req.ph == phHead && !c.poisoned {
			c.problem(Truncated)
		}
	}
	c.stop(stateClosed)
	return c.result()
}

// Idle flushes an exchange stuck behind a lost response: when the oldest
// request's response lost its framing and no response bytes came for at
// least after ns before now, it is emitted with IncompleteLostSync and End
// at its last response chunk, or dropped if its head was never parsed or
// that End cannot be proven. Later responses can then resynchronise with
// the next request. Call it periodically; it does nothing otherwise.
func (c *Conn) Idle(now, after uint64) (done []Exchange, problems []Problem) {
	c.out, c.probs = c.out[:0], c.probs[:0]
	if c.state != stateActive || c.role == RoleUnknown || len(c.q) == 0 {
		return nil, nil
	}
	resp := &c.st[DirWrite]
	if c.role == RoleClient {
		resp = &c.st[DirRead]
	}
	e := &c.q[0]
	if resp.ph != phLost || now < resp.last || now-resp.last < after {
		return nil, nil
	}
	if e.resp != respLostBody && e.resp != respLostHead {
		return nil, nil
	}
	if len(c.q) > 1 && c.q[1].pipelined {
		c.giveUp()
		return c.result()
	}
	c.popLost()
	return c.result()
}
