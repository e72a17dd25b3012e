package export

import (
	"errors"
	"math/rand/v2"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weft-dev/weft/internal/tick"
)

// work is what the sender delivers next: a memory batch (kept across
// retries) or a spool file (picked afresh each time, oldest first).
type work struct {
	b        *batch
	file     *spoolFile
	rss      []*tracepb.ResourceSpans
	rest     []*tracepb.ResourceSpans // a spool file's spans after rss, which one upload may not carry (splitRequest)
	restN    int
	tooLarge int     // a spool file's spans that no upload may carry
	buf      *[]byte // what a memory batch's rss hold, back to the pool when it is settled
	n        int
	attempts int
}

// run is the sender: one upload at a time, oldest batch first, with
// exponential backoff and jitter between failures.
func (o *OTLP) run() {
	defer o.wg.Done()
	every := max(o.cfg.FlushInterval/4, 10*time.Millisecond)
	timer := tick.NewTimer(every)
	defer timer.Stop()
	var cur *work // a memory batch being retried
	failures := 0
	stopping := false
	beat := func() {
		if o.cfg.Heartbeat != nil {
			o.cfg.Heartbeat.Beat()
		}
	}
	for {
		beat()
		if !stopping {
			select {
			case <-o.stopping:
				stopping = true
			default:
			}
		}
		open := o.q.sealOlderThan(o.cfg.FlushInterval)
		if !stopping {
			o.fo.probe(o.runCtx, time.Now())
		}
		w := cur
		if w == nil {
			w = o.next(stopping)
		}
		if w == nil {
			if stopping {
				return
			}
			// A batch open: woken every quarter FlushInterval to seal
			// it in time. None: a span that opens one cannot be due
			// before a FlushInterval, so one wake per FlushInterval
			// keeps the bound (a FlushInterval and a quarter) and
			// spares an idle agent three wakeups in four.
			period := every
			if !open {
				period = max(o.cfg.FlushInterval, every)
			}
			timer.Reset(period)
			select {
			case <-o.q.ready:
			case <-timer.C:
			case <-o.stopping:
			}
			continue
		}
		cur = nil
		res, ok := o.deliver(w, stopping)
		if ok {
			// Sent, spooled (re-encoded) or dropped: rss and the spans
			// are done with.
			o.bufs.put(w.buf)
			if w.b != nil {
				o.q.recycle(w.b.spans)
			}
			failures = 0
			continue
		}
		if w.file == nil && w.b != nil {
			cur = w // still ours: retry it
		}
		if stopping {
			// Do not wait on the network while shutting down: what is
			// left goes to the spool (or is counted as dropped) at once.
			o.cancel()
			continue
		}
		failures++
		wait := time.NewTimer(max(o.backoff(failures), res.retryAfter))
		// The timer may have fired already (the wake that sealed this
		// batch): armed again, or no beat would come until wait's end.
		timer.Reset(every)
	backoff:
		for {
			select {
			case <-wait.C:
				break backoff
			case <-timer.C:
				timer.Reset(every)
				beat() // a server's Retry-After may be long: still alive
			case <-o.stopping:
				break backoff
			case <-o.runCtx.Done():
				break backoff
			}
		}
		wait.Stop()
	}
}

// backoff is exponential from RetryInitial to RetryMax, with the upper
// half jittered so that agents cut off together do not return together.
func (o *OTLP) backoff(failures int) time.Duration {
	d := o.cfg.RetryInitial << min(failures-1, 20)
	if d > o.cfg.RetryMax || d <= 0 {
		d = o.cfg.RetryMax
	}
	return d/2 + rand.N(d/2+1)
}

// next picks the oldest batch: from the spool if it holds one older than
// the memory queue's head (while shutting down, memory only). A spool file
// that cannot be read for now (errReadLater) is passed over for memory.
func (o *OTLP) next(stopping bool) *work {
	if o.spool != nil && !stopping {
		if f, ok := o.spool.oldest(); ok {
			if seq, ok := o.q.headSeq(); !ok || f.seq < seq {
				rss, err := o.spool.read(f)
				switch {
				case errors.Is(err, errReadLater):
					// Kept (read logged it); memory batches meanwhile.
				case err != nil:
					o.log.Warn("dropping a damaged spool file", "err", err)
					return o.next(stopping)
				default:
					head, rest, tooLarge := splitRequest(rss, o.cfg.MaxBatchBytes)
					if rest == nil && tooLarge == 0 {
						return &work{file: &f, rss: rss, n: f.spans}
					}
					w := &work{file: &f, rss: head, n: countSpans(head), rest: rest, restN: countSpans(rest), tooLarge: tooLarge}
					if len(head) == 0 {
						o.settle(w, "") // nothing in it may be sent
						return o.next(stopping)
					}
					return w
				}
			} else {
				o.spool.done(f, keep)
			}
		}
	}
	b := o.q.pop()
	if b == nil {
		return nil
	}
	buf := o.bufs.get()
	rss, grown := encodeBatchInto(*buf, b.spans)
	*buf = grown
	return &work{b: b, rss: rss, buf: buf, n: len(b.spans)}
}

// deliver makes one upload of w to the current endpoint and settles w when
// it succeeds or cannot succeed; false means w is still to be retried (a
// spool file stays on disk, a memory batch with the caller). A memory
// batch that has failed SpoolAfter times, or any while stopping, goes to
// the spool, or without one is dropped if stopping.
func (o *OTLP) deliver(w *work, stopping bool) (result, bool) {
	ep := o.fo.current()
	res, err := ep.upload(o.runCtx, w.rss)
	if err == nil {
		o.failing.Store(false)
		o.fo.success()
		rejected := int(min(max(res.rejected, 0), int64(w.n)))
		o.st.exported.Add(uint64(w.n - rejected))
		if rejected > 0 {
			o.log.Warn("collector rejected spans", "endpoint", ep.addr, "rejected", rejected)
			o.st.dropped(DropRejected, rejected)
		}
		o.settle(w, "")
		return res, true
	}
	if permanent(res) {
		o.failing.Store(false) // it answered
		o.log.Warn("collector refused a batch; dropped", "endpoint", ep.addr, "spans", w.n, "err", err)
		if w.file == nil {
			o.st.dropped(DropRejected, w.n)
		}
		o.settle(w, DropRejected)
		return res, true
	}
	if o.runCtx.Err() == nil {
		o.failing.Store(true) // the spiller starts earlier (spillMark)
		o.fo.failure(time.Now())
	}
	w.attempts++
	o.log.Debug("export failed", "endpoint", ep.addr, "spans", w.n, "attempt", w.attempts, "err", err)
	switch {
	case w.file != nil:
		o.spool.done(*w.file, keep)
		return res, false
	case o.spool != nil && (stopping || w.attempts >= o.cfg.SpoolAfter):
		o.toSpool(w.b.seq, w.b.spans)
		return res, true
	case stopping:
		o.st.dropped(DropShutdown, w.n)
		o.log.Warn("collector unreachable at shutdown and no spool; spans dropped", "spans", w.n)
		o.q.release(w.n)
		return res, true
	}
	return res, false
}

// settle ends a delivered (reason "") or refused batch. A spool file
// whose first part was delivered keeps the rest for the next upload.
func (o *OTLP) settle(w *work, reason string) {
	if w.file != nil {
		if w.rest == nil && w.tooLarge == 0 {
			o.spool.done(*w.file, reason)
			return
		}
		// A file cut in parts: this part is settled, the rest stays (a
		// part refused for good takes only itself with it).
		if reason != "" {
			o.st.dropped(reason, w.n)
		}
		if w.tooLarge > 0 {
			o.st.dropped(DropTooLarge, w.tooLarge)
			o.log.Warn("spooled spans larger than a request may be; dropped", "spans", w.tooLarge,
				"max_bytes", o.cfg.MaxBatchBytes)
		}
		if w.rest == nil {
			o.spool.done(*w.file, "")
			return
		}
		if err := o.spool.replace(*w.file, w.restN, w.rest); err != nil {
			o.log.Warn("keeping the rest of a spool file failed; its spans are dropped", "spans", w.restN, "err", err)
		}
		return
	}
	o.q.release(w.n)
}
