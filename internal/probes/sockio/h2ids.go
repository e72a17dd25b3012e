package sockio

import (
	"time"
	"unsafe"
)

// evH2IDs is struct h2_ids_event's kind (EV_H2_IDS, bpf/sockio.h).
const evH2IDs = 5

const h2IDsEventSize = int(unsafe.Sizeof(sockioH2IdsEvent{}))

// h2IDs keeps the span IDs the Go probes filed for HTTP/2 streams, which
// come through the ring buffer ahead of the frames the stream's span is made
// from (bpf/h2ids.h): the span takes them with no system call. Entries a
// span never takes (a stream filed under two goroutines, one whose frames
// were not captured) go with their generation: the store holds at most two,
// each of at most h2IDsPerGen entries and h2IDsAge old. Not safe for
// concurrent use (the event loop's own).
type h2IDs struct {
	cur, old map[sockioH2Key]sockioH2Span
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
	return &h2IDs{cur: map[sockioH2Key]sockioH2Span{}, old: map[sockioH2Key]sockioH2Span{},
		filers: map[uint32]struct{}{}, since: now}
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
	h.cur[sockioH2Key{Tgid: e.Tgid, StreamId: e.StreamId, Goid: e.Goid}] = e.Ids
	h.filers[e.Tgid] = struct{}{}
	return true
}

// take returns and forgets a stream's IDs.
func (h *h2IDs) take(k sockioH2Key) (sockioH2Span, bool) {
	if v, ok := h.cur[k]; ok {
		delete(h.cur, k)
		return v, true
	}
	if v, ok := h.old[k]; ok {
		delete(h.old, k)
		return v, true
	}
	return sockioH2Span{}, false
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
	h.old, h.cur = h.cur, make(map[sockioH2Key]sockioH2Span, len(h.cur)/2)
	h.since = now
}
