// Package otlpjson reads what a collector's file exporter writes: OTLP JSON,
// one ExportTraceServiceRequest-shaped document per line, flattened into
// one record per span with its resource. Tests and the demo read the
// collectors' output with it.
package otlpjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Span is one span from the file exporter, flattened with its resource.
type Span struct {
	TraceID, SpanID, ParentSpanID string // lowercase hex as in OTLP JSON
	Name                          string
	Kind                          int // OTLP enum: 1 internal, 2 server, 3 client, 4 producer, 5 consumer
	StartUnixNano, EndUnixNano    uint64
	// Values are string, int64, float64, bool, []byte, []any or map[string]any.
	Attrs         map[string]any
	Resource      map[string]any
	StatusCode    int // 0 unset, 1 ok, 2 error
	StatusMessage string
	Flags         uint32
}

// The subset of the OTLP JSON encoding (one ExportTraceServiceRequest-shaped
// document per line) that Span needs.
type (
	tracesDoc struct {
		ResourceSpans []struct {
			Resource struct {
				Attributes []keyValue `json:"attributes"`
			} `json:"resource"`
			ScopeSpans []struct {
				Spans []jsonSpan `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	}
	jsonSpan struct {
		TraceID           string     `json:"traceId"`
		SpanID            string     `json:"spanId"`
		ParentSpanID      string     `json:"parentSpanId"`
		Flags             uint32     `json:"flags"`
		Name              string     `json:"name"`
		Kind              int        `json:"kind"`
		StartTimeUnixNano jsonInt    `json:"startTimeUnixNano"`
		EndTimeUnixNano   jsonInt    `json:"endTimeUnixNano"`
		Attributes        []keyValue `json:"attributes"`
		Status            struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
	}
	keyValue struct {
		Key   string   `json:"key"`
		Value anyValue `json:"value"`
	}
	anyValue struct {
		StringValue *string  `json:"stringValue"`
		BoolValue   *bool    `json:"boolValue"`
		IntValue    *jsonInt `json:"intValue"`
		DoubleValue *float64 `json:"doubleValue"`
		BytesValue  []byte   `json:"bytesValue"` // base64 in JSON
		ArrayValue  *struct {
			Values []anyValue `json:"values"`
		} `json:"arrayValue"`
		KvlistValue *struct {
			Values []keyValue `json:"values"`
		} `json:"kvlistValue"`
	}
)

// jsonInt accepts both encodings OTLP JSON allows for 64-bit integers: a
// decimal string (what the collector writes) or a plain number. The
// collector omits zero values, so an absent field reads as 0.
type jsonInt struct{ raw string }

func (n *jsonInt) UnmarshalJSON(b []byte) error {
	n.raw = strings.Trim(string(b), `"`)
	if n.raw == "null" {
		n.raw = ""
	}
	return nil
}

func (n jsonInt) int64() (int64, error) {
	if n.raw == "" {
		return 0, nil
	}
	return strconv.ParseInt(n.raw, 10, 64)
}

func (n jsonInt) uint64() (uint64, error) {
	if n.raw == "" {
		return 0, nil
	}
	return strconv.ParseUint(n.raw, 10, 64)
}

// ParseLines decodes the file exporter's output. The bytes after the last
// newline are a line the collector is still writing, so they are skipped:
// the next read will see them complete.
func ParseLines(data []byte) ([]Span, error) {
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	} else {
		data = nil
	}
	var spans []Span
	for n, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var doc tracesDoc
		if err := json.Unmarshal(line, &doc); err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		for _, rs := range doc.ResourceSpans {
			resource, err := attrMap(rs.Resource.Attributes)
			if err != nil {
				return nil, fmt.Errorf("line %d: resource: %w", n+1, err)
			}
			for _, ss := range rs.ScopeSpans {
				for _, js := range ss.Spans {
					s, err := js.flatten(resource)
					if err != nil {
						return nil, fmt.Errorf("line %d: span %q: %w", n+1, js.Name, err)
					}
					spans = append(spans, s)
				}
			}
		}
	}
	return spans, nil
}

func (js jsonSpan) flatten(resource map[string]any) (Span, error) {
	s := Span{
		TraceID:       strings.ToLower(js.TraceID),
		SpanID:        strings.ToLower(js.SpanID),
		ParentSpanID:  strings.ToLower(js.ParentSpanID),
		Name:          js.Name,
		Kind:          js.Kind,
		Resource:      resource, // shared by the resource's spans; treat as read-only
		StatusCode:    js.Status.Code,
		StatusMessage: js.Status.Message,
		Flags:         js.Flags,
	}
	var err error
	if s.StartUnixNano, err = js.StartTimeUnixNano.uint64(); err != nil {
		return s, fmt.Errorf("startTimeUnixNano: %w", err)
	}
	if s.EndUnixNano, err = js.EndTimeUnixNano.uint64(); err != nil {
		return s, fmt.Errorf("endTimeUnixNano: %w", err)
	}
	s.Attrs, err = attrMap(js.Attributes)
	return s, err
}

func attrMap(kvs []keyValue) (map[string]any, error) {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		v, err := kv.Value.value()
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", kv.Key, err)
		}
		m[kv.Key] = v
	}
	return m, nil
}

// value returns nil for an empty AnyValue, which OTLP allows.
func (v anyValue) value() (any, error) {
	switch {
	case v.StringValue != nil:
		return *v.StringValue, nil
	case v.BoolValue != nil:
		return *v.BoolValue, nil
	case v.IntValue != nil:
		return v.IntValue.int64()
	case v.DoubleValue != nil:
		return *v.DoubleValue, nil
	case v.BytesValue != nil:
		return v.BytesValue, nil
	case v.ArrayValue != nil:
		out := make([]any, 0, len(v.ArrayValue.Values))
		for _, e := range v.ArrayValue.Values {
			x, err := e.value()
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case v.KvlistValue != nil:
		return attrMap(v.KvlistValue.Values)
	}
	return nil, nil
}
