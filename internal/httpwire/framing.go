package httpwire

import "github.com/weft-dev/weft/internal/wire"

// Body framing: Content-Length, chunked, and close-delimited bodies.

type bodyMode uint8

const (
	bodyNone    bodyMode = iota
	bodyLength           // Content-Length bytes
	bodyChunked          // chunked transfer coding
	bodyClose            // everything until the connection closes
)

type chunkState uint8

const (
	csSize        chunkState = iota // chunk-size hex digits
	csExt                           // after the size: whitespace and extensions, up to the line end
	csSizeLF                        // CR seen at the end of the size line
	csData                          // chunk data; remain bytes left
	csDataCR                        // after chunk data: CRLF expected
	csDataLF                        // CR seen after chunk data
	csTrailer                       // at the start of a trailer line or the final empty line
	csTrailerLine                   // inside a trailer field line
	csTrailerLF                     // CR seen at the start of a line: the final LF expected
)

const (
	maxChunkDigits = 15   // chunk sizes below 2^60
	maxChunkLine   = 4096 // a chunk-size line with extensions, or one trailer line
)

// framer tracks where a body ends. The zero value is a body of no bytes.
type framer struct {
	mode   bodyMode
	cs     chunkState
	remain int64 // bodyLength: bytes left; bodyChunked: data bytes left in the chunk
	digits int   // chunk-size digits read
	line   int   // bytes in the current size or trailer line
}

func (f *framer) reset(m bodyMode, length int64) {
	*f = framer{mode: m, remain: length}
}

// feed consumes body bytes from the start of p. It returns the number of
// bytes consumed, whether the body ended with them (bytes after n belong to
// the next message), and false if the bytes are not a valid body.
func (f *framer) feed(p []byte) (n int, done, ok bool) {
	switch f.mode {
	case bodyNone:
		return 0, true, true
	case bodyLength:
		take := min(f.remain, int64(len(p)))
		f.remain -= take
		return int(take), f.remain == 0, true
	case bodyClose:
		return len(p), false, true
	}
	for i := 0; i < len(p); {
		if f.cs == csData {
			take := min(f.remain, int64(len(p)-i))
			i += int(take)
			if f.remain -= take; f.remain == 0 {
				f.cs = csDataCR
			}
			continue
		}
		c := p[i]
		i++
		switch done, ok := f.step(c); {
		case !ok:
			return i, false, false
		case done:
			return i, true, true
		}
	}
	return len(p), false, true
}

// step advances the chunked-coding state machine by one byte outside chunk
// data.
func (f *framer) step(c byte) (done, ok bool) {
	switch f.cs {
	case csSize:
		if d, isHex := wire.Unhex(c); isHex {
			if f.digits++; f.digits > maxChunkDigits {
				return false, false
			}
			f.remain = f.remain<<4 | int64(d)
			return false, true
		}
		if f.digits == 0 {
			return false, false
		}
		switch c {
		case ' ', '\t', ';':
			f.cs, f.line = csExt, f.digits+1
			return false, true
		}
		return false, f.endSizeLine(c)
	case csExt:
		if f.line++; f.line > maxChunkLine {
			return false, false
		}
		if c == '\r' || c == '\n' {
			return false, f.endSizeLine(c)
		}
		return false, c >= 0x20 && c != 0x7f || c == '\t'
	case csSizeLF:
		return false, c == '\n' && f.startData()
	case csDataCR:
		switch c {
		case '\r':
			f.cs = csDataLF
			return false, true
		case '\n':
			f.nextSize()
			return false, true
		}
		return false, false
	case csDataLF:
		f.nextSize()
		return false, c == '\n'
	case csTrailer:
		switch c {
		case '\r':
			f.cs = csTrailerLF
			return false, true
		case '\n':
			return true, true
		}
		f.cs, f.line = csTrailerLine, 1
		return false, c >= 0x20 && c != 0x7f
	case csTrailerLine:
		if f.line++; f.line > maxChunkLine {
			return false, false
		}
		if c == '\n' {
			f.cs = csTrailer
			return false, true
		}
		return false, c >= 0x20 && c != 0x7f || c == '\t' || c == '\r'
	case csTrailerLF:
		return c == '\n', c == '\n'
	}
	return false, false
}

// endSizeLine handles CR or LF ending a chunk-size line.
func (f *framer) endSizeLine(c byte) bool {
	switch c {
	case '\r':
		f.cs = csSizeLF
		return true
	case '\n':
		return f.startData()
	}
	return false
}

// startData follows a complete chunk-size line.
func (f *framer) startData() bool {
	if f.remain == 0 {
		f.cs = csTrailer // last-chunk
	} else {
		f.cs = csData
	}
	return true
}

func (f *framer) nextSize() {
	f.cs, f.remain, f.digits, f.line = csSize, 0, 0, 0
}

// skip accounts for n unknown bytes (a gap) at the current position. It
// returns how many of them belong to the body, whether the body ended with
// them, and false if the body's end can no longer be found (framing lost).
// When the body ends before n bytes, the rest belong to what follows.
func (f *framer) skip(n int64) (used int64, done, ok bool) {
	switch f.mode {
	case bodyNone:
		return 0, true, true
	case bodyLength:
		used = min(n, f.remain)
		f.remain -= used
		return used, f.remain == 0, true
	case bodyClose:
		return n, false, true
	}
	if f.cs != csData || n > f.remain {
		return 0, false, false
	}
	if f.remain -= n; f.remain == 0 {
		f.cs = csDataCR
	}
	return n, false, true
}
