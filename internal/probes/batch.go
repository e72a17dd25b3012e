package probes

import (
	"errors"

	"github.com/cilium/ebpf"
)

// BatchChunk is how many entries EachEntry reads a system call.
const BatchChunk = 256

// EachEntry calls fn for every entry of the hash map m, read BatchChunk
// entries a system call (BPF_MAP_LOOKUP_BATCH, Linux 5.6+): a poll that
// looked up each of a node's thousand traced processes made a thousand
// system calls, where the map takes a few. An error (a kernel or map
// without batch lookups) comes after fn has seen what was read; the
// caller may then look entries up one by one.
func EachEntry[K, V any](m *ebpf.Map, fn func(K, V)) error {
	keys := make([]K, BatchChunk)
	vals := make([]V, BatchChunk)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			fn(keys[i], vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil // the end
		}
		if err != nil {
			return err
		}
	}
}
