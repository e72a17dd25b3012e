// Package h2wire reconstructs HTTP/2 streams (h2c, as gRPC uses in-cluster)
// from the syscalls of one TCP connection, as seen by eBPF tracepoints: for
// each successful read-side or write-side syscall, its direction, time,
// byte count and a captured prefix of its bytes (the rest is a gap). It is
// the HTTP/2 counterpart of httpwire and takes the same wire.Chunk.
//
// It is pure: no goroutines, I/O or clocks.
//
// # Start
//
// The connection must be traced from its start. The direction carrying the
// client preface ("PRI * HTTP/2.0...") is client-to-server: read, the traced
// process is the server; written, the client. The other direction must
// start with the server's SETTINGS frame, which may come first and then
// decides the role. Anything else (HTTP/1.x, TLS) is reported NotHTTP2
// once and ignored. A connection open before tracing began
// (Limits.MidStream) is picked up at a frame boundary instead, with the
// HPACK entries made before it unknown: see midstream.go.
//
// # Framing
//
// Each direction is parsed independently across chunk boundaries. HEADERS
// (PADDED and PRIORITY flags), CONTINUATION and PUSH_PROMISE blocks are
// streamed into one hpack.Decoder per direction, so every block is decoded
// in order and the dynamic table stays in sync; pushed requests are decoded
// and ignored. SETTINGS_HEADER_TABLE_SIZE and SETTINGS_MAX_FRAME_SIZE are
// applied to the other direction (leniently: the largest value announced,
// the table capped at 64 KiB). Frame headers and sizes are checked (RFC
// 9113 section 6); an invalid one gives the connection up.
//
// A gap inside a DATA payload (or padding, PING, WINDOW_UPDATE, PRIORITY,
// SETTINGS, GOAWAY debug data) is skipped: its length is known. A gap over
// a frame header (LostSync), a header block (HPACKError), or RST_STREAM and
// GOAWAY fields gives the connection up: open streams are emitted with
// IncompleteLostSync and the fields known so far, and no stream is produced
// afterwards. A stream is never emitted with guessed fields.
//
// # Streams
//
// A client-to-server header block with :method on a new odd stream id opens
// a stream; later blocks on it are request trailers. Server-to-client
// blocks give :status (1xx skipped) and grpc-status/grpc-message (trailers,
// or a trailers-only response). The stream ends with the response's
// END_STREAM (whether or not the request has ended: request bytes after
// that are not counted), or with RST_STREAM from either side. A server
// GOAWAY ends streams above its last stream id (IncompleteGoAway); Close
// ends the rest (IncompleteClosed). Streams are keyed by id, so any number
// of concurrent streams (up to MaxStreams) are kept apart.
//
// # Memory
//
// Per direction a Conn holds a 9-byte frame header, an 8-byte payload
// prefix and the HPACK decoder (dynamic table at most 64 KiB, partial
// strings at most MaxHeaderListBytes); DATA is never buffered. Header
// blocks larger than MaxHeaderListBytes decoded are skipped (their stream
// is not tracked, HeaderTooLarge); a single string longer than that cannot
// be skipped without losing the table and gives the connection up. At most
// MaxStreams streams are tracked, each holding only the strings it reports.
package h2wire
