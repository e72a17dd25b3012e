package export

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestOversizeBatches: a real collector refuses requests over its
// receiver's limit (4 MiB decoded, the OTLP receiver's default). Spans
// with large attributes (heads near -max-header-bytes, 8 KiB) fill a
// default batch of 512 past it: batches are sealed by size too, so every
// one arrives, once. A single span over the limit can never be sent: it is
// dropped and counted (too_large), and the spans after it still go.
func TestOversizeBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real collector")
	}
	col := otelcol.Start(t)
	cfg := fastConfig(url(col))
	cfg.BatchSize = 512
	cfg.QueueSize = 10_000
	reg := metrics.New()
	o := startPipeline(t, cfg, reg)

	big := strings.Repeat("x", 9000)
	n := 0
	for range 3 * 512 {
		s := testSpan(3, n)
		s.Attrs = append(s.Attrs, attribute.String("url.full", big))
		o.Export(s)
		n++
	}
	huge := testSpan(4, 0)
	huge.Attrs = append(huge.Attrs, attribute.String("blob", strings.Repeat("y", 5<<20)))
	o.Export(huge)
	for range 100 {
		o.Export(testSpan(3, n))
		n++
	}
	waitIdle(t, o, 60*time.Second)
	col.WaitSpans(t, n, 60*time.Second, nil)
	got := received(t, col)
	checkExactlyOnce(t, got, 3, n)
	if got[spanKey(4, 0)] != 0 {
		t.Error("the span over the limit arrived: the test proves nothing")
	}
	want := map[string]uint64{DropTooLarge: 1}
	if d := dropped(reg); len(d) != 1 || d[DropTooLarge] != 1 {
		t.Errorf("dropped %v, want %v", d, want)
	}
	if exported := reg.Value(spansMetric, "outcome", "exported"); exported != uint64(n) {
		t.Errorf("exported %d, want %d", exported, n)
	}
}

// TestOversizeSpoolFile: a spool file written by an agent from before
// batches were sealed by size holds 1,536 spans of 9 KB (14 MB, over the
// receiver's 4 MiB limit) and one span of 5 MiB. It goes out in parts that
// each fit; each part delivered leaves the rest on disk under the same
// seq; the 5 MiB span is dropped and counted. Every other span arrives
// exactly once.
func TestOversizeSpoolFile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real collector")
	}
	col := otelcol.Start(t)
	dir := t.TempDir()
	big := strings.Repeat("x", 9000)
	var batch []spans.Span
	for i := range 3 * 512 {
		s := testSpan(5, i)
		s.Attrs = append(s.Attrs, attribute.String("url.full", big))
		batch = append(batch, s)
		if i == 700 {
			huge := testSpan(6, 0)
			huge.Attrs = append(huge.Attrs, attribute.String("blob", strings.Repeat("y", 5<<20)))
			batch = append(batch, huge)
		}
	}
	old, err := openSpool(dir, 1<<30, time.Hour, testLogger(t), newStats(metrics.New()))
	if err != nil {
		t.Fatal(err)
	}
	if err := old.write(1, len(batch), encodeBatch(batch)); err != nil {
		t.Fatal(err)
	}
	if _, b := old.stat(); b < 14<<20 {
		t.Fatalf("the spool file has %d bytes: the test proves nothing", b)
	}

	cfg := fastConfig(url(col))
	cfg.SpoolDir = dir
	reg := metrics.New()
	o := startPipeline(t, cfg, reg)
	waitIdle(t, o, 60*time.Second)
	n := 3 * 512
	col.WaitSpans(t, n, 60*time.Second, nil)
	got := received(t, col)
	checkExactlyOnce(t, got, 5, n)
	if got[spanKey(6, 0)] != 0 {
		t.Error("the span over the limit arrived")
	}
	if d := dropped(reg); len(d) != 1 || d[DropTooLarge] != 1 {
		t.Errorf("dropped %v, want too_large 1", d)
	}
	if exported := reg.Value(spansMetric, "outcome", "exported"); exported != uint64(n) {
		t.Errorf("exported %d, want %d", exported, n)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("%d files left in the spool", len(left))
	}
}

// TestSpoolReplaceCrash: a crash between writing a file's rest and
// removing the file leaves two files of one seq; a reopen keeps the rest
// (fewer spans) alone.
func TestSpoolReplaceCrash(t *testing.T) {
	dir := t.TempDir()
	st := newStats(metrics.New())
	sp, err := openSpool(dir, 1<<30, time.Hour, testLogger(t), st)
	if err != nil {
		t.Fatal(err)
	}
	all := spoolBatch(7, 10)
	if err := sp.write(3, 10, encodeBatch(all)); err != nil {
		t.Fatal(err)
	}
	f, _ := sp.oldest()
	rest := spoolBatch(7, 4)
	data, err := encodeSpoolFile(encodeBatch(rest))
	if err != nil {
		t.Fatal(err)
	}
	nf := spoolFile{seq: f.seq, created: f.created, spans: 4}
	if err := os.WriteFile(filepath.Join(dir, nf.name()), data, 0o600); err != nil {
		t.Fatal(err)
	}
	sp2, err := openSpool(dir, 1<<30, time.Hour, testLogger(t), st)
	if err != nil {
		t.Fatal(err)
	}
	if files, b := sp2.stat(); files != 1 || b != int64(len(data)) {
		t.Fatalf("%d files of %d bytes after reopen, want 1 of %d", files, b, len(data))
	}
	g, _ := sp2.oldest()
	if g.spans != 4 {
		t.Fatalf("kept the file of %d spans, want the rest (4)", g.spans)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("%d files on disk, want 1", len(left))
	}
}

// refuser is an OTLP server that refuses for good (InvalidArgument) any
// request holding the span poison, and takes the others.
type refuser struct {
	coltracepb.UnimplementedTraceServiceServer
	poison string

	mu       sync.Mutex
	got      map[string]int
	refused  int // spans in refused requests
	requests int
}

func (s *refuser) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	var ids []string
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				ids = append(ids, hex.EncodeToString(sp.SpanId))
			}
		}
	}
	if slices.Contains(ids, s.poison) {
		s.refused += len(ids)
		return nil, status.Error(codes.InvalidArgument, "poisoned")
	}
	for _, id := range ids {
		s.got[id]++
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestSpoolPartRefused: a spool file cut in parts, of which the collector
// refuses one for good: that part alone is dropped (rejected, counted),
// the parts before and after it arrive exactly once, and the spool ends
// empty.
func TestSpoolPartRefused(t *testing.T) {
	dir := t.TempDir()
	pad := strings.Repeat("x", 9000)
	var batch []spans.Span
	for i := range 30 {
		s := testSpan(9, i)
		s.Attrs = append(s.Attrs, attribute.String("pad", pad))
		batch = append(batch, s)
	}
	old, err := openSpool(dir, 1<<30, time.Hour, testLogger(t), newStats(metrics.New()))
	if err != nil {
		t.Fatal(err)
	}
	if err := old.write(1, len(batch), encodeBatch(batch)); err != nil {
		t.Fatal(err)
	}
	srv := &refuser{poison: hex.EncodeToString(batch[15].SpanID[:]), got: map[string]int{}}
	cfg := fastConfig(serveOTLP(t, srv))
	cfg.SpoolDir = dir
	cfg.MaxBatchBytes = 100_000 // about ten of these spans a part
	reg := metrics.New()
	o := startPipeline(t, cfg, reg)
	waitIdle(t, o, 30*time.Second)

	srv.mu.Lock()
	defer srv.mu.Unlock()
	exported, d := reg.Value(spansMetric, "outcome", "exported"), dropped(reg)
	t.Logf("%d requests; %d spans taken, %d in the refused part; exported %d, dropped %v", srv.requests, len(srv.got), srv.refused, exported, d)
	if srv.refused == 0 || srv.refused >= len(batch)/2 {
		t.Fatalf("the refused part held %d of %d spans: the file was not cut in parts", srv.refused, len(batch))
	}
	if len(srv.got)+srv.refused != len(batch) {
		t.Errorf("%d taken + %d refused, of %d", len(srv.got), srv.refused, len(batch))
	}
	for id, c := range srv.got {
		if c != 1 {
			t.Errorf("span %s arrived %d times", id, c)
		}
	}
	if int(exported) != len(srv.got) || int(d[DropRejected]) != srv.refused || len(d) != 1 {
		t.Errorf("exported %d, dropped %v; want %d exported and %d rejected", exported, d, len(srv.got), srv.refused)
	}
}
