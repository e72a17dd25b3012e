package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
)

// OTLP is the exporting pipeline (see the package comment). Start and
// Shutdown are safe to call twice; Export is safe from any goroutine.
type OTLP struct {
	cfg   Config
	log   *slog.Logger
	st    *stats
	q     *queue
	spool *spool // nil: memory only
	fo    *failover
	eps   []*endpoint
	seq   atomic.Uint64
	bufs  wireBufs

	spill    chan struct{} // the queue passed its high-water mark (spillMark)
	failing  atomic.Bool   // the last upload failed (and none succeeded since)
	stopping chan struct{} // Shutdown began: drain memory, then stop
	runCtx   context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	startOnce, stopOnce sync.Once
	tooLargeSaid        atomic.Bool  // the first span over MaxBatchBytes was logged
	queueFullSaid       atomic.Int64 // when a queue_full drop was last logged (ns since born)
	born                time.Time    // monotonic: the wall clock may step back
}

// NewOTLP sets up the pipeline: clients connect lazily, so a collector that
// is down at start delays nothing; the spool directory is created and what
// an earlier run left in it is queued first.
func NewOTLP(cfg Config, reg *metrics.Registry, log *slog.Logger) (*OTLP, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("OTLP exporter config: %w", err)
	}
	if reg == nil {
		reg = metrics.New()
	}
	o := &OTLP{cfg: cfg, log: log, st: newStats(reg), spill: make(chan struct{}, 1), stopping: make(chan struct{}), born: time.Now()}
	o.runCtx, o.cancel = context.WithCancel(context.Background())
	o.seq.Store(1)
	if cfg.SpoolDir != "" {
		sp, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes, cfg.SpoolMaxAge, log, o.st)
		if err != nil {
			return nil, err
		}
		o.spool = sp
		o.seq.Store(sp.nextSeq())
		reg.Gauge("weft_export_spool_bytes", "bytes in the export spool", func() float64 { _, b := sp.stat(); return float64(b) })
		reg.Gauge("weft_export_spool_files", "batches in the export spool", func() float64 { n, _ := sp.stat(); return float64(n) })
	}
	o.q = newQueue(cfg.QueueSize, cfg.BatchSize, cfg.MaxBatchBytes, &o.seq, cfg.Attrs)
	reg.Gauge("weft_export_queue_spans", "spans in the export memory queue", func() float64 { return float64(o.q.size()) })
	reg.Gauge("weft_export_queue_capacity_spans", "bound of the export memory queue", func() float64 { return float64(cfg.QueueSize) })
	for _, addr := range cfg.Endpoints {
		e, err := newEndpoint(addr, cfg, reg)
		if err != nil {
			o.closeEndpoints(context.Background())
			return nil, err
		}
		o.eps = append(o.eps, e)
	}
	o.fo = newFailover(o.eps, cfg, reg, log)
	return o, nil
}

// Start runs the sender and, with a spool, the spiller.
func (o *OTLP) Start() {
	o.startOnce.Do(func() {
		o.wg.Add(1)
		go o.run()
		if o.spool != nil {
			o.wg.Add(1)
			go o.spiller()
		}
	})
}

// Export queues a span; when the queue is full it is counted as dropped.
// It never waits.
func (o *OTLP) Export(s spans.Span) {
	size := spanSize(&s)
	if size > o.cfg.MaxBatchBytes {
		o.cfg.Attrs.Recycle(&s)
		o.st.dropped(DropTooLarge, 1)
		if !o.tooLargeSaid.Swap(true) { // once: it may come with every request
			o.log.Warn("span larger than an export request may be; dropped (counted as too_large from now on)",
				"name", s.Name, "bytes", size, "max", o.cfg.MaxBatchBytes)
		}
		return
	}
	ok, n, closed := o.q.push(s, size)
	if !ok {
		o.cfg.Attrs.Recycle(&s)
		// The queue's own word, not o.stopping: Shutdown closes the queue
		// before stopping (so the sender cannot leave before the open batch
		// is sealed), and a span refused in between came at shutdown.
		if closed {
			o.st.dropped(DropShutdown, 1)
		} else {
			o.st.dropped(DropQueueFull, 1)
			o.sayQueueFull()
		}
		return
	}
	if o.spool != nil && n > o.spillMark() {
		select {
		case o.spill <- struct{}{}:
		default:
		}
	}
}

// spillMark is the queue size past which Export wakes the spiller: 3/4 of
// the bound while uploads succeed (a burst stays in memory), half while
// the endpoint is failing. In an outage the queue only grows, and a
// spiller woken at 3/4 had the last quarter's room to write a batch in: on
// a loaded disk (fsyncs of a second) that filled first and spans were
// dropped as queue_full. The spiller drains to half either way, so the
// mark is never below what it drains to.
func (o *OTLP) spillMark() int {
	if o.failing.Load() {
		return o.cfg.QueueSize / 2
	}
	return o.cfg.QueueSize * 3 / 4
}

// sayQueueFull logs queue_full drops, at most once a minute: they come
// span by span, and the counter alone is easy to miss.
func (o *OTLP) sayQueueFull() {
	now, last := int64(time.Since(o.born))+int64(time.Minute), o.queueFullSaid.Load()
	if now-last < int64(time.Minute) || !o.queueFullSaid.CompareAndSwap(last, now) {
		return
	}
	o.log.Warn("export queue full: spans dropped (counted in weft_export_spans_total{outcome=\"dropped\",reason=\"queue_full\"})",
		"dropped_so_far", o.st.Dropped(DropQueueFull), "queue_size", o.cfg.QueueSize, "spool", o.spool != nil)
}

// spiller moves the oldest sealed batches to the spool while the queue is
// above half its bound, once Export passed spillMark, so Export keeps
// finding room during an outage.
func (o *OTLP) spiller() {
	defer o.wg.Done()
	for {
		select {
		case <-o.spill:
		case <-o.stopping:
			return
		}
		for o.q.size() > o.cfg.QueueSize/2 {
			b := o.q.pop()
			if b == nil {
				break
			}
			o.toSpool(b.seq, b.spans)
			o.q.recycle(b.spans)
		}
	}
}

// toSpool writes a memory batch to disk and frees its room in the queue.
func (o *OTLP) toSpool(seq uint64, ss []spans.Span) {
	if err := o.spool.write(seq, len(ss), encodeBatch(ss)); err != nil {
		o.log.Warn("spooling a batch failed; its spans are dropped", "spans", len(ss), "err", err)
	}
	o.q.release(len(ss))
}

// Shutdown sends what is in memory while ctx allows, spools (or, without a
// spool, counts as dropped) the rest, and closes the connections. Spooled
// batches stay on disk for the next start.
func (o *OTLP) Shutdown(ctx context.Context) error {
	var err error
	o.stopOnce.Do(func() {
		o.Start() // so that stopping always has a sender to drain
		// The queue closes (and seals its open batch) first: a sender that
		// saw stopping first could find nothing sealed and leave, and the
		// open batch sealed after it would be lost. Export counts a span
		// refused in between as shutdown (push reports closed).
		o.q.close()
		close(o.stopping)
		done := make(chan struct{})
		go func() { o.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			o.cancel() // uploads fail at once; the sender spools the rest
			<-done
			err = fmt.Errorf("OTLP exporter shutdown: %w", ctx.Err())
		}
		o.cancel()
		err = errors.Join(err, o.closeEndpoints(ctx))
	})
	return err
}

func (o *OTLP) closeEndpoints(ctx context.Context) error {
	var errs []error
	for _, e := range o.eps {
		errs = append(errs, e.shutdown(ctx))
	}
	return errors.Join(errs...)
}

// wireBufs recycles the buffers memory batches are encoded into: a batch's
// few hundred KiB, allocated and dropped a few times a second, were a
// third of the agent's allocation at saturation and kept the runtime
// returning pages to the kernel (madvise) only to fault them in again.
type wireBufs struct{ pool sync.Pool }

// maxPooledBuf bounds what is kept: a batch of unusually large spans
// gives its buffer back to the collector instead.
const maxPooledBuf = 4 << 20

func (p *wireBufs) get() *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return b
	}
	return new([]byte)
}

// put takes back a buffer whose messages are no longer used; nil is fine.
func (p *wireBufs) put(b *[]byte) {
	if b != nil && cap(*b) <= maxPooledBuf {
		p.pool.Put(b)
	}
}
