package h2wire

import (
	"github.com/weft-dev/weft/internal/tracecontext"
	"github.com/weft-dev/weft/internal/wire"
)

// Chunk is one send-side or recv-side operation (internal/wire), so one
// capture pipeline feeds every parser.
type Chunk = wire.Chunk

// Dir is the direction of a chunk, seen from the traced process.
type Dir = wire.Dir

const (
	DirRead  = wire.DirRead
	DirWrite = wire.DirWrite
)

// Role is the traced process's side of a connection.
type Role uint8

const (
	RoleUnknown Role = iota
	RoleServer       // read the client connection preface
	RoleClient       // wrote the client connection preface
)

func (r Role) String() string {
	switch r {
	case RoleServer:
		return "server"
	case RoleClient:
		return "client"
	}
	return "unknown"
}

// Stream is one HTTP/2 request stream, from its request HEADERS to the end
// of its response.
type Stream struct {
	Role Role
	ID   uint32
	// From the request header block: :method, :path, :authority, :scheme,
	// content-type, user-agent, traceparent, tracestate (first value of
	// each, except tracestate, whose values are joined with ",").
	Method, Path, Authority, Scheme string
	ContentType, UserAgent          string
	Traceparent, Tracestate         string
	GRPC                            bool   // content-type is application/grpc*
	Status                          int    // :status of the final response; 0 if none was seen
	GRPCStatus                      int    // grpc-status of the response; -1 if absent
	GRPCMessage                     string // grpc-message, percent-decoded
	// DATA payload bytes (padding excluded) seen each way while the stream
	// was tracked.
	ReqBytes, RespBytes int64
	// Start is the Time of the chunk holding the first byte of the request
	// HEADERS frame; End the Time of the chunk holding the last byte of the
	// response frame (or header block) carrying END_STREAM, or of the
	// RST_STREAM frame, or of the event that made the stream incomplete.
	Start, End         uint64
	StartGoid, EndGoid uint64 // Goid of those chunks (EndGoid 0 on Close)
	StartTag           uint64 // Tag of the Start chunk
	// FirstInChunk: the stream's HEADERS was the first to open a stream
	// in the Start chunk (streams opened after it in the same chunk, or
	// refused, are not): the one the kernel's IDs for that chunk are for.
	FirstInChunk bool
	Reset        bool   // ended by RST_STREAM, from either side
	ResetCode    uint32 // its error code
	Incomplete   string // "" or one of the Incomplete* reasons
	// SourceCluster is the first x-source-cluster field of the request:
	// the cluster a caller without weft says it runs in.
	SourceCluster string
	// B3 holds the request's first b3 and x-b3-* values (Zipkin's
	// context, as meshes send it), trimmed.
	B3 tracecontext.B3
	// Unknown: a field of the request's header block was a reference to
	// an HPACK table entry made before the connection was traced
	// (Limits.MidStream), so its name and value are unknown; the fields
	// above that it may have been are empty.
	Unknown bool
}

// Reasons a stream is emitted incomplete (Stream.Incomplete).
const (
	IncompleteClosed   = "connection closed"
	IncompleteGoAway   = "refused by goaway"
	IncompleteLostSync = "framing lost"
)

// Limits bound a Conn's memory. Zero fields take their defaults.
type Limits struct {
	// MaxHeaderListBytes bounds one decoded header block (RFC 9113 size:
	// name + value + 32 per field) and each HPACK string. Default 64 KiB.
	MaxHeaderListBytes int
	// MaxStreams bounds the open streams tracked. Default 1024.
	MaxStreams int
	// MidStream: the connection was open before tracing began. Its
	// directions are parsed from the first chunk that starts at a frame
	// boundary, with HPACK tables whose earlier entries are unknown (see
	// the package documentation).
	MidStream bool
}

const (
	DefaultMaxHeaderListBytes = 64 << 10
	DefaultMaxStreams         = 1024
	// maxTableSize caps the HPACK dynamic table a decoder accepts,
	// whatever the peer announces.
	maxTableSize = 64 << 10
)

// Problem is a reason data was skipped. Each is returned once, when it
// happens; callers count them by kind.
type Problem uint8

const (
	_              Problem = iota
	NotHTTP2               // no client preface where the connection starts (HTTP/1, TLS, opened before tracing); ignored from now on
	LostSync               // a frame header fell in a gap; the connection is given up
	HPACKError             // a header block fell in a gap or did not decode; the connection is given up
	FrameTooLarge          // a frame longer than the receiver's SETTINGS_MAX_FRAME_SIZE; the connection is given up
	ProtocolError          // invalid framing (CONTINUATION sequence, padding, frame sizes); the connection is given up
	HeaderTooLarge         // a header block over MaxHeaderListBytes; its stream is not tracked
	Orphan                 // a response header block for a stream that is not tracked
	TooManyStreams         // a stream opened beyond MaxStreams; it is not tracked
	Unsynced               // MidStream connection: bytes before a direction's first frame boundary were skipped (once a direction)
	numProblems
)

var problemNames = [...]string{
	0:              "none",
	NotHTTP2:       "not_http2",
	LostSync:       "lost_sync",
	HPACKError:     "hpack_error",
	FrameTooLarge:  "frame_too_large",
	ProtocolError:  "protocol_error",
	HeaderTooLarge: "header_too_large",
	Orphan:         "orphan",
	TooManyStreams: "too_many_streams",
	Unsynced:       "unsynced",
}

// String returns a short snake_case name, usable as a metric label.
func (p Problem) String() string {
	if p < numProblems {
		return problemNames[p]
	}
	return "invalid"
}
