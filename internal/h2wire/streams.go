package h2wire

import (
	"slices"
	"strings"
)

// requestBlock acts on a complete client-to-server header block: a new
// request opens a stream; request trailers change nothing.
func (c *Conn) requestBlock(sid uint32, b *block, start chunkRef) {
	if c.streams[sid] != nil || (b.method == "" && !b.tooLarge) || sid&1 == 0 || sid <= c.lastOpened {
		return // trailers, or a block for a stream already over
	}
	c.lastOpened = sid
	if c.firstOpened == 0 {
		c.firstOpened = sid
	}
	first := !c.openedIn || c.openTag != start.tag
	c.openedIn, c.openTag = true, start.tag
	if b.tooLarge {
		c.problem(HeaderTooLarge)
		return
	}
	if len(c.streams) >= c.lim.MaxStreams {
		c.problem(TooManyStreams)
		return
	}
	st := &Stream{
		Role: c.role, ID: sid,
		Method: b.method, Path: b.path, Authority: b.authority, Scheme: b.scheme,
		ContentType: b.contentType, UserAgent: b.userAgent,
		Traceparent: b.traceparent, Tracestate: b.tracestate, SourceCluster: b.sourceCluster, B3: b.b3,
		Unknown:    b.unknown,
		GRPC:       strings.HasPrefix(b.contentType, "application/grpc"),
		GRPCStatus: -1,
		Start:      start.time, StartGoid: start.goid, StartTag: start.tag,
		FirstInChunk: first,
	}
	if c.streams == nil {
		c.streams = make(map[uint32]*Stream)
	}
	c.streams[sid] = st
}

// responseBlock acts on a complete server-to-client header block: the
// response head (informational ones skipped), trailers, or both at once.
func (c *Conn) responseBlock(sid uint32, b *block, endStream bool) {
	st := c.streams[sid]
	if st == nil {
		if sid&1 == 1 && !(c.lim.MidStream && (c.firstOpened == 0 || sid < c.firstOpened)) {
			c.problem(Orphan) // (on a connection found mid-life, not one whose request came before the sync)
		}
		return
	}
	if b.tooLarge {
		// Fields past the limit (grpc-status...) are unknown: drop it.
		delete(c.streams, sid)
		c.problem(HeaderTooLarge)
		return
	}
	if b.hasStatus && st.Status == 0 {
		code := parseStatus(b.status, 3)
		if code < 100 {
			delete(c.streams, sid)
			c.problem(ProtocolError)
			return
		}
		if code >= 200 {
			st.Status = code
		}
	}
	if b.hasGRPCStatus {
		st.GRPCStatus = parseStatus(b.grpcStatus, 10)
		st.GRPCMessage = percentDecode(b.grpcMessage)
	}
	if endStream {
		c.finish(st, "")
	}
}

// data counts a DATA frame's n payload bytes, and ends the stream on a
// response END_STREAM. Request DATA after the response ended is ignored.
func (c *Conn) data(s *dir, f frameHdr, n int64) {
	st := c.streams[f.sid]
	if st == nil {
		return
	}
	if s.isReq {
		st.ReqBytes += n
		return
	}
	st.RespBytes += n
	if f.has(flagEndStream) {
		c.finish(st, "")
	}
}

// reset ends a stream on RST_STREAM from either side.
func (c *Conn) reset(sid, code uint32) {
	if st := c.streams[sid]; st != nil {
		st.Reset, st.ResetCode = true, code
		c.finish(st, "")
	}
}

// goAway ends the streams the server will not process.
func (c *Conn) goAway(last uint32) {
	c.finishAll(func(st *Stream) bool { return st.ID > last }, IncompleteGoAway)
}

// finish emits st, ending in the current chunk, and forgets it.
func (c *Conn) finish(st *Stream, incomplete string) {
	st.End, st.EndGoid, st.Incomplete = c.cur.time, c.cur.goid, incomplete
	c.out = append(c.out, *st)
	delete(c.streams, st.ID)
}

// finishAll emits the open streams that match, in stream id order.
func (c *Conn) finishAll(match func(*Stream) bool, incomplete string) {
	var ended []*Stream
	for _, st := range c.streams {
		if match(st) {
			ended = append(ended, st)
		}
	}
	slices.SortFunc(ended, func(a, b *Stream) int { return int(a.ID) - int(b.ID) })
	for _, st := range ended {
		c.finish(st, incomplete)
	}
}
