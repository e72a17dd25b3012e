package export

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	grpcstats "google.golang.org/grpc/stats"

	"github.com/weft-dev/weft/internal/metrics"
)

// wireStats records, for each request a gRPC server receives, its
// grpc-encoding and its payload's size on the wire and decoded.
type wireStats struct {
	mu          sync.Mutex
	encodings   []string
	wire, plain int
}

func (w *wireStats) TagRPC(ctx context.Context, _ *grpcstats.RPCTagInfo) context.Context { return ctx }
func (w *wireStats) TagConn(ctx context.Context, _ *grpcstats.ConnTagInfo) context.Context {
	return ctx
}
func (w *wireStats) HandleConn(context.Context, grpcstats.ConnStats) {}
func (w *wireStats) HandleRPC(_ context.Context, s grpcstats.RPCStats) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch s := s.(type) {
	case *grpcstats.InHeader:
		w.encodings = append(w.encodings, s.Compression)
	case *grpcstats.InPayload:
		w.wire += s.CompressedLength
		w.plain += s.Length
	}
}

type sink struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans int
}

func (s *sink) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spans += countSpans(req.ResourceSpans)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestCompression: by default requests go out gzip-compressed (the fast
// level is a per-connection option: check it is really applied), and
// with Compression "none" they do not; every span arrives either way.
func TestCompression(t *testing.T) {
	for _, c := range []struct{ compression, want string }{{"", "gzip"}, {"none", ""}} {
		ws := &wireStats{}
		srv := &sink{}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer(grpc.StatsHandler(ws))
		coltracepb.RegisterTraceServiceServer(gs, srv)
		go gs.Serve(ln)

		cfg := fastConfig("http://" + ln.Addr().String())
		cfg.Compression = c.compression
		o := startPipeline(t, cfg, metrics.New())
		const n = 1000
		for i := range n {
			o.Export(testSpan(2, i))
		}
		waitIdle(t, o, 10*time.Second)
		if err := o.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		gs.Stop()

		ws.mu.Lock()
		srv.mu.Lock()
		t.Logf("compression %q: %d requests %v, %d bytes on the wire for %d", c.compression, len(ws.encodings), ws.encodings, ws.wire, ws.plain)
		if srv.spans != n {
			t.Errorf("compression %q: %d spans arrived, want %d", c.compression, srv.spans, n)
		}
		for _, e := range ws.encodings {
			if e != c.want {
				t.Errorf("compression %q: a request came with grpc-encoding %q, want %q", c.compression, e, c.want)
			}
		}
		if c.want == "gzip" && ws.wire*3 > ws.plain {
			t.Errorf("gzip: %d bytes on the wire for %d: not compressed", ws.wire, ws.plain)
		}
		ws.mu.Unlock()
		srv.mu.Unlock()
	}
}
