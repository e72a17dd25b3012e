package otelcol

import (
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Shaped like the file exporter's output: one compact document per line,
// 64-bit integers as decimal strings, zero values omitted.
const line1 = `{"resourceSpans":[{"resource":{"attributes":[` +
	`{"key":"service.name","value":{"stringValue":"checkout"}},` +
	`{"key":"process.pid","value":{"intValue":"4242"}}]},` +
	`"scopeSpans":[{"scope":{"name":"weft"},"spans":[` +
	`{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",` +
	`"flags":257,"name":"GET /cart","kind":2,` +
	`"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000250000000",` +
	`"attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},` +
	`{"key":"http.response.status_code","value":{"intValue":"200"}},` +
	`{"key":"weft.sampled","value":{"boolValue":true}},` +
	`{"key":"weft.ratio","value":{"doubleValue":0.5}},` +
	`{"key":"weft.tags","value":{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":"7"}]}}}],` +
	`"status":{}},` +
	`{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"0f1e2d3c4b5a6978",` +
	`"parentSpanId":"eee19b7ec3c1b174","flags":257,"name":"SELECT carts","kind":3,` +
	`"startTimeUnixNano":"1700000000010000000","endTimeUnixNano":"1700000000020000000",` +
	`"status":{"message":"deadlock","code":2}}]}]}]}`

// The spec also allows 64-bit integers as JSON numbers and uppercase hex.
const line2 = `{"resourceSpans":[{"resource":{},"scopeSpans":[{"spans":[` +
	`{"traceId":"5B8EFFF798038103D269B633813FC60D","spanId":"00000000000000AA","name":"tick","kind":1,` +
	`"startTimeUnixNano":1700000001000000000,"endTimeUnixNano":1700000001000000001,` +
	`"attributes":[{"key":"n","value":{"intValue":-3}}],"status":{"code":1}}]}]}]}`

func TestParseLines(t *testing.T) {
	partial := line1[:len(line1)/2] // the collector is mid-write
	spans, err := parseLines([]byte(line1 + "\n" + line2 + "\n" + partial))
	if err != nil {
		t.Fatal(err)
	}
	resource := map[string]any{"service.name": "checkout", "process.pid": int64(4242)}
	want := []Span{{
		TraceID: "5b8efff798038103d269b633813fc60c", SpanID: "eee19b7ec3c1b174",
		Name: "GET /cart", Kind: 2, Flags: 257,
		StartUnixNano: 1700000000000000000, EndUnixNano: 1700000000250000000,
		Attrs: map[string]any{
			"http.request.method":       "GET",
			"http.response.status_code": int64(200),
			"weft.sampled":              true,
			"weft.ratio":                0.5,
			"weft.tags":                 []any{"a", int64(7)},
		},
		Resource: resource,
	}, {
		TraceID: "5b8efff798038103d269b633813fc60c", SpanID: "0f1e2d3c4b5a6978",
		ParentSpanID: "eee19b7ec3c1b174", Name: "SELECT carts", Kind: 3, Flags: 257,
		StartUnixNano: 1700000000010000000, EndUnixNano: 1700000000020000000,
		Attrs: map[string]any{}, Resource: resource,
		StatusCode: 2, StatusMessage: "deadlock",
	}, {
		TraceID: "5b8efff798038103d269b633813fc60d", SpanID: "00000000000000aa",
		Name: "tick", Kind: 1,
		StartUnixNano: 1700000001000000000, EndUnixNano: 1700000001000000001,
		Attrs: map[string]any{"n": int64(-3)}, Resource: map[string]any{},
		StatusCode: 1,
	}}
	if !reflect.DeepEqual(spans, want) {
		t.Errorf("got\n%#v\nwant\n%#v", spans, want)
	}
}

func TestParseLinesOnlyPartial(t *testing.T) {
	spans, err := parseLines([]byte(line1[:10]))
	if err != nil || len(spans) != 0 {
		t.Errorf("got %v, %v; want no spans and no error", spans, err)
	}
}

func TestParseLinesBadLine(t *testing.T) {
	if _, err := parseLines([]byte("{not json}\n")); err == nil {
		t.Error("want an error for a complete line that is not JSON")
	}
}

// Two collectors at once also checks that nothing in the config binds a
// fixed port (the collector's own metrics endpoint would, by default).
func TestStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds (first time: minutes) and runs a real collector")
	}
	// Both keep running until the test ends.
	cols := []*Collector{Start(t), Start(t)}
	if cols[0].Endpoint == cols[1].Endpoint {
		t.Fatalf("both collectors on %s", cols[0].Endpoint)
	}
	for _, c := range cols {
		conn, err := net.DialTimeout("tcp", c.Endpoint, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if spans := c.Spans(t); len(spans) != 0 {
			t.Errorf("%s: got %d spans before anything was sent", c.Endpoint, len(spans))
		}
	}
}

// fatalTB records a Fatalf and ends the call that made it (by a panic the
// caller recovers), so that a test can check a helper's failure.
type fatalTB struct {
	testing.TB
	fatal string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	panic(f)
}

// TestRestartPortTaken: a port taken while the collector was stopped
// makes Restart fail, saying so, rather than leave the test talking to
// whatever holds the port with its own collector gone.
func TestRestartPortTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds (first time: minutes) and runs a real collector")
	}
	c := Start(t)
	c.Stop(t)
	l, err := net.Listen("tcp", c.Endpoint) // another test's server, say
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ftb := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != any(ftb) {
				panic(r)
			}
		}()
		c.Restart(ftb)
	}()
	if !strings.Contains(ftb.fatal, "taken by another process") {
		t.Errorf("Restart with %s taken: Fatalf %q, want it to say the port was taken", c.Endpoint, ftb.fatal)
	}
}
