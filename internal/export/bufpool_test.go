package export

import "testing"

func TestDirtyPool(t *testing.T) {
	p := newDirtyPool(256, 4096)
	for _, tc := range []struct {
		n, cap int
	}{
		{0, 256}, {1, 256}, {256, 256}, {257, 4096}, {4096, 4096}, {4097, 4097},
	} {
		b := p.Get(tc.n)
		if len(*b) != tc.n || cap(*b) != tc.cap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", tc.n, len(*b), cap(*b), tc.n, tc.cap)
		}
		p.Put(b)
	}
	// A tier's buffer comes back as it was left (not cleared), at the
	// length asked for; a prefix put back keeps the whole capacity.
	b := p.Get(100)
	for i := range *b {
		(*b)[i] = 0xab
	}
	short := (*b)[:10]
	*b = short
	p.Put(b)
	for range 100 { // sync.Pool may drop it; retry a few times
		c := p.Get(200)
		if cap(*c) != 256 || len(*c) != 200 {
			t.Fatalf("Get(200): len %d cap %d", len(*c), cap(*c))
		}
		if (*c)[99] == 0xab {
			return
		}
		p.Put(c)
	}
	t.Log("sync.Pool never returned the buffer put back (allowed, but unusual)")
}
