package httpwire

import (
	"bytes"

	"github.com/weft-dev/weft/internal/wire"
)

// Start lines: recognising, incrementally, the first line of a message.

type lineKind uint8

const (
	lineInvalid  lineKind = iota // cannot be the start of an HTTP/1.x message
	linePartial                  // a consistent prefix of a start line; need more bytes
	lineRequest                  // a complete request line
	lineResponse                 // a complete status line
)

const maxMethodLen = 32

// tchar per RFC 9110 section 5.6.2.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// targetChar: bytes allowed in a request-target. Visible ASCII, plus bytes
// >= 0x80 that some clients send unescaped.
func targetChar(c byte) bool { return c > 0x20 && c != 0x7f }

// scanStartLine classifies the start of b, which is positioned where a
// message should begin. For lineRequest and lineResponse, n is the length of
// the line including its LF (a bare LF is accepted as a line end).
func scanStartLine(b []byte) (k lineKind, n int) {
	if prefixOf(b, "HTTP/") && len(b) < 5 {
		// "HTTP/" or a method such as "HTT..."; both are still possible.
		return linePartial, 0
	}
	if hasPrefix(b, "HTTP/") {
		return scanStatusLine(b)
	}
	return scanRequestLine(b)
}

// scanRequestLine: method SP request-target SP HTTP/1.[01] [CR] LF.
func scanRequestLine(b []byte) (lineKind, int) {
	i := 0
	for i < len(b) && tchar[b[i]] {
		i++
	}
	if i > maxMethodLen {
		return lineInvalid, 0
	}
	if i == len(b) {
		return linePartial, 0
	}
	if i == 0 || b[i] != ' ' {
		return lineInvalid, 0
	}
	i++
	t := i
	for i < len(b) && targetChar(b[i]) {
		i++
	}
	if i == len(b) {
		return linePartial, 0
	}
	if i == t || b[i] != ' ' {
		return lineInvalid, 0
	}
	i++
	k, n := scanVersion(b[i:])
	if k != lineRequest {
		return k, 0
	}
	return scanEOL(b, i+n, lineRequest)
}

// scanStatusLine: HTTP/1.[01] SP 3DIGIT [SP reason] [CR] LF, status >= 100.
func scanStatusLine(b []byte) (lineKind, int) {
	k, i := scanVersion(b)
	if k != lineRequest {
		return k, 0
	}
	for j := 0; j < 4; j++ {
		if i+j == len(b) {
			return linePartial, 0
		}
		c := b[i+j]
		if j == 0 && c != ' ' || j == 1 && (c < '1' || c > '9') || j > 1 && !isDigit(c) {
			return lineInvalid, 0
		}
	}
	i += 4
	if i == len(b) {
		return linePartial, 0
	}
	if b[i] == ' ' {
		i++
		for i < len(b) && b[i] != '\r' && b[i] != '\n' {
			if c := b[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return lineInvalid, 0
			}
			i++
		}
	}
	return scanEOL(b, i, lineResponse)
}

// scanVersion matches "HTTP/1.0" or "HTTP/1.1" at the start of b. It returns
// lineRequest (meaning "matched") and 8, linePartial, or lineInvalid.
func scanVersion(b []byte) (lineKind, int) {
	const v = "HTTP/1."
	for j := 0; j < len(v); j++ {
		if j == len(b) {
			return linePartial, 0
		}
		if b[j] != v[j] {
			return lineInvalid, 0
		}
	}
	if len(b) == len(v) {
		return linePartial, 0
	}
	if c := b[len(v)]; c != '0' && c != '1' {
		return lineInvalid, 0
	}
	return lineRequest, len(v) + 1
}

// scanEOL expects [CR] LF at b[i:].
func scanEOL(b []byte, i int, k lineKind) (lineKind, int) {
	if i < len(b) && b[i] == '\r' {
		i++
	}
	if i == len(b) {
		return linePartial, 0
	}
	if b[i] != '\n' {
		return lineInvalid, 0
	}
	return k, i + 1
}

// requestLine splits a complete, valid request line (from scanStartLine).
func requestLine(line []byte) (method, target, proto []byte) {
	line = trimEOL(line)
	sp1 := bytes.IndexByte(line, ' ')
	method, rest := line[:sp1], line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	return method, rest[:sp2], rest[sp2+1:]
}

// statusLine splits a complete, valid status line.
func statusLine(line []byte) (proto []byte, status int) {
	s := line[9:12]
	return line[:8], int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')
}

// isTLSRecord reports whether b starts like a TLS record header: content
// type 20-23, version major 3, minor 0-4.
func isTLSRecord(b []byte) bool {
	return len(b) >= 3 && b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 0x03 && b[2] <= 0x04
}

// h2Preface is the HTTP/2 preface's request-like first line.
var h2Preface = wire.H2Preface[:16]

// isH2Preface reports whether b starts with (a prefix of, if short) the
// HTTP/2 connection preface.
func isH2Preface(b []byte) bool {
	return len(b) >= 3 && prefixOf(b, h2Preface)
}

// resyncMethods are the methods a request must use to be trusted as a
// message start after lost bytes: a chunk may begin inside a request line
// ("T /x HTTP/1.1" from "GET /x ..."), and the tails of these methods are
// not methods themselves.
var resyncMethods = []string{
	"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
	"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "PURGE",
}

// resyncRequest reports whether b starts with a complete, valid request
// line using one of resyncMethods.
func resyncRequest(b []byte) bool {
	if k, _ := scanRequestLine(b); k != lineRequest {
		return false
	}
	m := b[:bytes.IndexByte(b, ' ')]
	for _, r := range resyncMethods {
		if string(m) == r {
			return true
		}
	}
	return false
}

// Interning of the common strings, so most exchanges allocate only their
// target and header values.
var commonStrings = []string{
	"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
	"HTTP/1.1", "HTTP/1.0",
}

func intern(b []byte) string {
	for _, s := range commonStrings {
		if string(b) == s {
			return s
		}
	}
	return string(b)
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// prefixOf reports whether b (possibly shorter than p) agrees with p on
// their common length.
func prefixOf(b []byte, p string) bool {
	n := min(len(b), len(p))
	return string(b[:n]) == p[:n]
}

func trimEOL(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
