package export

import (
	"context"
	"net"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
)

func TestDirtyPool(t *testing.T) {
	var p dirtyPool
	for _, tc := range []struct{ n, wantCap int }{
		{0, 256}, {1, 256}, {256, 256}, {257, 512}, {4096, 4096}, {4097, 8192},
		{100_000, 131072}, {1 << 22, 1 << 22}, {1<<22 + 1, 1<<22 + 1},
	} {
		b := p.Get(tc.n)
		if len(*b) != tc.n || cap(*b) != tc.wantCap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", tc.n, len(*b), cap(*b), tc.n, tc.wantCap)
		}
		p.Put(b)
	}
	// A buffer comes back whole, at the length asked for, from its class.
	b := p.Get(3000)
	(*b)[0] = 7
	p.Put(b)
	c := p.Get(2100)
	if len(*c) != 2100 || cap(*c) != 4096 {
		t.Fatalf("reused: len %d cap %d", len(*c), cap(*c))
	}
	// Odd capacities are not kept.
	odd := make([]byte, 3000)
	p.Put(&odd)
	for range 4 {
		if g := p.Get(3000); cap(*g) != 4096 {
			t.Fatalf("Get after an odd Put: cap %d", cap(*g))
		}
	}
}

// BenchmarkUploadPool: one export request of 512 spans through a real gRPC
// connection (gzip, as the exporter sends) to an in-process server, per
// span, with gRPC's default buffer pool and with dirtyPool.
func BenchmarkUploadPool(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, &sink{})
	go gs.Serve(ln)
	defer gs.Stop()
	batch := spoolBatch(1, 512)
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: encodeBatch(batch)}
	for _, c := range []struct {
		name string
		opts []grpc.DialOption
	}{
		{"default", nil},
		{"dirty", func() []grpc.DialOption {
			pool := &dirtyPool{}
			return []grpc.DialOption{experimental.WithBufferPool(pool), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(dirtyCodec{pool}))}
		}()},
	} {
		b.Run(c.name, func(b *testing.B) {
			opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithCompressor(&fastGzip{})}, c.opts...) //nolint:staticcheck // as the exporter does
			cc, err := grpc.NewClient(ln.Addr().String(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			client := coltracepb.NewTraceServiceClient(cc)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Export(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/span")
		})
	}
}
