package h2wire

import (
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestBlockSourceCluster: x-source-cluster keeps its first non-empty value
// (HPACK names are lowercase on the wire) and counts toward the limit.
func TestBlockSourceCluster(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []string
		limit  int
		want   string
	}{
		{"absent", []string{":method", "GET"}, 1024, ""},
		{"one", []string{"x-source-cluster", "aws-us-west-2-prod-01"}, 1024, "aws-us-west-2-prod-01"},
		{"first wins", []string{"x-source-cluster", "a", "x-source-cluster", "b"}, 1024, "a"},
		{"empty skipped", []string{"x-source-cluster", "", "x-source-cluster", "b"}, 1024, "b"},
		{"uppercase is not HTTP/2", []string{"X-Source-Cluster", "a"}, 1024, ""},
		{"over the limit", []string{"x-source-cluster", "a"}, 40, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b block
			b.reset(tc.limit)
			for i := 0; i+1 < len(tc.fields); i += 2 {
				b.emit(hpack.HeaderField{Name: tc.fields[i], Value: tc.fields[i+1]})
			}
			if b.sourceCluster != tc.want {
				t.Errorf("sourceCluster %q, want %q", b.sourceCluster, tc.want)
			}
		})
	}
}
