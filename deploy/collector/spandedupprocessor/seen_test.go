package spandedupprocessor

import "testing"

func key(b byte) spanKey { return makeKey([16]byte{1}, [8]byte{b}) }

func TestMakeKey(t *testing.T) {
	tid := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sid := [8]byte{17, 18, 19, 20, 21, 22, 23, 24}
	k := makeKey(tid, sid)
	for i := range k {
		if k[i] != byte(i+1) {
			t.Fatalf("key byte %d = %d, want %d", i, k[i], i+1)
		}
	}
	if makeKey(tid, [8]byte{1}) == makeKey([16]byte{9}, [8]byte{1}) {
		t.Error("same span ID in two traces gave one key")
	}
}

// Each step is an add (k > 0) or a forget (k < 0) of key |k|.
func TestSeenSet(t *testing.T) {
	type step struct {
		k    int
		want bool // for an add: reported new
	}
	for _, tc := range []struct {
		name    string
		cap     int
		steps   []step
		wantLen int
	}{
		{"a repeat is not new", 4, []step{{1, true}, {1, false}, {2, true}, {1, false}}, 2},
		{"within capacity every copy is caught", 3, []step{{1, true}, {2, true}, {3, true}, {1, false}, {2, false}, {3, false}}, 3},
		{"the oldest is forgotten first", 2, []step{{1, true}, {2, true}, {3, true}, {2, false}, {1, true}}, 2},
		{"a repeat does not refresh", 2, []step{{1, true}, {2, true}, {1, false}, {3, true}, {1, true}}, 2},
		{"forget makes it new again", 3, []step{{1, true}, {-1, false}, {1, true}, {1, false}}, 1},
		{"an old slot does not evict a re-added key", 2, []step{
			{1, true}, {-1, false}, {2, true}, {1, true}, // ring: 1(stale) 2 | 1 re-added in slot 0
			{3, true}, // overwrites slot 1 (key 2)
			{1, false},
		}, 2},
		{"capacity one", 1, []step{{1, true}, {1, false}, {2, true}, {1, true}, {2, true}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSeenSet(tc.cap)
			for i, st := range tc.steps {
				if st.k < 0 {
					s.forget(key(byte(-st.k)))
					continue
				}
				if got := s.add(key(byte(st.k))); got != st.want {
					t.Fatalf("step %d: add(%d) = %v, want %v", i, st.k, got, st.want)
				}
			}
			if s.len() != tc.wantLen {
				t.Errorf("holds %d keys, want %d", s.len(), tc.wantLen)
			}
			if s.len() > tc.cap {
				t.Errorf("holds %d keys, more than its capacity %d", s.len(), tc.cap)
			}
		})
	}
}
