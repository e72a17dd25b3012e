package gospawn

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/weft-dev/weft/internal/testutil/kernel"
)

// TestEachRoot: a walk of a real go_roots-shaped map (LRU hash, tgid →
// count) in batches finds every entry once with its count, over several
// batches; an empty map is no call and no error.
func TestEachRoot(t *testing.T) {
	kernel.Require(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: 4, ValueSize: 8, MaxEntries: 8192})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	calls := 0
	if err := eachRoot(m, func(uint32, uint64) { calls++ }); err != nil || calls != 0 {
		t.Fatalf("empty map: %d calls, %v", calls, err)
	}
	const n = 3*rootsChunk + 17
	for pid := uint32(1); pid <= n; pid++ {
		if err := m.Put(pid, uint64(pid)*3); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint32]uint64{}
	err = eachRoot(m, func(pid uint32, c uint64) {
		if _, dup := seen[pid]; dup {
			t.Errorf("pid %d twice", pid)
		}
		seen[pid] = c
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("%d of %d entries", len(seen), n)
	}
	for pid, c := range seen {
		if c != uint64(pid)*3 {
			t.Errorf("pid %d: count %d, want %d", pid, c, pid*3)
		}
	}
}
