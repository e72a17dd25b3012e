package clusters

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePeers(t *testing.T) {
	const spec = "aws-us-west-2-prod-01=10.20.0.0/16, 10.21.0.0/16; aws-eu-west-1-prod-01 = 10.30.0.0/16\n" +
		"aws-us-east-1-prod-01=10.0.0.0/8,fd00:1::/64;\n aws-us-east-1-prod-01=192.0.2.7 ;;"
	p, err := ParsePeers(spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Clusters(), " "); got != "aws-us-west-2-prod-01 aws-eu-west-1-prod-01 aws-us-east-1-prod-01" {
		t.Errorf("clusters %s", got)
	}
	for _, tc := range []struct {
		addr, want string
	}{
		{"10.20.3.4", "aws-us-west-2-prod-01"},
		{"10.21.0.1", "aws-us-west-2-prod-01"},
		{"10.30.255.255", "aws-eu-west-1-prod-01"},
		{"10.99.0.1", "aws-us-east-1-prod-01"}, // the /8, as no longer prefix holds it
		{"::ffff:10.20.0.9", "aws-us-west-2-prod-01"},
		{"fd00:1::5", "aws-us-east-1-prod-01"},
		{"fd00:1::5%eth0", "aws-us-east-1-prod-01"},
		{"192.0.2.7", "aws-us-east-1-prod-01"},
		{"192.0.2.8", ""},
		{"127.0.0.1", ""},
		{"fd00:2::1", ""},
	} {
		got, ok := p.Lookup(netip.MustParseAddr(tc.addr))
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("Lookup(%s) = %q %v, want %q", tc.addr, got, ok, tc.want)
		}
	}
	if !p.Has("aws-us-east-1-prod-01") || p.Has("us-east-1") || p.Empty() {
		t.Error("Has/Empty")
	}
}

func TestParsePeersEmpty(t *testing.T) {
	for _, s := range []string{"", " ", ";\n;"} {
		p, err := ParsePeers(s)
		if err != nil || !p.Empty() || len(p.Clusters()) != 0 {
			t.Errorf("%q: %v %+v", s, err, p)
		}
		if _, ok := p.Lookup(netip.MustParseAddr("10.0.0.1")); ok {
			t.Errorf("%q: an empty map matched", s)
		}
	}
}

// TestParsePeersErrors: each error names the entry and its fault.
func TestParsePeersErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"us-west-2:10.20.0.0/16", []string{`peer entry 1 "us-west-2:10.20.0.0/16"`, `no "="`}},
		{"a=10.0.0.0/8;b", []string{`peer entry 2 "b"`, `no "="`}},
		{"=10.0.0.0/8", []string{`cluster name ""`}},
		{"us west=10.0.0.0/8", []string{`cluster name "us west"`}},
		{"external=10.0.0.0/8", []string{`"external" is reserved`}},
		{"a=", []string{`no CIDRs after "a="`}},
		{"a= , ", []string{`no CIDRs`}},
		{"a=10.0.0.0/33", []string{`CIDR "10.0.0.0/33"`}},
		{"a=10.20.0.1/16", []string{`bits set past /16`, "10.20.0.0/16"}},
		{"a=ten", []string{`"ten" is neither a CIDR nor an IP address`}},
		{"a=fe80::1%eth0", []string{`neither a CIDR nor an IP`}},
		{"a=10.0.0.0/8;b=10.0.0.0/8", []string{`peer entry 2`, "10.0.0.0/8 is already a's"}},
		{"a=::ffff:10.0.0.0/104;b=10.0.0.0/8", []string{"10.0.0.0/8 is already a's"}},
	} {
		_, err := ParsePeers(tc.in)
		if err == nil {
			t.Errorf("%q: no error", tc.in)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", tc.in, err, w)
			}
		}
	}
}

// FuzzParsePeers: a map that parses matches each of its prefixes' own
// network address, to that prefix's cluster or one with a longer prefix,
// and parsing never panics.
func FuzzParsePeers(f *testing.F) {
	f.Add("us-west-2=10.20.0.0/16,10.21.0.0/16;eu-west-1=10.30.0.0/16")
	f.Add("a=10.0.0.0/8\nb=10.1.0.0/16,::1;c=0.0.0.0/0")
	f.Add("a=::ffff:10.0.0.0/104;b=::/0")
	f.Add("=;=,;a=b=c")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePeers(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "peer entry ") {
				t.Fatalf("error without its entry: %v", err)
			}
			return
		}
		for i, n := range p.nets {
			if !ValidName(n.cluster) || n.cluster == External || !p.Has(n.cluster) {
				t.Fatalf("cluster %q kept", n.cluster)
			}
			if i > 0 && p.nets[i-1].prefix.Bits() < n.prefix.Bits() {
				t.Fatalf("prefixes out of order: %v", p.nets)
			}
			got, ok := p.Lookup(n.prefix.Addr())
			if !ok {
				t.Fatalf("%s does not match its own network address", n.prefix)
			}
			if got != n.cluster {
				longer := false
				for _, m := range p.nets[:i] {
					longer = longer || m.cluster == got && m.prefix.Contains(n.prefix.Addr())
				}
				if !longer {
					t.Fatalf("%s matched %q, want %q", n.prefix, got, n.cluster)
				}
			}
		}
	})
}
