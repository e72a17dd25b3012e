package clusters

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Peers maps network prefixes to the clusters whose pods, nodes and load
// balancers use them. This cluster may be listed too: its own prefixes
// tell in-cluster callers from outside ones.
type Peers struct {
	nets     []peerNet // longest prefix first, so the first match is the best
	clusters []string  // in the order first listed
}

type peerNet struct {
	prefix  netip.Prefix
	cluster string
}

// ParsePeers reads a peer map:
//
//	<cluster>=<cidr>[,<cidr>...][;<cluster>=<cidr>...]
//
// for example "aws-us-west-2-prod-01=10.20.0.0/16,10.21.0.0/16;
// aws-eu-west-1-prod-01=10.30.0.0/16". Entries are separated by ";" or
// new lines (a ConfigMap value may list one per line); blanks around any
// part and empty entries are ignored. A bare address is a one-address
// prefix. A cluster may appear in several entries. The empty string is an
// empty map. Errors name the entry and the part at fault: a missing "=", a
// name ValidName refuses or that is "external", a prefix that does not
// parse or has bits set past its length, the same prefix for two clusters.
func ParsePeers(s string) (Peers, error) {
	var p Peers
	owner := map[netip.Prefix]string{}
	entries := strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' })
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		bad := func(format string, args ...any) (Peers, error) {
			return Peers{}, fmt.Errorf("peer entry %d %q: %s", i+1, e, fmt.Sprintf(format, args...))
		}
		name, list, ok := strings.Cut(e, "=")
		name = strings.TrimSpace(name)
		switch {
		case !ok:
			return bad(`no "=" between the cluster name and its CIDRs`)
		case !ValidName(name):
			return bad("cluster name %q: want 1 to %d letters, digits, '.', '_' or '-'", name, MaxNameLen)
		case name == External:
			return bad("%q is reserved for callers in no listed cluster", External)
		}
		n := 0
		for _, c := range strings.Split(list, ",") {
			c = strings.TrimSpace(c)
			if c == "" {
				continue
			}
			pfx, err := parsePrefix(c)
			if err != nil {
				return bad("%v", err)
			}
			n++
			switch prev, seen := owner[pfx]; {
			case seen && prev != name:
				return bad("%s is already %s's", pfx, prev)
			case seen:
				continue
			}
			owner[pfx] = name
			p.nets = append(p.nets, peerNet{pfx, name})
		}
		if n == 0 {
			return bad("no CIDRs after %q", name+"=")
		}
		if !slices.Contains(p.clusters, name) {
			p.clusters = append(p.clusters, name)
		}
	}
	// Stable: equal lengths keep their listed order (they cannot overlap).
	slices.SortStableFunc(p.nets, func(a, b peerNet) int { return cmp.Compare(b.prefix.Bits(), a.prefix.Bits()) })
	return p, nil
}

// parsePrefix reads a CIDR, or an address as its one-address prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("CIDR %q: %w", s, err)
	}
	if p.Masked() != p {
		// Likely a typo in a length or an address: say so rather than guess.
		return netip.Prefix{}, fmt.Errorf("CIDR %q has bits set past /%d (the network is %s)", s, p.Bits(), p.Masked())
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		// Peers' addresses are compared unmapped.
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, nil
}

// Lookup returns the cluster whose prefix holds a (the longest matching
// prefix wins); IPv4-mapped IPv6 addresses match IPv4 prefixes.
func (p Peers) Lookup(a netip.Addr) (string, bool) {
	a = a.Unmap().WithZone("")
	for _, n := range p.nets {
		if n.prefix.Contains(a) {
			return n.cluster, true
		}
	}
	return "", false
}

// Has reports whether the map lists prefixes for cluster.
func (p Peers) Has(cluster string) bool { return slices.Contains(p.clusters, cluster) }

// Clusters lists the clusters of the map in the order first listed.
func (p Peers) Clusters() []string { return slices.Clone(p.clusters) }

// Empty reports whether the map lists nothing.
func (p Peers) Empty() bool { return len(p.nets) == 0 }
