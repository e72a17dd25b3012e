package http1

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/httpwire"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/protocols/httpsem"
	"github.com/weft-dev/weft/internal/redact"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/tracecontext"
)

func attrMap(kvs []attribute.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

func TestServerSpan(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	base := func() httpwire.Exchange {
		return httpwire.Exchange{
			Role: httpwire.RoleServer,
			Req: httpwire.Request{Method: "GET", Target: "/a/b?x=1", Proto: "HTTP/1.1", Host: "shop:8080",
				UserAgent: "curl/8", ContentLength: -1},
			Resp: httpwire.Response{Proto: "HTTP/1.1", Status: 200, ContentLength: 5, BodyBytes: 5},
		}
	}
	bpfTrace := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	bpfSpan := [8]byte{9, 9, 9, 9, 9, 9, 9, 9}
	tests := []struct {
		name    string
		edit    func(x *httpwire.Exchange)
		check   func(t *testing.T, s map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool)
		problem string
		b3      string // the B3 problem
		kernel  string // the kernel's trace ID, when not bpfTrace
	}{
		{name: "plain GET", edit: func(x *httpwire.Exchange) {},
			check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
				want := map[string]any{"http.request.method": "GET", "url.path": "/a/b", "url.query": "x=1", "url.scheme": "http",
					"server.address": "shop", "server.port": int64(8080), "client.address": "10.0.0.2",
					"network.peer.address": "10.0.0.2", "network.peer.port": int64(51000),
					"network.protocol.version": "1.1", "user_agent.original": "curl/8",
					"http.response.status_code": int64(200), "http.response.body.size": int64(5)}
				for k, v := range want {
					if a[k] != v {
						t.Errorf("%s = %v, want %v", k, a[k], v)
					}
				}
				if name != "GET" || parent.IsValid() || tid != bpfTrace || errored || !sampled {
					t.Errorf("name %q parent %v trace %v error %v sampled %v", name, parent, tid, errored, sampled)
				}
			}},
		{name: "caller traceparent", edit: func(x *httpwire.Exchange) {
			x.Req.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
			x.Req.Tracestate = "vendor=abc"
		}, check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
			if tid.String() != "4bf92f3577b34da6a3ce929d0e0e4736" || parent.String() != "00f067aa0ba902b7" || sampled {
				t.Errorf("trace %s parent %s sampled %v", tid, parent, sampled)
			}
		}},
		{name: "bad traceparent hex", edit: func(x *httpwire.Exchange) {
			x.Req.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"
		}, problem: "hex", check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
			if parent.IsValid() || tid != bpfTrace {
				t.Errorf("invalid header must leave a root span: parent %s trace %s", parent, tid)
			}
		}},
		{name: "duplicate traceparent", edit: func(x *httpwire.Exchange) {
			x.Req.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			x.Req.DupTraceparent = true
		}, problem: "duplicate", check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
			if parent.IsValid() {
				t.Error("duplicate headers must be ignored")
			}
		}},
		{name: "b3 single, 64-bit", edit: func(x *httpwire.Exchange) {
			x.Req.B3.Single = "a3ce929d0e0e4736-00f067aa0ba902b7-0-e457b5a2e4d86bd1"
		}, kernel: "0000000000000000a3ce929d0e0e4736", check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
			if tid.String() != "0000000000000000a3ce929d0e0e4736" || parent.String() != "00f067aa0ba902b7" || sampled {
				t.Errorf("trace %s parent %s sampled %v", tid, parent, sampled)
			}
		}},
		{name: "b3 multi", edit: func(x *httpwire.Exchange) {
			x.Req.B3 = tracecontext.B3{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", Sampled: "1"}
		}, kernel: "4bf92f3577b34da6a3ce929d0e0e4736", check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
			if tid.String() != "4bf92f3577b34da6a3ce929d0e0e4736" || parent.String() != "00f067aa0ba902b7" || !sampled {
				t.Errorf("trace %s parent %s sampled %v", tid, parent, sampled)
			}
		}},
		{name: "traceparent wins over b3", edit: func(x *httpwire.Exchange) {
			x.Req.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			x.Req.B3.Single = "11111111111111111111111111111111-2222222222222222-1"
		}, check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
			if tid.String() != "4bf92f3577b34da6a3ce929d0e0e4736" || parent.String() != "00f067aa0ba902b7" {
				t.Errorf("trace %s parent %s", tid, parent)
			}
		}},
		{name: "b3 the kernel did not take", edit: func(x *httpwire.Exchange) {
			x.Req.B3.Single = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"
		}, b3: "not_in_kernel", check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
			if parent.IsValid() || tid != bpfTrace {
				t.Errorf("b3 must give way to the kernel's trace: parent %s trace %s", parent, tid)
			}
		}},
		{name: "malformed b3", edit: func(x *httpwire.Exchange) {
			x.Req.B3.Single = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902"
		}, b3: "length", check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
			if parent.IsValid() || tid != bpfTrace {
				t.Errorf("malformed b3 must leave a root span: parent %s trace %s", parent, tid)
			}
		}},
		{name: "b3 sampling only", edit: func(x *httpwire.Exchange) { x.Req.B3.Single = "0" },
			check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
				if parent.IsValid() || tid != bpfTrace {
					t.Errorf("b3: 0 carries no context: parent %s trace %s", parent, tid)
				}
			}},
		{name: "5xx is an error", edit: func(x *httpwire.Exchange) { x.Resp.Status = 503 },
			check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
				if !errored || a["error.type"] != "503" {
					t.Errorf("error %v error.type %v", errored, a["error.type"])
				}
			}},
		{name: "4xx is not", edit: func(x *httpwire.Exchange) { x.Resp.Status = 404 },
			check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
				if errored {
					t.Error("404 marked as error on a server span")
				}
			}},
		{name: "unknown method", edit: func(x *httpwire.Exchange) { x.Req.Method = "PURGE" },
			check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
				if name != "HTTP" || a["http.request.method"] != "_OTHER" || a["http.request.method_original"] != "PURGE" {
					t.Errorf("name %q attrs %v", name, a)
				}
			}},
		{name: "no response", edit: func(x *httpwire.Exchange) { x.Resp = httpwire.Response{}; x.Incomplete = "closed before response" },
			check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
				if !errored || a["http.response.status_code"] != nil {
					t.Errorf("error %v status %v", errored, a["http.response.status_code"])
				}
			}},
		{name: "no host header", edit: func(x *httpwire.Exchange) { x.Req.Host = "" },
			check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
				if a["server.address"] != "10.0.0.1" || a["server.port"] != int64(80) {
					t.Errorf("server %v:%v", a["server.address"], a["server.port"])
				}
			}},
		{name: "goroutine of the response", edit: func(x *httpwire.Exchange) { x.ReqGoid, x.RespGoid = 7, 42 },
			check: func(t *testing.T, a map[string]any, name string, parent trace.SpanID, tid trace.TraceID, errored, sampled bool) {
				if a["weft.goroutine.id"] != int64(42) {
					t.Errorf("goroutine %v", a["weft.goroutine.id"])
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := base()
			tc.edit(&x)
			kernelTrace := bpfTrace
			if tc.kernel != "" {
				b, err := hex.DecodeString(tc.kernel)
				if err != nil || len(b) != 16 {
					t.Fatalf("kernel trace %q", tc.kernel)
				}
				kernelTrace = [16]byte(b)
			}
			s, v := ServerSpan(httpsem.Input{Local: netip.MustParseAddrPort("10.0.0.1:80"),
				Remote: netip.MustParseAddrPort("10.0.0.2:51000"), Process: &probes.Process{PID: 1},
				Start: t0, End: t0.Add(time.Millisecond), TraceID: kernelTrace, SpanID: bpfSpan}, &x)
			if v.TraceparentProblem != tc.problem {
				t.Errorf("problem %q, want %q", v.TraceparentProblem, tc.problem)
			}
			if v.B3Problem != tc.b3 {
				t.Errorf("b3 problem %q, want %q", v.B3Problem, tc.b3)
			}
			if s.Kind != trace.SpanKindServer || s.SpanID != bpfSpan || !s.End.Equal(t0.Add(time.Millisecond)) {
				t.Errorf("kind %v span %v end %v", s.Kind, s.SpanID, s.End)
			}
			tc.check(t, attrMap(s.Attrs), s.Name, s.Parent, s.TraceID, s.Error, s.Sampled)
		})
	}
}

// TestSourceCluster: the X-Source-Cluster header reaches the span of both
// sides, for the cross-cluster stage to read; it is no attribute.
func TestSourceCluster(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	in := httpsem.Input{Local: netip.MustParseAddrPort("10.0.0.1:80"), Remote: netip.MustParseAddrPort("10.0.0.2:51000"),
		Process: &probes.Process{PID: 1}, Start: t0, End: t0}
	for _, header := range []string{"", "aws-us-west-2-prod-01"} {
		x := httpwire.Exchange{Req: httpwire.Request{Method: "GET", Target: "/", Proto: "HTTP/1.1", SourceCluster: header},
			Resp: httpwire.Response{Status: 200}}
		srv, _ := ServerSpan(in, &x)
		cli := ClientSpan(in, &x)
		for _, s := range []struct {
			kind string
			got  string
			a    map[string]any
		}{{"server", srv.SourceCluster, attrMap(srv.Attrs)}, {"client", cli.SourceCluster, attrMap(cli.Attrs)}} {
			if s.got != header {
				t.Errorf("%s span: SourceCluster %q, want %q", s.kind, s.got, header)
			}
			for k, v := range s.a {
				if v == header && header != "" {
					t.Errorf("%s span exports the header as %s", s.kind, k)
				}
			}
		}
	}
}

// TestRedaction: secrets in a request's URL never reach the span, in each
// form a request target can take, server and client side.
func TestRedaction(t *testing.T) {
	const secret = "s3cr3t"
	in := httpsem.Input{Local: netip.MustParseAddrPort("10.0.0.1:80"), Remote: netip.MustParseAddrPort("10.0.0.2:51000"),
		Process: &probes.Process{PID: 1}, Redact: redact.Default()}
	for _, target := range []string{
		"/a?sig=" + secret,
		"/a?x=1&X-Amz-Signature=" + secret + "&y=2",
		"/a?access_token=" + secret,
		"/a?AWSAccessKeyId=" + secret,
		"/a?api_key=" + secret,
		"http://user:" + secret + "@shop/a?b=1",
		"http://shop/a?token=" + secret,
	} {
		x := httpwire.Exchange{Req: httpwire.Request{Method: "GET", Target: target, Proto: "HTTP/1.1", Host: "shop"},
			Resp: httpwire.Response{Status: 200}}
		srv, _ := ServerSpan(in, &x)
		cli := ClientSpan(in, &x)
		for _, s := range []map[string]any{attrMap(srv.Attrs), attrMap(cli.Attrs)} {
			for k, v := range s {
				if str, ok := v.(string); ok && strings.Contains(str, secret) {
					t.Errorf("%q: %s = %q carries the secret", target, k, str)
				}
			}
		}
		if p := attrMap(srv.Attrs)["url.path"]; p != "/a" {
			t.Errorf("%q: url.path %v, want /a", target, p)
		}
	}
	// Switched off: the query is kept as sent, userinfo still replaced.
	keep := in
	keep.Redact = redact.Default().KeepQuery(true)
	x := httpwire.Exchange{Req: httpwire.Request{Method: "GET", Target: "/a?sig=" + secret, Proto: "HTTP/1.1"}, Resp: httpwire.Response{Status: 200}}
	if q := attrMap(mustServer(ServerSpan(keep, &x)).Attrs)["url.query"]; q != "sig="+secret {
		t.Errorf("raw query kept as %v", q)
	}
}

func mustServer(s spans.Span, _ httpsem.Verdict) spans.Span { return s }

// TestServerParentFromOption: a parent a TCP option carried is the server
// span's when the request has no valid traceparent; a valid header wins,
// agreeing or not, and the verdict says which it was.
func TestServerParentFromOption(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	optTrace := [16]byte{0xa1, 15: 0x01}
	optSpan := [8]byte{0xb2, 7: 0x02}
	const hdrTrace, hdrSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	agree := "00-a1000000000000000000000000000001-b200000000000002-01"
	tests := []struct {
		name        string
		traceparent string
		option      *httpsem.Parent
		context     string
		parent      string // hex; "" none
		trace       string
		sampled     bool
	}{
		{"neither", "", nil, "", "", "a1000000000000000000000000000001", true},
		{"header only", "00-" + hdrTrace + "-" + hdrSpan + "-01", nil, "header", hdrSpan, hdrTrace, true},
		{"option only", "", &httpsem.Parent{SpanID: optSpan, Sampled: true}, "option", "b200000000000002", "a1000000000000000000000000000001", true},
		{"option unsampled", "", &httpsem.Parent{SpanID: optSpan}, "option", "b200000000000002", "a1000000000000000000000000000001", false},
		{"both agree", agree, &httpsem.Parent{SpanID: optSpan, Sampled: true}, "both", "b200000000000002", "a1000000000000000000000000000001", true},
		{"header wins", "00-" + hdrTrace + "-" + hdrSpan + "-00", &httpsem.Parent{SpanID: optSpan, Sampled: true}, "header_wins", hdrSpan, hdrTrace, false},
		{"invalid header: option", "00-zz", &httpsem.Parent{SpanID: optSpan, Sampled: true}, "option", "b200000000000002", "a1000000000000000000000000000001", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := httpwire.Exchange{Req: httpwire.Request{Method: "GET", Target: "/", Proto: "HTTP/1.1", Traceparent: tc.traceparent},
				Resp: httpwire.Response{Status: 200}}
			in := httpsem.Input{Local: netip.MustParseAddrPort("10.0.0.1:80"), Remote: netip.MustParseAddrPort("10.0.0.2:51000"),
				Process: &probes.Process{PID: 1}, Start: t0, End: t0, TraceID: optTrace, SpanID: [8]byte{1}, Option: tc.option}
			s, v := ServerSpan(in, &x)
			if v.Context != tc.context {
				t.Errorf("context %q, want %q", v.Context, tc.context)
			}
			parent := ""
			if s.Remote {
				parent = s.Parent.String()
			}
			if parent != tc.parent || s.TraceID.String() != tc.trace || s.Sampled != tc.sampled {
				t.Errorf("parent %q trace %s sampled %v, want %q %s %v", parent, s.TraceID, s.Sampled, tc.parent, tc.trace, tc.sampled)
			}
		})
	}
}

// TestClientSpanContext: a client span's IDs are the kernel's, unless the
// request carries a traceparent of the app's own (an SDK's span), whose
// trace and span it joins. A traceparent copied from the request the call
// serves (a proxy forwarding it) and rewritten by the injector to this
// span (in.Forwarded) is not the app's: the span keeps the kernel's IDs.
func TestClientSpanContext(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	const (
		kTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
		kParent = "00f067aa0ba902b7" // the served span
		caller  = "a3ce929d0e0e4736" // the served span's parent
		sdkSpan = "b7ad6b7169203331"
		other   = "0af7651916cd43dd8448eb211c80319c"
	)
	kSpan := trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	tid := func(s string) trace.TraceID { v, _ := trace.TraceIDFromHex(s); return v }
	sid := func(s string) trace.SpanID { v, _ := trace.SpanIDFromHex(s); return v }
	tests := []struct {
		name        string
		parent      bool // the kernel linked the call to a served span
		sampled     bool // that span's flag
		traceparent string
		dup         bool
		forwarded   bool // the injector rewrote the header to this span
		wantTrace   string
		wantParent  string // "" : none
		wantSampled bool
	}{
		{name: "no header", parent: true, sampled: true, wantTrace: kTrace, wantParent: kParent, wantSampled: true},
		{name: "forwarded", parent: true, sampled: true, traceparent: "00-" + kTrace + "-" + caller + "-01", forwarded: true,
			wantTrace: kTrace, wantParent: kParent, wantSampled: true},
		{name: "forwarded, flag differs: the kernel's", parent: true, sampled: true, traceparent: "00-" + kTrace + "-" + caller + "-00", forwarded: true,
			wantTrace: kTrace, wantParent: kParent, wantSampled: true},
		{name: "forwarded, not rewritten (injection off)", parent: true, sampled: true, traceparent: "00-" + kTrace + "-" + caller + "-01",
			wantTrace: kTrace, wantParent: caller, wantSampled: true},
		{name: "sdk span", parent: true, sampled: true, traceparent: "00-" + kTrace + "-" + sdkSpan + "-00",
			wantTrace: kTrace, wantParent: sdkSpan, wantSampled: false},
		{name: "another trace", parent: true, sampled: true, traceparent: "00-" + other + "-" + kParent + "-01",
			wantTrace: other, wantParent: kParent, wantSampled: true},
		{name: "no served span, header", traceparent: "00-" + kTrace + "-" + kParent + "-01",
			wantTrace: kTrace, wantParent: kParent, wantSampled: true},
		{name: "duplicate header", parent: true, sampled: true, traceparent: "00-" + other + "-" + sdkSpan + "-01", dup: true,
			wantTrace: kTrace, wantParent: kParent, wantSampled: true},
		{name: "invalid header", parent: true, sampled: false, traceparent: "00-" + other + "-" + sdkSpan + "-0x",
			wantTrace: kTrace, wantParent: kParent, wantSampled: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := httpsem.Input{Remote: netip.MustParseAddrPort("10.0.0.2:80"), Process: &probes.Process{PID: 1},
				Start: t0, End: t0, TraceID: tid(kTrace), SpanID: kSpan, Forwarded: tc.forwarded}
			if tc.parent {
				in.Parent = &httpsem.Parent{SpanID: sid(kParent), Sampled: tc.sampled}
			}
			x := httpwire.Exchange{Req: httpwire.Request{Method: "GET", Target: "/", Proto: "HTTP/1.1",
				Traceparent: tc.traceparent, DupTraceparent: tc.dup}, Resp: httpwire.Response{Status: 200}}
			s := ClientSpan(in, &x)
			wantParent := trace.SpanID{}
			if tc.wantParent != "" {
				wantParent = sid(tc.wantParent)
			}
			if s.TraceID != tid(tc.wantTrace) || s.SpanID != kSpan || s.Parent != wantParent || s.Sampled != tc.wantSampled {
				t.Errorf("trace %s span %s parent %s sampled %v; want %s %s %s %v",
					s.TraceID, s.SpanID, s.Parent, s.Sampled, tc.wantTrace, kSpan, wantParent, tc.wantSampled)
			}
		})
	}
}
