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
	v, filer, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 1, Goid: 9})
	if !ok || v.SpanId[0] != 1 || v.Flags != ctxLinked || filer != 9 {
		t.Fatalf("take: %v %v %v", v, filer, ok)
	}
	if _, _, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 1, Goid: 9}); ok {
		t.Fatal("taken twice")
	}
	if _, _, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 3, Goid: 8}); ok {
		t.Fatal("another goroutine's stream matched")
	}

	// One generation on, stream 3 is still there; two on, it is gone,
	// but not the process's mark (its long streams look in the kernel's
	// map), until the process is.
	h.age(t0.Add(h2IDsAge - time.Second))
	h.age(t0.Add(h2IDsAge))
	if v, _, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 3, Goid: 9}); !ok || v.SpanId[0] != 3 {
		t.Fatal("an entry was lost after one generation")
	}
	h.put(h2IDsRecord(7, 5, 9, 5))
	h.age(t0.Add(2 * h2IDsAge))
	h.age(t0.Add(3 * h2IDsAge))
	if _, _, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 5, Goid: 9}); ok {
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
	if _, _, ok := h.take(sockioH2Key{Tgid: 5, StreamId: uint32(2*(3*h2IDsPerGen-1) + 1), Goid: 1}); !ok {
		t.Fatal("the newest entry is gone")
	}
}

// TestH2IDsAlias: a gRPC server stream is filed under its reader and the
// reader's parent, whose first read may have brought it (however high its
// stream ID: a busy client's first read holds many); it is found under
// either once, and the filer is always the reader.
func TestH2IDsAlias(t *testing.T) {
	h := newH2IDs(time.Unix(1000, 0))
	for _, sid := range []uint32{1, 3, 301} {
		e := sockioH2IdsEvent{Kind: evH2IDs, Tgid: 7, StreamId: sid, Goid: 20, AliasGoid: 10}
		e.Ids.SpanId[0] = byte(sid)
		h.put(unsafe.Slice((*byte)(unsafe.Pointer(&e)), unsafe.Sizeof(e)))
	}
	for _, tc := range []struct {
		sid       uint32
		goid      uint64
		want      bool
		wantFiler uint64
	}{
		{1, 20, true, 20}, {1, 10, false, 0}, // taken under the reader: the alias goes too
		{3, 10, true, 20}, {3, 20, false, 0}, // and the other way round
		{301, 10, true, 20},
		{5, 10, false, 0},
	} {
		v, filer, ok := h.take(sockioH2Key{Tgid: 7, StreamId: tc.sid, Goid: tc.goid})
		if ok != tc.want || filer != tc.wantFiler || ok && v.SpanId[0] != byte(tc.sid) {
			t.Errorf("take(stream %d, goid %d) = %v, filer %d, %v; want %v, filer %d", tc.sid, tc.goid, v.SpanId[0], filer, ok, tc.want, tc.wantFiler)
		}
	}
	if n := len(h.cur) + len(h.old); n != 0 {
		t.Errorf("%d entries left", n)
	}
	// A key filed again (a goroutine's next connection) keeps its entry
	// when an older twin is taken.
	put := func(sid uint32, goid, alias uint64, span byte) {
		e := sockioH2IdsEvent{Kind: evH2IDs, Tgid: 7, StreamId: sid, Goid: goid, AliasGoid: alias}
		e.Ids.SpanId[0] = span
		h.put(unsafe.Slice((*byte)(unsafe.Pointer(&e)), unsafe.Sizeof(e)))
	}
	put(1, 20, 10, 1)
	put(1, 10, 0, 2) // goroutine 10's own stream 1, filed since
	if v, _, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 1, Goid: 20}); !ok || v.SpanId[0] != 1 {
		t.Fatalf("reader's entry: %v %v", v.SpanId[0], ok)
	}
	if v, filer, ok := h.take(sockioH2Key{Tgid: 7, StreamId: 1, Goid: 10}); !ok || v.SpanId[0] != 2 || filer != 10 {
		t.Fatalf("the newer entry was taken with the old twin: %v %d %v", v.SpanId[0], filer, ok)
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
