package h2wire

import "github.com/weft-dev/weft/internal/wire"

// ClientPreface is the connection preface a client sends first (RFC 9113
// section 3.4), followed by a SETTINGS frame.
const ClientPreface = wire.H2Preface

type connState uint8

const (
	stActive   connState = iota
	stNotHTTP2           // ignored: not HTTP/2 from its start
	stGivenUp            // framing or HPACK state lost
	stClosed
)

// Conn reconstructs HTTP/2 streams from one TCP connection's syscalls. It
// is not safe for concurrent use.
type Conn struct {
	lim        Limits
	role       Role
	state      connState
	d          [2]dir // by Dir
	streams    map[uint32]*Stream
	lastOpened uint32 // highest request stream id seen
	// firstOpened is the first stream opened: on a connection found
	// mid-life, responses below it belong to requests never seen.
	firstOpened uint32
	// openTag is the tag of the chunk that opened the last stream
	// (openedIn: one was).
	openTag  uint64
	openedIn bool
	cur      chunkRef // the chunk being fed
	out      []Stream
	probs    []Problem
}

// NewConn returns a Conn for a connection traced from its start. Zero
// Limits fields take their defaults.
func NewConn(l Limits) *Conn {
	if l.MaxHeaderListBytes <= 0 {
		l.MaxHeaderListBytes = DefaultMaxHeaderListBytes
	}
	if l.MaxStreams <= 0 {
		l.MaxStreams = DefaultMaxStreams
	}
	c := &Conn{lim: l}
	for i := range c.d {
		c.d[i].maxFrame = defaultFrameSize
		if l.MidStream {
			// Whatever was announced is unknown: accept any size.
			c.d[i].mode, c.d[i].maxFrame = sniffSeek, maxFrameSize
		}
	}
	return c
}

// Size estimates the bytes c holds (for the connection table's memory
// budget): two HPACK decoders with their dynamic tables (4 KiB each) and
// partial fields, and the open streams.
func (c *Conn) Size() int {
	const base, perDecoder, perStream = 1024, 6 << 10, 512
	n := base + len(c.streams)*perStream
	for i := range c.d {
		if c.d[i].dec != nil {
			n += perDecoder
		}
	}
	return n
}

// Role returns the traced process's role, once known.
func (c *Conn) Role() Role { return c.role }

// Done reports whether the Conn ignores all further input (not HTTP/2,
// given up, or closed). A caller may then keep only a tombstone.
func (c *Conn) Done() bool { return c.state != stActive }

// Open returns the number of streams being tracked.
func (c *Conn) Open() int { return len(c.streams) }

// Feed processes one syscall's bytes. Chunks must be fed in syscall order
// across both directions. The returned slices are valid until the next call
// on c.
func (c *Conn) Feed(ch Chunk) (done []Stream, problems []Problem) {
	c.out, c.probs = c.out[:0], c.probs[:0]
	if c.state != stActive || ch.Dir > DirWrite || ch.Len <= 0 {
		return nil, nil
	}
	data := ch.Data
	if len(data) > ch.Len {
		data = data[:ch.Len]
	}
	gap := ch.Len - len(data)
	c.cur = chunkRef{ch.Time, ch.Goid, ch.Tag}
	s := &c.d[ch.Dir]
	if s.mode == sniffSeek && wire.StartsH2Preface(data) && c.d[1-ch.Dir].mode == sniffSeek {
		c.fromStart() // taken for one found mid-life, but it starts here
	}
	if s.mode == sniffSeek && !c.seek(ch.Dir, data, ch.Len) {
		return c.result()
	}
	if s.mode != sniffDone {
		data = c.sniff(ch.Dir, data)
	}
	c.bytes(s, data)
	if gap > 0 && c.state == stActive && s.mode != sniffSeek { // (seeking again: reseek)
		if s.mode != sniffDone {
			c.fail(NotHTTP2) // the preface is not all captured
		} else {
			c.gap(s, gap)
		}
	}
	return c.result()
}

// Close ends the connection at time t: open streams are emitted with
// IncompleteClosed. Later calls do nothing.
func (c *Conn) Close(t uint64) (done []Stream, problems []Problem) {
	c.out, c.probs = c.out[:0], c.probs[:0]
	if c.state == stActive {
		c.cur = chunkRef{time: t}
		c.finishAll(func(*Stream) bool { return true }, IncompleteClosed)
	}
	if c.state != stNotHTTP2 {
		c.state = stClosed
	}
	c.streams = nil
	return c.result()
}

func (c *Conn) result() ([]Stream, []Problem) {
	var done []Stream
	var problems []Problem
	if len(c.out) > 0 {
		done = c.out
	}
	if len(c.probs) > 0 {
		problems = c.probs
	}
	return done, problems
}

func (c *Conn) problem(p Problem) { c.probs = append(c.probs, p) }

// fail reports a problem that ends parsing: open streams are emitted with
// IncompleteLostSync (their fields so far are right, their end unknown).
func (c *Conn) fail(p Problem) {
	if c.reseek(p) {
		return
	}
	c.problem(p)
	c.finishAll(func(*Stream) bool { return true }, IncompleteLostSync)
	c.streams = nil
	c.state = stGivenUp
	if p == NotHTTP2 {
		c.state = stNotHTTP2
	}
	for i := range c.d {
		c.d[i].dec = nil // release the dynamic tables
	}
}

// sniff checks the first bytes of direction d: the client preface on the
// client-to-server side, a SETTINGS frame (checked by beginFrame) on the
// other. It returns the bytes after the preface.
func (c *Conn) sniff(d Dir, p []byte) []byte {
	s := &c.d[d]
	if len(p) == 0 {
		return p
	}
	if s.mode == sniffNone {
		wantPreface := p[0] == ClientPreface[0]
		if c.role != RoleUnknown {
			wantPreface = c.d[d].isReq
		}
		if !wantPreface {
			s.mode, s.first = sniffDone, true
			return p
		}
		s.mode = sniffPreface
	}
	k := min(len(p), len(ClientPreface)-s.sn)
	if string(p[:k]) != ClientPreface[s.sn:s.sn+k] {
		c.fail(NotHTTP2)
		return nil
	}
	s.sn += k
	if s.sn == len(ClientPreface) {
		s.mode, s.first = sniffDone, true
		if c.role == RoleUnknown {
			c.setRole(d == DirRead)
		}
	}
	return p[k:]
}

// setRole fixes the role: server when the traced process reads requests.
func (c *Conn) setRole(server bool) {
	c.role = RoleClient
	if server {
		c.role = RoleServer
	}
	for d := range c.d {
		s := &c.d[d]
		s.isReq = (Dir(d) == DirRead) == server
		if !c.lim.MidStream { // else made at each direction's sync (seek)
			s.dec = newDecoder(s, c.lim)
		}
	}
}
