package probes

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/weft-dev/weft/internal/testutil/kernel"
)

// TestEachEntry: real hash maps (LRU and plain, as go_roots and
// grpc_procs are) walked in batches: every entry once with its value,
// over several batches; an empty map is no call and no error.
func TestEachEntry(t *testing.T) {
	kernel.Require(t)
	type val struct {
		A uint64
		B uint32
		C uint32
	}
	for _, typ := range []ebpf.MapType{ebpf.LRUHash, ebpf.Hash} {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: typ, KeySize: 4, ValueSize: 16, MaxEntries: 8192})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		calls := 0
		if err := EachEntry(m, func(uint32, val) { calls++ }); err != nil || calls != 0 {
			t.Fatalf("%v, empty: %d calls, %v", typ, calls, err)
		}
		const n = 3*BatchChunk + 17
		for k := uint32(1); k <= n; k++ {
			if err := m.Put(k, val{A: uint64(k) * 3, C: k}); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[uint32]val{}
		err = EachEntry(m, func(k uint32, v val) {
			if _, dup := seen[k]; dup {
				t.Errorf("%v: key %d twice", typ, k)
			}
			seen[k] = v
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != n {
			t.Fatalf("%v: %d of %d entries", typ, len(seen), n)
		}
		for k, v := range seen {
			if v.A != uint64(k)*3 || v.C != k {
				t.Errorf("%v: key %d: %+v", typ, k, v)
			}
		}
	}
}
