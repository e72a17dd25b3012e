package h2wire

import (
	"bytes"
	"encoding/binary"

	"golang.org/x/net/http2/hpack"
)

// A connection open before tracing began (an agent restart, or tracing
// switched on for a running pod: gRPC connections live for hours) has no
// preface and no SETTINGS to start from, and its HPACK tables hold entries
// made before the first captured byte. Such a Conn (Limits.MidStream):
//
//   - syncs each direction on the first chunk that starts at a frame
//     boundary (FramesAt); chunks before it are skipped (Unsynced, once);
//   - decodes header blocks with a decoder whose table starts full of
//     placeholders: an entry with an empty name and value for every 32
//     bytes of the default 4,096-byte table (32 bytes being the smallest
//     entry). Entries made after the sync are real and newest, so their
//     indexes are right; an index past them reaches a placeholder and gives
//     a field of unknown name (Stream.Unknown). Since no real entry is
//     smaller than a placeholder, the placeholders left are at least as
//     many as the unknown real entries, so every index the encoder uses
//     resolves; once new entries have pushed all placeholders out, every
//     index resolves to the entry the encoder meant (though a name taken
//     from an unknown entry, as a changing grpc-timeout takes its
//     predecessor's, stays unknown). An encoder with a larger table than 4,096 bytes may
//     index past the placeholders: that block fails (HPACKError);
//   - learns its role from the first decoded block: :method on the
//     requests' side, :status on the responses'.

// placeholders fill the default dynamic table with the smallest entries.
const placeholders = 4096 / 32

// seedBlock inserts the placeholders: each is a literal with incremental
// indexing, new name, of an empty name and an empty value.
var seedBlock = bytes.Repeat([]byte{0x40, 0x00, 0x00}, placeholders)

// newMidDecoder returns an HPACK decoder for a direction picked up
// mid-life, its table seeded with placeholders.
func newMidDecoder(s *dir, l Limits) *hpack.Decoder {
	d := newDecoder(s, l)
	_, err := d.Write(seedBlock)
	if err == nil {
		err = d.Close()
	}
	if err != nil {
		panic("h2wire: seeding an HPACK table: " + err.Error()) // a constant input: a bug
	}
	s.blk.reset(l.MaxHeaderListBytes)
	return d
}

// flagsOf are the flags each frame type defines; a frame sent by a real
// peer sets no other (RFC 9113 says to ignore them, so they are not
// invalid, but they are not what a sync point looks like).
var flagsOf = [...]uint8{
	frameData:         flagEndStream | flagPadded,
	frameHeaders:      flagEndStream | flagEndHeaders | flagPadded | flagPriority,
	framePriority:     0,
	frameRSTStream:    0,
	frameSettings:     flagAck,
	framePushPromise:  flagEndHeaders | flagPadded,
	framePing:         flagAck,
	frameGoAway:       0,
	frameWindowUpdate: 0,
	frameContinuation: flagEndHeaders,
}

// maxSyncFrame bounds the frame length a sync point may show: larger than
// any SETTINGS_MAX_FRAME_SIZE common implementations announce (16 KiB by
// default, 1 MiB for Go's server), and small enough that text (HTTP/1)
// and TLS records fail.
const maxSyncFrame = 1 << 20

// FramesAt reports whether one chunk of a connection found mid-life
// starts at an HTTP/2 frame boundary: the frame headers in its captured
// bytes (data, of the chunk's n bytes) are valid and chain to exactly its
// end, or, after two, past it; or the chunk is one frame header alone, of a
// frame no longer than the default SETTINGS_MAX_FRAME_SIZE. A
// chunk that ends inside a frame header, or starts with a CONTINUATION, is
// no sync point.
func FramesAt(data []byte, n int) bool {
	if n <= 0 {
		return false
	}
	if len(data) > n {
		data = data[:n]
	}
	var chain dir // header-block state along the chain, for checkFrame
	pos, seen := 0, 0
	lone := n == frameHeaderLen // weak evidence: one header, no payload
	for pos < len(data) {
		if pos+frameHeaderLen > len(data) {
			return false
		}
		h := data[pos : pos+frameHeaderLen]
		f := frameHdr{
			length: uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2]),
			typ:    h[3],
			flags:  h[4],
			sid:    binary.BigEndian.Uint32(h[5:]),
		}
		if f.typ > frameContinuation || f.flags&^flagsOf[f.typ] != 0 || f.sid&0x80000000 != 0 ||
			f.length > maxSyncFrame || checkFrame(&chain, f) != 0 || (lone && f.length > defaultFrameSize) {
			return false
		}
		switch f.typ {
		case frameHeaders, framePushPromise:
			chain.blkOpen, chain.blkSid = !f.has(flagEndHeaders), f.sid
		case frameContinuation:
			chain.blkOpen = !f.has(flagEndHeaders)
		}
		seen++
		pos += frameHeaderLen + int(f.length)
	}
	// A chunk of exactly one frame header is how Go's HTTP/2 server reads
	// (the header, then the payload, each with its own read).
	return seen > 0 && (pos == n || (pos > n && (seen >= 2 || lone)))
}

// seek looks for direction d's first frame boundary in a chunk of a
// connection found mid-life: it reports whether the chunk starts at one,
// and then makes the direction's decoder.
func (c *Conn) seek(d Dir, data []byte, n int) bool {
	s := &c.d[d]
	if !FramesAt(data, n) {
		if !s.skipped {
			s.skipped = true
			c.problem(Unsynced)
		}
		return false
	}
	s.mode = sniffDone
	s.dec = newMidDecoder(s, c.lim)
	return true
}

// learnRole fixes the role of a connection found mid-life from its first
// decoded header block, on direction s: a request's (:method) is read by a
// server; a response's (:status) is written by one. It reports whether
// the role is known.
func (c *Conn) learnRole(s *dir) bool {
	if c.role != RoleUnknown {
		return true
	}
	read := s == &c.d[DirRead]
	switch {
	case s.blk.method != "":
		c.setRole(read)
	case s.blk.hasStatus:
		c.setRole(!read)
	default:
		return false
	}
	return true
}

// reseek sends a connection found mid-life back to looking for a frame
// boundary when its parsing failed before it opened any stream: the sync
// point was likely a false one (bytes that looked like a frame header). It
// reports whether it did; the problem is counted either way.
func (c *Conn) reseek(p Problem) bool {
	if !c.lim.MidStream || c.firstOpened != 0 || p == NotHTTP2 {
		return false
	}
	c.problem(p)
	c.role = RoleUnknown
	for i := range c.d {
		c.d[i] = dir{mode: sniffSeek, maxFrame: maxFrameSize, skipped: true}
	}
	return true
}

// fromStart turns a Conn made for a connection found mid-life, neither of
// whose directions has synced yet, into one traced from its start: its
// next chunk holds the client preface.
func (c *Conn) fromStart() {
	c.lim.MidStream = false
	for i := range c.d {
		c.d[i] = dir{maxFrame: defaultFrameSize}
	}
}
