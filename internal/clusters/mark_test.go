package clusters

import (
	"strings"
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
		{"server tracestate names us", withOwn, server("weft="+east, west, peer("10.0.0.1")), Decision{}},
		{"server tracestate names us from another cluster", withOwn, server("weft="+east, eu, peer("10.20.0.1")),
			Decision{Source: eu, Target: east, Via: ViaHeader, RefusedTracestate: RefusedDeniesCrossing}},
		{"server header", withOwn, server("congo=x", eu, peer("10.20.0.1")), Decision{Source: eu, Target: east, Via: ViaHeader}},
		{"server header names us", withOwn, server("", east, peer("10.0.0.1")), Decision{}},
		{"server header names us from another cluster", withOwn, server("", east, peer("10.20.0.1")),
			Decision{Source: west, Target: east, Via: ViaAddress, RefusedHeader: RefusedDeniesCrossing}},
		{"server bad tracestate, header", withOwn, server("weft=a b", eu, peer("10.0.0.9")), Decision{Source: eu, Target: east, Via: ViaHeader, BadTracestate: true}},
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

// TestDecideTrust: claims (tracestate, header, both, malformed) against
// where the caller is: this cluster's prefixes, another cluster's, none,
// loopback, unknown. Before claims were vetted, every well-formed claim was
// believed: the "outside ..." cases failed.
func TestDecideTrust(t *testing.T) {
	peers := mustPeers(t, west+"=10.20.0.0/16;"+eu+"=10.30.0.0/16;"+east+"=10.0.0.0/16")
	withOwn := Config{Own: east, Peers: peers}
	noOwn := Config{Own: east, Peers: mustPeers(t, west+"=10.20.0.0/16;"+eu+"=10.30.0.0/16")}
	noMap := Config{Own: east}
	anyOwn := Config{Own: east, Peers: peers, Trust: TrustAny}
	anyNoMap := Config{Own: east, Trust: TrustAny}
	const (
		own      = "10.0.0.5"    // this cluster
		inWest   = "10.20.0.5"   // another listed cluster
		outside  = "203.0.113.9" // no listed cluster
		untr     = RefusedUntrusted
		denies   = RefusedDeniesCrossing
		noClaim  = ""
		badClaim = "not a cluster!"
	)
	type addr []attribute.KeyValue
	peer := func(a string) addr { return addr{attribute.String("network.peer.address", a)} }
	ts := func(v string) string {
		if v == "" {
			return "congo=t61rcWkgMzE"
		}
		return "congo=t61rcWkgMzE,weft=" + v
	}
	for _, tc := range []struct {
		name     string
		cfg      Config
		tsClaim  string // weft member of tracestate; "" none
		hdrClaim string // X-Source-Cluster; "" none
		from     addr
		want     Decision
	}{
		// tracestate only
		{"tracestate from own", withOwn, eu, noClaim, peer(own), Decision{Source: eu, Target: east, Via: ViaTracestate}},
		{"tracestate from a peer", withOwn, eu, noClaim, peer(inWest), Decision{Source: eu, Target: east, Via: ViaTracestate}},
		{"tracestate from outside", withOwn, eu, noClaim, peer(outside), Decision{Source: External, Target: east, Via: ViaExternal, RefusedTracestate: untr}},
		{"tracestate names us from own", withOwn, east, noClaim, peer(own), Decision{}},
		{"tracestate names us from a peer", withOwn, east, noClaim, peer(inWest), Decision{Source: west, Target: east, Via: ViaAddress, RefusedTracestate: denies}},
		{"tracestate names us from outside", withOwn, east, noClaim, peer(outside), Decision{Source: External, Target: east, Via: ViaExternal, RefusedTracestate: untr}},
		{"tracestate says external from outside", withOwn, External, noClaim, peer(outside), Decision{Source: External, Target: east, Via: ViaExternal, RefusedTracestate: untr}},
		{"tracestate malformed from outside", withOwn, "a b", noClaim, peer(outside), Decision{Source: External, Target: east, Via: ViaExternal, BadTracestate: true}},
		{"tracestate malformed from own", withOwn, "a b", noClaim, peer(own), Decision{BadTracestate: true}},

		// header only
		{"header from own", withOwn, noClaim, west, peer(own), Decision{Source: west, Target: east, Via: ViaHeader}},
		{"header from a peer", withOwn, noClaim, eu, peer(inWest), Decision{Source: eu, Target: east, Via: ViaHeader}},
		{"header from outside", withOwn, noClaim, west, peer(outside), Decision{Source: External, Target: east, Via: ViaExternal, RefusedHeader: untr}},
		{"header names us from a peer", withOwn, noClaim, east, peer(inWest), Decision{Source: west, Target: east, Via: ViaAddress, RefusedHeader: denies}},
		{"header names us from outside", withOwn, noClaim, east, peer(outside), Decision{Source: External, Target: east, Via: ViaExternal, RefusedHeader: untr}},
		{"header malformed from a peer", withOwn, noClaim, badClaim, peer(inWest), Decision{Source: west, Target: east, Via: ViaAddress, BadHeader: true}},
		{"header malformed from outside", withOwn, noClaim, badClaim, peer(outside), Decision{Source: External, Target: east, Via: ViaExternal, BadHeader: true}},

		// both: tracestate first
		{"both from own", withOwn, eu, west, peer(own), Decision{Source: eu, Target: east, Via: ViaTracestate}},
		{"both from a peer", withOwn, eu, west, peer(inWest), Decision{Source: eu, Target: east, Via: ViaTracestate}},
		{"both from outside", withOwn, eu, west, peer(outside), Decision{Source: External, Target: east, Via: ViaExternal, RefusedTracestate: untr, RefusedHeader: untr}},
		{"both, tracestate names us, from a peer", withOwn, east, eu, peer(inWest), Decision{Source: eu, Target: east, Via: ViaHeader, RefusedTracestate: denies}},
		{"both name us from a peer", withOwn, east, east, peer(inWest), Decision{Source: west, Target: east, Via: ViaAddress, RefusedTracestate: denies, RefusedHeader: denies}},
		{"both, tracestate malformed, from own", withOwn, "a b", west, peer(own), Decision{Source: west, Target: east, Via: ViaHeader, BadTracestate: true}},
		{"both, tracestate malformed, from outside", withOwn, "a b", west, peer(outside), Decision{Source: External, Target: east, Via: ViaExternal, BadTracestate: true, RefusedHeader: untr}},
		{"both malformed from outside", withOwn, "a b", badClaim, peer(outside), Decision{Source: External, Target: east, Via: ViaExternal, BadTracestate: true, BadHeader: true}},

		// this host, and the address forms
		{"loopback", withOwn, eu, noClaim, peer("127.0.0.1"), Decision{Source: eu, Target: east, Via: ViaTracestate}},
		{"loopback 127/8", withOwn, noClaim, west, peer("127.0.0.6"), Decision{Source: west, Target: east, Via: ViaHeader}},
		{"loopback v6", withOwn, eu, noClaim, peer("::1"), Decision{Source: eu, Target: east, Via: ViaTracestate}},
		{"loopback v4-mapped", withOwn, eu, noClaim, peer("::ffff:127.0.0.1"), Decision{Source: eu, Target: east, Via: ViaTracestate}},
		{"peer v4-mapped", withOwn, eu, noClaim, peer("::ffff:10.20.0.5"), Decision{Source: eu, Target: east, Via: ViaTracestate}},
		{"link-local", withOwn, eu, noClaim, peer("169.254.169.254"), Decision{RefusedTracestate: untr}},
		{"private address in no cluster", withOwn, noClaim, west, peer("192.168.1.1"), Decision{Source: External, Target: east, Via: ViaExternal, RefusedHeader: untr}},
		{"no address", withOwn, eu, west, nil, Decision{RefusedTracestate: untr, RefusedHeader: untr}},
		{"unparsable address", withOwn, eu, noClaim, peer("shop.example"), Decision{RefusedTracestate: untr}},
		{"client.address is not vetted", withOwn, eu, noClaim, addr{attribute.String("client.address", inWest)},
			Decision{Source: west, Target: east, Via: ViaAddress, RefusedTracestate: untr}},
		{"network.peer.address is", withOwn, eu, noClaim, addr{attribute.String("client.address", outside), attribute.String("network.peer.address", inWest)},
			Decision{Source: eu, Target: east, Via: ViaTracestate}},

		// maps without this cluster, or none
		{"no own prefixes, from a peer", noOwn, eu, noClaim, peer(inWest), Decision{Source: eu, Target: east, Via: ViaTracestate}},
		{"no own prefixes, from an unlisted address", noOwn, eu, noClaim, peer(own), Decision{RefusedTracestate: untr}},
		{"no own prefixes, names us from a peer", noOwn, east, noClaim, peer(inWest), Decision{Source: west, Target: east, Via: ViaAddress, RefusedTracestate: denies}},
		{"no map, from an address", noMap, eu, west, peer(own), Decision{RefusedTracestate: untr, RefusedHeader: untr}},
		{"no map, from loopback", noMap, noClaim, west, peer("127.0.0.1"), Decision{Source: west, Target: east, Via: ViaHeader}},

		// TrustAny: every well-formed claim, as before
		{"any: tracestate from outside", anyOwn, eu, noClaim, peer(outside), Decision{Source: eu, Target: east, Via: ViaTracestate}},
		{"any: header from outside", anyOwn, noClaim, west, peer(outside), Decision{Source: west, Target: east, Via: ViaHeader}},
		{"any: names us from a peer", anyOwn, east, noClaim, peer(inWest), Decision{}},
		{"any: malformed from outside", anyOwn, "a b", west, peer(outside), Decision{Source: west, Target: east, Via: ViaHeader, BadTracestate: true}},
		{"any: no map, no address", anyNoMap, noClaim, eu, nil, Decision{Source: eu, Target: east, Via: ViaHeader}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := spans.Span{Kind: trace.SpanKindServer, TraceState: ts(tc.tsClaim), SourceCluster: tc.hdrClaim, Attrs: tc.from}
			if got := tc.cfg.Decide(&sp); got != tc.want {
				t.Errorf("%+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseTrust(t *testing.T) {
	for s, want := range map[string]Trust{"": TrustPeers, "peers": TrustPeers, "any": TrustAny} {
		if got, err := ParseTrust(s); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"all", "ANY", " any", "none", "true"} {
		if _, err := ParseTrust(s); err == nil || !strings.Contains(err.Error(), `want "peers" (the default) or "any"`) {
			t.Errorf("%q: error %v", s, err)
		}
	}
	if TrustPeers.String() != "peers" || TrustAny.String() != "any" || numTrust.String() != "invalid" {
		t.Error("Trust.String")
	}
}

func TestRefusalString(t *testing.T) {
	for r, want := range map[Refusal]string{RefusedNone: "none", RefusedUntrusted: "untrusted_source",
		RefusedDeniesCrossing: "denies_crossing", numRefusal: "invalid"} {
		if r.String() != want {
			t.Errorf("%d: %q, want %q", r, r.String(), want)
		}
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
