package h2wire

import (
	"encoding/binary"

	"golang.org/x/net/http2/hpack"
)

// Frame types and flags (RFC 9113 section 6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	frameHeaderLen   = 9
	defaultFrameSize = 1 << 14
	maxFrameSize     = 1<<24 - 1

	settingHeaderTableSize = 0x1
	settingMaxFrameSize    = 0x5
)

// chunkRef identifies the chunk an event happened in.
type chunkRef struct{ time, goid, tag uint64 }

type frameHdr struct {
	length uint32
	typ    uint8
	flags  uint8
	sid    uint32
}

func (f frameHdr) has(flag uint8) bool { return f.flags&flag != 0 }

// sniffMode is how a direction's first bytes are checked.
type sniffMode uint8

const (
	sniffNone    sniffMode = iota // no byte seen yet
	sniffPreface                  // matching the client preface
	sniffDone                     // framing (the first frame must be SETTINGS)
	sniffSeek                     // found mid-life: waiting for a chunk that starts at a frame boundary
)

// dir is one direction of a connection: a frame parser over a byte stream
// with gaps, and the HPACK decoder of the peer that sends those frames.
type dir struct {
	mode  sniffMode
	sn    int  // preface bytes matched
	isReq bool // carries client-to-server frames (known once the role is)
	first bool // the next frame is the direction's first
	// skipped: a chunk before the first frame boundary was skipped
	// (found mid-life; Unsynced reported).
	skipped bool

	hdr        [frameHeaderLen]byte
	hn         int // header bytes collected
	frameStart chunkRef
	inPayload  bool
	f          frameHdr
	off        uint32 // payload bytes consumed

	// Payload prefix: HEADERS/PUSH_PROMISE pad length and priority or
	// promised id, RST_STREAM and GOAWAY fixed fields, a SETTINGS entry.
	pre      [8]byte
	preLen   uint32 // header frames: preamble length before the fragment
	fragEnd  uint32 // header frames: fragment end (payload minus padding)
	padLen   uint32 // DATA: pad length when padKnown
	padKnown bool

	// maxFrame is the largest frame this direction may carry: the
	// receiver's SETTINGS_MAX_FRAME_SIZE (the largest announced, leniently).
	maxFrame uint32
	dec      *hpack.Decoder
	blk      block
	blkOpen  bool // a header block awaits CONTINUATION
	blkSid   uint32
	blkEnd   bool // END_STREAM on the block's HEADERS frame
	blkPush  bool // the block is a PUSH_PROMISE's
	blkStart chunkRef
}

// bytes parses captured bytes of direction s.
func (c *Conn) bytes(s *dir, p []byte) {
	for len(p) > 0 && c.state == stActive && s.mode == sniffDone {
		if !s.inPayload {
			if s.hn == 0 {
				s.frameStart = c.cur
			}
			k := copy(s.hdr[s.hn:], p)
			s.hn += k
			p = p[k:]
			if s.hn == frameHeaderLen {
				c.beginFrame(s)
			}
			continue
		}
		k := len(p)
		if rem := s.f.length - s.off; uint32(k) > rem {
			k = int(rem)
		}
		c.payload(s, p[:k])
		p = p[k:]
		s.off += uint32(k)
		if s.off == s.f.length && c.state == stActive {
			c.endFrame(s)
		}
	}
}

// gap skips n bytes of direction s that were not captured.
func (c *Conn) gap(s *dir, n int) {
	for n > 0 && c.state == stActive && s.mode == sniffDone {
		if !s.inPayload {
			c.fail(LostSync)
			return
		}
		k := uint32(n)
		if rem := s.f.length - s.off; k > rem {
			k = rem
		}
		c.payloadGap(s, k)
		n -= int(k)
		s.off += k
		if s.off == s.f.length && c.state == stActive {
			c.endFrame(s)
		}
	}
}

// beginFrame checks a complete frame header and prepares its payload.
func (c *Conn) beginFrame(s *dir) {
	h := s.hdr[:]
	f := frameHdr{
		length: uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2]),
		typ:    h[3],
		flags:  h[4],
		sid:    binary.BigEndian.Uint32(h[5:]) & 0x7fffffff,
	}
	s.f, s.hn, s.off, s.inPayload = f, 0, 0, true
	s.preLen, s.fragEnd, s.padLen, s.padKnown = 0, 0, 0, false
	if s.first {
		s.first = false
		if f.typ != frameSettings || f.has(flagAck) || f.sid != 0 || f.length%6 != 0 {
			c.fail(NotHTTP2)
			return
		}
		if c.role == RoleUnknown {
			c.setRole(s == &c.d[DirWrite]) // SETTINGS written first: the server preface
		}
	}
	if f.length > s.maxFrame {
		c.fail(FrameTooLarge)
		return
	}
	if p := checkFrame(s, f); p != 0 {
		c.fail(p)
		return
	}
	switch f.typ {
	case frameHeaders, framePushPromise:
		if f.has(flagPadded) {
			s.preLen++
		}
		if f.typ == framePushPromise {
			s.preLen += 4
		} else if f.has(flagPriority) {
			s.preLen += 5
		}
		if s.preLen > f.length {
			c.fail(ProtocolError)
			return
		}
		s.fragEnd = f.length
		s.blk.reset(c.lim.MaxHeaderListBytes)
		s.blkOpen, s.blkSid, s.blkStart = true, f.sid, s.frameStart
		s.blkEnd = f.typ == frameHeaders && f.has(flagEndStream)
		s.blkPush = f.typ == framePushPromise
	case frameContinuation:
		s.fragEnd = f.length
	}
	if f.length == 0 {
		c.endFrame(s)
	}
}

// checkFrame returns the problem with a frame header, or 0.
func checkFrame(s *dir, f frameHdr) Problem {
	if s.blkOpen != (f.typ == frameContinuation) || (s.blkOpen && f.sid != s.blkSid) {
		return ProtocolError // a header block must continue, on its stream, or none be open
	}
	switch f.typ {
	case frameData, frameHeaders, framePriority, frameRSTStream, framePushPromise, frameContinuation:
		if f.sid == 0 {
			return ProtocolError
		}
	case frameSettings, framePing, frameGoAway:
		if f.sid != 0 {
			return ProtocolError
		}
	}
	bad := false
	switch f.typ {
	case frameData:
		bad = f.has(flagPadded) && f.length < 1
	case framePriority:
		bad = f.length != 5
	case frameRSTStream, frameWindowUpdate:
		bad = f.length != 4
	case frameSettings:
		bad = f.length%6 != 0 || (f.has(flagAck) && f.length != 0)
	case framePing:
		bad = f.length != 8
	case frameGoAway:
		bad = f.length < 8
	}
	if bad {
		return ProtocolError
	}
	return 0
}

// payload handles captured payload bytes p, starting at offset s.off.
func (c *Conn) payload(s *dir, p []byte) {
	o := s.off
	switch s.f.typ {
	case frameData:
		if o == 0 && s.f.has(flagPadded) {
			s.padLen, s.padKnown = uint32(p[0]), true
		}
	case frameHeaders, framePushPromise, frameContinuation:
		c.fragment(s, o, p)
	case frameRSTStream, frameGoAway:
		if o < 8 {
			copy(s.pre[o:8], p)
		}
	case frameSettings:
		for len(p) > 0 {
			k := copy(s.pre[o%6:6], p)
			p, o = p[k:], o+uint32(k)
			if o%6 == 0 {
				c.setting(s, binary.BigEndian.Uint16(s.pre[:2]), binary.BigEndian.Uint32(s.pre[2:6]))
			}
		}
	}
}

// fragment handles header-frame payload bytes p at offset o: preamble,
// then the header block fragment (fed to HPACK), then padding.
func (c *Conn) fragment(s *dir, o uint32, p []byte) {
	for len(p) > 0 && c.state == stActive {
		switch {
		case o < s.preLen:
			k := copy(s.pre[o:s.preLen], p)
			p, o = p[k:], o+uint32(k)
			if o == s.preLen && s.f.has(flagPadded) && s.f.typ != frameContinuation {
				pad := uint32(s.pre[0])
				if pad > s.f.length-s.preLen {
					c.fail(ProtocolError)
					return
				}
				s.fragEnd = s.f.length - pad
			}
		case o < s.fragEnd:
			k := min(uint32(len(p)), s.fragEnd-o)
			if _, err := s.dec.Write(p[:k]); err != nil {
				if err == hpack.ErrStringLength {
					c.fail(HeaderTooLarge)
				} else {
					c.fail(HPACKError)
				}
				return
			}
			p, o = p[k:], o+k
		default:
			return // padding
		}
	}
}

// payloadGap handles n uncaptured payload bytes starting at offset s.off.
func (c *Conn) payloadGap(s *dir, n uint32) {
	o := s.off
	switch s.f.typ {
	case frameData:
		if o == 0 && s.f.has(flagPadded) {
			s.padKnown = false
		}
	case frameHeaders, framePushPromise, frameContinuation:
		if o < s.fragEnd {
			c.fail(HPACKError) // the shared dynamic table can no longer be trusted
		}
	case frameRSTStream, frameGoAway:
		if o < 8 {
			c.fail(LostSync)
		}
	case frameSettings:
		// A setting may be lost: accept whatever the peer may have announced.
		c.setting(s, settingHeaderTableSize, maxTableSize)
		c.setting(s, settingMaxFrameSize, maxFrameSize)
	}
}

// setting applies a SETTINGS entry sent in direction s: it constrains the
// frames and HPACK encoding of the other direction. Values only grow, so
// that a change in flight never rejects valid input.
func (c *Conn) setting(s *dir, id uint16, v uint32) {
	o := &c.d[DirRead]
	if s == o {
		o = &c.d[DirWrite]
	}
	switch id {
	case settingHeaderTableSize:
		if o.dec != nil {
			o.dec.SetAllowedMaxDynamicTableSize(min(max(v, 4096), maxTableSize))
		}
	case settingMaxFrameSize:
		if v > o.maxFrame {
			o.maxFrame = min(v, maxFrameSize)
		}
	}
}

// endFrame acts on a frame whose payload is complete.
func (c *Conn) endFrame(s *dir) {
	f := s.f
	s.inPayload = false
	switch f.typ {
	case frameData:
		n := int64(f.length)
		if f.has(flagPadded) {
			n-- // pad length byte
			if s.padKnown {
				if s.padLen > uint32(n) {
					c.fail(ProtocolError)
					return
				}
				n -= int64(s.padLen)
			}
		}
		c.data(s, f, n)
	case frameHeaders, framePushPromise, frameContinuation:
		if f.has(flagEndHeaders) {
			c.endBlock(s)
		}
	case frameRSTStream:
		c.reset(f.sid, binary.BigEndian.Uint32(s.pre[:4]))
	case frameGoAway:
		if !s.isReq && c.role != RoleUnknown {
			c.goAway(binary.BigEndian.Uint32(s.pre[:4]) & 0x7fffffff)
		}
	}
}
