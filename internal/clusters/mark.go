package clusters

import (
	"net/netip"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/spans"
)

// Via says what named the other side of a crossing.
type Via uint8

const (
	ViaNone       Via = iota
	ViaAddress        // the peer map's cluster of the peer address
	ViaExternal       // an address in no listed cluster (SERVER spans only)
	ViaTracestate     // the weft member of the caller's tracestate
	ViaHeader         // the caller's X-Source-Cluster header
	numVia
)

var viaNames = [numVia]string{"none", "address", "external", "tracestate", "header"}

// String returns a short name, usable as a metric label.
func (v Via) String() string {
	if v < numVia {
		return viaNames[v]
	}
	return "invalid"
}

// Config is what the marking stage knows: this cluster's name and the
// peer map.
type Config struct {
	Own   string
	Peers Peers
}

// Decision is the stage's conclusion for one span.
type Decision struct {
	Source, Target string // both empty: the span crosses nothing
	Via            Via
	// Malformed claims, skipped for the next source of the caller's cluster.
	BadTracestate, BadHeader bool
}

// Crosses reports whether the span gets marked.
func (d Decision) Crosses() bool { return d.Source != "" }

// Decide says whether sp crossed a cluster boundary, by the rules of the
// package documentation. It looks at CLIENT and SERVER spans only.
func (c Config) Decide(sp *spans.Span) Decision {
	if c.Own == "" {
		return Decision{}
	}
	switch sp.Kind {
	case trace.SpanKindClient:
		a, ok := peerAddr(sp.Attrs, "server.address")
		if !ok {
			return Decision{}
		}
		if cl, ok := c.Peers.Lookup(a); ok && cl != c.Own {
			return Decision{Source: c.Own, Target: cl, Via: ViaAddress}
		}
	case trace.SpanKindServer:
		d := c.caller(sp)
		if d.Source == c.Own {
			d.Source, d.Via = "", ViaNone
		}
		if d.Source != "" {
			d.Target = c.Own
		}
		return d
	}
	return Decision{}
}

// caller finds the cluster a SERVER span's request came from (Source and
// Via of the result) and notes the malformed claims it skipped.
func (c Config) caller(sp *spans.Span) Decision {
	var d Decision
	if v, ok := TracestateMember(sp.TraceState, TracestateKey); ok {
		if ValidName(v) {
			d.Source, d.Via = v, ViaTracestate
			return d
		}
		d.BadTracestate = true
	}
	if v := sp.SourceCluster; v != "" {
		if ValidName(v) {
			d.Source, d.Via = v, ViaHeader
			return d
		}
		d.BadHeader = true
	}
	a, ok := peerAddr(sp.Attrs, "client.address")
	if !ok {
		return d
	}
	if cl, ok := c.Peers.Lookup(a); ok {
		d.Source, d.Via = cl, ViaAddress
		return d
	}
	// Only when this cluster's own prefixes are known can an address in no
	// listed cluster be said to come from outside: else every in-cluster
	// caller would. This host (loopback) and non-unicast are never outside.
	a = a.Unmap()
	if c.Peers.Has(c.Own) && a.IsGlobalUnicast() {
		d.Source, d.Via = External, ViaExternal
	}
	return d
}

// peerAddr reads the span's network.peer.address, else the fallback
// attribute; either must be an IP address.
func peerAddr(attrs []attribute.KeyValue, fallback attribute.Key) (netip.Addr, bool) {
	var peer, other string
	for _, kv := range attrs {
		switch kv.Key {
		case "network.peer.address":
			peer = kv.Value.AsString()
		case fallback:
			other = kv.Value.AsString()
		}
	}
	for _, s := range []string{peer, other} {
		if s == "" {
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			return a, true
		}
	}
	return netip.Addr{}, false
}
