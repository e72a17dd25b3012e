// Package httpwire reconstructs HTTP/1.x exchanges from the syscalls of one
// TCP connection, as seen by eBPF tracepoints: for each successful read-side
// or write-side syscall, its direction, time, byte count and a captured
// prefix of its bytes (the rest is a gap).
//
// It is pure: no goroutines, I/O or clocks. A Conn buffers at most
// MaxHeaderBytes of head per direction and queues at most MaxPending
// requests; only the strings of emitted exchanges are allocated per message.
//
// # Matching
//
// The first bytes decide the role: a request line read means the traced
// process is a server, a request line written means a client (a status line
// decides the other way round, and is an Orphan). TLS records, the HTTP/2
// preface and anything else that is not an HTTP/1.x start line mark the
// connection NotHTTP. Requests are queued as their heads complete;
// responses match them first in, first out. Interim responses (1xx other
// than 101) are skipped; 101, and 2xx to CONNECT, end the exchange and stop
// parsing: the connection now carries another protocol.
//
// # Framing
//
// Bodies are delimited per RFC 9112 section 6.3: Transfer-Encoding chunked
// (which overrides Content-Length), Content-Length, none for requests
// without either, none for responses to HEAD and for 1xx, 204 and 304, and
// until close for other responses. Gaps inside a Content-Length body, a
// chunk's data or a close-delimited body keep the framing; a gap over a
// chunk-size line, a head or a message start loses it (LostSync).
//
// # Resynchronisation
//
// Matching after a loss relies on what HTTP/1.1 guarantees plus one
// assumption: a server answers a connection's requests in order, and a
// client that does not pipeline sends a request only after the previous
// response's last byte. A request queued while an earlier response was
// still due is marked pipelined; where pipelining would make a match
// unprovable, the connection is given up (Ambiguous) once the requests
// already matched are answered. An exchange is never emitted from ambiguous
// data; Problems count what was skipped.
//
// After a loss, a stream skips whole chunks and resumes only at the start
// of a chunk:
//
//   - Requests resume at a chunk starting with a complete request line with
//     a well-known method (a chunk may start inside a request line: "T /x"
//     from "GET /x"). No queued request may still be waiting for or
//     receiving its response (one whose framing was lost counts as over),
//     and a response-direction chunk must have come after the skipped
//     request bytes (else they may hide requests whose responses come
//     first). Otherwise the connection is given up.
//   - Responses resume at a chunk starting with a status line while a
//     request waits. If the oldest request's response was the one lost, a
//     second, non-pipelined request must be waiting (else the status line
//     may be body data). The lost one is emitted with IncompleteLostSync,
//     its End being the last response chunk before the next request was
//     read, or dropped if the request stream skipped bytes since.
//   - A response-direction chunk whose start was not captured may hold the
//     start of the latest request's response: that request is skipped.
//   - A request whose request line was valid but whose head was too large,
//     malformed or cut by a gap is queued as a phantom, so that its response
//     is consumed without being matched to the next request.
//   - A response with no request waiting is an Orphan. Its body is skipped
//     when its framing does not depend on the request method; otherwise the
//     response stream waits for the next resynchronisation point.
//
// A connection that was open before tracing began (Limits.MidStream) starts
// as after a loss, with everything before its first chunk skipped: its
// first exchange whose request precedes any response bytes is not trusted.
package httpwire
