package export

import (
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/weft-dev/weft/internal/spans"
)

// queue is the bounded in-memory buffer between Export and the sender: an
// open batch being filled and a FIFO of sealed ones. It holds at most
// capacity spans; Export never waits on it.
type queue struct {
	capacity, batchSize int
	maxBytes            int            // a batch's estimated size bound (Config.MaxBatchBytes)
	seq                 *atomic.Uint64 // shared with the spool: one order for both

	mu        sync.Mutex
	open      []spans.Span
	openBytes int // open's estimated size (spanSize)
	openedAt  time.Time
	sealed    []*batch
	n         int  // spans in open and sealed
	closed    bool // no more Export

	ready chan struct{} // a sealed batch is waiting (capacity 1)

	// free holds batches' span arrays once they are sent, spooled or
	// dropped (recycle): a batch's array (a few hundred bytes a span) was
	// the exporter's second-largest allocation at saturation.
	free sync.Pool
	// attrs takes back the spans' attribute arrays at recycle.
	attrs *spans.AttrPool
}

// batch is a sealed run of spans, with its place in the export order.
type batch struct {
	seq   uint64
	spans []spans.Span
}

func newQueue(capacity, batchSize, maxBytes int, seq *atomic.Uint64, attrs *spans.AttrPool) *queue {
	return &queue{capacity: capacity, batchSize: batchSize, maxBytes: maxBytes, seq: seq, ready: make(chan struct{}, 1),
		attrs: attrs}
}

// push adds a span of the estimated size (spanSize) and returns the spans
// now held; ok is false when the queue is full or closed, and closed says
// which (closed wins: the span came at shutdown). A batch is sealed at
// batchSize spans, or before a span would take it past maxBytes.
func (q *queue) push(s spans.Span, size int) (ok bool, n int, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false, q.n, true
	}
	if q.n >= q.capacity {
		return false, q.n, false
	}
	if len(q.open) > 0 && q.maxBytes > 0 && q.openBytes+size > q.maxBytes {
		q.sealLocked()
	}
	if len(q.open) == 0 {
		q.openedAt = time.Now()
		if b, ok := q.free.Get().(*[]spans.Span); ok && cap(*b) >= q.batchSize {
			q.open = (*b)[:0]
		} else {
			q.open = make([]spans.Span, 0, q.batchSize)
		}
	}
	q.open = append(q.open, s)
	q.openBytes += size
	q.n++
	if len(q.open) >= q.batchSize {
		q.sealLocked()
	}
	return true, q.n, false
}

func (q *queue) sealLocked() {
	if len(q.open) == 0 {
		return
	}
	q.sealed = append(q.sealed, &batch{seq: q.seq.Add(1) - 1, spans: q.open})
	q.open, q.openBytes = nil, 0
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// sealOlderThan seals the open batch if its first span waited at least d,
// and says whether a batch is still open.
func (q *queue) sealOlderThan(d time.Duration) (open bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.open) > 0 && time.Since(q.openedAt) >= d {
		q.sealLocked()
	}
	return len(q.open) > 0
}

// close stops Export and seals what is open.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.sealLocked()
}

// headSeq is the seq of the oldest sealed batch; ok is false if none.
func (q *queue) headSeq() (seq uint64, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sealed) == 0 {
		return 0, false
	}
	return q.sealed[0].seq, true
}

// pop removes the oldest sealed batch, or returns nil.
func (q *queue) pop() *batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sealed) == 0 {
		return nil
	}
	b := q.sealed[0]
	q.sealed[0] = nil
	q.sealed = q.sealed[1:]
	return b
}

// release returns the room of a popped batch's spans once they are gone
// (sent, spooled or dropped): until then they still count against capacity.
func (q *queue) release(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n -= n
}

// size is the number of spans held, including popped ones not yet released.
func (q *queue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// sealedCount is the number of sealed batches waiting.
func (q *queue) sealedCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.sealed)
}

// recycle takes back the span array of a batch that is done with (sent,
// spooled or dropped); nothing may use ss afterwards. Its spans are
// cleared so that the pool holds no attributes or resources alive.
func (q *queue) recycle(ss []spans.Span) {
	q.attrs.RecycleAll(ss)
	if cap(ss) < q.batchSize {
		return
	}
	ss = ss[:cap(ss)]
	clear(ss)
	ss = ss[:0]
	q.free.Put(&ss)
}

// spanSize bounds what a span adds to an export request's encoding: its
// strings and attribute values, plus at most 16 bytes of tags and lengths
// per attribute and 128 for the fixed fields. Resources are counted once a
// request, not here: MaxBatchBytes leaves room for them.
func spanSize(s *spans.Span) int {
	n := 128 + len(s.Name) + len(s.TraceState) + len(s.StatusMsg) + len(s.Scope) + len(s.ScopeVersion)
	for _, kv := range s.Attrs {
		n += 16 + len(kv.Key) + valueSize(kv.Value)
	}
	return n
}

func valueSize(v attribute.Value) int {
	switch v.Type() {
	case attribute.STRING:
		return len(v.AsString())
	case attribute.STRINGSLICE:
		n := 0
		for _, e := range v.AsStringSlice() {
			n += 8 + len(e)
		}
		return n
	case attribute.BOOLSLICE:
		return 4 + 2*len(v.AsBoolSlice())
	case attribute.INT64SLICE:
		return 4 + 11*len(v.AsInt64Slice())
	case attribute.FLOAT64SLICE:
		return 4 + 9*len(v.AsFloat64Slice())
	default:
		return 16
	}
}
