package gohttp

import (
	"testing"

	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/probes/sockio"
)

// TestH2ServerKnown: the HTTP/2 server probes read only executables of
// the Go versions their layout was checked for, and only with the parent
// goroutine offset that names a stream's reader.
func TestH2ServerKnown(t *testing.T) {
	withParent := map[string]uint64{sockio.OffParentGoid: 248}
	for _, c := range []struct {
		version string
		offsets map[string]uint64
		want    bool
	}{
		{"go1.20.14", withParent, false},
		{"go1.21.0", withParent, true},
		{"go1.22.12", withParent, true},
		{"go1.24rc1", withParent, true},
		{"go1.26.8", withParent, true},
		{"go1.27.0", withParent, false},
		{"go1.26.8", map[string]uint64{}, false},
		{"", withParent, false},
	} {
		got, why := h2ServerKnown(&probes.Process{GoVersion: c.version, GoOffsets: c.offsets})
		if got != c.want || (!got && why == "") {
			t.Errorf("%q %v: %v (%q), want %v", c.version, c.offsets, got, why, c.want)
		}
	}
}

// TestH2ServerLayout: every constant the loader sets exists in the BPF
// object (a renamed one would fail Start).
func TestH2ServerLayout(t *testing.T) {
	spec, err := loadGohttp()
	if err != nil {
		t.Fatal(err)
	}
	for name := range h2ServerLayout {
		if v, ok := spec.Variables[name]; !ok || !v.Constant() {
			t.Errorf("%s: not a constant of gohttp.bpf.c", name)
		}
	}
}
