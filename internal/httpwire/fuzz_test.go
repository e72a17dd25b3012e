package httpwire

import (
	"strings"
	"testing"
)

// FuzzConn feeds arbitrary bytes, cut into chunks of both directions with
// gaps as ctrl dictates, and checks that nothing panics, memory stays
// bounded and every exchange is sane.
//
// ctrl is read in pairs (op, size): op bit 0 is the direction, bit 1 a gap
// of (op>>4)*700 bytes hiding the data that follows, op&0x0c == 0x0c an Idle
// call instead of a chunk.
func FuzzConn(f *testing.F) {
	f.Add([]byte(get1+ok5+post5+nf), []byte{0, byte(len(get1)), 1, byte(len(ok5)), 0, 20, 0, 40, 1, 255}, false)
	f.Add([]byte(get1+get2+ok5+ok0), []byte{0, 255, 1, 3, 1, 255}, false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+get1), []byte{1, 60, 0, 255}, true)
	f.Add([]byte(post5+"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nbody"), []byte{0, 30, 0x32, 10, 1, 255, 0x0c, 1}, false)
	f.Add([]byte("\x16\x03\x01\x00\x05hello"), []byte{0, 255}, false)
	f.Add([]byte("GET /ws HTTP/1.1\r\n\r\nHTTP/1.1 101 Switching\r\n\r\n"), []byte{0, 20, 1, 255}, true)
	f.Fuzz(func(t *testing.T, data, ctrl []byte, mid bool) {
		l := Limits{MaxHeaderBytes: 256, MaxPending: 4, MidStream: mid}
		c := NewConn(l)
		now := uint64(0)
		var all []Exchange
		check := func(ex []Exchange, pr []Problem) {
			for _, p := range pr {
				if p == 0 || p >= numProblems {
					t.Fatalf("bad problem %d", p)
				}
			}
			for _, e := range ex {
				checkSane(t, c, e, now)
			}
			all = append(all, ex...)
			checkInvariants(t, c)
		}
		for i := 0; i+1 < len(ctrl); i += 2 {
			op, size := ctrl[i], int(ctrl[i+1])
			now += 10
			if op&0x0c == 0x0c {
				check(c.Idle(now, uint64(size)))
				continue
			}
			n := min(size, len(data))
			ch := Chunk{Dir: Dir(op & 1), Time: now, Data: data[:n], Len: n, Goid: 1, Tag: now}
			data = data[n:]
			if op&2 != 0 {
				gap := int(op>>4) * 700
				ch.Len += gap
				data = data[min(gap, len(data)):]
			}
			check(c.Feed(ch))
		}
		if len(data) > 0 {
			now += 10
			check(c.Feed(Chunk{Dir: DirRead, Time: now, Data: data, Len: len(data)}))
		}
		now += 10
		check(c.Close(now))
		for i := 1; i < len(all); i++ {
			if all[i].Start < all[i-1].Start {
				t.Fatalf("exchanges out of order: %s", dump(all))
			}
		}
	})
}

func checkSane(t *testing.T, c *Conn, e Exchange, now uint64) {
	t.Helper()
	bad := func(why string) { t.Fatalf("%s: %+v", why, e) }
	if e.End < e.Start || e.End > now || e.Start == 0 {
		bad("times")
	}
	if e.Role == RoleUnknown || e.Role != c.Role() {
		bad("role")
	}
	if !isToken([]byte(e.Req.Method)) || e.Req.Target == "" || strings.ContainsAny(e.Req.Target, " \r\n") {
		bad("request line")
	}
	if e.Req.Proto != "HTTP/1.0" && e.Req.Proto != "HTTP/1.1" {
		bad("request proto")
	}
	if e.Req.BodyBytes < 0 || e.Resp.BodyBytes < 0 || e.Req.ContentLength < -1 || e.Resp.ContentLength < -1 {
		bad("lengths")
	}
	if e.Req.HeaderBytes <= 0 || e.Req.HeaderBytes > c.lim.MaxHeaderBytes || e.Resp.HeaderBytes > c.lim.MaxHeaderBytes {
		bad("header bytes")
	}
	switch e.Incomplete {
	case "":
		if e.Resp.Status < 200 && e.Resp.Status != 101 || e.Resp.Status > 999 || e.Resp.Proto == "" {
			bad("complete exchange without a final response")
		}
	case IncompleteNoResponse:
		if e.Resp.Status != 0 {
			bad("status without response")
		}
	case IncompleteRespHead:
	case IncompleteRespBody, IncompleteLostSync:
		if e.Resp.Status < 200 {
			bad("lost body without head")
		}
	default:
		bad("incomplete reason")
	}
}

// FuzzRoundTrip generates valid traffic, cuts it into random chunks (with
// gaps only where framing survives them), and checks that every exchange is
// recovered exactly, with Start and End from the right chunks.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint8(0))
	f.Add([]byte("seed for a longer run"), uint8(3))
	f.Add([]byte{0xff, 0, 0x80}, uint8(6))
	f.Fuzz(func(t *testing.T, seed []byte, mode uint8) {
		r := &rng{b: seed}
		gaps := mode&4 != 0
		tr := newTraffic(r, 1+r.n(6), 400, mode&1 != 0, mode&2 != 0, func(w *wireBytes, from, to int) int {
			if !gaps || to-from < 2 || r.n(2) == 0 {
				return to - from
			}
			k := 1 + r.n(to-from-1)
			for i := from + k; i < to; i++ {
				if !w.gapOK[i] {
					return to - from
				}
			}
			return k
		})
		c := NewConn(Limits{})
		var got []Exchange
		for _, ch := range tr.chunks {
			ex, pr := c.Feed(ch)
			if len(pr) > 0 {
				t.Fatalf("problems %v at chunk %q", pr, ch.Data)
			}
			got = append(got, ex...)
		}
		ex, pr := c.Close(tr.end())
		if len(pr) > 0 {
			t.Fatalf("problems at close %v", pr)
		}
		got = append(got, ex...)
		if len(got) != len(tr.gen) {
			t.Fatalf("got %d exchanges, want %d:\n%s", len(got), len(tr.gen), dump(got))
		}
		for i, g := range tr.gen {
			e := got[i]
			start, end := tr.reqTime[g.reqStart], tr.respTime[g.respEnd-1]
			if e.Role != tr.role || e.Req.Method != g.method || e.Req.Target != g.target || e.Resp.Status != g.status ||
				e.Req.SourceCluster != g.sourceCluster ||
				e.Req.BodyBytes != g.reqBody || e.Resp.BodyBytes != g.respBody || e.Incomplete != "" ||
				e.Start != start || e.End != end || e.ReqGoid != start || e.RespGoid != tr.respTime[g.respStart] ||
				e.FirstInChunk != tr.reqFirst[g.reqStart] {
				t.Fatalf("exchange %d:\n%s want %+v (start %d end %d)", i, dump(got[i:i+1]), g, start, end)
			}
		}
	})
}

// FuzzLossy generates valid traffic, cuts it into random chunks and hides
// random suffixes of chunks (whole chunks too), as lost captures would;
// mode bit 0 plays a client, bit 1 pipelines all requests, bit 2 attaches
// mid-stream, the rest sets how often chunks lose bytes. The Conn may skip
// exchanges, but every exchange it emits must be right: the request's own
// response status and the right Start and End.
func FuzzLossy(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint8(0))
	f.Add([]byte("lossy seed"), uint8(1))
	f.Add([]byte{9, 9, 9, 9}, uint8(2))
	f.Add([]byte{4, 4}, uint8(4))
	f.Add([]byte{6, 6}, uint8(6))
	f.Fuzz(func(t *testing.T, seed []byte, mode uint8) {
		lossyRun(t, seed, mode, 2+int(mode>>3))
	})
}

var lossyProblems [numProblems]int

// lossyRun plays generated traffic with one chunk in lossEvery losing a
// random suffix, checks every emitted exchange, and returns how many
// exchanges were generated and emitted complete.
func lossyRun(t *testing.T, seed []byte, mode uint8, lossEvery int) (generated, complete int) {
	r := &rng{b: seed}
	tr := newTraffic(r, 1+r.n(8), 200, mode&1 != 0, mode&2 != 0, func(w *wireBytes, from, to int) int {
		if r.n(lossEvery) == 0 {
			return r.n(to - from)
		}
		return to - from
	})
	chunks := tr.chunks
	c := NewConn(Limits{})
	if mode&4 != 0 {
		// Attach mid-stream: the first chunks are never seen.
		c = NewConn(Limits{MidStream: true})
		chunks = chunks[r.n(len(chunks)):]
	}
	var got []Exchange
	for _, ch := range chunks {
		ex, pr := c.Feed(ch)
		for _, p := range pr {
			lossyProblems[p]++
		}
		debugf(t, "%v t=%d len=%d %q -> %v %s", ch.Dir, ch.Time, ch.Len, ch.Data, pr, dump(ex))
		got = append(got, ex...)
		checkInvariants(t, c)
	}
	ex, _ := c.Close(tr.end())
	got = append(got, ex...)
	seen := map[string]bool{}
	for _, e := range got {
		checkSane(t, c, e, tr.end())
		var g *genExchange
		for i := range tr.gen {
			if tr.gen[i].target == e.Req.Target {
				g = &tr.gen[i]
			}
		}
		if g == nil || seen[g.target] || e.Req.Method != g.method || e.Req.SourceCluster != g.sourceCluster {
			t.Fatalf("invented or repeated exchange:\n%s", dump([]Exchange{e}))
		}
		seen[g.target] = true
		start, end := tr.reqTime[g.reqStart], tr.respTime[g.respEnd-1]
		if e.Start != start || e.ReqGoid != start || e.FirstInChunk != tr.reqFirst[g.reqStart] {
			t.Fatalf("wrong start:\n%s want %d", dump([]Exchange{e}), start)
		}
		if e.Resp.Status != 0 && e.Resp.Status != g.status {
			t.Fatalf("wrong status:\n%s want %d", dump([]Exchange{e}), g.status)
		}
		switch e.Incomplete {
		case "":
			if e.End != end || e.RespGoid != tr.respTime[g.respStart] || e.Resp.BodyBytes != g.respBody {
				t.Fatalf("wrong end:\n%s want %d, body %d", dump([]Exchange{e}), end, g.respBody)
			}
			complete++
		case IncompleteLostSync:
			if e.End != end || e.RespGoid != tr.respTime[g.respStart] {
				t.Fatalf("wrong end after loss:\n%s want %d", dump([]Exchange{e}), end)
			}
		}
	}
	return len(tr.gen), complete
}
