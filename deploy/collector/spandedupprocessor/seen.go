package spandedupprocessor

// spanKey identifies a span: its trace ID then its span ID.
type spanKey [24]byte

func makeKey(traceID [16]byte, spanID [8]byte) spanKey {
	var k spanKey
	copy(k[:16], traceID[:])
	copy(k[16:], spanID[:])
	return k
}

// seenSet remembers the last capacity distinct span keys it was given, the
// oldest forgotten first. It is not safe for concurrent use.
type seenSet struct {
	ring []spanKey // insertion order; ring[next] is the oldest once full
	seq  []uint64  // the insertion number of each ring slot
	keys map[spanKey]uint64
	next int
	n    uint64 // insertions so far
	full bool
}

func newSeenSet(capacity int) *seenSet {
	return &seenSet{
		ring: make([]spanKey, capacity),
		seq:  make([]uint64, capacity),
		keys: make(map[spanKey]uint64, min(capacity, 1<<16)),
	}
}

// add records k and reports whether it was new. Adding a key already held
// changes nothing: it is not moved to the back.
func (s *seenSet) add(k spanKey) bool {
	if _, ok := s.keys[k]; ok {
		return false
	}
	if s.full {
		old := s.ring[s.next]
		// The slot's key may have been forgotten and added again since
		// (see forget); only the entry this slot made is removed.
		if s.keys[old] == s.seq[s.next] {
			delete(s.keys, old)
		}
	}
	s.n++
	s.ring[s.next], s.seq[s.next] = k, s.n
	s.keys[k] = s.n
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
	return true
}

// forget removes k, so that the next add of it reports it new. Its ring
// slot stays until overwritten; add then leaves the key's newer entry alone.
func (s *seenSet) forget(k spanKey) { delete(s.keys, k) }

func (s *seenSet) len() int { return len(s.keys) }
