package h2wire

import (
	"strconv"
	"strings"

	"golang.org/x/net/http2/hpack"

	"github.com/weft-dev/weft/internal/tracecontext"
	"github.com/weft-dev/weft/internal/wire"
)

// block collects the fields of one decoded header block that streams use.
type block struct {
	limit int // MaxHeaderListBytes
	size  int // decoded size so far (RFC 9113 section 6.5.2)

	method, path, authority, scheme string
	contentType, userAgent          string
	traceparent, tracestate         string
	sourceCluster                   string // x-source-cluster
	b3                              tracecontext.B3
	status, grpcStatus, grpcMessage string
	hasStatus, hasGRPCStatus        bool
	tooLarge                        bool // over limit: the fields past it were dropped
	unknown                         bool // a field referred to a table entry made before tracing (MidStream)
}

func (b *block) reset(limit int) { *b = block{limit: limit} }

// emit is the HPACK decoder's callback for each field of the block.
func (b *block) emit(f hpack.HeaderField) {
	if b.tooLarge {
		return
	}
	b.size += len(f.Name) + len(f.Value) + 32
	if b.size > b.limit {
		b.tooLarge = true
		return
	}
	first := func(dst *string) {
		if *dst == "" {
			*dst = f.Value
		}
	}
	switch f.Name {
	case "": // a placeholder's name (midstream.go): real names are never empty
		b.unknown = true
	case ":method":
		first(&b.method)
	case ":path":
		first(&b.path)
	case ":authority":
		first(&b.authority)
	case ":scheme":
		first(&b.scheme)
	case ":status":
		if !b.hasStatus {
			b.status, b.hasStatus = f.Value, true
		}
	case "content-type":
		first(&b.contentType)
	case "user-agent":
		first(&b.userAgent)
	case "traceparent":
		first(&b.traceparent)
	case "tracestate":
		if b.tracestate == "" {
			b.tracestate = f.Value
		} else if f.Value != "" {
			b.tracestate += "," + f.Value
		}
	case "x-source-cluster":
		first(&b.sourceCluster)
	case "b3":
		firstTrimmed(&b.b3.Single, f.Value)
	case "x-b3-traceid":
		firstTrimmed(&b.b3.TraceID, f.Value)
	case "x-b3-spanid":
		firstTrimmed(&b.b3.SpanID, f.Value)
	case "x-b3-sampled":
		firstTrimmed(&b.b3.Sampled, f.Value)
	case "x-b3-flags":
		firstTrimmed(&b.b3.Flags, f.Value)
	case "grpc-status":
		if !b.hasGRPCStatus {
			b.grpcStatus, b.hasGRPCStatus = f.Value, true
		}
	case "grpc-message":
		first(&b.grpcMessage)
	}
}

// firstTrimmed keeps the first non-empty value of a B3 field, without
// surrounding whitespace (tracecontext.B3 holds them so).
func firstTrimmed(dst *string, v string) {
	if *dst == "" {
		*dst = strings.TrimSpace(v)
	}
}

// newDecoder returns an HPACK decoder feeding s.blk.
func newDecoder(s *dir, l Limits) *hpack.Decoder {
	d := hpack.NewDecoder(4096, s.blk.emit)
	d.SetMaxStringLength(l.MaxHeaderListBytes)
	return d
}

// endBlock finishes the header block of direction s (END_HEADERS seen).
func (c *Conn) endBlock(s *dir) {
	s.blkOpen = false
	if err := s.dec.Close(); err != nil {
		c.fail(HPACKError)
		return
	}
	switch {
	case s.blkPush:
		// A pushed request: decoded only to keep the table in sync.
	case c.lim.MidStream && !c.learnRole(s):
		// Found mid-life, and this block says neither side: nothing yet.
	case s.isReq:
		c.requestBlock(s.blkSid, &s.blk, s.blkStart)
	default:
		c.responseBlock(s.blkSid, &s.blk, s.blkEnd)
	}
}

// parseStatus parses a 3-digit :status or a grpc-status; -1 if invalid.
func parseStatus(v string, maxLen int) int {
	if v == "" || len(v) > maxLen {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || v[0] == '+' {
		return -1
	}
	return n
}

// percentDecode decodes a grpc-message (percent-encoded UTF-8). Invalid
// escapes are kept as they are.
func percentDecode(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) {
			if h, ok := wire.Unhex(v[i+1]); ok {
				if l, ok := wire.Unhex(v[i+2]); ok {
					b.WriteByte(h<<4 | l)
					i += 2
					continue
				}
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
