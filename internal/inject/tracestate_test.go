package inject

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/kernel"
)

func TestEncodeTraceState(t *testing.T) {
	tests := []struct {
		key, value string
		line       string // "" with wantErr: refused
		wantErr    string
	}{
		{key: "weft", value: "aws-us-east-1-prod-01", line: "tracestate: weft=aws-us-east-1-prod-01\r\n"},
		{key: "weft", value: "", line: ""},
		{key: "weft", value: "a b", line: "tracestate: weft=a b\r\n"},
		{key: "weft", value: "a,b", wantErr: "not allowed"},
		{key: "weft", value: "a=b", wantErr: "not allowed"},
		{key: "weft", value: "a\r\nx: y", wantErr: "not allowed"},
		{key: "weft", value: "trailing ", wantErr: "ends in a space"},
		{key: "Weft", value: "x", wantErr: "lowercase letter"},
		{key: "we ft", value: "x", wantErr: "not allowed"},
		{key: "weft", value: strings.Repeat("n", 80), wantErr: "room for"},
	}
	for _, tc := range tests {
		ts, err := encodeTraceState(tc.key, tc.value)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s=%q: err %v, want one saying %q", tc.key, tc.value, err, tc.wantErr)
			}
			continue
		}
		if err != nil || string(ts.line) != tc.line {
			t.Errorf("%s=%q: line %q, %v; want %q", tc.key, tc.value, ts.line, err, tc.line)
		}
		if tc.value != "" {
			m := tc.key + "=" + tc.value
			want := append(append([]byte{0, 10}, "tracestate"...), byte(len(m)))
			want = append(want, m...)
			if !bytes.Equal(ts.field, want) {
				t.Errorf("%s=%q: field %x, want %x", tc.key, tc.value, ts.field, want)
			}
		}
	}
}

func TestHTTP1Added(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  uint32
	}{{"", 70}, {"aws-us-east-1-shop-01", 70 + uint32(len("tracestate: weft=aws-us-east-1-shop-01\r\n"))}, {"a,b", 70}} {
		if got := HTTP1Added("weft", tc.value); got != tc.want {
			t.Errorf("HTTP1Added(%q) = %d, want %d", tc.value, got, tc.want)
		}
	}
}

func FuzzEncodeTraceState(f *testing.F) {
	f.Add("weft", "us-east-1")
	f.Add("weft", "a,b=c")
	f.Fuzz(func(t *testing.T, key, value string) {
		ts, err := encodeTraceState(key, value)
		if err != nil {
			return
		}
		if len(ts.line) > stateMax || len(ts.field) > stateMax {
			t.Fatalf("%q=%q: encoded past the room (%d, %d)", key, value, len(ts.line), len(ts.field))
		}
		if bytes.ContainsAny(ts.line[:max(len(ts.line)-2, 0)], "\r\n,") {
			t.Fatalf("%q=%q: line %q could break the head or the list", key, value, ts.line)
		}
	})
}

// TestTraceStateHTTP1: with a cluster member set, a traced request gets
// traceparent and tracestate, in that order, right after its request
// line, and every other byte arrives as sent.
func TestTraceStateHTTP1(t *testing.T) {
	kernel.Require(t)
	inj := New(nil, "")
	if err := inj.SetTraceState("weft", "aws-us-east-1-shop-01"); err != nil {
		t.Fatal(err)
	}
	if err := inj.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { inj.Shutdown(context.Background()) })
	trackSelf(t, inj)
	addr, got := startRecorder(t)
	c := dial(t, addr)
	if !waitFor(func() bool { return inj.SockhashHas(c.cookie) }) {
		t.Fatal("the traced connection is not in the sockhash")
	}
	x := newIDs()
	setCtx(t, inj, c.cookie, x)
	req := head("POST", "/orders", withLen(5))
	if _, err := c.Write(append(req, "hello"...)); err != nil {
		t.Fatal(err)
	}
	c.Conn.(*net.TCPConn).CloseWrite()
	var rcvd []byte
	select {
	case rcvd = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("recorder got nothing")
	}
	line := bytes.Index(req, []byte("\r\n")) + 2
	want := string(req[:line]) + "traceparent: " + x.header() + "\r\n" +
		"tracestate: weft=aws-us-east-1-shop-01\r\n" + string(req[line:]) + "hello"
	if string(rcvd) != want {
		t.Errorf("server got\n%q\nwant\n%q", rcvd, want)
	}
	if n := inj.Counters()["injected"]; n != 1 {
		t.Errorf("injected = %d, want 1", n)
	}
}
