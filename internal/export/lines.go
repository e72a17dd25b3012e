package export

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/spans"
)

// Console writes one readable line per span, for people.
type Console struct {
	mu sync.Mutex
	w  io.Writer
}

// NewConsole writes to w.
func NewConsole(w io.Writer) *Console { return &Console{w: w} }

// Export prints the span.
func (c *Console) Export(s spans.Span) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-6s %-28q %8.3fms trace=%s span=%s", s.Start.Format("15:04:05.000000"),
		kindName(s.Kind), s.Name, float64(s.End.Sub(s.Start).Microseconds())/1000, s.TraceID, s.SpanID)
	if s.Parent.IsValid() {
		fmt.Fprintf(&b, " parent=%s", s.Parent)
	}
	if s.Error {
		b.WriteString(" ERROR")
	}
	if s.Resource != nil {
		if v, ok := s.Resource.Set().Value("service.name"); ok {
			fmt.Fprintf(&b, " service=%s", v.Emit())
		}
	}
	for _, kv := range s.Attrs {
		fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value.Emit())
	}
	b.WriteByte('\n')
	c.mu.Lock()
	defer c.mu.Unlock()
	io.WriteString(c.w, b.String())
}

func kindName(k trace.SpanKind) string {
	return strings.ToUpper(k.String())
}

// JSONL writes one JSON object per span per line, with OTLP JSON field names,
// for scripts. The encoding is written by hand: encoding/json's reflection
// and maps cost more than the rest of the agent together.
type JSONL struct {
	mu      sync.Mutex
	w       *bufio.Writer
	pending bool // a flush is scheduled
	buf     []byte
	res     *resource.Resource // the last resource and its encoding: spans come in runs per process
	resJ    []byte
	// Attrs takes back each span's attributes once written (nil: left to
	// the collector).
	Attrs *spans.AttrPool
}

// jsonlFlushAfter bounds how long a line waits in the buffer: one write per
// span was a third of the agent's CPU at 30k spans/s.
const jsonlFlushAfter = 50 * time.Millisecond

// NewJSONL writes to w in 64 KiB blocks, and at most jsonlFlushAfter after a span.
func NewJSONL(w io.Writer) *JSONL { return &JSONL{w: bufio.NewWriterSize(w, 64<<10)} }

// Shutdown flushes; safe twice.
func (j *JSONL) Shutdown(context.Context) error {
	j.Flush()
	return nil
}

// Flush writes out what is buffered.
func (j *JSONL) Flush() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pending = false
	j.w.Flush()
}

// Export writes the span as one line.
func (j *JSONL) Export(s spans.Span) {
	j.mu.Lock()
	defer j.mu.Unlock()
	b := j.buf[:0]
	b = append(b, `{"traceId":"`...)
	b = hex.AppendEncode(b, s.TraceID[:])
	b = append(b, `","spanId":"`...)
	b = hex.AppendEncode(b, s.SpanID[:])
	b = append(b, '"')
	if s.Parent.IsValid() {
		b = append(b, `,"parentSpanId":"`...)
		b = hex.AppendEncode(b, s.Parent[:])
		b = append(b, '"')
	}
	if s.TraceState != "" {
		b = append(b, `,"traceState":`...)
		b = appendJSONString(b, s.TraceState)
	}
	flags := 0
	if s.Sampled {
		flags = 1
	}
	b = append(b, `,"flags":`...)
	b = strconv.AppendInt(b, int64(flags), 10)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, s.Name)
	b = append(b, `,"kind":`...)
	b = strconv.AppendInt(b, int64(otlpKind(s.Kind)), 10)
	b = append(b, `,"startTimeUnixNano":"`...)
	b = strconv.AppendInt(b, s.Start.UnixNano(), 10)
	b = append(b, `","endTimeUnixNano":"`...)
	b = strconv.AppendInt(b, s.End.UnixNano(), 10)
	b = append(b, `","attributes":`...)
	b = appendAttrs(b, s.Attrs)
	j.Attrs.Recycle(&s)
	b = append(b, `,"status":{`...)
	if s.Error {
		b = append(b, `"code":2`...)
		if s.StatusMsg != "" {
			b = append(b, `,"message":`...)
			b = appendJSONString(b, s.StatusMsg)
		}
	}
	b = append(b, `},"resource":{"attributes":`...)
	if s.Resource != j.res || j.resJ == nil {
		j.res = s.Resource
		var kvs []attribute.KeyValue
		if s.Resource != nil {
			kvs = s.Resource.Attributes()
		}
		j.resJ = appendAttrs(j.resJ[:0], kvs)
	}
	b = append(b, j.resJ...)
	b = append(b, "}}\n"...)
	j.buf = b
	j.w.Write(b)
	if !j.pending {
		j.pending = true
		time.AfterFunc(jsonlFlushAfter, j.Flush)
	}
}

// otlpKind maps to the OTLP enum, which numbers kinds like the Go API.
func otlpKind(k trace.SpanKind) int { return int(k) }

// appendAttrs encodes attributes as OTLP JSON AnyValues.
func appendAttrs(b []byte, kvs []attribute.KeyValue) []byte {
	b = append(b, '[')
	for i, kv := range kvs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = appendJSONString(b, string(kv.Key))
		b = append(b, `,"value":{`...)
		switch kv.Value.Type() {
		case attribute.BOOL:
			b = append(b, `"boolValue":`...)
			b = strconv.AppendBool(b, kv.Value.AsBool())
		case attribute.INT64:
			b = append(b, `"intValue":"`...)
			b = strconv.AppendInt(b, kv.Value.AsInt64(), 10)
			b = append(b, '"')
		case attribute.FLOAT64:
			b = append(b, `"doubleValue":`...)
			b = strconv.AppendFloat(b, kv.Value.AsFloat64(), 'g', -1, 64)
		default:
			b = append(b, `"stringValue":`...)
			b = appendJSONString(b, kv.Value.Emit())
		}
		b = append(b, "}}"...)
	}
	return append(b, ']')
}

// appendJSONString quotes s for JSON: printable ASCII is copied, the rest
// goes through encoding/json (rare: header values are mostly ASCII).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
