package httpwire

import (
	"github.com/weft-dev/weft/internal/tracecontext"
	"github.com/weft-dev/weft/internal/wire"
)

// Dir and Chunk are the shared wire types (internal/wire): every capture
// source feeds this parser and h2wire alike.
type (
	Dir   = wire.Dir
	Chunk = wire.Chunk
)

const (
	DirRead  = wire.DirRead
	DirWrite = wire.DirWrite
)

// Role is the traced process's side of a connection.
type Role uint8

const (
	RoleUnknown Role = iota
	RoleServer       // reads requests, writes responses
	RoleClient       // writes requests, reads responses
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

// Request is a parsed request head plus what was seen of its body.
type Request struct {
	Method, Target, Proto string // "GET", "/a?b", "HTTP/1.1"
	// First value of each header (names are case-insensitive). Tracestate
	// is the exception: several tracestate fields are joined with ","
	// as the W3C specification requires.
	Host, UserAgent, Traceparent, Tracestate string
	DupTraceparent                           bool  // more than one traceparent field
	ContentLength                            int64 // -1 if absent (or overridden by Transfer-Encoding)
	Chunked                                  bool
	Close                                    bool  // Connection: close (or HTTP/1.0 without keep-alive)
	BodyBytes                                int64 // body bytes on the wire seen or skipped so far (chunk framing included)
	HeaderBytes                              int   // head length, start line through the empty line

	// B3 is the first value of each B3 field (Zipkin, service meshes):
	// the incoming context when there is no traceparent.
	B3 tracecontext.B3
	// SourceCluster is the first X-Source-Cluster field: the cluster a
	// caller says it runs in (load generators and other clients without
	// weft send it; weft's own hops use tracestate).
	SourceCluster string
}

// Response is a parsed final response head plus what was seen of its body.
type Response struct {
	Proto         string
	Status        int
	ContentLength int64 // -1 if absent
	Chunked       bool
	Close         bool
	BodyBytes     int64 // as Request.BodyBytes
	HeaderBytes   int
}

// Reasons an exchange is emitted without being complete (Exchange.Incomplete).
const (
	IncompleteNoResponse = "closed before response"
	IncompleteRespHead   = "closed during response head"
	IncompleteRespBody   = "closed during response body"
	IncompleteLostSync   = "response framing lost"
)

// Exchange is one request and its final response.
type Exchange struct {
	Role Role
	Req  Request
	Resp Response
	// Start is the Time of the chunk holding the first request byte, End the
	// Time of the chunk holding the last response byte (End >= Start).
	Start, End uint64
	ReqGoid    uint64 // Goid of the chunk holding the first request byte
	RespGoid   uint64 // Goid of the chunk holding the final response's first byte
	StartTag   uint64 // Tag of the chunk holding the first request byte
	// FirstInChunk: the request's first byte is the first byte of its
	// chunk. A pipelined request after another in the same chunk (or after
	// blank lines) has false.
	FirstInChunk bool
	// Incomplete is "" for a complete exchange, else one of the Incomplete*
	// reasons. Resp fields hold whatever was parsed (Status 0 if no head).
	Incomplete string
}

// Limits bound a Conn's work and memory, and describe how it was found.
type Limits struct {
	MaxHeaderBytes int // longest head (start line to empty line); default 8192
	MaxPending     int // requests awaiting responses (pipelining); default 32
	// MidStream: the connection was open before tracing began, so its first
	// bytes may be in the middle of a message. The Conn then waits for a
	// chunk that starts with a request or status line instead of declaring
	// the connection not HTTP. Only TLS records and the HTTP/2 preface still
	// mark it not HTTP.
	MidStream bool
}

// Defaults for zero Limits fields.
const (
	DefaultMaxHeaderBytes = 8192
	DefaultMaxPending     = 32
)

// Problem is a reason data was skipped. Every problem is returned once, when
// it happens; callers count them by kind.
type Problem uint8

const (
	_              Problem = iota
	Malformed              // not HTTP where a message should start: bad start line or header syntax
	HeaderTooLarge         // a head longer than Limits.MaxHeaderBytes; its exchange is skipped
	LostSync               // message framing fell in a gap; data is skipped until a resync point
	Orphan                 // a response with no request to match
	NotHTTP                // the connection is not HTTP/1.x (TLS, HTTP/2, binary); it is ignored from now on
	Unsynced               // MidStream connection: data before the first message start was skipped (once)
	TooManyPending         // more pipelined requests than Limits.MaxPending
	Ambiguous              // request/response matching could not be proven after a loss; the connection is given up
	Truncated              // closed in the middle of a request head
	BadChunk               // invalid length or chunk-size syntax inside a body
	numProblems
)

var problemNames = [...]string{
	0:              "none",
	Malformed:      "malformed",
	HeaderTooLarge: "header_too_large",
	LostSync:       "lost_sync",
	Orphan:         "orphan",
	NotHTTP:        "not_http",
	Unsynced:       "unsynced",
	TooManyPending: "too_many_pending",
	Ambiguous:      "ambiguous",
	Truncated:      "truncated",
	BadChunk:       "bad_chunk",
}

// String returns a short snake_case name, usable as a metric label.
func (p Problem) String() string {
	if p < numProblems {
		return problemNames[p]
	}
	return "invalid"
}
