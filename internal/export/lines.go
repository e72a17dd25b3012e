package export

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
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
// for scripts.
type JSONL struct {
	mu sync.Mutex
	w  *bufio.Writer
}

// NewJSONL writes to w, flushing after every span.
func NewJSONL(w io.Writer) *JSONL { return &JSONL{w: bufio.NewWriter(w)} }

type jsonSpan struct {
	TraceID           string     `json:"traceId"`
	SpanID            string     `json:"spanId"`
	ParentSpanID      string     `json:"parentSpanId,omitempty"`
	TraceState        string     `json:"traceState,omitempty"`
	Flags             uint32     `json:"flags"`
	Name              string     `json:"name"`
	Kind              int        `json:"kind"`
	StartTimeUnixNano string     `json:"startTimeUnixNano"`
	EndTimeUnixNano   string     `json:"endTimeUnixNano"`
	Attributes        []jsonKV   `json:"attributes"`
	Status            jsonStatus `json:"status"`
	Resource          jsonRes    `json:"resource"`
}

type jsonStatus struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

type jsonRes struct {
	Attributes []jsonKV `json:"attributes"`
}

type jsonKV struct {
	Key   string         `json:"key"`
	Value map[string]any `json:"value"`
}

// Export writes the span as one line.
func (j *JSONL) Export(s spans.Span) {
	js := jsonSpan{
		TraceID:           hex.EncodeToString(s.TraceID[:]),
		SpanID:            hex.EncodeToString(s.SpanID[:]),
		TraceState:        s.TraceState,
		Name:              s.Name,
		Kind:              otlpKind(s.Kind),
		StartTimeUnixNano: fmt.Sprint(s.Start.UnixNano()),
		EndTimeUnixNano:   fmt.Sprint(s.End.UnixNano()),
		Attributes:        jsonAttrs(s.Attrs),
	}
	if s.Sampled {
		js.Flags = 1
	}
	if s.Parent.IsValid() {
		js.ParentSpanID = hex.EncodeToString(s.Parent[:])
	}
	if s.Error {
		js.Status = jsonStatus{Code: 2, Message: s.StatusMsg}
	}
	if s.Resource != nil {
		js.Resource.Attributes = jsonAttrs(s.Resource.Attributes())
	}
	line, err := json.Marshal(js)
	if err != nil {
		return // every field is marshalable; unreachable
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.w.Write(line)
	j.w.WriteByte('\n')
	j.w.Flush()
}

// otlpKind maps to the OTLP enum, which numbers kinds like the Go API.
func otlpKind(k trace.SpanKind) int { return int(k) }

func jsonAttrs(kvs []attribute.KeyValue) []jsonKV {
	out := make([]jsonKV, 0, len(kvs))
	for _, kv := range kvs {
		var v map[string]any
		switch kv.Value.Type() {
		case attribute.BOOL:
			v = map[string]any{"boolValue": kv.Value.AsBool()}
		case attribute.INT64:
			v = map[string]any{"intValue": fmt.Sprint(kv.Value.AsInt64())}
		case attribute.FLOAT64:
			v = map[string]any{"doubleValue": kv.Value.AsFloat64()}
		default:
			v = map[string]any{"stringValue": kv.Value.Emit()}
		}
		out = append(out, jsonKV{Key: string(kv.Key), Value: v})
	}
	return out
}
