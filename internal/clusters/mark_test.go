package clusters

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/spans"
)

const (
	east = "aws-us-east-1-prod-01"
	west = "aws-us-west-2-prod-01"
	eu   = "aws-eu-west-1-prod-01"
)

func mustPeers(t testing.TB, s string) Peers {
	t.Helper()
	p, err := ParsePeers(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecide(t *testing.T) {
	withOwn := Config{Own: east, Peers: mustPeers(t, west+"=10.20.0.0/16;"+eu+"=10.30.0.0/16;"+east+"=10.0.0.0/16")}
	noOwn := Config{Own: east, Peers: mustPeers(t, west+"=10.20.0.0/16;"+eu+"=10.30.0.0/16")}
	noMap := Config{Own: east}
	client := func(attrs ...attribute.KeyValue) spans.Span {
		return spans.Span{Kind: trace.SpanKindClient, Attrs: attrs}
	}
	server := func(ts, hdr string, attrs ...attribute.KeyValue) spans.Span {
		return spans.Span{Kind: trace.SpanKindServer, TraceState: ts, SourceCluster: hdr, Attrs: attrs}
	}
	peer := func(a string) attribute.KeyValue { return attribute.String("network.peer.address", a) }
	for _, tc := range []struct {
		name string
		cfg  Config
		span spans.Span
		want Decision
	}{
		// CLIENT: by the peer address only.
		{"client to another cluster", withOwn, client(peer("10.20.1.1")), Decision{Source: east, Target: west, Via: ViaAddress}},
		{"client within", withOwn, client(peer("10.0.3.3")), Decision{}},
		{"client outside every cluster", withOwn, client(peer("203.0.113.9")), Decision{}},
		{"client to loopback", withOwn, client(peer("127.0.0.1")), Decision{}},
		{"client by server.address", withOwn, client(attribute.String("server.address", "10.30.0.4")), Decision{Source: east, Target: eu, Via: ViaAddress}},
		{"client by host name", withOwn, client(attribute.String("server.address", "shop.eu")), Decision{}},
		{"client peer first", withOwn, client(attribute.String("server.address", "10.30.0.4"), peer("10.20.0.4")), Decision{Source: east, Target: west, Via: ViaAddress}},
		{"client ignores claims", withOwn, spans.Span{Kind: trace.SpanKindClient, TraceState: "weft=" + eu, SourceCluster: eu}, Decision{}},
		{"client without a map", noMap, client(peer("10.20.1.1")), Decision{}},
		{"client without own name", Config{Peers: withOwn.Peers}, client(peer("10.20.1.1")), Decision{}},

		// SERVER: tracestate, then header, then address.
		{"server tracestate", withOwn, server("congo=x,weft="+west, eu, peer("10.30.0.1")), Decision{Source: west, Target: east, Via: ViaTracestate}},
		{"server tracestate without a map", noMap, server("weft="+eu, "", peer("127.0.0.1")), Decision{Source: eu, Target: east, Via: ViaTracestate}},
		{"server tracestate names us", withOwn, server("weft="+east, west, peer("10.20.0.1")), Decision{}},
		{"server header", withOwn, server("congo=x", eu, peer("10.20.0.1")), Decision{Source: eu, Target: east, Via: ViaHeader}},
		{"server header names us", withOwn, server("", east, peer("10.20.0.1")), Decision{}},
		{"server bad tracestate, header", withOwn, server("weft=a b", eu), Decision{Source: eu, Target: east, Via: ViaHeader, BadTracestate: true}},
		{"server tracestate says external", withOwn, server("weft=external", "", peer("10.0.0.1")), Decision{Source: External, Target: east, Via: ViaTracestate}},
		{"server bad header, address", withOwn, server("", "x,y", peer("10.30.0.1")), Decision{Source: eu, Target: east, Via: ViaAddress, BadHeader: true}},
		{"server header says external", withOwn, server("", External, peer("10.0.0.1")), Decision{Source: External, Target: east, Via: ViaHeader}},
		{"server by address", withOwn, server("", "", peer("10.20.9.9")), Decision{Source: west, Target: east, Via: ViaAddress}},
		{"server by client.address", withOwn, server("", "", attribute.String("client.address", "::ffff:10.30.0.1")), Decision{Source: eu, Target: east, Via: ViaAddress}},
		{"server within", withOwn, server("", "", peer("10.0.0.7")), Decision{}},
		{"server external", withOwn, server("", "", peer("203.0.113.9")), Decision{Source: External, Target: east, Via: ViaExternal}},
		{"server external private", withOwn, server("", "", peer("192.168.1.1")), Decision{Source: External, Target: east, Via: ViaExternal}},
		{"server loopback", withOwn, server("", "", peer("127.0.0.1")), Decision{}},
		{"server loopback v6", withOwn, server("", "", peer("::1")), Decision{}},
		{"server link-local", withOwn, server("", "", peer("169.254.169.254")), Decision{}},
		{"server unknown without own CIDRs", noOwn, server("", "", peer("203.0.113.9")), Decision{}},
		{"server no address", withOwn, server("", ""), Decision{}},
		{"server without own name", Config{Peers: withOwn.Peers}, server("weft="+west, "", peer("10.20.0.1")), Decision{}},

		{"internal span", withOwn, spans.Span{Kind: trace.SpanKindInternal, Attrs: []attribute.KeyValue{peer("10.20.0.1")}}, Decision{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.Decide(&tc.span)
			if got != tc.want {
				t.Errorf("%+v, want %+v", got, tc.want)
			}
			if got.Crosses() != (tc.want.Source != "") {
				t.Errorf("Crosses() = %v", got.Crosses())
			}
		})
	}
}

func TestViaString(t *testing.T) {
	for v, want := range map[Via]string{ViaNone: "none", ViaAddress: "address", ViaExternal: "external",
		ViaTracestate: "tracestate", ViaHeader: "header", numVia: "invalid"} {
		if v.String() != want {
			t.Errorf("%d: %q, want %q", v, v.String(), want)
		}
	}
}
