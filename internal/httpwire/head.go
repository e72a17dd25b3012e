package httpwire

import (
	"bytes"
	"encoding/binary"

	"github.com/weft-dev/weft/internal/tracecontext"
)

// Heads: finding where a head ends and parsing its header fields.

// findHeadEnd returns the length of the head at the start of b, through the
// empty line that ends it, or -1 if b does not hold it all yet. Line ends
// before index from were already examined; the bytes before from are still
// used to recognise an empty line that straddles it.
func findHeadEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j
		if i >= 1 && b[i-1] == '\n' || i >= 2 && b[i-1] == '\r' && b[i-2] == '\n' {
			return i + 1
		}
	}
	return -1
}

// msgHead is a parsed head, request or response.
type msgHead struct {
	method, target, proto string
	status                int

	host, userAgent, traceparent, tracestate string
	sourceCluster                            string // X-Source-Cluster
	dupTraceparent                           bool
	b3                                       tracecontext.B3 // first of each B3 field

	contentLength int64 // -1 if absent
	te            bool  // Transfer-Encoding present
	chunked       bool  // ... and its final coding is chunked
	close         bool  // the connection closes after this message
	size          int   // head length in bytes
}

// Header fields whose value parseHead keeps.
const (
	fieldOther = iota
	fieldHost
	fieldUserAgent
	fieldTraceparent
	fieldTracestate
	fieldSourceCluster
	fieldB3
	fieldB3TraceID
	fieldB3SpanID
	fieldB3Sampled
	fieldB3Flags
	fieldContentLength
	fieldTransferEncoding
	fieldConnection
)

// parseHead parses a complete head (as delimited by findHeadEnd) whose start
// line scanStartLine classified as kind. It returns false if a header line is
// malformed or the framing fields are invalid or contradictory.
func parseHead(b []byte, kind lineKind, h *msgHead) bool {
	*h = msgHead{contentLength: -1, size: len(b)}
	_, n := scanStartLine(b)
	if kind == lineRequest {
		m, t, p := requestLine(b[:n])
		h.method, h.target, h.proto = intern(m), string(t), intern(p)
	} else {
		p, s := statusLine(b[:n])
		h.proto, h.status = intern(p), s
	}
	keepAlive, seenTraceparent := false, false
	last := -1 // field of the previous line, for obs-fold; -1: none yet
	for rest := b[n:]; ; {
		lf := bytes.IndexByte(rest, '\n')
		line := trimCR(rest[:lf])
		rest = rest[lf+1:]
		if len(line) == 0 {
			break
		}
		if !validFieldBytes(line) {
			return false
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Obsolete line folding: continues the previous field's value.
			if last < 0 || last >= fieldContentLength {
				return false
			}
			h.fold(last, trimOWS(line))
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return false
		}
		last = fieldOf(line[:colon])
		v := trimOWS(line[colon+1:])
		switch last {
		case fieldHost:
			if h.host == "" {
				h.host = string(v)
			}
		case fieldUserAgent:
			if h.userAgent == "" {
				h.userAgent = string(v)
			}
		case fieldTraceparent:
			if seenTraceparent {
				h.dupTraceparent = true
			} else {
				h.traceparent = string(v)
				seenTraceparent = true
			}
		case fieldTracestate:
			h.fold(fieldTracestate, v)
		case fieldSourceCluster:
			if h.sourceCluster == "" {
				h.sourceCluster = string(v)
			}
		case fieldB3, fieldB3TraceID, fieldB3SpanID, fieldB3Sampled, fieldB3Flags:
			h.setB3(last, v)
		case fieldContentLength:
			if !h.addContentLength(v) {
				return false
			}
		case fieldTransferEncoding:
			h.te = true
			h.chunked = finalCodingChunked(v)
		case fieldConnection:
			forEachElement(v, func(e []byte) {
				switch {
				case equalFold(e, "close"):
					h.close = true
				case equalFold(e, "keep-alive"):
					keepAlive = true
				}
			})
		}
	}
	if h.te {
		h.contentLength = -1 // Transfer-Encoding overrides Content-Length
	}
	if h.proto == "HTTP/1.0" && !keepAlive {
		h.close = true
	}
	return true
}

// fold appends v to a kept field: an obs-fold continuation (joined with a
// space) or another tracestate field (joined with a comma).
func (h *msgHead) fold(field int, v []byte) {
	if len(v) == 0 {
		return
	}
	var p *string
	sep := " "
	switch field {
	case fieldHost:
		p = &h.host
	case fieldUserAgent:
		p = &h.userAgent
	case fieldTraceparent:
		p = &h.traceparent
	case fieldTracestate:
		p, sep = &h.tracestate, ","
	case fieldSourceCluster:
		p = &h.sourceCluster
	default:
		return
	}
	if *p == "" {
		*p = string(v)
	} else {
		*p += sep + string(v)
	}
}

// setB3 keeps the first value of a B3 field.
func (h *msgHead) setB3(field int, v []byte) {
	var p *string
	switch field {
	case fieldB3:
		p = &h.b3.Single
	case fieldB3TraceID:
		p = &h.b3.TraceID
	case fieldB3SpanID:
		p = &h.b3.SpanID
	case fieldB3Sampled:
		p = &h.b3.Sampled
	default:
		p = &h.b3.Flags
	}
	if *p == "" {
		*p = string(v)
	}
}

// addContentLength merges one Content-Length field: a number or a list of
// identical numbers. Differing values are an error, as in RFC 9112 6.3.
func (h *msgHead) addContentLength(v []byte) bool {
	ok := true
	empty := true
	forEachElement(v, func(e []byte) {
		empty = false
		n, valid := parseLength(e)
		if !valid || h.contentLength >= 0 && h.contentLength != n {
			ok = false
			return
		}
		h.contentLength = n
	})
	return ok && !empty
}

// parseLength parses a decimal Content-Length of at most 18 digits.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func finalCodingChunked(v []byte) bool {
	var final []byte
	forEachElement(v, func(e []byte) { final = e })
	return equalFold(final, "chunked")
}

// forEachElement calls f for each non-empty element of a comma-separated
// list, without surrounding whitespace.
func forEachElement(v []byte, f func([]byte)) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			i = len(v)
		}
		if e := trimOWS(v[:i]); len(e) > 0 {
			f(e)
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
}

func fieldOf(name []byte) int {
	switch len(name) {
	case 2:
		if equalFold(name, "b3") {
			return fieldB3
		}
	case 4:
		if equalFold(name, "host") {
			return fieldHost
		}
	case 10:
		if equalFold(name, "user-agent") {
			return fieldUserAgent
		}
		if equalFold(name, "connection") {
			return fieldConnection
		}
		if equalFold(name, "tracestate") {
			return fieldTracestate
		}
		if equalFold(name, "x-b3-flags") {
			return fieldB3Flags
		}
	case 11:
		if equalFold(name, "traceparent") {
			return fieldTraceparent
		}
		if equalFold(name, "x-b3-spanid") {
			return fieldB3SpanID
		}
	case 12:
		if equalFold(name, "x-b3-traceid") {
			return fieldB3TraceID
		}
		if equalFold(name, "x-b3-sampled") {
			return fieldB3Sampled
		}
	case 14:
		if equalFold(name, "content-length") {
			return fieldContentLength
		}
	case 16:
		if equalFold(name, "x-source-cluster") {
			return fieldSourceCluster
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			return fieldTransferEncoding
		}
	}
	return fieldOther
}

// validFieldBytes rejects control bytes other than HTAB (a CR not followed by
// LF, NUL, ...) and DEL inside a header line. Eight bytes at a time while
// none is below 0x20 or DEL (a third of the agent's head parsing went to
// the byte loop); a word with one, an HTAB say, is looked at byte by byte.
func validFieldBytes(line []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(line); i += 8 {
		x := binary.LittleEndian.Uint64(line[i:])
		del := x ^ 0x7f*ones
		// Whether a byte is below 0x20, or is DEL (zero in del): the
		// classic has-less-than word tests, exact as a whole.
		if ((x-0x20*ones)&^x|(del-ones)&^del)&highs != 0 {
			break
		}
	}
	for _, c := range line[i:] {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func isToken(b []byte) bool {
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return len(b) > 0
}

// equalFold compares b with the lowercase ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}
