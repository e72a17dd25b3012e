package inject

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
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
	for _, tc := range []struct {
		value string
		want  uint32
	}{{"", 70}, {"aws-us-east-1-shop-01", 70 + uint32(len("weft=aws-us-east-1-shop-01,"))}, {"a,b", 70}} {
		if got := HTTP1MergedAdded("weft", tc.value); got != tc.want {
			t.Errorf("HTTP1MergedAdded(%q) = %d, want %d", tc.value, got, tc.want)
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
// traceparent right after its request line and the member: in a
// tracestate line after it, or, when the request has a tracestate of its
// own, first in that list (never a second tracestate line). Every other
// byte arrives as sent.
func TestTraceStateHTTP1(t *testing.T) { eachHook(t, testTraceStateHTTP1) }

func testTraceStateHTTP1(t *testing.T, h Hook) {
	kernel.Require(t)
	const member = "weft=aws-us-east-1-shop-01"
	inj := New(nil, "")
	inj.SetHook(h)
	if err := inj.SetTraceState("weft", "aws-us-east-1-shop-01"); err != nil {
		t.Fatal(err)
	}
	if err := inj.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { inj.Shutdown(context.Background()) })
	trackSelf(t, inj)
	const appTP = "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
	tests := []struct {
		name string
		hdr  []string // the app's headers, after Host
		// want is the head the server gets after the request line and the
		// traceparent line ("" in it: the app's headers unchanged); noTP:
		// no traceparent line either.
		want   []string
		noTP   bool
		merged uint64 // state_merged
		kept   uint64 // state_kept
	}{
		{name: "no tracestate", hdr: []string{withLen(5)},
			want: []string{"tracestate: " + member + "\r\n", "Host: echo\r\n", withLen(5)}},
		{name: "app tracestate", hdr: []string{withLen(5), "tracestate: congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\r\n", "Accept: */*\r\n"},
			want:   []string{"Host: echo\r\n", withLen(5), "tracestate: " + member + ",congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\r\n", "Accept: */*\r\n"},
			merged: 1},
		{name: "mixed case name", hdr: []string{"TraceState: congo=1\r\n", withLen(5)},
			want:   []string{"Host: echo\r\n", "TraceState: " + member + ",congo=1\r\n", withLen(5)},
			merged: 1},
		{name: "last header", hdr: []string{withLen(5), "TRACESTATE: a=b\r\n"},
			want:   []string{"Host: echo\r\n", withLen(5), "TRACESTATE: " + member + ",a=b\r\n"},
			merged: 1},
		{name: "leading spaces and tab", hdr: []string{"tracestate:   \ta=b , c=d\r\n", withLen(5)},
			want:   []string{"Host: echo\r\n", "tracestate:   \t" + member + ",a=b , c=d\r\n", withLen(5)},
			merged: 1},
		{name: "no space", hdr: []string{"tracestate:a=b\r\n", withLen(5)},
			want:   []string{"Host: echo\r\n", "tracestate:" + member + ",a=b\r\n", withLen(5)},
			merged: 1},
		{name: "key as prefix or tenant", hdr: []string{"tracestate: weftx=1,t@weft=2,weft@x=3\r\n", withLen(5)},
			want:   []string{"Host: echo\r\n", "tracestate: " + member + ",weftx=1,t@weft=2,weft@x=3\r\n", withLen(5)},
			merged: 1},
		{name: "own key first", hdr: []string{"tracestate: weft=other\r\n", withLen(5)},
			want: []string{"Host: echo\r\n", "tracestate: weft=other\r\n", withLen(5)}, kept: 1},
		{name: "own key later, after spaces", hdr: []string{withLen(5), "tracestate: rojo=1,\t weft=other\r\n"},
			want: []string{"Host: echo\r\n", withLen(5), "tracestate: rojo=1,\t weft=other\r\n"}, kept: 1},
		{name: "two lines", hdr: []string{"tracestate: a=1\r\n", withLen(5), "Tracestate: b=2\r\n"},
			want: []string{"Host: echo\r\n", "tracestate: a=1\r\n", withLen(5), "Tracestate: b=2\r\n"}, kept: 1},
		{name: "app traceparent", hdr: []string{"tracestate: a=1\r\n", appTP, withLen(5)}, noTP: true},
		{name: "app traceparent after", hdr: []string{appTP, "tracestate: a=1\r\n", withLen(5)}, noTP: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := inj.Counters()
			addr, got := startRecorder(t)
			c := dial(t, addr)
			if !waitFor(func() bool { return inj.SockhashHas(c.cookie) }) {
				t.Fatal("the traced connection is not in the sockhash")
			}
			x := newIDs()
			setCtx(t, inj, c.cookie, x)
			req := head("POST", "/orders", tc.hdr...)
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
			want := string(req) + "hello"
			if !tc.noTP {
				line := bytes.Index(req, []byte("\r\n")) + 2
				want = string(req[:line]) + "traceparent: " + x.header() + "\r\n" +
					strings.Join(tc.want, "") + "\r\n" + "hello"
			}
			if string(rcvd) != want {
				t.Errorf("server got\n%q\nwant\n%q", rcvd, want)
			}
			if n := bytes.Count(bytes.ToLower(rcvd), []byte("\ntracestate:")); n > 1 && tc.kept == 0 {
				t.Errorf("%d tracestate lines", n)
			}
			after := inj.Counters()
			d := func(name string) uint64 { return after[name] - before[name] }
			wantInj, wantApp := uint64(1), uint64(0)
			if tc.noTP {
				wantInj, wantApp = 0, 1
			}
			if d("injected") != wantInj || d("app_header") != wantApp || d("state_merged") != tc.merged || d("state_kept") != tc.kept {
				t.Errorf("injected %d app_header %d state_merged %d state_kept %d; want %d %d %d %d",
					d("injected"), d("app_header"), d("state_merged"), d("state_kept"), wantInj, wantApp, tc.merged, tc.kept)
			}
			if int(len(rcvd)-len(req)-5) != 0 && !tc.noTP {
				added := uint32(len(rcvd) - len(req) - 5)
				switch {
				case tc.merged == 1 && added != HTTP1MergedAdded("weft", "aws-us-east-1-shop-01"):
					t.Errorf("added %d bytes, HTTP1MergedAdded says %d", added, HTTP1MergedAdded("weft", "aws-us-east-1-shop-01"))
				case tc.kept == 1 && added != headerLen:
					t.Errorf("added %d bytes, want %d", added, headerLen)
				case tc.merged == 0 && tc.kept == 0 && added != HTTP1Added("weft", "aws-us-east-1-shop-01"):
					t.Errorf("added %d bytes, HTTP1Added says %d", added, HTTP1Added("weft", "aws-us-east-1-shop-01"))
				}
			}
		})
	}
}

// TestFaultTraceStateMerge: a request whose own tracestate gets the
// member takes two pushes. Whichever step fails, the server gets the
// client's bytes unchanged (write_fail), or, when a change cannot be
// undone, nothing of that request (drop, EACCES): never one insertion
// without the other, never uninitialised bytes.
func TestFaultTraceStateMerge(t *testing.T) { eachHook(t, testFaultTraceStateMerge) }

func testFaultTraceStateMerge(t *testing.T, h Hook) {
	kernel.Require(t)
	for _, tc := range []struct {
		name  string
		fault uint32
		drop  bool
	}{
		{"member push fails", faultPush, false},
		{"member fill fails, pop undoes it", faultWrite, false},
		{"traceparent push fails, member popped", faultPush2, false},
		{"member fill and its pop fail", faultWrite | faultUndo, true},
		{"traceparent push and the member's pop fail", faultPush2 | faultUndo, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inj := New(nil, "")
			inj.SetHook(h)
			inj.prepare = setFault(tc.fault)
			if err := inj.SetTraceState("weft", "c1"); err != nil {
				t.Fatal(err)
			}
			if err := inj.Start(context.Background()); err != nil {
				t.Fatalf("Start: %v", err)
			}
			t.Cleanup(func() { inj.Shutdown(context.Background()) })
			trackSelf(t, inj)
			addr, got := startRecorder(t)
			c, cookie := dialRaw(t, inj, addr)
			first := cat(head("POST", "/first", withLen(5)), []byte("hello"))
			second := cat(head("POST", "/second", "tracestate: a=1\r\n", withLen(5)), []byte("world"))
			before := inj.Counters()
			if _, err := c.Write(first); err != nil { // no entry: left alone
				t.Fatal(err)
			}
			setCtx(t, inj, cookie, newIDs())
			n, err := c.Write(second)
			d := grew(before, inj.Counters())
			c.CloseWrite()
			rcvd := received(t, got)
			want := cat(first, second)
			if tc.drop {
				want = first
				if !errors.Is(err, syscall.EACCES) || n != 0 {
					t.Errorf("write of the dropped request: %d, %v; want 0, EACCES", n, err)
				}
				if d["drop"] != 1 || d["write_fail"] != 0 {
					t.Errorf("counters grew by %v; want drop 1, no write_fail", d)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if d["write_fail"] != 1 || d["drop"] != 0 {
					t.Errorf("counters grew by %v; want write_fail 1, no drop", d)
				}
			}
			if d["injected"] != 0 || d["state_merged"] != 0 {
				t.Errorf("counters grew by %v; want no injected, no state_merged", d)
			}
			if !bytes.Equal(rcvd, want) {
				t.Errorf("server got\n%q\nwant\n%q", rcvd, want)
			}
		})
	}
}
