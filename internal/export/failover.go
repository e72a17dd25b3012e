package export

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/weft-dev/weft/internal/metrics"
)

// failover picks the endpoint to send to: the first of the list while it
// works; the next one after FailoverAfter consecutive failures or
// FailoverAfterTime without a success; and, while not on the first, it
// probes the preferred ones every ProbeInterval (an empty export request)
// and returns to the first that answers. Only the sender goroutine calls
// it; cur is atomic for the metrics scrape.
type failover struct {
	eps       []*endpoint
	cfg       Config
	log       *slog.Logger
	cur       atomic.Int64
	failovers *atomic.Uint64

	consec    int
	since     time.Time // first failure of the current run
	lastProbe time.Time
}

func newFailover(eps []*endpoint, cfg Config, reg *metrics.Registry, log *slog.Logger) *failover {
	f := &failover{eps: eps, cfg: cfg, log: log,
		failovers: reg.Counter("weft_export_failovers_total", "switches to another OTLP endpoint")}
	for i, e := range eps {
		reg.Gauge("weft_export_endpoint_active", "1 for the OTLP endpoint spans are sent to", func() float64 {
			if f.cur.Load() == int64(i) {
				return 1
			}
			return 0
		}, "endpoint", e.addr)
	}
	return f
}

func (f *failover) current() *endpoint { return f.eps[f.cur.Load()] }

func (f *failover) success() {
	f.consec, f.since = 0, time.Time{}
}

func (f *failover) failure(now time.Time) {
	f.consec++
	if f.since.IsZero() {
		f.since = now
	}
	if len(f.eps) > 1 && (f.consec >= f.cfg.FailoverAfter || now.Sub(f.since) >= f.cfg.FailoverAfterTime) {
		from := f.cur.Load()
		f.switchTo(int((from+1)%int64(len(f.eps))), "failing", now)
	}
}

func (f *failover) switchTo(i int, why string, now time.Time) {
	from := f.eps[f.cur.Load()]
	f.cur.Store(int64(i))
	f.consec, f.since, f.lastProbe = 0, time.Time{}, now
	f.failovers.Add(1)
	f.log.Warn("switching OTLP endpoint", "from", from.addr, "to", f.eps[i].addr, "why", why)
}

// probe tries the endpoints preferred to the current one, at most every
// ProbeInterval, and switches to the first that accepts an empty request.
func (f *failover) probe(ctx context.Context, now time.Time) {
	cur := int(f.cur.Load())
	if cur == 0 || now.Sub(f.lastProbe) < f.cfg.ProbeInterval {
		return
	}
	f.lastProbe = now
	for i := 0; i < cur; i++ {
		pctx, cancel := context.WithTimeout(ctx, min(2*time.Second, f.cfg.ExportTimeout))
		_, err := f.eps[i].upload(pctx, nil)
		cancel()
		if err == nil {
			f.switchTo(i, "preferred endpoint healthy again", time.Now())
			return
		}
		f.log.Debug("preferred OTLP endpoint still failing", "endpoint", f.eps[i].addr, "err", err)
	}
}
