package sockio

import (
	"time"
	"unsafe"
)

// evH2IDs is struct h2_ids_event's kind (EV_H2_IDS, bpf/sockio.h);
// evH2Name struct h2_name_event's (EV_H2_NAME).
const (
	evH2IDs  = 5
	evH2Name = 6
)

const (
	h2IDsEventSize  = int(unsafe.Sizeof(sockioH2IdsEvent{}))
	h2NameEventSize = int(unsafe.Sizeof(sockioH2NameEvent{}))
)

// h2Name is a stream's :path as a Go probe read it (sent only for the
// processes asked for it: their HTTP/2 connections open before tracing
// began keep paths in HPACK entries the parser never saw).
type h2Name struct {
	path string
	grpc bool // a gRPC probe's: the stream is a gRPC call
}

// h2Entry is a stream's IDs as filed under one key; twin is the other
// goroutine they are filed under too (see struct h2_ids_event's
// alias_goid), 0: none.
type h2Entry struct {
	ids   sockioH2Span
	twin  uint64
	alias bool // this is the copy under the alias goroutine
}

// h2IDs keeps the span IDs the Go probes filed for HTTP/2 streams, which
// come through the ring buffer ahead of the frames the stream's span is made
// from (bpf/h2ids.h): the span takes them with no system call. Entries a
// span never takes (a stream filed under two goroutines, one whose frames
// were not captured) go with their generation: the store holds at most two,
// each of at most h2IDsPerGen entries and h2IDsAge old. Not safe for
// concurrent use (the event loop's own).
type h2IDs struct {
	cur, old map[sockioH2Key]h2Entry
	// names, by the same generations (mostly empty).
	names, oldNames map[sockioH2Key]h2Name
	// filers are the processes whose streams came through the ring: only
	// theirs are worth a look in the kernel's map when the store has
	// nothing (a stream that outlived two generations, a lost event).
	// Kept until the process is forgotten (drop), not by generation: a
	// quiet process's long stream must still find its IDs.
	filers map[uint32]struct{}
	since  time.Time // when cur began
}

const (
	h2IDsPerGen = 16384
	h2IDsAge    = 30 * time.Second
)

func newH2IDs(now time.Time) *h2IDs {
	return &h2IDs{cur: map[sockioH2Key]h2Entry{}, old: map[sockioH2Key]h2Entry{},
		names: map[sockioH2Key]h2Name{}, oldNames: map[sockioH2Key]h2Name{},
		filers: map[uint32]struct{}{}, since: now}
}

// putName files a stream's :path from a ring record; false for a short
// one. A path longer than the probe copies, or that it could not read, is
// not filed: a stream is better unnamed than named wrong.
func (h *h2IDs) putName(raw []byte) bool {
	if len(raw) < h2NameEventSize {
		return false
	}
	e := (*sockioH2NameEvent)(unsafe.Pointer(&raw[0]))
	if e.Len == 0 || int(e.Len) > len(e.Path) {
		return true
	}
	if len(h.names) >= h2IDsPerGen {
		h.rotate(time.Now())
	}
	h.names[sockioH2Key{Tgid: e.Tgid, StreamId: e.StreamId, Goid: e.Goid}] = h2Name{path: string(e.Path[:e.Len]), grpc: e.Grpc != 0}
	return true
}

// takeName returns and forgets a stream's :path, if one was filed.
func (h *h2IDs) takeName(k sockioH2Key) (h2Name, bool) {
	if len(h.names) == 0 && len(h.oldNames) == 0 {
		return h2Name{}, false
	}
	return takeGen(k, h.names, h.oldNames)
}

// takeGen returns and forgets k's entry in the current generation, else
// in the old one.
func takeGen[V any](k sockioH2Key, cur, old map[sockioH2Key]V) (V, bool) {
	if v, ok := cur[k]; ok {
		delete(cur, k)
		return v, true
	}
	v, ok := old[k]
	if ok {
		delete(old, k)
	}
	return v, ok
}

// put files a stream's IDs from a ring record; false for a short one.
func (h *h2IDs) put(raw []byte) bool {
	if len(raw) < h2IDsEventSize {
		return false
	}
	e := (*sockioH2IdsEvent)(unsafe.Pointer(&raw[0]))
	if len(h.cur) >= h2IDsPerGen {
		h.rotate(time.Now())
	}
	k := sockioH2Key{Tgid: e.Tgid, StreamId: e.StreamId, Goid: e.Goid}
	if e.AliasGoid != 0 && e.AliasGoid != e.Goid {
		// The stream's frames may have been read by the alias
		// goroutine (a new connection's first read, however many
		// streams came in it): filed under both, taken once.
		h.cur[k] = h2Entry{ids: e.Ids, twin: e.AliasGoid}
		a := k
		a.Goid = e.AliasGoid
		h.cur[a] = h2Entry{ids: e.Ids, twin: e.Goid, alias: true}
	} else {
		h.cur[k] = h2Entry{ids: e.Ids}
	}
	h.filers[e.Tgid] = struct{}{}
	return true
}

// take returns and forgets a stream's IDs (under both its keys), and the
// goroutine of the probe that filed them (k's own, unless k is an alias).
func (h *h2IDs) take(k sockioH2Key) (ids sockioH2Span, filer uint64, ok bool) {
	v, ok := takeGen(k, h.cur, h.old)
	if !ok {
		return sockioH2Span{}, 0, false
	}
	filer = k.Goid
	if v.twin != 0 {
		t := k
		t.Goid = v.twin
		// The twin goes too, unless the key was filed again since
		// (then it is another stream's entry).
		for _, m := range []map[sockioH2Key]h2Entry{h.cur, h.old} {
			if tv, ok := m[t]; ok {
				if tv.twin == k.Goid {
					delete(m, t)
				}
				break
			}
		}
		if v.alias {
			filer = v.twin
		}
	}
	return v.ids, filer, true
}

// filed says whether pid's streams have come through the ring.
func (h *h2IDs) filed(pid uint32) bool {
	_, ok := h.filers[pid]
	return ok
}

// drop forgets a process that is gone (its entries go with their
// generation).
func (h *h2IDs) drop(pid uint32) { delete(h.filers, pid) }

// age starts a new generation once the current one is h2IDsAge old.
func (h *h2IDs) age(now time.Time) {
	if now.Sub(h.since) >= h2IDsAge {
		h.rotate(now)
	}
}

func (h *h2IDs) rotate(now time.Time) {
	h.old, h.cur = h.cur, make(map[sockioH2Key]h2Entry, len(h.cur)/2)
	h.oldNames, h.names = h.names, map[sockioH2Key]h2Name{}
	h.since = now
}
