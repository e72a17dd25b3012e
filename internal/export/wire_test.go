package export

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/weft-dev/weft/internal/spans"
)

// wireBatch mixes what encodeBatch must group and encode: two resources
// (one with a schema URL, one nil), two scopes, every attribute type,
// errors with and without a message, remote and local parents, empty
// strings, and values long enough for two- and three-byte lengths.
func wireBatch() []spans.Span {
	resA := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "shop"), attribute.StringSlice("process.command_args", []string{"a", "", "c"}))
	resB := resource.NewSchemaless(attribute.Int("process.pid", 42))
	long := strings.Repeat("x", 200)
	huge := strings.Repeat("y", 20000)
	start := time.Unix(1700000000, 123456789)
	var out []spans.Span
	for i := range 12 {
		s := sample()
		s.SpanID[7] = byte(i)
		s.Start, s.End = start.Add(time.Duration(i)*time.Millisecond), start.Add(time.Duration(i+1)*time.Millisecond)
		s.Resource = []*resource.Resource{resA, resB, nil}[i%3]
		s.Scope = []string{"weft/sockio", "weft/gogrpc"}[i%2]
		s.ScopeVersion = []string{"", "1.2"}[i%2]
		s.Kind = trace.SpanKind(i % 6)
		s.Error = i%4 == 0
		s.StatusMsg = []string{"", "boom"}[i%2]
		s.Remote = i%2 == 0
		s.Sampled = i%3 != 0
		s.TraceState = []string{"", "a=b"}[i%2]
		if i%5 == 0 {
			s.Parent = trace.SpanID{}
		}
		s.Attrs = append(s.Attrs,
			attribute.Bool("b", i%2 == 0), attribute.Bool("f", false), attribute.Int("zero", 0), attribute.Int("neg", -i),
			attribute.Float64("x", 1.5), attribute.Float64("z", 0), attribute.String("empty", ""), attribute.String("long", long),
			attribute.BoolSlice("bs", []bool{true, false}), attribute.IntSlice("is", []int{1, -2}),
			attribute.Float64Slice("fs", []float64{0.5}), attribute.StringSlice("ss", []string{"p", long}),
			attribute.StringSlice("none", nil))
		if i == 7 {
			s.Attrs = append(s.Attrs, attribute.String("huge", huge))
		}
		out = append(out, s)
	}
	return out
}

// TestEncodeBatch: encodeBatch's bytes decode to exactly the message tree
// toResourceSpans builds, and proto.Marshal of them is byte-for-byte what
// it gives for that tree (gRPC and the spool send what the collector
// would have got before).
func TestEncodeBatch(t *testing.T) {
	for _, batch := range [][]spans.Span{wireBatch(), wireBatch()[:1], spoolBatch(3, 40), nil} {
		want := &coltracepb.ExportTraceServiceRequest{ResourceSpans: toResourceSpans(batch)}
		wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		gotBytes, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: encodeBatch(batch)})
		if err != nil {
			t.Fatal(err)
		}
		var got coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(gotBytes, &got); err != nil {
			t.Fatalf("encoded batch does not decode: %v", err)
		}
		if !proto.Equal(want, &got) {
			t.Errorf("decoded batch of %d differs:\ntoResourceSpans: %s\nencodeBatch:     %s", len(batch), prototext.Format(want), prototext.Format(&got))
		}
		if string(gotBytes) != string(wantBytes) {
			t.Errorf("batch of %d: %d bytes, proto.Marshal of the tree gives %d", len(batch), len(gotBytes), len(wantBytes))
		}
		if n := countSpans(got.ResourceSpans); n != len(batch) {
			t.Errorf("%d spans decoded, want %d", n, len(batch))
		}
	}
}

// TestEncodeBatchInto: a recycled buffer, dirty and of any size, gives the
// same bytes as a fresh one, and a batch encoded after another leaves the
// first one's messages as they were until the buffer is reused.
func TestEncodeBatchInto(t *testing.T) {
	marshal := func(rss []*tracepb.ResourceSpans) string {
		b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rss})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	dirty := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + 3)
		}
		return b
	}
	for _, batch := range [][]spans.Span{wireBatch(), wireBatch()[:1], spoolBatch(3, 40), nil} {
		want := marshal(encodeBatch(batch))
		for _, buf := range [][]byte{nil, dirty(10), dirty(1 << 20)[:17]} {
			rss, got := encodeBatchInto(buf, batch)
			if s := marshal(rss); s != want {
				t.Errorf("batch of %d into a buffer of cap %d: %d bytes, want %d", len(batch), cap(buf), len(s), len(want))
			}
			if cap(buf) >= 512*len(batch)+256 && &got[:1][0] != &buf[:1][0] {
				t.Errorf("batch of %d: a buffer of cap %d was not reused", len(batch), cap(buf))
			}
		}
	}
}

// BenchmarkEncode compares the two ways to a request's bytes, per span.
func BenchmarkEncode(b *testing.B) {
	batch := spoolBatch(1, 512)
	res := sample().Resource // one process's spans share theirs
	for i := range batch {
		batch[i] = sample()
		batch[i].Resource = res
		batch[i].Attrs = append(batch[i].Attrs, attribute.String("http.request.method", "GET"),
			attribute.String("server.address", "127.0.0.1"), attribute.Int("server.port", 8080),
			attribute.String("network.peer.address", "127.0.0.1"), attribute.Int("network.peer.port", 41234))
	}
	for _, c := range []struct {
		name string
		f    func([]spans.Span) *coltracepb.ExportTraceServiceRequest
	}{
		{"tree", func(s []spans.Span) *coltracepb.ExportTraceServiceRequest {
			return &coltracepb.ExportTraceServiceRequest{ResourceSpans: toResourceSpans(s)}
		}},
		{"wire", func(s []spans.Span) *coltracepb.ExportTraceServiceRequest {
			return &coltracepb.ExportTraceServiceRequest{ResourceSpans: encodeBatch(s)}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := proto.Marshal(c.f(batch)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/span")
		})
	}
}

// BenchmarkCompress: the connection's gzip on one encoded batch of 512
// spans like a traced server's, per span, with the bytes it puts on the
// wire. (zstd at its fastest level, tried here: 547 ns and 63 bytes a span
// against gzip's 435 and 67; not worth a second codec.)
func BenchmarkCompress(b *testing.B) {
	// As a traced server's: random IDs, varying times, paths and ports.
	rng := rand.New(rand.NewPCG(1, 2))
	batch := spoolBatch(1, 512)
	res := sample().Resource
	for i := range batch {
		s := sample()
		binary.LittleEndian.PutUint64(s.TraceID[:8], rng.Uint64())
		binary.LittleEndian.PutUint64(s.TraceID[8:], rng.Uint64())
		binary.LittleEndian.PutUint64(s.SpanID[:], rng.Uint64())
		binary.LittleEndian.PutUint64(s.Parent[:], rng.Uint64())
		s.Start = s.Start.Add(time.Duration(i)*time.Millisecond + time.Duration(rng.IntN(1000))*time.Microsecond)
		s.End = s.Start.Add(time.Duration(100+rng.IntN(5000)) * time.Microsecond)
		s.Resource = res
		s.Attrs = []attribute.KeyValue{attribute.String("http.request.method", "GET"),
			attribute.String("url.path", fmt.Sprintf("/api/items/%d", rng.IntN(50))), attribute.String("url.scheme", "http"),
			attribute.String("server.address", "10.0.3.17"), attribute.Int("server.port", 8080),
			attribute.String("network.peer.address", "10.0.7."+fmt.Sprint(rng.IntN(250))), attribute.Int("network.peer.port", 30000+rng.IntN(30000)),
			attribute.String("network.protocol.version", "1.1"), attribute.Int("http.response.status_code", 200)}
		batch[i] = s
	}
	raw, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: encodeBatch(batch)})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []interface {
		Do(io.Writer, []byte) error
		Type() string
	}{&fastGzip{}} {
		b.Run(c.Type(), func(b *testing.B) {
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				if err := c.Do(&out, raw); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/span")
			b.ReportMetric(float64(out.Len())/float64(len(batch)), "bytes/span")
		})
	}
}

// TestSpanSize: spanSize bounds what each span adds to a request. For every
// span of wireBatch (all attribute types, a 20 KB value, every optional
// field), a request of that span alone, less its resource, is
// no larger than the estimate.
func TestSpanSize(t *testing.T) {
	for i, s := range wireBatch() {
		bare := s
		bare.Resource = nil
		b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: encodeBatch([]spans.Span{bare})})
		if err != nil {
			t.Fatal(err)
		}
		if est := spanSize(&s); len(b) > est {
			t.Errorf("span %d: %d bytes encoded, estimated %d", i, len(b), est)
		}
	}
}

// TestQueueSealsBySize: a batch is sealed before a span would take it past
// the byte bound, and at the span count otherwise.
func TestQueueSealsBySize(t *testing.T) {
	var seq atomic.Uint64
	q := newQueue(100, 10, 1000, &seq, nil)
	for _, size := range []int{400, 400, 400, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100} {
		if ok, _, _ := q.push(spans.Span{}, size); !ok {
			t.Fatal("queue full")
		}
	}
	var got []int
	for b := q.pop(); b != nil; b = q.pop() {
		got = append(got, len(b.spans))
	}
	// 400+400 (a third would pass 1000); 400 and six of 100 (1000, which
	// a seventh would pass); the five left stay open.
	if want := []int{2, 7}; !slices.Equal(got, want) {
		t.Errorf("sealed batches of %v spans, want %v", got, want)
	}
	if len(q.open) != 5 {
		t.Errorf("%d spans left open, want 5", len(q.open))
	}
}
