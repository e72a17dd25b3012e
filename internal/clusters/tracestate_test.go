package clusters

import (
	"strings"
	"testing"
)

func TestTracestateMember(t *testing.T) {
	for _, tc := range []struct {
		ts, want string
		ok       bool
	}{
		{"weft=aws-us-east-1-prod-01", "aws-us-east-1-prod-01", true},
		{"", "", false},
		{"congo=t61rcWkgMzE", "", false},
		{"congo=t61rcWkgMzE, weft=eu-west-1 ,rojo=00f067aa0ba902b7", "eu-west-1", true},
		{"weft=first,weft=second", "first", true}, // leftmost is the most recent
		{"\tweft=tab", "tab", true},
		{"weftx=no,xweft=no", "", false},
		{"weft", "", false},
		{"weft=", "", true},
		{"bad member,weft=a", "a", true},
		{",,weft=a,,", "a", true},
	} {
		got, ok := TracestateMember(tc.ts, TracestateKey)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %q %v, want %q %v", tc.ts, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzTracestateMember: what is found is a member's value, and a member
// written in front of any list is found.
func FuzzTracestateMember(f *testing.F) {
	f.Add("congo=t61rcWkgMzE,weft=eu-west-1", "us-east-1")
	f.Add("", "a")
	f.Add("weft=,=,,", "x")
	f.Fuzz(func(t *testing.T, ts, name string) {
		if v, ok := TracestateMember(ts, TracestateKey); ok {
			if strings.Contains(v, ",") || !strings.Contains(ts, TracestateKey+"="+v) {
				t.Fatalf("%q: member value %q", ts, v)
			}
		}
		if !ValidName(name) {
			return
		}
		if v, ok := TracestateMember(TracestateKey+"="+name+","+ts, TracestateKey); !ok || v != name {
			t.Fatalf("front member %q of %q read as %q %v", name, ts, v, ok)
		}
	})
}
