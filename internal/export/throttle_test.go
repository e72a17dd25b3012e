package export

import (
	"context"
	"encoding/hex"
	"net"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weft-dev/weft/internal/metrics"
)

// throttler is a slow OTLP server: it answers every other request with
// ResourceExhausted and a RetryInfo delay, and refuses one span (partial
// success) of every accepted request that holds more than one.
type throttler struct {
	coltracepb.UnimplementedTraceServiceServer
	delay time.Duration

	mu       sync.Mutex
	calls    int
	got      map[string]int
	rejected int
	lastNo   time.Time
	minGap   time.Duration // shortest wait after a throttle
}

func (s *throttler) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	now := time.Now()
	if !s.lastNo.IsZero() {
		if gap := now.Sub(s.lastNo); s.minGap == 0 || gap < s.minGap {
			s.minGap = gap
		}
		s.lastNo = time.Time{}
	}
	if s.calls%2 == 1 {
		s.lastNo = now
		st, _ := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(s.delay)})
		return nil, st.Err()
	}
	skip := countSpans(req.ResourceSpans) > 1
	resp := &coltracepb.ExportTraceServiceResponse{}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				if skip {
					skip = false
					s.rejected++
					continue
				}
				s.got[hex.EncodeToString(sp.SpanId)]++
			}
		}
	}
	if s.rejected > 0 && countSpans(req.ResourceSpans) > 1 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: 1, ErrorMessage: "one too many"}
	}
	return resp, nil
}

// serveOTLP serves srv's trace service (grpc-go, as a collector's OTLP
// receiver does) until the test ends; it returns its endpoint URL.
func serveOTLP(t testing.TB, srv coltracepb.TraceServiceServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, srv)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	return "http://" + ln.Addr().String()
}

// TestThrottlingCollector: against a collector that throttles with
// RetryInfo, the queue stays within its bound, the throttle delay is
// honoured, and every span is exported, rejected or dropped, counted.
func TestThrottlingCollector(t *testing.T) {
	srv := &throttler{delay: 300 * time.Millisecond, got: map[string]int{}}
	reg := metrics.New()
	cfg := fastConfig(serveOTLP(t, srv))
	cfg.QueueSize, cfg.BatchSize = 300, 50
	o := startPipeline(t, cfg, reg)
	const n = 3000
	maxQueued := 0
	for i := range n {
		o.Export(testSpan(1, i))
		if i%20 == 19 {
			maxQueued = max(maxQueued, o.q.size())
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitIdle(t, o, 30*time.Second)

	srv.mu.Lock()
	defer srv.mu.Unlock()
	exported := reg.Value(spansMetric, "outcome", "exported")
	d := dropped(reg)
	t.Logf("%d calls, shortest wait after a throttle %v; max queued %d of %d; exported %d, dropped %v",
		srv.calls, srv.minGap, maxQueued, cfg.QueueSize, exported, d)
	if maxQueued > cfg.QueueSize {
		t.Errorf("queue held %d spans, bound %d", maxQueued, cfg.QueueSize)
	}
	if srv.minGap < srv.delay {
		t.Errorf("retried %v after a RetryInfo of %v", srv.minGap, srv.delay)
	}
	if d[DropQueueFull] == 0 {
		t.Error("the slow collector never filled the queue: the test proves nothing")
	}
	if int(d[DropRejected]) != srv.rejected || int(exported) != len(srv.got) {
		t.Errorf("rejected: counted %d, server %d; exported: counted %d, server %d", d[DropRejected], srv.rejected, exported, len(srv.got))
	}
	for id, c := range srv.got {
		if c != 1 {
			t.Errorf("span %s received %d times", id, c)
		}
	}
	if total := exported + d[DropQueueFull] + d[DropRejected]; total != n {
		t.Errorf("exported+dropped = %d, sent %d", total, n)
	}
}

// beats counts a heartbeat's beats.
type beats struct {
	mu sync.Mutex
	at []time.Time
}

func (b *beats) Beat() {
	b.mu.Lock()
	b.at = append(b.at, time.Now())
	b.mu.Unlock()
}

// TestBeatsWhileThrottled: a collector's long RetryInfo delay does not
// silence the sender's heartbeat (/healthz would restart the agent). The
// batch is sealed by age, on a timer wake, as on a quiet node: the timer
// that then fired must be armed again for the backoff.
func TestBeatsWhileThrottled(t *testing.T) {
	srv := &throttler{delay: 3 * time.Second, got: map[string]int{}}
	cfg := fastConfig(serveOTLP(t, srv))
	// The client's own retries give up within ExportTimeout/2: a delay
	// past that is the sender's to wait out, in its backoff.
	cfg.ExportTimeout = time.Second
	hb := &beats{}
	cfg.Heartbeat = hb
	o := startPipeline(t, cfg, metrics.New())
	o.Export(testSpan(1, 0)) // one span: its batch is sealed by age
	deadline := time.Now().Add(5 * time.Second)
	for {
		srv.mu.Lock()
		calls := srv.calls
		srv.mu.Unlock()
		if calls >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch was never sent")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The first call was throttled for 3 s: the sender backs off. Over
	// the next second it must beat every FlushInterval/4 (50 ms), give or
	// take a scheduler's delay.
	hb.mu.Lock()
	from := len(hb.at)
	hb.mu.Unlock()
	time.Sleep(time.Second)
	hb.mu.Lock()
	n := len(hb.at) - from
	hb.mu.Unlock()
	srv.mu.Lock()
	calls := srv.calls
	srv.mu.Unlock()
	if calls != 1 {
		t.Fatalf("%d calls in the throttle's 3 s: the test did not hold the sender in its backoff", calls)
	}
	if n < 5 {
		t.Errorf("%d beats in 1 s of backoff, want about 20 (every %v)", n, cfg.FlushInterval/4)
	}
}
