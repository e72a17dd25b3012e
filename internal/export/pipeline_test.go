package export

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// outage is how long tests keep the collector down: long enough for many
// retries, backoffs and spills, short enough for CI.
const outage = 20 * time.Second

var testResource = resource.NewSchemaless(attribute.String("service.name", "weft-export-test"))

// testSpan is span i of run: its span ID encodes both, so a received span
// tells which one it is.
func testSpan(run byte, i int) spans.Span {
	var sid trace.SpanID
	sid[0] = run
	binary.BigEndian.PutUint32(sid[4:], uint32(i))
	tid := trace.TraceID{0xee, run}
	binary.BigEndian.PutUint32(tid[12:], uint32(i/10))
	start := time.Now()
	return spans.Span{TraceID: tid, SpanID: sid, Sampled: true, Name: "op", Kind: trace.SpanKindServer,
		Start: start, End: start.Add(time.Millisecond), Resource: testResource, Scope: "weft/test",
		Attrs: []attribute.KeyValue{attribute.Int("i", i), attribute.String("pad", "0123456789abcdef0123456789abcdef")}}
}

func spanKey(run byte, i int) string {
	s := testSpan(run, i)
	return hex.EncodeToString(s.SpanID[:])
}

func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("WEFT_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("test", t.Name())
}

// fastConfig shortens the timings so that tests spend their time in the
// outage, not in backoff. ExportTimeout keeps the default: a collector that
// took a request but answers after the timeout (a loaded machine) gets it
// again on the retry, a duplicate that fails the exactly-once checks. It
// also makes each upload to a collector that is down take ExportTimeout/2
// (the client's own retries), which only slows the failovers.
func fastConfig(endpoints ...string) Config {
	return Config{Endpoints: endpoints, BatchSize: 100, FlushInterval: 200 * time.Millisecond,
		ExportTimeout: 10 * time.Second, RetryInitial: 100 * time.Millisecond, RetryMax: time.Second,
		ProbeInterval: time.Second, FailoverAfter: 2}
}

func startPipeline(t testing.TB, cfg Config, reg *metrics.Registry) *OTLP {
	t.Helper()
	o, err := NewOTLP(cfg, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	o.Start()
	t.Cleanup(func() { o.Shutdown(context.Background()) })
	return o
}

func url(c *otelcol.Collector) string { return "http://" + c.Endpoint }

// received counts each span ID the collectors got.
func received(t testing.TB, cols ...*otelcol.Collector) map[string]int {
	got := map[string]int{}
	for _, c := range cols {
		for _, s := range c.Spans(t) {
			got[s.SpanID]++
		}
	}
	return got
}

// waitIdle waits until the pipeline holds nothing in memory or on disk.
func waitIdle(t testing.TB, o *OTLP, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// The queue first: a batch it holds until written to the spool
		// would be in neither if the files were counted first.
		queued, files := o.q.size(), 0
		if o.spool != nil {
			files, _ = o.spool.stat()
		}
		if queued == 0 && files == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline not idle after %v: %d spans queued, %d spool files", timeout, queued, files)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkExactlyOnce compares what arrived with spans 0..n-1 of run.
func checkExactlyOnce(t testing.TB, got map[string]int, run byte, n int) {
	t.Helper()
	missing, dup := 0, 0
	for i := range n {
		switch c := got[spanKey(run, i)]; {
		case c == 0:
			missing++
		case c > 1:
			dup++
		}
	}
	if missing > 0 || dup > 0 {
		t.Errorf("of %d spans, %d missing and %d duplicated", n, missing, dup)
	}
}

// missingRanges names the spans of 0..n-1 of run not among all, as runs
// of indices ("120-199"): whole batches missing look different from a
// span here and there.
func missingRanges(all []otelcol.Span, run byte, n int) []string {
	have := map[string]bool{}
	for _, s := range all {
		have[s.SpanID] = true
	}
	var out []string
	for i := 0; i < n; i++ {
		if have[spanKey(run, i)] {
			continue
		}
		j := i
		for j+1 < n && !have[spanKey(run, j+1)] {
			j++
		}
		out = append(out, fmt.Sprintf("%d-%d", i, j))
		i = j
	}
	return out
}

func dropped(reg *metrics.Registry) map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range []string{DropQueueFull, DropSpoolFull, DropSpoolAge, DropSpoolError, DropRejected, DropShutdown, DropTooLarge} {
		if v := reg.Value(spansMetric, "outcome", "dropped", "reason", r); v > 0 {
			out[r] = v
		}
	}
	return out
}

// TestCollectorOutage sends a steady stream while the collector is down
// for the outage and back on the same port: every span arrives once.
func TestCollectorOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real collector through an outage")
	}
	for _, tc := range []struct {
		name  string
		spool bool
	}{{"memory", false}, {"spool", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			col := otelcol.Start(t)
			cfg := fastConfig(url(col))
			cfg.QueueSize = 100_000 // memory only: the queue absorbs the outage
			if tc.spool {
				cfg.QueueSize = 500 // the spool absorbs it
				cfg.SpoolDir = t.TempDir()
			}
			reg := metrics.New()
			o := startPipeline(t, cfg, reg)

			const rate = 400 // spans per second, in 10 ms steps
			n := 0
			produce := func(d time.Duration) {
				for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
					for range rate / 100 {
						o.Export(testSpan(1, n))
						n++
					}
				}
			}
			produce(2 * time.Second)
			col.Stop(t)
			stopped := n
			produce(outage)
			col.Restart(t)
			t.Logf("collector down from span %d to span %d", stopped, n)
			produce(2 * time.Second)
			waitIdle(t, o, 60*time.Second)
			// What the pipeline says it did, before a wait that may fail.
			t.Logf("%d spans produced: exported %d, spooled %d, dropped %v", n,
				reg.Value(spansMetric, "outcome", "exported"), reg.Value(spansMetric, "outcome", "spooled"), dropped(reg))
			// Acknowledged by now; the collector's file exporter may lag
			// under load (CI: 9,084 of 9,152 within 10 s, the rest after).
			col.WaitFor(t, 60*time.Second, func(all []otelcol.Span) []string { return missingRanges(all, 1, n) })
			got := received(t, col)
			checkExactlyOnce(t, got, 1, n)
			if len(got) != n {
				t.Errorf("collector got %d distinct spans, sent %d", len(got), n)
			}
			exported := reg.Value(spansMetric, "outcome", "exported")
			spooled := reg.Value(spansMetric, "outcome", "spooled")
			t.Logf("%d spans over a %v outage: exported %d, spooled %d, dropped %v", n, outage, exported, spooled, dropped(reg))
			if exported != uint64(n) || len(dropped(reg)) > 0 {
				t.Errorf("metrics: exported %d of %d, dropped %v", exported, n, dropped(reg))
			}
			if tc.spool && spooled == 0 {
				t.Error("the outage did not reach the spool: the test proves nothing about it")
			}
			if !tc.spool && spooled != 0 {
				t.Errorf("spooled %d without a spool", spooled)
			}
		})
	}
}

// TestFailover: spans go to the secondary while the primary is down, and
// to the primary again once it is back.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real collectors")
	}
	primary, secondary := otelcol.Start(t), otelcol.Start(t)
	reg := metrics.New()
	cfg := fastConfig(url(primary), url(secondary))
	cfg.QueueSize = 10_000
	o := startPipeline(t, cfg, reg)

	for i := range 100 {
		o.Export(testSpan(1, i))
	}
	waitIdle(t, o, 20*time.Second)

	primary.Stop(t)
	for i := range 300 {
		o.Export(testSpan(2, i))
		time.Sleep(5 * time.Millisecond)
	}
	// FailoverAfter failed uploads of ExportTimeout/2 each before the
	// secondary takes over: ~12 s when idle.
	waitIdle(t, o, 60*time.Second)
	if o.fo.current() != o.eps[1] {
		t.Fatalf("not on the secondary with the primary down")
	}

	primary.Restart(t)
	deadline := time.Now().Add(cfg.ProbeInterval*5 + 10*time.Second)
	for o.fo.current() != o.eps[0] {
		if time.Now().After(deadline) {
			t.Fatal("did not return to the primary")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range 100 {
		o.Export(testSpan(3, i))
	}
	waitIdle(t, o, 20*time.Second)
	// Acknowledged by now, but the collectors write their files later
	// (batch processor, file flush), and under load much later (see
	// TestCollectorOutage): wait until every span is on file, on either.
	primary.WaitFor(t, 60*time.Second, func(onPrimary []otelcol.Span) []string {
		all := received(t, secondary)
		for _, s := range onPrimary {
			all[s.SpanID]++
		}
		var missing []string
		for _, phase := range []struct {
			run byte
			n   int
		}{{1, 100}, {2, 300}, {3, 100}} {
			for i := range phase.n {
				if k := spanKey(phase.run, i); all[k] == 0 {
					missing = append(missing, k)
				}
			}
		}
		return missing
	})

	onPrimary, onSecondary := received(t, primary), received(t, secondary)
	all := received(t, primary, secondary)
	checkExactlyOnce(t, all, 1, 100)
	checkExactlyOnce(t, all, 2, 300)
	checkExactlyOnce(t, all, 3, 100)
	phase2OnSecondary := 0
	for i := range 300 {
		phase2OnSecondary += onSecondary[spanKey(2, i)]
	}
	phase3OnPrimary := 0
	for i := range 100 {
		phase3OnPrimary += onPrimary[spanKey(3, i)]
	}
	t.Logf("phase 2: %d of 300 on the secondary; phase 3: %d of 100 on the primary; failovers %d",
		phase2OnSecondary, phase3OnPrimary, reg.Value("weft_export_failovers_total"))
	if phase2OnSecondary == 0 {
		t.Error("nothing reached the secondary while the primary was down")
	}
	if phase3OnPrimary != 100 {
		t.Errorf("%d of 100 spans sent after the primary's return reached it", phase3OnPrimary)
	}
	if reg.Value("weft_export_failures_total", "endpoint", url(primary)) == 0 {
		t.Error("no failures counted for the primary")
	}
}

// TestSpoolBound: with the collector down and the spool bound hit, the
// oldest spans are dropped, and the drop counter equals what is missing.
func TestSpoolBound(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real collector")
	}
	col := otelcol.Start(t)
	col.Stop(t)
	reg := metrics.New()
	cfg := fastConfig(url(col))
	cfg.QueueSize, cfg.BatchSize, cfg.SpoolAfter = 1000, 50, 1
	cfg.SpoolDir = t.TempDir()
	cfg.SpoolMaxBytes = 64 << 10
	o := startPipeline(t, cfg, reg)

	const n = 3000
	for i := range n {
		o.Export(testSpan(1, i))
		if i%50 == 49 {
			time.Sleep(20 * time.Millisecond) // let the spiller keep up
		}
	}
	time.Sleep(time.Second)
	files, bytes := o.spool.stat()
	t.Logf("spool at its bound: %d files, %d bytes (bound %d)", files, bytes, cfg.SpoolMaxBytes)

	col.Restart(t)
	waitIdle(t, o, 30*time.Second)
	col.WaitSpans(t, int(uint64(n)-reg.Value(spansMetric, "outcome", "dropped", "reason", DropSpoolFull)-
		reg.Value(spansMetric, "outcome", "dropped", "reason", DropQueueFull)), 60*time.Second, nil)
	got := received(t, col)
	missing, newestMissing, dups, recentMissing := 0, -1, 0, 0
	for i := range n {
		switch got[spanKey(1, i)] {
		case 0:
			missing++
			newestMissing = i
			if i >= n-500 {
				recentMissing++
			}
		case 1:
		default:
			dups++
		}
	}
	d := dropped(reg)
	var total uint64
	for _, v := range d {
		total += v
	}
	t.Logf("%d of %d missing (newest missing #%d), dropped %v", missing, n, newestMissing, d)
	if d[DropSpoolFull] == 0 {
		t.Fatal("the spool bound was never hit")
	}
	if total != uint64(missing) || dups != 0 {
		t.Errorf("dropped %d (%v) but %d missing, %d duplicated", total, d, missing, dups)
	}
	// The bound holds about 550 of these spans and the queue up to 1000:
	// the newest 500 must be there, but for any the queue could not take
	// when the spiller fell behind (a busy machine).
	if uint64(recentMissing) > d[DropQueueFull] {
		t.Errorf("%d of the newest 500 spans missing (newest #%d), more than the %d dropped from the full queue: eviction must take the oldest",
			recentMissing, newestMissing, d[DropQueueFull])
	}
}

// TestAgentKilled: an agent SIGKILLed during the outage leaves its spool;
// the next one, on the same directory, delivers every spooled span once.
func TestAgentKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real collector")
	}
	col := otelcol.Start(t)
	col.Stop(t)
	dir := t.TempDir()
	child := startChildAgent(t, url(col), dir)
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	spooled := map[string]bool{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := parseSpoolName(e.Name()); !ok {
			continue
		}
		data, err := os.ReadFile(dir + "/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		rss, err := decodeSpoolFile(data)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		for _, rs := range rss {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spooled[hex.EncodeToString(s.SpanId)] = true
				}
			}
		}
	}
	if len(spooled) < childSpans/2 {
		t.Fatalf("only %d of %d spans spooled before the kill", len(spooled), childSpans)
	}

	col.Restart(t)
	reg := metrics.New()
	cfg := fastConfig(url(col))
	cfg.SpoolDir = dir
	o := startPipeline(t, cfg, reg)
	for i := range 100 { // new spans after the restart: queued behind the spool
		o.Export(testSpan(2, i))
	}
	waitIdle(t, o, 30*time.Second)
	col.WaitSpans(t, len(spooled)+100, 60*time.Second, nil)
	got := received(t, col)
	for id := range spooled {
		if got[id] != 1 {
			t.Errorf("spooled span %s arrived %d times", id, got[id])
		}
	}
	checkExactlyOnce(t, got, 2, 100)
	t.Logf("killed agent had spooled %d of %d spans (the rest were in memory); all arrived after restart", len(spooled), childSpans)
}

// TestQueueFullSaid: queue_full drops come span by span; they are counted
// each and logged once a minute, not once a span.
func TestQueueFullSaid(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := fastConfig("http://127.0.0.1:1") // nothing listens: the queue fills
	cfg.QueueSize = 100
	reg := metrics.New()
	o, err := NewOTLP(cfg, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	o.Start()
	defer func() { // uploads to nowhere are cut short; the queue's spans are counted as dropped
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		o.Shutdown(ctx)
	}()
	for i := range 1000 {
		o.Export(testSpan(1, i))
	}
	d := reg.Value(spansMetric, "outcome", "dropped", "reason", DropQueueFull)
	mu.Lock()
	said := strings.Count(logs.String(), "export queue full")
	mu.Unlock()
	if d < 800 || said != 1 {
		t.Errorf("%d spans counted queue_full, logged %d times; want >= 800 counted, logged once:\n%s", d, said, logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestDropReasonAtShutdown: a span that comes after Shutdown closed the
// queue but before it closed stopping is counted as shutdown, not
// queue_full (the queue has room; it is closed).
func TestDropReasonAtShutdown(t *testing.T) {
	reg := metrics.New()
	o, err := NewOTLP(fastConfig("http://127.0.0.1:1"), reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer o.closeEndpoints(context.Background())
	o.q.close() // Shutdown's first step; stopping is still open
	o.Export(testSpan(1, 0))
	if d := dropped(reg); d[DropShutdown] != 1 || d[DropQueueFull] != 0 {
		t.Errorf("dropped %v, want shutdown: 1", d)
	}
}

// TestSpillEarlierWhenFailing: while uploads succeed the spiller waits
// for 3/4 of the queue; while the endpoint is failing it starts past half
// (and drains to half, as always), leaving a slow disk more room.
func TestSpillEarlierWhenFailing(t *testing.T) {
	reg := metrics.New()
	cfg := fastConfig("http://127.0.0.1:1")
	cfg.QueueSize, cfg.BatchSize, cfg.SpoolDir = 400, 50, t.TempDir()
	o, err := NewOTLP(cfg, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer o.closeEndpoints(context.Background())
	o.wg.Add(1)
	go o.spiller() // alone: no sender takes batches out
	defer func() { close(o.stopping); o.wg.Wait() }()

	spooled := func() uint64 { return reg.Value(spansMetric, "outcome", "spooled") }
	for i := range 250 { // past half, below 3/4
		o.Export(testSpan(1, i))
	}
	time.Sleep(200 * time.Millisecond)
	if s := spooled(); s != 0 {
		t.Fatalf("spooled %d spans below 3/4 with uploads succeeding, want 0", s)
	}

	o.failing.Store(true)
	o.Export(testSpan(1, 250))
	for deadline := time.Now().Add(10 * time.Second); spooled() < 50; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("spooled %d spans past half with the endpoint failing, want a batch (50)", spooled())
		}
	}
	time.Sleep(100 * time.Millisecond)
	if s, q := spooled(), o.q.size(); s != 100 || q != 151 {
		// Of 251 queued, 201 after one batch is still over half; 151 after two.
		t.Errorf("spooled %d, %d left in memory; want 100 and 151 (drained to half)", s, q)
	}
	if d := dropped(reg); len(d) > 0 {
		t.Errorf("dropped %v", d)
	}
}
