package clusters

import (
	"fmt"
	"strings"
)

// External is the source of a SERVER span whose caller is in no known
// cluster (see the package documentation); no cluster may take the name.
const External = "external"

// MaxNameLen bounds a cluster name: cloud providers allow 40 to 100
// characters, and names from the wire become span attributes.
const MaxNameLen = 100

// ValidName reports whether s can name a cluster: 1 to MaxNameLen ASCII
// letters, digits, '.', '_' or '-'. Names read from requests (tracestate,
// X-Source-Cluster) must pass before they become attributes.
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Name is a cluster name split by the convention
// <provider>-<region>-<purpose>-<number>.
type Name struct {
	Provider, Region, Purpose, Number string
}

// ParseName splits a conventional cluster name. The provider, purpose and
// number are one segment each (the number all digits, the purpose starting
// with a letter, so that "aws-us-east-1-01" is not read as purpose "1");
// the region is everything between, hyphens included: aws-us-east-1-prod-01
// is aws / us-east-1 / prod / 01. Segments are lowercase letters and digits.
func ParseName(s string) (Name, error) {
	fail := func(why string) (Name, error) {
		return Name{}, fmt.Errorf("cluster name %q does not follow <provider>-<region>-<purpose>-<number> (e.g. aws-us-east-1-prod-01): %s", s, why)
	}
	parts := strings.Split(s, "-")
	if len(parts) < 4 {
		return fail(fmt.Sprintf("%d hyphen-separated segments, want at least 4", len(parts)))
	}
	for i, p := range parts {
		if p == "" {
			return fail(fmt.Sprintf("segment %d is empty", i+1))
		}
		for j := 0; j < len(p); j++ {
			if c := p[j]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
				return fail(fmt.Sprintf("segment %q has %q; segments are lowercase letters and digits", p, c))
			}
		}
	}
	n := len(parts)
	name := Name{Provider: parts[0], Region: strings.Join(parts[1:n-2], "-"), Purpose: parts[n-2], Number: parts[n-1]}
	switch {
	case !isLetter(name.Provider[0]):
		return fail(fmt.Sprintf("provider %q does not start with a letter", name.Provider))
	case !isLetter(name.Purpose[0]):
		return fail(fmt.Sprintf("purpose %q does not start with a letter", name.Purpose))
	case strings.Trim(name.Number, "0123456789") != "":
		return fail(fmt.Sprintf("number %q is not all digits", name.Number))
	}
	return name, nil
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' }
