package probes

import (
	"sync/atomic"
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

// TestReadEntries: up to LookupFew keys are looked up (fn sees only those
// present); more read the whole map in batches (fn sees every entry); a
// map the kernel cannot read in batches (a device map) is looked up key by
// key, counted, and its error returned.
func TestReadEntries(t *testing.T) {
	kernel.Require(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for k := uint32(1); k <= 100; k++ {
		if err := m.Put(k, uint64(k)*7); err != nil {
			t.Fatal(err)
		}
	}
	read := func(m *ebpf.Map, keys []uint32, fb *atomic.Uint64) (map[uint32]uint64, error) {
		seen := map[uint32]uint64{}
		err := ReadEntries(m, keys, func(k uint32, v uint64) { seen[k] = v }, fb)
		return seen, err
	}
	var fb atomic.Uint64
	few := []uint32{3, 5, 500} // 500 is not in the map
	seen, err := read(m, few, &fb)
	if err != nil || len(seen) != 2 || seen[3] != 21 || seen[5] != 35 {
		t.Errorf("few keys: %v, %v", seen, err)
	}
	many := make([]uint32, LookupFew+1)
	for i := range many {
		many[i] = uint32(i + 1)
	}
	seen, err = read(m, many, &fb)
	if err != nil || len(seen) != 100 || seen[100] != 700 {
		t.Errorf("many keys: %d entries, %v", len(seen), err)
	}
	if fb.Load() != 0 {
		t.Errorf("%d fallbacks on a hash map", fb.Load())
	}

	// A device map has no batch lookup (Linux 6.18 too); its values are
	// interface indexes (1: lo).
	devs, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.DevMapHash, KeySize: 4, ValueSize: 4, MaxEntries: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer devs.Close()
	var keys []uint32
	for k := range uint32(LookupFew + 4) {
		keys = append(keys, k*3)
		if err := devs.Put(k*3, uint32(1)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[uint32]uint32{}
	err = ReadEntries(devs, append(keys, 1000), func(k, v uint32) { got[k] = v }, &fb)
	if err == nil {
		t.Error("a device map read in batches: no error")
	}
	if fb.Load() != 1 || len(got) != len(keys) || got[keys[7]] != 1 {
		t.Errorf("fallback: %d counted, %d of %d entries: %v", fb.Load(), len(got), len(keys), got)
	}
}
