package export

import (
	"errors"
	"github.com/weft-dev/weft/internal/spans"
	"time"
)

// Config sets up the OTLP pipeline; zero fields take the defaults below.
type Config struct {
	// Endpoints in order of preference: "http://host:4317" (plaintext),
	// "https://host:4317" (TLS) or host:port (TLS unless
	// OTEL_EXPORTER_OTLP_INSECURE=true). Empty: OTEL_EXPORTER_OTLP_ENDPOINT
	// or the SDK's default. Other OTEL_EXPORTER_OTLP_* settings apply to all.
	Endpoints   []string
	Compression string // "gzip" (default, at its fastest level) or "none"

	QueueSize int // spans held in memory (8192)
	BatchSize int // spans per request (512)
	// MaxBatchBytes bounds a request's size, as estimated from its spans
	// (spanSize); 2 MiB. Receivers refuse larger requests (gRPC's and the
	// OTLP receiver's default limit is 4 MiB decoded) the same way each
	// time: a batch over it would be retried forever and hold up every
	// batch behind it. A single span over it is dropped (too_large).
	MaxBatchBytes int
	FlushInterval time.Duration // longest a span waits in a partial batch (1 s)

	ExportTimeout time.Duration // one upload, the client's own retries included (10 s)
	RetryInitial  time.Duration // first backoff after a failed upload (250 ms)
	RetryMax      time.Duration // backoff cap (5 s)

	FailoverAfter     int           // consecutive failed uploads before the next endpoint (3)
	FailoverAfterTime time.Duration // or this long without a success (30 s)
	ProbeInterval     time.Duration // how often preferred endpoints are probed after a failover (15 s)

	SpoolDir      string        // empty: no spool, memory only
	SpoolMaxBytes int64         // 256 MiB
	SpoolMaxAge   time.Duration // 24 h
	SpoolAfter    int           // failed uploads of a memory batch before it is spooled (2)

	// Attrs takes back each span's attributes once its batch is sent,
	// spooled or dropped (the protocols' pool; nil: left to the collector).
	Attrs *spans.AttrPool

	// Heartbeat, when set, is beaten by the sender at least every
	// FlushInterval while it runs or waits (every FlushInterval/4 while
	// a batch is open or it backs off), and at most ExportTimeout apart
	// while it uploads: a collector outage keeps it beating, only a
	// wedged sender stops it (/healthz).
	Heartbeat interface{ Beat() }
}

func (c *Config) setDefaults() error {
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	defInt := func(p *int, d int) {
		if *p <= 0 {
			*p = d
		}
	}
	defInt(&c.QueueSize, 8192)
	defInt(&c.BatchSize, 512)
	defInt(&c.MaxBatchBytes, 2<<20)
	defInt(&c.FailoverAfter, 3)
	defInt(&c.SpoolAfter, 2)
	def(&c.FlushInterval, time.Second)
	def(&c.ExportTimeout, 10*time.Second)
	def(&c.RetryInitial, 250*time.Millisecond)
	def(&c.RetryMax, 5*time.Second)
	def(&c.FailoverAfterTime, 30*time.Second)
	def(&c.ProbeInterval, 15*time.Second)
	def(&c.SpoolMaxAge, 24*time.Hour)
	if c.SpoolMaxBytes <= 0 {
		c.SpoolMaxBytes = 256 << 20
	}
	// A batch is at most a quarter of the queue: the one the sender holds
	// while it retries still counts against the bound, and the spiller
	// needs sealed batches behind it to move to disk.
	if c.BatchSize > c.QueueSize/4 {
		c.BatchSize = max(1, c.QueueSize/4)
	}
	if len(c.Endpoints) == 0 {
		c.Endpoints = []string{""}
	}
	switch c.Compression {
	case "", "gzip":
		c.Compression = "gzip"
	case "none":
	default:
		return errors.New(`compression must be "gzip" or "none"`)
	}
	return nil
}
