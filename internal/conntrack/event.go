package conntrack

import (
	"net/netip"

	"github.com/weft-dev/weft/internal/wire"
)

// Kind is what an Event reports.
type Kind uint8

const (
	KindData  Kind = iota + 1 // bytes moved on the connection
	KindClose                 // the connection closed
	// KindConnectFailed: a connect of the process ended before the
	// connection was established; Chunk.Time is when, Start when it began,
	// Errno the socket's error (0: the process gave up), IDs the call's.
	KindConnectFailed
)

// Event is one capture record, in the form every source produces.
type Event struct {
	Kind Kind
	PID  uint32
	// Conn identifies the connection within the process (the kernel's
	// socket address, or whatever the source has that is unique while
	// the connection lives).
	Conn uint64
	// MidStream: the connection was open before tracing began, so its
	// first bytes may be in the middle of a message.
	MidStream bool
	// Start and Errno: KindConnectFailed only.
	Start uint64
	Errno int
	// TLS: the bytes are a TLS connection's plaintext (from a TLS
	// library's uprobes), not what crossed the wire.
	TLS           bool
	Local, Remote netip.AddrPort
	// Chunk holds the bytes (KindData) or only the time (KindClose). The
	// Table sets its Tag.
	Chunk wire.Chunk
	// IDs are the span IDs the source made in the kernel for a request (or
	// call) that starts in this chunk; zero when it made none.
	IDs IDs
	// Sent (with Stamped) is how many bytes the process had queued on the
	// connection when the source recorded the chunk, counted mod 2^32
	// from its start (the SYN counts 1). A source records a write once it
	// is over, so a read can reach the table before the write whose reply
	// it holds: its Sent is then ahead of the last write's, and the table
	// holds it back until that write comes (reorder.go).
	Sent    uint32
	Stamped bool
}

// IDs are span IDs made in the kernel, where the next hop's context is
// decided: spans must carry exactly these.
type IDs struct {
	Trace  [16]byte
	Span   [8]byte
	Parent [8]byte // the in-process parent (Linked)
	// Linked: Parent is the server span this call was made for, known
	// in-process. Sampled: the head-sampling decision.
	Linked, Sampled bool
	// Made: the kernel made these IDs (a request's first read or a linked
	// call); false for the zero value.
	Made bool
	// Option: on a request read, Parent (with Trace) came in a TCP header
	// option on the request's first segment (Linked is set too). A
	// traceparent header in the request, when valid, wins over it.
	Option bool
	// AtStart: with Option, the read began at the option's segment (a
	// non-Go HTTP/2 server's read): the first stream it opens is the
	// option's.
	AtStart bool
	// Path: an HTTP/2 stream's :path as the Go probe read it, filed only
	// for processes asked for it (StreamNames); GRPC: the probe was
	// grpc-go's, so the stream is a gRPC call.
	Path string
	GRPC bool
}
