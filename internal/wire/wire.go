// Package wire holds the types every capture source and every protocol
// parser share: a chunk of a traced socket's bytes and its direction.
// Sources produce chunks; parsers (httpwire, h2wire, …) consume them.
package wire

// Dir is the direction of a chunk's bytes, seen from the traced process.
type Dir uint8

const (
	DirRead  Dir = iota // bytes the process read from the socket
	DirWrite            // bytes the process wrote to the socket
)

func (d Dir) String() string {
	switch d {
	case DirRead:
		return "read"
	case DirWrite:
		return "write"
	}
	return "invalid"
}

// Chunk is one successful read-side or write-side operation on a connection.
type Chunk struct {
	Dir  Dir
	Time uint64 // monotonic ns of the operation
	Len  int    // bytes the operation moved
	Data []byte // captured prefix: len(Data) <= Len; Data[len(Data):Len] is unknown (a gap)
	Goid uint64 // goroutine id of the caller (0 if not Go), carried through
	Tag  uint64 // opaque value from the source, carried through
}

// H2Preface is the connection preface every HTTP/2 client sends first
// (RFC 9113 section 3.4), gRPC's included.
const H2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// StartsH2Preface reports whether data starts with at least 8 bytes of the
// HTTP/2 client preface (the whole of it when data is longer).
func StartsH2Preface(data []byte) bool {
	n := min(len(data), len(H2Preface))
	return n >= 8 && string(data[:n]) == H2Preface[:n]
}

// Unhex decodes one hexadecimal digit, either case (percent-encoding,
// HTTP/1 chunk sizes, HPACK-decoded values).
func Unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
