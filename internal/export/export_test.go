package export

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/spans"
)

func sample() spans.Span {
	start := time.Unix(1700000000, 123456789)
	return spans.Span{
		TraceID: trace.TraceID{0x4b, 0xf9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14},
		SpanID:  trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		Parent:  trace.SpanID{8, 7, 6, 5, 4, 3, 2, 1},
		Sampled: true, Remote: true,
		Name: "GET", Kind: trace.SpanKindServer,
		Start: start, End: start.Add(1500 * time.Microsecond),
		Attrs:    []attribute.KeyValue{attribute.String("url.path", "/a"), attribute.Int("http.response.status_code", 503)},
		Error:    true,
		Resource: resource.NewSchemaless(attribute.String("service.name", "shop")),
		Scope:    "weft/sockio",
	}
}

func TestJSONL(t *testing.T) {
	var b bytes.Buffer
	j := NewJSONL(&b)
	j.Export(sample())
	j.Export(sample())
	j.Flush()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"traceId": "4bf90102030405060708090a0b0c0d0e", "spanId": "0102030405060708",
		"parentSpanId": "0807060504030201", "name": "GET", "kind": float64(2),
		"startTimeUnixNano": "1700000000123456789", "endTimeUnixNano": "1700000000124956789",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if !strings.Contains(lines[0], `{"key":"http.response.status_code","value":{"intValue":"503"}}`) ||
		!strings.Contains(lines[0], `"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]}`) ||
		!strings.Contains(lines[0], `"status":{"code":2}`) {
		t.Errorf("line: %s", lines[0])
	}
}

func TestConsole(t *testing.T) {
	var b bytes.Buffer
	NewConsole(&b).Export(sample())
	line := b.String()
	for _, want := range []string{"SERVER", `"GET"`, "1.500ms", "trace=4bf90102", "parent=0807060504030201", "ERROR", "service=shop", "url.path=/a"} {
		if !strings.Contains(line, want) {
			t.Errorf("console line lacks %q: %s", want, line)
		}
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("want one line: %q", line)
	}
}
