package clusters

import (
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Name
		err  string // substring of the error; "" for none
	}{
		{"aws-us-east-1-prod-01", Name{"aws", "us-east-1", "prod", "01"}, ""},
		{"gcp-europe-west1-shop-2", Name{"gcp", "europe-west1", "shop", "2"}, ""},
		{"azure-eastus-stg-10", Name{"azure", "eastus", "stg", "10"}, ""},
		{"aws-ap-southeast-2-data1-3", Name{"aws", "ap-southeast-2", "data1", "3"}, ""},
		{"aws-us-east-1-01", Name{}, `purpose "1"`},
		{"aws-us-prod", Name{}, "3 hyphen-separated segments"},
		{"prod", Name{}, "1 hyphen-separated segments"},
		{"", Name{}, "1 hyphen-separated segments"},
		{"aws--east-prod-1", Name{}, "segment 2 is empty"},
		{"aws-us-east-1-prod-", Name{}, "segment 6 is empty"},
		{"AWS-us-east-1-prod-01", Name{}, `segment "AWS"`},
		{"aws-us_east-1-prod-01", Name{}, `segment "us_east"`},
		{"1aws-us-east-1-prod-01", Name{}, `provider "1aws"`},
		{"aws-us-east-1-prod-0x1", Name{}, `number "0x1"`},
		{"us-east-1", Name{}, "3 hyphen-separated segments"},
	} {
		got, err := ParseName(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one about %s", tc.in, err, tc.err)
		case got != tc.want:
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "<provider>-<region>-<purpose>-<number>") {
			t.Errorf("%q: the error does not show the convention: %v", tc.in, err)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"aws-us-east-1-prod-01", true}, {"us-west-2", true}, {"My_Cluster.v2", true},
		{"", false}, {"a b", false}, {"a,b", false}, {"a=b", false}, {"é", false}, {"a\n", false},
		{strings.Repeat("a", MaxNameLen), true}, {strings.Repeat("a", MaxNameLen+1), false},
	} {
		if got := ValidName(tc.in); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
}

// FuzzParseName: an accepted name is rebuilt exactly from its parts, and
// every part follows the convention.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"aws-us-east-1-prod-01", "gcp-europe-west1-shop-2", "a-b-c-1", "x--y-z-1", "aws-us-east-1-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		if back := n.Provider + "-" + n.Region + "-" + n.Purpose + "-" + n.Number; back != s {
			t.Fatalf("%q parsed as %+v", s, n)
		}
		if strings.Contains(n.Provider, "-") || strings.Contains(n.Purpose, "-") || strings.Trim(n.Number, "0123456789") != "" || n.Region == "" {
			t.Fatalf("%q parsed as %+v", s, n)
		}
		if !ValidName(s) && len(s) <= MaxNameLen {
			t.Fatalf("%q follows the convention but is not a valid name", s)
		}
	})
}
