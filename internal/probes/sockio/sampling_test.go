package sockio

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/sampling"
)

// TestSetSampling: the sampler reaches the object's constants, which
// bpf/tracectx.h reads; without one, the kernel keeps its default
// (parentbased_always_on).
func TestSetSampling(t *testing.T) {
	half, err := sampling.Parse(func(k string) string {
		return map[string]string{sampling.EnvSampler: "traceidratio", sampling.EnvArg: "0.5"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sampler *sampling.Sampler
		bound   uint64
		parent  uint8
	}{
		{nil, sampling.AllBound, 1},
		{&half, 1 << 62, 0},
	} {
		spec, err := loadSockio()
		if err != nil {
			t.Fatal(err)
		}
		if err := (probes.Config{Sampler: tc.sampler}).SetSampling(spec); err != nil {
			t.Fatal(err)
		}
		var bound uint64
		var parent uint8
		if err := spec.Variables["sample_bound"].Get(&bound); err != nil {
			t.Fatal(err)
		}
		if err := spec.Variables["sample_parent"].Get(&parent); err != nil {
			t.Fatal(err)
		}
		if bound != tc.bound || parent != tc.parent {
			t.Errorf("%v: bound %#x parent %d, want %#x %d", tc.sampler, bound, parent, tc.bound, tc.parent)
		}
	}
	err = probes.Config{}.SetSampling(&ebpf.CollectionSpec{Variables: map[string]*ebpf.VariableSpec{}})
	if err == nil || !strings.Contains(err.Error(), "sample_") {
		t.Errorf("an object without the constants: error %v", err)
	}
}
