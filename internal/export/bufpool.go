package export

import (
	"sync"

	"google.golang.org/grpc/mem"
)

// dirtyPool is gRPC's tiered buffer pool without its zeroing. gRPC clears
// a pooled buffer's whole capacity on every Get (defence against a reader
// of bytes it did not write); every buffer it takes for an export is
// written over before it is read (the marshalled request, the gzip
// output, frames read off the wire), and an export of 512 spans takes one
// of the 1 MiB tier: clearing it was the agent's largest single cost after
// compression (runtime.memclrNoHeapPointers under sizedBufferPool.Get,
// 7.7% of its CPU at saturation). What stale bytes could ever leak is the
// agent's own earlier exports, to the same collector.
type dirtyPool struct {
	tiers []dirtyTier // by size, smallest first
}

type dirtyTier struct {
	size int
	pool sync.Pool // of *[]byte with cap size
}

var _ mem.BufferPool = (*dirtyPool)(nil)

// newDirtyPool makes a pool with tiers of the given sizes, ascending.
func newDirtyPool(sizes ...int) *dirtyPool {
	p := &dirtyPool{tiers: make([]dirtyTier, len(sizes))}
	for i, s := range sizes {
		p.tiers[i].size = s
	}
	return p
}

// Get returns a buffer of length n: from the smallest tier that holds n,
// or, larger than every tier, a fresh one.
func (p *dirtyPool) Get(n int) *[]byte {
	for i := range p.tiers {
		t := &p.tiers[i]
		if n > t.size {
			continue
		}
		if b, ok := t.pool.Get().(*[]byte); ok {
			*b = (*b)[:n]
			return b
		}
		b := make([]byte, n, t.size)
		return &b
	}
	b := make([]byte, n)
	return &b
}

// Put keeps a buffer whose capacity is a tier's; others go to the GC.
func (p *dirtyPool) Put(b *[]byte) {
	c := cap(*b)
	for i := range p.tiers {
		if p.tiers[i].size == c {
			*b = (*b)[:0]
			p.tiers[i].pool.Put(b)
			return
		}
	}
}

// exportPool has gRPC's default tiers (256 B, 4 KiB, 16 KiB, 32 KiB,
// 1 MiB) and 256 KiB, a usual batch's size.
func exportPool() *dirtyPool {
	return newDirtyPool(256, 4<<10, 16<<10, 32<<10, 256<<10, 1<<20)
}
