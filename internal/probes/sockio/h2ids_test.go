package sockio

import (
	"strings"
	"testing"
	"time"
	"unsafe"
)

func h2IDsRecord(tgid, stream uint32, goid uint64, span byte) []byte {
	e := sockioH2IdsEvent{Kind: evH2IDs, Tgid: tgid, StreamId: stream, Goid: goid}
	e.Ids.SpanId[0] = span
	e.Ids.Flags = ctxLinked
	return unsafe.Slice((*byte)(unsafe.Pointer(&e)), unsafe.Sizeof(e))
}

func TestH2IDs(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := newH2IDs(t0)
	if h.put(h2IDsRecord(7, 1, 9, 1)[:h2IDsEventSize-1]) {
		t.Fatal("a short record was filed")
	}
	if !h.put(h2IDsRecord(7, 1, 9, 1)) || !h.put(h2IDsRecord(7, 3, 9, 3)) {
		t.Fatal("a whole record was refused")
	}
	if !h.filed(7) || h.filed(8) {
		t.Fatalf("filed(7)=%v filed(8)=%v, want true, false", h.filed(7), h.filed(8))
	}
	v, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 1, Goid: 9})
	if !ok || v.SpanId[0] != 1 || v.Flags != ctxLinked {
		t.Fatalf("take: %v %v", v, ok)
	}
	if _, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 1, Goid: 9}); ok {
		t.Fatal("taken twice")
	}
	if _, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 3, Goid: 8}); ok {
		t.Fatal("another goroutine's stream matched")
	}

	// One generation on, stream 3 is still there; two on, it is gone,
	// but not the process's mark (its long streams look in the kernel's
	// map), until the process is.
	h.age(t0.Add(h2IDsAge - time.Second))
	h.age(t0.Add(h2IDsAge))
	if v, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 3, Goid: 9}); !ok || v.SpanId[0] != 3 {
		t.Fatal("an entry was lost after one generation")
	}
	h.put(h2IDsRecord(7, 5, 9, 5))
	h.age(t0.Add(2 * h2IDsAge))
	h.age(t0.Add(3 * h2IDsAge))
	if _, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 5, Goid: 9}); ok {
		t.Fatal("an entry outlived two generations")
	}
	if !h.filed(7) {
		t.Fatal("the process was forgotten with its entries")
	}
	h.drop(7)
	if h.filed(7) {
		t.Fatal("a dropped process is remembered")
	}

	// A full generation starts the next: the store never holds more than two.
	for i := range 3 * h2IDsPerGen {
		h.put(h2IDsRecord(5, uint32(2*i+1), 1, 0))
	}
	if n := len(h.cur) + len(h.old); n > 2*h2IDsPerGen {
		t.Fatalf("%d entries held, want at most %d", n, 2*h2IDsPerGen)
	}
	if _, ok := h.take(sockioH2Key{Tgid: 5, StreamId: uint32(2*(3*h2IDsPerGen-1) + 1), Goid: 1}); !ok {
		t.Fatal("the newest entry is gone")
	}
}

func h2NameRecord(tgid, stream uint32, goid uint64, path string, n uint32) []byte {
	e := sockioH2NameEvent{Kind: evH2Name, Grpc: 1, Tgid: tgid, StreamId: stream, Goid: goid, Len: n}
	copy(e.Path[:], path)
	return unsafe.Slice((*byte)(unsafe.Pointer(&e)), unsafe.Sizeof(e))
}

// TestH2Names: a stream's path is taken once, under its own key; one the
// probe truncated or could not read is not filed (unnamed beats wrong);
// names go with their generation.
func TestH2Names(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := newH2IDs(t0)
	if _, ok := h.takeName(sockioH2Key{Tgid: 7, StreamId: 1, Goid: 9}); ok {
		t.Fatal("a name from an empty store")
	}
	if h.putName(h2NameRecord(7, 1, 9, "/a.B/C", 6)[:h2NameEventSize-1]) {
		t.Fatal("a short record was filed")
	}
	long := strings.Repeat("x", 200)
	for _, r := range [][]byte{h2NameRecord(7, 1, 9, "/a.B/C", 6), h2NameRecord(7, 3, 9, long, 200), h2NameRecord(7, 5, 9, "", 0)} {
		if !h.putName(r) {
			t.Fatal("a whole record was refused")
		}
	}
	if n, ok := h.takeName(sockioH2Key{Tgid: 7, StreamId: 1, Goid: 8}); ok {
		t.Fatalf("another goroutine's stream matched: %v", n)
	}
	if n, ok := h.takeName(sockioH2Key{Tgid: 7, StreamId: 1, Goid: 9}); !ok || n.path != "/a.B/C" || !n.grpc {
		t.Fatalf("takeName: %+v %v", n, ok)
	}
	if _, ok := h.takeName(sockioH2Key{Tgid: 7, StreamId: 1, Goid: 9}); ok {
		t.Fatal("taken twice")
	}
	for _, s := range []uint32{3, 5} {
		if n, ok := h.takeName(sockioH2Key{Tgid: 7, StreamId: s, Goid: 9}); ok {
			t.Fatalf("stream %d: filed %q", s, n.path)
		}
	}
	h.putName(h2NameRecord(7, 7, 9, "/a.B/D", 6))
	h.age(t0.Add(h2IDsAge))
	if n, ok := h.takeName(sockioH2Key{Tgid: 7, StreamId: 7, Goid: 9}); !ok || n.path != "/a.B/D" {
		t.Fatal("a name was lost after one generation")
	}
	h.putName(h2NameRecord(7, 9, 9, "/a.B/E", 6))
	h.age(t0.Add(2 * h2IDsAge))
	h.age(t0.Add(3 * h2IDsAge))
	if _, ok := h.takeName(sockioH2Key{Tgid: 7, StreamId: 9, Goid: 9}); ok {
		t.Fatal("a name outlived two generations")
	}
}
