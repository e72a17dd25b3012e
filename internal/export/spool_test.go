package export

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
)

func spoolBatch(run byte, n int) []spans.Span {
	var out []spans.Span
	for i := range n {
		out = append(out, testSpan(run, i))
	}
	return out
}

// TestSpoolReopen: batches survive a reopen, come back oldest first and
// intact, and numbering continues after them; temporary files are removed.
func TestSpoolReopen(t *testing.T) {
	dir := t.TempDir()
	st := newStats(metrics.New())
	log := slog.New(slog.DiscardHandler)
	sp, err := openSpool(dir, 1<<20, time.Hour, log, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{5, 3, 4} { // a retried batch may come late
		if err := sp.write(seq, 10, encodeBatch(spoolBatch(byte(seq), 10))); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half"), 0o600)
	sp2, err := openSpool(dir, 1<<20, time.Hour, log, st)
	if err != nil {
		t.Fatal(err)
	}
	if got := sp2.nextSeq(); got != 6 {
		t.Errorf("nextSeq = %d, want 6", got)
	}
	for _, want := range []uint64{3, 4, 5} {
		f, ok := sp2.oldest()
		if !ok || f.seq != want || f.spans != 10 {
			t.Fatalf("oldest = %+v %v, want seq %d", f, ok, want)
		}
		rss, err := sp2.read(f)
		if err != nil {
			t.Fatal(err)
		}
		if id := rss[0].ScopeSpans[0].Spans[0].SpanId; id[0] != byte(want) || countSpans(rss) != 10 {
			t.Errorf("seq %d holds span %x, %d spans", want, id, countSpans(rss))
		}
		sp2.done(f, "")
	}
	if _, ok := sp2.oldest(); ok {
		t.Error("spool not empty after delivering everything")
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-123")); err == nil {
		t.Error("temporary file left behind")
	}
}

// TestSpoolBounds: over the byte bound the oldest go first, past the age
// bound they expire, damaged files are dropped; each counted in spans.
func TestSpoolBounds(t *testing.T) {
	dir := t.TempDir()
	reg := metrics.New()
	st := newStats(reg)
	log := slog.New(slog.DiscardHandler)
	one := encodeBatch(spoolBatch(1, 20))
	sp, err := openSpool(dir, 1<<20, time.Hour, log, st)
	if err != nil {
		t.Fatal(err)
	}
	sp.write(1, 20, one)
	_, size := sp.stat()
	sp.maxBytes = size*3 + size/2 // room for three
	for seq := uint64(2); seq <= 5; seq++ {
		if err := sp.write(seq, 20, one); err != nil {
			t.Fatal(err)
		}
	}
	if f, _ := sp.oldest(); f.seq != 3 {
		t.Errorf("oldest after eviction is %d, want 3", f.seq)
	} else {
		sp.done(f, keep)
	}
	if got := st.Dropped(DropSpoolFull); got != 40 {
		t.Errorf("spool_full = %d, want 40", got)
	}

	// Damage seq 3 (flip a byte): dropped when read.
	f, _ := sp.oldest()
	path := filepath.Join(dir, f.name())
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 0xff
	os.WriteFile(path, data, 0o600)
	if _, err := sp.read(f); err == nil {
		t.Error("damaged file read without error")
	}
	if got := st.Dropped(DropSpoolError); got != 20 {
		t.Errorf("spool_error = %d, want 20", got)
	}

	sp.maxAge = 50 * time.Millisecond
	time.Sleep(100 * time.Millisecond)
	if _, ok := sp.oldest(); ok {
		t.Error("expired files still offered")
	}
	if got := st.Dropped(DropSpoolAge); got != 40 {
		t.Errorf("spool_age = %d, want 40", got)
	}
	if n, b := sp.stat(); n != 0 || b != 0 {
		t.Errorf("spool holds %d files, %d bytes after expiry", n, b)
	}
	var text bytes.Buffer
	reg.WriteText(&text)
	if !bytes.Contains(text.Bytes(), []byte(`weft_export_spans_total{outcome="dropped",reason="spool_age"} 40`)) {
		t.Errorf("metrics text:\n%s", text.String())
	}
}

// TestSpoolReplace: the rest of a file whose first part was delivered
// takes its place (same seq and age, fewer spans), the file is no longer
// busy, and the old file is gone; a rest that cannot be written is
// dropped and counted (spool_error) with the file, which would otherwise
// send its first part again on every round.
func TestSpoolReplace(t *testing.T) {
	dir := t.TempDir()
	reg := metrics.New()
	st := newStats(reg)
	sp, err := openSpool(dir, 1<<30, time.Hour, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), st)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.write(3, 10, encodeBatch(spoolBatch(7, 10))); err != nil {
		t.Fatal(err)
	}
	f, _ := sp.oldest()
	if err := sp.replace(f, 4, encodeBatch(spoolBatch(8, 4))); err != nil {
		t.Fatal(err)
	}
	if sp.busy != 0 {
		t.Error("the file is still busy")
	}
	g, ok := sp.oldest()
	if !ok || g.seq != f.seq || !g.created.Equal(f.created) || g.spans != 4 {
		t.Fatalf("after replace: %+v (ok %v), want seq %d, age kept, 4 spans", g, ok, f.seq)
	}
	rss, err := sp.read(g)
	if err != nil || countSpans(rss) != 4 {
		t.Fatalf("the rest reads back as %d spans, %v", countSpans(rss), err)
	}
	if files, b := sp.stat(); files != 1 || b != g.size {
		t.Errorf("%d files of %d bytes, want 1 of %d", files, b, g.size)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 || left[0].Name() != g.name() {
		t.Errorf("on disk: %v, want only %s", left, g.name())
	}

	sp.dir = filepath.Join(dir, "gone") // every write fails
	if err := sp.replace(g, 2, encodeBatch(spoolBatch(9, 2))); err == nil {
		t.Fatal("a rest that could not be written was not reported")
	}
	if d := reg.Value(spansMetric, "outcome", "dropped", "reason", DropSpoolError); d != 2 {
		t.Errorf("spool_error %d, want the rest's 2", d)
	}
	if files, b := sp.stat(); files != 0 || b != 0 {
		t.Errorf("%d files of %d bytes left in the index, want none", files, b)
	}
}

// TestSpoolConcurrentWrites: the sender and the spiller write side by
// side (each file synced outside the lock) while the sender reads and
// delivers: every span is delivered or counted as spool_full, the files
// and bytes the spool reports match the disk, and the bound holds but for
// the writes in flight.
func TestSpoolConcurrentWrites(t *testing.T) {
	dir := t.TempDir()
	st := newStats(metrics.New())
	sp, err := openSpool(dir, 1<<20, time.Hour, slog.New(slog.DiscardHandler), st)
	if err != nil {
		t.Fatal(err)
	}
	one := encodeBatch(spoolBatch(1, 10))
	sp.write(1000, 10, one)
	_, size := sp.stat()
	f0, _ := sp.oldest()
	sp.done(f0, "") // delivered
	sp.maxBytes = 8 * size
	const writers, each = 2, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := sp.write(uint64(w*each+i+1), 10, one); err != nil {
					t.Error(err)
				}
				if _, bytes := sp.stat(); bytes > sp.maxBytes+writers*size {
					t.Errorf("%d bytes held, bound %d and %d writes in flight", bytes, sp.maxBytes, writers)
				}
			}
		}()
	}
	delivered := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		for f, ok := sp.oldest(); ok; f, ok = sp.oldest() {
			delivered += f.spans
			sp.done(f, "")
		}
	}
	if got, want := uint64(delivered)+st.Dropped(DropSpoolFull), uint64(writers*each*10); got != want {
		t.Errorf("%d delivered + %d spool_full = %d, want %d", delivered, st.Dropped(DropSpoolFull), got, want)
	}
	if files, bytes := sp.stat(); files != 0 || bytes != 0 {
		t.Errorf("spool holds %d files, %d bytes after delivering all", files, bytes)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files left on disk", len(ents))
	}
}

// TestSpoolReservation: a write in flight holds its bytes, so a write
// beside it evicts to stay under the bound rather than overshoot it once
// both land.
func TestSpoolReservation(t *testing.T) {
	st := newStats(metrics.New())
	sp, err := openSpool(t.TempDir(), 1<<20, time.Hour, slog.New(slog.DiscardHandler), st)
	if err != nil {
		t.Fatal(err)
	}
	one := encodeBatch(spoolBatch(1, 10))
	if err := sp.write(1, 10, one); err != nil {
		t.Fatal(err)
	}
	_, size := sp.stat()
	sp.maxBytes = 2 * size // room for two
	inFlight, release := make(chan struct{}), make(chan struct{})
	sp.writing = func(seq uint64) {
		if seq == 2 {
			close(inFlight)
			<-release
		}
	}
	done := make(chan error)
	go func() { done <- sp.write(2, 10, one) }()
	<-inFlight
	if err := sp.write(3, 10, one); err != nil { // must evict seq 1
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	files, bytes := sp.stat()
	if bytes > sp.maxBytes || files != 2 || st.Dropped(DropSpoolFull) != 10 {
		t.Errorf("%d files, %d bytes (bound %d), spool_full %d; want 2 files under the bound, seq 1's 10 spans evicted",
			files, bytes, sp.maxBytes, st.Dropped(DropSpoolFull))
	}
	if f, _ := sp.oldest(); f.seq != 2 {
		t.Errorf("oldest is seq %d, want 2", f.seq)
	}
}

// TestSpoolReplaceGone: a rest written for a file no longer in the index
// is removed with it; left on disk it would be sent again at the next
// start, a duplicate of spans already delivered or counted as dropped.
func TestSpoolReplaceGone(t *testing.T) {
	dir := t.TempDir()
	st := newStats(metrics.New())
	sp, err := openSpool(dir, 1<<30, time.Hour, slog.New(slog.DiscardHandler), st)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.write(3, 10, encodeBatch(spoolBatch(7, 10))); err != nil {
		t.Fatal(err)
	}
	f, _ := sp.oldest()
	sp.mu.Lock()
	sp.removeLocked(0, DropSpoolAge) // gone while its first part was sent
	sp.mu.Unlock()
	if err := sp.replace(f, 4, encodeBatch(spoolBatch(8, 4))); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("on disk after replacing a file that is gone: %v, want nothing", left)
	}
	if files, b := sp.stat(); files != 0 || b != 0 {
		t.Errorf("%d files of %d bytes in the index, want none", files, b)
	}
}

// TestSpoolReadRetry: a file that cannot be read for now (EMFILE) is
// kept, not tried again before its backoff, counted as a read error and
// not as dropped; after maxReadAttempts failures in a row it is dropped
// (spool_error). A good read starts the count afresh.
func TestSpoolReadRetry(t *testing.T) {
	dir := t.TempDir()
	reg := metrics.New()
	st := newStats(reg)
	sp, err := openSpool(dir, 1<<30, time.Hour, slog.New(slog.DiscardHandler), st)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 2; seq++ {
		if err := sp.write(seq, 20, encodeBatch(spoolBatch(byte(seq), 20))); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	emfile := func(name string) ([]byte, error) {
		calls++
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EMFILE}
	}
	readErrors := func() uint64 { return reg.Value("weft_export_spool_read_errors_total") }
	onDisk := func() int { e, _ := os.ReadDir(dir); return len(e) }
	readOldest := func() (spoolFile, error) {
		t.Helper()
		f, ok := sp.oldest()
		if !ok {
			t.Fatal("spool empty")
		}
		_, err := sp.read(f)
		if err == nil {
			sp.done(f, keep) // as the sender does after the upload
		}
		if sp.busy != 0 {
			t.Error("the file is still busy after read")
		}
		return f, err
	}

	// A failure then a good read: the count starts afresh.
	sp.readFile, sp.readRetry = emfile, 0
	if _, err := readOldest(); !errors.Is(err, errReadLater) {
		t.Fatalf("EMFILE: %v, want errReadLater", err)
	}
	sp.readFile = os.ReadFile
	if _, err := readOldest(); err != nil {
		t.Fatal(err)
	}
	if sp.unreadable.fails != 0 {
		t.Errorf("failed reads still counted after a good one: %+v", sp.unreadable)
	}

	// Not tried again before the backoff has passed.
	sp.readFile, sp.readRetry, calls = emfile, time.Hour, 0
	readOldest()
	if _, err := readOldest(); !errors.Is(err, errReadLater) || calls != 1 {
		t.Fatalf("within the backoff: %v after %d reads, want errReadLater after 1", err, calls)
	}
	sp.readRetry, sp.unreadable.retryAt = 0, time.Time{}
	for n := 2; n < maxReadAttempts; n++ {
		if _, err := readOldest(); !errors.Is(err, errReadLater) {
			t.Fatalf("attempt %d: %v, want errReadLater", n, err)
		}
	}
	// The first scenario's one failure, and these.
	if d, want := st.Dropped(DropSpoolError), uint64(1+maxReadAttempts-1); d != 0 || onDisk() != 2 || readErrors() != want {
		t.Fatalf("after %d failed reads: spool_error %d, %d files, %d read errors; want 0, 2, %d",
			maxReadAttempts-1, d, onDisk(), readErrors(), want)
	}
	f, err := readOldest()
	if err == nil || errors.Is(err, errReadLater) {
		t.Fatalf("attempt %d: %v, want dropped", maxReadAttempts, err)
	}
	if d := st.Dropped(DropSpoolError); d != 20 || onDisk() != 1 {
		t.Errorf("after %d failed reads: spool_error %d, %d files; want 20, 1", maxReadAttempts, d, onDisk())
	}
	if g, _ := sp.oldest(); g.seq == f.seq {
		t.Error("the dropped file is still offered")
	}
}

// TestNextPassesUnreadable: while the oldest spool file cannot be read
// for now, the sender takes memory batches; the file comes once it reads.
func TestNextPassesUnreadable(t *testing.T) {
	dir := t.TempDir()
	old, err := openSpool(dir, 1<<30, time.Hour, slog.New(slog.DiscardHandler), newStats(metrics.New()))
	if err != nil {
		t.Fatal(err)
	}
	if err := old.write(1, 20, encodeBatch(spoolBatch(1, 20))); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig("http://127.0.0.1:1")
	cfg.SpoolDir = dir
	o, err := NewOTLP(cfg, metrics.New(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer o.closeEndpoints(context.Background())
	for i := range cfg.BatchSize { // one sealed batch, after the file
		o.Export(testSpan(2, i))
	}
	o.spool.readFile = func(name string) ([]byte, error) {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EIO}
	}
	if w := o.next(false); w == nil || w.b == nil {
		t.Fatalf("with the spool file unreadable: %+v, want the memory batch", w)
	}
	o.spool.readFile, o.spool.unreadable.retryAt = os.ReadFile, time.Time{}
	if w := o.next(false); w == nil || w.file == nil || w.file.seq != 1 {
		t.Fatalf("once it reads: %+v, want spool file 1", w)
	}
	if files, _ := o.spool.stat(); files != 1 {
		t.Errorf("%d spool files, want the one still to send", files)
	}
}

// TestSpoolExpiryOutOfOrder: files are in seq order, not spooling order
// (the sender spools a batch it retried after the spiller spooled later
// ones): a young file before old ones does not shield them from expiry.
func TestSpoolExpiryOutOfOrder(t *testing.T) {
	dir := t.TempDir()
	st := newStats(metrics.New())
	sp, err := openSpool(dir, 1<<30, time.Hour, slog.New(slog.DiscardHandler), st)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 4; seq++ {
		if err := sp.write(seq, 10, encodeBatch(spoolBatch(byte(seq), 10))); err != nil {
			t.Fatal(err)
		}
	}
	// Seq 1 and 3 were spooled just now, 2 and 4 two hours ago.
	now := time.Now()
	sp.mu.Lock()
	for i := range sp.files {
		if sp.files[i].seq%2 == 0 {
			f := sp.files[i]
			sp.files[i].created = now.Add(-2 * time.Hour)
			if err := os.Rename(filepath.Join(dir, f.name()), filepath.Join(dir, sp.files[i].name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	sp.expireLocked(now)
	var kept []uint64
	for _, f := range sp.files {
		kept = append(kept, f.seq)
	}
	sp.mu.Unlock()
	if len(kept) != 2 || kept[0] != 1 || kept[1] != 3 {
		t.Errorf("kept seqs %v, want [1 3]", kept)
	}
	if d := st.Dropped(DropSpoolAge); d != 20 {
		t.Errorf("spool_age %d, want 20", d)
	}
	if left, _ := os.ReadDir(dir); len(left) != 2 {
		t.Errorf("%d files on disk, want 2", len(left))
	}
	if _, b := sp.stat(); b != 2*sp.files[0].size {
		t.Errorf("%d bytes in the index, want two files' %d", b, 2*sp.files[0].size)
	}
}
