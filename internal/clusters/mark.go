package clusters

import (
	"fmt"
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

// Trust says whose claims of their cluster (tracestate weft=<cluster>,
// X-Source-Cluster) a SERVER span believes.
type Trust uint8

const (
	// TrustPeers, the default, believes a claim only from a caller whose
	// network peer address is loopback or in a prefix of the peer map (of
	// any cluster, this one's included), and never a claim of this cluster
	// from another cluster's address. See the package documentation.
	TrustPeers Trust = iota
	// TrustAny believes claims from every caller, outside ones included:
	// weft's rule before claims were checked, for networks whose addresses
	// say nothing of the caller. Anyone who can reach a server can then
	// pass for any cluster.
	TrustAny
	numTrust
)

var trustNames = [numTrust]string{"peers", "any"}

// String returns the configuration value of t.
func (t Trust) String() string {
	if t < numTrust {
		return trustNames[t]
	}
	return "invalid"
}

// ParseTrust reads a Trust: "peers" (or empty) or "any".
func ParseTrust(s string) (Trust, error) {
	switch s {
	case "", "peers":
		return TrustPeers, nil
	case "any":
		return TrustAny, nil
	}
	return 0, fmt.Errorf("%q: want %q (the default) or %q", s, TrustPeers, TrustAny)
}

// Refusal says why a well-formed claim of the caller's cluster was not
// believed.
type Refusal uint8

const (
	RefusedNone Refusal = iota
	// RefusedUntrusted: the caller's network peer address is unknown, or
	// neither loopback nor in any cluster of the peer map.
	RefusedUntrusted
	// RefusedDeniesCrossing: the claim names this cluster, but the caller's
	// address is in another cluster's prefix.
	RefusedDeniesCrossing
	numRefusal
)

var refusalNames = [numRefusal]string{"none", "untrusted_source", "denies_crossing"}

// String returns a short name, usable as a metric label.
func (r Refusal) String() string {
	if r < numRefusal {
		return refusalNames[r]
	}
	return "invalid"
}

// Config is what the marking stage knows: this cluster's name, the peer
// map, and whose claims to believe.
type Config struct {
	Own   string
	Peers Peers
	Trust Trust
}

// Decision is the stage's conclusion for one span.
type Decision struct {
	Source, Target string // both empty: the span crosses nothing
	Via            Via
	// Malformed claims, skipped for the next source of the caller's cluster.
	BadTracestate, BadHeader bool
	// Why well-formed claims were not believed (RefusedNone: they were
	// believed, or absent, or not reached); skipped like malformed ones.
	RefusedTracestate, RefusedHeader Refusal
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
// Via of the result) and notes the claims it skipped, malformed or not
// believed.
func (c Config) caller(sp *spans.Span) Decision {
	var d Decision
	// Claims are vetted against the socket's peer address only: a
	// client.address may come from a forwarding header, as the claim does.
	peer, hasPeer := attrAddr(sp.Attrs, "network.peer.address")
	if v, ok := TracestateMember(sp.TraceState, TracestateKey); ok {
		switch bad, r := c.vet(v, peer, hasPeer); {
		case bad:
			d.BadTracestate = true
		case r != RefusedNone:
			d.RefusedTracestate = r
		default:
			d.Source, d.Via = v, ViaTracestate
			return d
		}
	}
	if v := sp.SourceCluster; v != "" {
		switch bad, r := c.vet(v, peer, hasPeer); {
		case bad:
			d.BadHeader = true
		case r != RefusedNone:
			d.RefusedHeader = r
		default:
			d.Source, d.Via = v, ViaHeader
			return d
		}
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

// vet judges a claim of the caller's cluster: malformed (bad), or well
// formed but not to be believed from the caller's peer address (hasPeer
// false: unknown), or believed (false, RefusedNone).
func (c Config) vet(claim string, peer netip.Addr, hasPeer bool) (bad bool, r Refusal) {
	switch {
	case !ValidName(claim):
		return true, RefusedNone
	case c.Trust == TrustAny:
		return false, RefusedNone
	case !hasPeer:
		return false, RefusedUntrusted
	}
	cl, listed := c.Peers.Lookup(peer)
	switch {
	case !listed && !peer.Unmap().IsLoopback():
		// Loopback is a process in this pod's or node's network namespace,
		// such as a sidecar proxy: inside this cluster like its own prefixes.
		return false, RefusedUntrusted
	case listed && cl != c.Own && claim == c.Own:
		// A claim may say which cluster a crossing came from, but not deny
		// a crossing the address shows.
		return false, RefusedDeniesCrossing
	}
	return false, RefusedNone
}

// peerAddr reads the span's network.peer.address, else the fallback
// attribute; either must be an IP address.
func peerAddr(attrs []attribute.KeyValue, fallback attribute.Key) (netip.Addr, bool) {
	if a, ok := attrAddr(attrs, "network.peer.address"); ok {
		return a, true
	}
	return attrAddr(attrs, fallback)
}

// attrAddr reads attribute key (the last one given) as an IP address.
func attrAddr(attrs []attribute.KeyValue, key attribute.Key) (netip.Addr, bool) {
	var s string
	for _, kv := range attrs {
		if kv.Key == key {
			s = kv.Value.AsString()
		}
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil
}
