package probes

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cilium/ebpf"

	"github.com/weft-dev/weft/internal/metrics"
)

// BatchChunk is how many entries EachEntry reads a system call.
const BatchChunk = 256

// LookupFew is how many keys ReadEntries looks up one by one; for more it
// reads the whole map in batches.
const LookupFew = 16

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

// ReadEntries calls fn for the entries of the hash map m under keys, the
// way a poll of per-process entries should: up to LookupFew keys, a lookup
// each; more, the whole map in batches (fn then sees keys not asked for
// too: callers filter). When the batch read fails it looks the keys up one
// by one (fn may see a key twice), adds one to fallbacks (nil: not
// counted) and returns the batch error, for the caller to log.
func ReadEntries[K comparable, V any](m *ebpf.Map, keys []K, fn func(K, V), fallbacks *atomic.Uint64) error {
	lookups := func() {
		var v V
		for _, k := range keys {
			if m.Lookup(k, &v) == nil {
				fn(k, v)
			}
		}
	}
	if len(keys) <= LookupFew {
		lookups()
		return nil
	}
	err := EachEntry(m, fn)
	if err == nil {
		return nil
	}
	if fallbacks != nil {
		fallbacks.Add(1)
	}
	lookups()
	return fmt.Errorf("reading %v in batches (looked up one by one instead): %w", m, err)
}

// BatchFallbacks is the counter ReadEntries is given for the map named
// mapName: polls that read it one key at a time because a batch read
// failed.
func BatchFallbacks(r *metrics.Registry, mapName string) *atomic.Uint64 {
	return r.Counter("weft_map_batch_fallbacks_total",
		"polls of a BPF map that looked its keys up one by one because reading it in batches failed", "map", mapName)
}
