package export

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/status"

	"github.com/weft-dev/weft/internal/metrics"
)

// endpoint is one collector address with its own otlptracegrpc client.
// The client does gzip, TLS and headers (OTEL_EXPORTER_OTLP_* apply) and
// retries transient errors itself, honouring RetryInfo; an interceptor sees
// each attempt's answer, which the client does not return in usable form:
// the partial-success count, the final status and the server's throttle.
type endpoint struct {
	addr     string
	client   otlptrace.Client
	failures *atomic.Uint64
	latency  *metrics.Histogram
}

// result is what one upload learnt from its attempts.
type result struct {
	attempts   int
	last       error         // of the last attempt; nil if it succeeded
	rejected   int64         // partial success of the last successful attempt
	retryAfter time.Duration // RetryInfo of the last failed attempt
}

type resultKey struct{}

func newEndpoint(addr string, cfg Config, reg *metrics.Registry) (*endpoint, error) {
	label := addr
	if label == "" {
		label = "default"
	}
	e := &endpoint{
		addr:     label,
		failures: reg.Counter("weft_export_failures_total", "failed export attempts (RPCs and probes), by endpoint", "endpoint", label),
		latency:  reg.Histogram("weft_export_latency_seconds", "export RPC latency, by endpoint", latencyBuckets, "endpoint", label),
	}
	pool := &dirtyPool{}
	dial := []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(e.intercept),
		experimental.WithBufferPool(pool),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(dirtyCodec{pool})),
		// gRPC's default reconnect backoff grows to 120 s: too slow to
		// notice a collector that is back.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: cfg.RetryMax},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if cfg.Compression != "none" {
		// gzip, fast (fastGzip), for this connection only.
		dial = append(dial, grpc.WithCompressor(&fastGzip{})) //nolint:staticcheck // the per-connection option
	}
	opts := []otlptracegrpc.Option{
		otlptracegrpc.WithTimeout(cfg.ExportTimeout),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{
			Enabled:         true,
			InitialInterval: cfg.RetryInitial,
			MaxInterval:     cfg.RetryMax,
			// Short: the pipeline retries and fails over above this; the
			// client's own retry is for transient errors and RetryInfo.
			MaxElapsedTime: cfg.ExportTimeout / 2,
		}),
		// One call: each WithDialOption replaces the last.
		otlptracegrpc.WithDialOption(dial...),
	}
	switch {
	case addr == "": // OTEL_EXPORTER_OTLP_ENDPOINT or the SDK default
	case strings.Contains(addr, "://"):
		opts = append(opts, otlptracegrpc.WithEndpointURL(addr))
	default:
		opts = append(opts, otlptracegrpc.WithEndpoint(addr))
	}
	e.client = otlptracegrpc.NewClient(opts...)
	if err := e.client.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("OTLP client for %s: %w", addr, err)
	}
	return e, nil
}

func (e *endpoint) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	e.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		e.failures.Add(1)
	}
	if r, ok := ctx.Value(resultKey{}).(*result); ok {
		r.attempts++
		r.last = err
		r.rejected = 0
		if resp, ok := reply.(*coltracepb.ExportTraceServiceResponse); ok && err == nil && resp.PartialSuccess != nil {
			r.rejected = resp.PartialSuccess.RejectedSpans
		}
		r.retryAfter = 0
		for _, d := range status.Convert(err).Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				r.retryAfter = ri.RetryDelay.AsDuration()
			}
		}
	}
	return err
}

// upload sends one request. The error is nil when the collector took it,
// even partially; rejected counts the spans it refused.
func (e *endpoint) upload(ctx context.Context, rss []*tracepb.ResourceSpans) (res result, err error) {
	err = e.client.UploadTraces(context.WithValue(ctx, resultKey{}, &res), rss)
	if res.attempts > 0 && res.last == nil {
		return res, nil // any err is the partial-success report, counted via res.rejected
	}
	if err == nil { // cannot happen without an attempt, but never report success for nothing
		err = fmt.Errorf("no export attempt was made")
	}
	return res, fmt.Errorf("exporting to %s: %w", e.addr, err)
}

// permanent reports errors the collector will give again for the same data
// (the OTLP spec: drop, do not retry).
func permanent(res result) bool {
	c := status.Code(res.last)
	return res.attempts > 0 && (c == codes.InvalidArgument)
}

func (e *endpoint) shutdown(ctx context.Context) error {
	if err := e.client.Stop(ctx); err != nil {
		return fmt.Errorf("stopping OTLP client for %s: %w", e.addr, err)
	}
	return nil
}
