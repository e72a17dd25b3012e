package goinspect

import (
	"context"
	"maps"
	"slices"
	"testing"
)

// TestOffsetsTableCurrent rebuilds the offset probe with the toolchain
// running the test and checks offsets.json agrees for that version. The
// full check, every toolchain, is "go run ./cmd/offsetgen -check".
func TestOffsetsTableCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the offset probe")
	}
	std := EmbeddedTable().Modules[StdModule]
	if !slices.Contains(std.Versions, current) {
		t.Fatalf("offsets.json has no %s; add it to cmd/offsetgen and regenerate", current)
	}
	fields := slices.Sorted(maps.Keys(std.Fields))
	got, err := MeasureStd(context.Background(), "../../testdata/offsetprobe", current, fields)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		want, inTable := std.Fields[f][current]
		off, measured := got[f]
		if inTable != measured || off != want {
			t.Errorf("%s at %s: measured %d (%v), table %d (%v); regenerate with go run ./cmd/offsetgen", f, current, off, measured, want, inTable)
		}
	}
}
