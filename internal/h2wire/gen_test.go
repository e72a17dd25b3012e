package h2wire

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// side is one peer's byte stream and HPACK encoder in a built conversation.
type side struct {
	buf  bytes.Buffer
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

func newSide() *side {
	s := &side{}
	s.fr = http2.NewFramer(&s.buf, nil)
	s.fr.AllowIllegalWrites = true
	s.enc = hpack.NewEncoder(&s.hbuf)
	return s
}

func (s *side) encode(fields ...string) []byte {
	s.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		s.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(s.hbuf.Bytes())
}

// seg is one write: bytes [from, to) of one side's stream.
type seg struct {
	client   bool
	from, to int
}

// want is an expected stream plus where its Start and End come from.
type want struct {
	Stream
	hdrOff int // client stream offset of the request HEADERS frame's first byte
	endOff int // offset of the last byte of the ending frame (in endCli's stream)
	endCli bool
}

// conv builds an HTTP/2 conversation frame by frame.
type conv struct {
	cli, srv *side
	segs     []seg
	wants    map[uint32]*want
	order    []uint32
	// dataRanges are DATA payload byte ranges, per side (false: server).
	dataRanges map[bool][][2]int
	maxFrag    int  // split header blocks into fragments of at most this many bytes (0: never)
	pad        bool // pad HEADERS and DATA frames
}

func newConv() *conv {
	c := &conv{cli: newSide(), srv: newSide(), wants: map[uint32]*want{}, dataRanges: map[bool][][2]int{}}
	return c
}

func (c *conv) side(client bool) *side {
	if client {
		return c.cli
	}
	return c.srv
}

// write runs f on a side and records the bytes it wrote as one segment.
func (c *conv) write(client bool, f func(s *side)) (from, to int) {
	s := c.side(client)
	from = s.buf.Len()
	f(s)
	to = s.buf.Len()
	if to > from {
		c.segs = append(c.segs, seg{client, from, to})
	}
	return from, to
}

func (c *conv) start() {
	c.write(true, func(s *side) {
		s.buf.WriteString(ClientPreface)
		s.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	})
	c.write(false, func(s *side) {
		s.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 250})
		s.fr.WriteSettingsAck()
	})
	c.write(true, func(s *side) { s.fr.WriteSettingsAck() })
}

// headers writes a header block as HEADERS (+ CONTINUATION) frames.
func (c *conv) headers(client bool, id uint32, end bool, fields ...string) (from, to int) {
	return c.write(client, func(s *side) {
		blk := s.encode(fields...)
		first := blk
		if c.maxFrag > 0 && len(first) > c.maxFrag {
			first = blk[:c.maxFrag]
		}
		p := http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(first) == len(blk)}
		if c.pad {
			p.PadLength = 3
			p.Priority = http2.PriorityParam{StreamDep: 0, Weight: 7, Exclusive: true}
		}
		s.fr.WriteHeaders(p)
		for rest := blk[len(first):]; len(rest) > 0; {
			n := min(len(rest), max(c.maxFrag, 1))
			s.fr.WriteContinuation(id, n == len(rest), rest[:n])
			rest = rest[n:]
		}
	})
}

func (c *conv) req(id uint32, path string, end bool, extra ...string) {
	fields := append([]string{":method", "POST", ":scheme", "http", ":authority", "svc:8080", ":path", path,
		"content-type", "application/grpc", "user-agent", "grpc-go/1.0", "te", "trailers"}, extra...)
	from, _ := c.headers(true, id, end, fields...)
	w := &want{Stream: Stream{Role: RoleServer, ID: id, Method: "POST", Path: path, Authority: "svc:8080", Scheme: "http",
		ContentType: "application/grpc", UserAgent: "grpc-go/1.0", GRPC: true, GRPCStatus: -1}, hdrOff: from}
	for i := 0; i+1 < len(extra); i += 2 {
		switch extra[i] {
		case "traceparent":
			w.Traceparent = extra[i+1]
		case "tracestate":
			if w.Tracestate != "" {
				w.Tracestate += ","
			}
			w.Tracestate += extra[i+1]
		case "x-source-cluster":
			if w.SourceCluster == "" {
				w.SourceCluster = extra[i+1]
			}
		case "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags":
			dst := map[string]*string{"b3": &w.B3.Single, "x-b3-traceid": &w.B3.TraceID, "x-b3-spanid": &w.B3.SpanID,
				"x-b3-sampled": &w.B3.Sampled, "x-b3-flags": &w.B3.Flags}[extra[i]]
			if *dst == "" {
				*dst = strings.TrimSpace(extra[i+1])
			}
		}
	}
	c.wants[id] = w
	c.order = append(c.order, id)
}

// data writes a DATA frame of n payload bytes.
func (c *conv) data(client bool, id uint32, n int, end bool) {
	from, to := c.write(client, func(s *side) {
		p := bytes.Repeat([]byte{byte(id)}, n)
		if c.pad {
			s.fr.WriteDataPadded(id, end, p, []byte{0, 0})
		} else {
			s.fr.WriteData(id, end, p)
		}
	})
	pstart := from + 9
	if c.pad {
		pstart++
	}
	if n > 0 {
		c.dataRanges[client] = append(c.dataRanges[client], [2]int{pstart, pstart + n})
	}
	w := c.wants[id]
	if client {
		w.ReqBytes += int64(n)
	} else {
		w.RespBytes += int64(n)
		if end {
			w.endOff, w.endCli = to-1, false
		}
	}
}

func (c *conv) resp(id uint32, status int, end bool, extra ...string) {
	_, to := c.headers(false, id, end, append([]string{":status", fmt.Sprint(status), "content-type", "application/grpc"}, extra...)...)
	w := c.wants[id]
	if status >= 200 {
		w.Status = status
	}
	c.noteGRPC(w, extra)
	if end {
		w.endOff, w.endCli = to-1, false
	}
}

func (c *conv) trailers(id uint32, grpcStatus int, msg string) {
	_, to := c.headers(false, id, true, "grpc-status", fmt.Sprint(grpcStatus), "grpc-message", msg)
	w := c.wants[id]
	w.GRPCStatus, w.GRPCMessage = grpcStatus, percentDecode(msg)
	w.endOff, w.endCli = to-1, false
}

func (c *conv) noteGRPC(w *want, extra []string) {
	for i := 0; i+1 < len(extra); i += 2 {
		switch extra[i] {
		case "grpc-status":
			fmt.Sscan(extra[i+1], &w.GRPCStatus)
		case "grpc-message":
			w.GRPCMessage = percentDecode(extra[i+1])
		}
	}
}

func (c *conv) rst(client bool, id, code uint32) {
	_, to := c.write(client, func(s *side) { s.fr.WriteRSTStream(id, http2.ErrCode(code)) })
	w := c.wants[id]
	w.Reset, w.ResetCode = true, code
	w.endOff, w.endCli = to-1, client
}

// chunk is a scripted syscall: bytes [from, to) of one side, of which only
// [from, capTo) are captured.
type chunk struct {
	client          bool
	from, capTo, to int
}

// wholeChunks is one chunk per segment.
func (c *conv) wholeChunks() []chunk {
	var out []chunk
	for _, s := range c.segs {
		out = append(out, chunk{s.client, s.from, s.to, s.to})
	}
	return out
}

// randomChunks merges consecutive same-side segments at random and cuts
// the result at random offsets.
func (c *conv) randomChunks(r *rand.Rand) []chunk {
	var out []chunk
	for i := 0; i < len(c.segs); {
		s := c.segs[i]
		j := i + 1
		for j < len(c.segs) && c.segs[j].client == s.client && r.IntN(2) == 0 {
			s.to = c.segs[j].to
			j++
		}
		for s.from < s.to {
			n := 1 + r.IntN(min(s.to-s.from, 1+r.IntN(64)))
			if r.IntN(4) == 0 {
				n = s.to - s.from
			}
			out = append(out, chunk{s.client, s.from, s.from + n, s.from + n})
			s.from += n
		}
		i = j
	}
	return out
}

// withGaps leaves uncaptured the tail of chunks that ends inside one DATA
// payload, with probability 1/2.
func (c *conv) withGaps(r *rand.Rand, chunks []chunk) []chunk {
	for i, ch := range chunks {
		for _, dr := range c.dataRanges[ch.client] {
			lo, hi := max(dr[0], ch.from), min(dr[1], ch.to)
			if hi == ch.to && lo < hi && r.IntN(2) == 0 {
				chunks[i].capTo = lo + r.IntN(hi-lo)
			}
		}
	}
	return chunks
}

// run feeds chunks to a Conn tracing the server (or the client) and
// returns the streams and problems, plus expected Start/End per chunk.
type runResult struct {
	streams []Stream
	probs   []Problem
	conn    *Conn
}

func (r runResult) count(p Problem) int {
	n := 0
	for _, q := range r.probs {
		if q == p {
			n++
		}
	}
	return n
}

func chunkTime(i int) uint64 { return uint64(i+1) * 10 }
func chunkGoid(i int) uint64 { return uint64(1000 + i) }

func (c *conv) run(t testing.TB, role Role, l Limits, chunks []chunk, close bool) runResult {
	t.Helper()
	conn := NewConn(l)
	var res runResult
	res.conn = conn
	for i, ch := range chunks {
		src := c.side(ch.client).buf.Bytes()
		d := DirRead
		if ch.client == (role == RoleClient) {
			d = DirWrite
		}
		st, pr := conn.Feed(Chunk{Dir: d, Time: chunkTime(i), Len: ch.to - ch.from, Data: src[ch.from:ch.capTo], Goid: chunkGoid(i), Tag: uint64(i)})
		res.streams = append(res.streams, st...)
		res.probs = append(res.probs, pr...)
		if conn.Open() > conn.lim.MaxStreams {
			t.Fatalf("%d open streams", conn.Open())
		}
	}
	if close {
		st, pr := conn.Close(chunkTime(len(chunks)))
		res.streams = append(res.streams, st...)
		res.probs = append(res.probs, pr...)
	}
	return res
}

// expect returns the wanted streams for a chunking, in emission order
// where it is determined (by End, then by order of ending in the script).
func (c *conv) expect(role Role, chunks []chunk) map[uint32]Stream {
	find := func(client bool, off int) int {
		for i, ch := range chunks {
			if ch.client == client && ch.from <= off && off < ch.to {
				return i
			}
		}
		panic("offset not in any chunk")
	}
	// The first stream a chunk opens: the one whose HEADERS starts first
	// in it.
	firstOff := map[int]int{}
	for _, w := range c.wants {
		i := find(true, w.hdrOff)
		if o, ok := firstOff[i]; !ok || w.hdrOff < o {
			firstOff[i] = w.hdrOff
		}
	}
	out := map[uint32]Stream{}
	for id, w := range c.wants {
		s := w.Stream
		s.Role = role
		i := find(true, w.hdrOff)
		s.Start, s.StartGoid, s.StartTag = chunkTime(i), chunkGoid(i), uint64(i)
		s.FirstInChunk = firstOff[i] == w.hdrOff
		j := find(w.endCli, w.endOff)
		s.End, s.EndGoid = chunkTime(j), chunkGoid(j)
		out[id] = s
	}
	return out
}

// check compares streams to the expectation exactly.
func check(t testing.TB, got []Stream, want map[uint32]Stream) {
	t.Helper()
	seen := map[uint32]bool{}
	for _, g := range got {
		if seen[g.ID] {
			t.Fatalf("stream %d emitted twice", g.ID)
		}
		seen[g.ID] = true
		w, ok := want[g.ID]
		if !ok {
			t.Fatalf("unexpected stream %+v", g)
		}
		if g != w {
			t.Fatalf("stream %d:\n got %+v\nwant %+v", g.ID, g, w)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("got %d streams, want %d", len(seen), len(want))
	}
}
