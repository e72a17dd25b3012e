package export

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The spool keeps batches the collector could not take on disk, one file per
// batch, named <seq>-<unix ms spooled>-<spans>.otlp so that the order, age
// and span count are known from a directory listing alone. A file is
//
//	"WSP1" | uint32 length | ExportTraceServiceRequest (protobuf) | uint32 CRC-32C of it
//
// (big endian), written to a temporary name, fsync'd, renamed, and the
// directory fsync'd: a crash leaves either the whole file or none. A file is
// deleted only after the collector accepted it, so a span is sent twice only
// if the agent dies between that answer and the unlink.
type spool struct {
	dir      string
	maxBytes int64
	maxAge   time.Duration
	log      *slog.Logger
	st       *stats

	mu    sync.Mutex
	files []spoolFile // by seq, oldest first
	bytes int64
	busy  uint64 // seq of the file being sent; never evicted meanwhile

	// writing, if set (tests), runs in write between the reservation and
	// the file's write.
	writing func(seq uint64)

	// unreadable is the file whose last read failed other than by damage
	// (a descriptor limit, an I/O error: it may read later), how often in
	// a row, and when it is tried again. Only the oldest file is read, so
	// one is enough.
	unreadable struct {
		seq     uint64
		fails   int
		retryAt time.Time
	}
	readRetry time.Duration                // wait after the first such failure; doubles after each
	readFile  func(string) ([]byte, error) // os.ReadFile; tests fail it
}

// maxReadAttempts bounds the reads of a file that cannot be read: after
// that many in a row it is dropped (spool_error) as a damaged one is at
// once, so that a file that never reads cannot hold up the spool forever.
const maxReadAttempts = 5

// errReadLater marks a read that failed, or was not tried, but may succeed
// later: the file is kept, and the sender sends from memory meanwhile.
var errReadLater = errors.New("kept for a later attempt")

type spoolFile struct {
	seq     uint64
	created time.Time
	spans   int
	size    int64
}

const spoolMagic = "WSP1"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func (f spoolFile) name() string {
	return fmt.Sprintf("%020d-%d-%d.otlp", f.seq, f.created.UnixMilli(), f.spans)
}

func parseSpoolName(name string) (spoolFile, bool) {
	var f spoolFile
	var ms int64
	if !strings.HasSuffix(name, ".otlp") {
		return f, false
	}
	if _, err := fmt.Sscanf(strings.TrimSuffix(name, ".otlp"), "%d-%d-%d", &f.seq, &ms, &f.spans); err != nil {
		return f, false
	}
	f.created = time.UnixMilli(ms)
	return f, f.name() == name
}

// openSpool indexes what an earlier run left in dir (creating it), and
// removes half-written temporary files.
func openSpool(dir string, maxBytes int64, maxAge time.Duration, log *slog.Logger, st *stats) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating spool directory: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading spool directory: %w", err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes, maxAge: maxAge, log: log, st: st, readRetry: time.Second, readFile: os.ReadFile}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		f, ok := parseSpoolName(e.Name())
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		f.size = info.Size()
		s.files = append(s.files, f)
		s.bytes += f.size
	}
	// Two files of one seq: a crash in replace. The one with fewer spans
	// is the newer, what was left to send.
	slices.SortFunc(s.files, func(a, b spoolFile) int {
		if c := compareSeq(a.seq, b.seq); c != 0 {
			return c
		}
		return a.spans - b.spans
	})
	kept := s.files[:0]
	for _, f := range s.files {
		if k := len(kept); k > 0 && kept[k-1].seq == f.seq {
			os.Remove(filepath.Join(dir, f.name()))
			s.bytes -= f.size
			continue
		}
		kept = append(kept, f)
	}
	s.files = kept
	if len(s.files) > 0 {
		log.Info("spool holds batches from an earlier run", "files", len(s.files), "bytes", s.bytes)
	}
	return s, nil
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// nextSeq is the first sequence number after those on disk.
func (s *spool) nextSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.files) == 0 {
		return 1
	}
	return s.files[len(s.files)-1].seq + 1
}

// stat returns the files and bytes held.
func (s *spool) stat() (files int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files), s.bytes
}

// write stores a batch of n spans, evicting the oldest files to stay under
// maxBytes. (n is passed: encodeBatch's messages hold their spans as
// encoded bytes, which countSpans does not see.) The file is written and
// synced outside the lock, its bytes reserved meanwhile: the sender and
// the spiller both write, and each one's fsyncs (milliseconds, seconds on
// a loaded disk) held the other up, and with it the queue's room.
func (s *spool) write(seq uint64, n int, rss []*tracepb.ResourceSpans) error {
	data, err := encodeSpoolFile(rss)
	if err != nil {
		s.st.dropped(DropSpoolError, n)
		return err
	}
	f := spoolFile{seq: seq, created: time.Now(), spans: n, size: int64(len(data))}

	s.mu.Lock()
	s.expireLocked(time.Now())
	if s.maxBytes > 0 && f.size > s.maxBytes {
		s.mu.Unlock()
		s.st.dropped(DropSpoolFull, n)
		return fmt.Errorf("batch of %d bytes exceeds the spool bound of %d", len(data), s.maxBytes)
	}
	for i := 0; s.maxBytes > 0 && s.bytes+f.size > s.maxBytes && i < len(s.files); {
		if s.files[i].seq == s.busy {
			i++
			continue
		}
		s.removeLocked(i, DropSpoolFull)
	}
	s.bytes += f.size // reserved: not in files yet, so nothing evicts it
	s.mu.Unlock()
	if s.writing != nil {
		s.writing(seq)
	}

	err = s.writeFile(f.name(), data)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.bytes -= f.size
		s.st.dropped(DropSpoolError, n)
		return err
	}
	i, _ := slices.BinarySearchFunc(s.files, seq, func(f spoolFile, seq uint64) int { return compareSeq(f.seq, seq) })
	s.files = slices.Insert(s.files, i, f)
	s.st.spooled.Add(uint64(n))
	return nil
}

func encodeSpoolFile(rss []*tracepb.ResourceSpans) ([]byte, error) {
	body, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rss})
	if err != nil {
		return nil, fmt.Errorf("encoding spooled batch: %w", err)
	}
	data := make([]byte, 0, len(body)+12)
	data = append(data, spoolMagic...)
	data = binary.BigEndian.AppendUint32(data, uint32(len(body)))
	data = append(data, body...)
	data = binary.BigEndian.AppendUint32(data, crc32.Checksum(body, crcTable))
	return data, nil
}

// replace ends the use of f from oldest by storing rss (n spans) in its
// place, under its seq and age: what is left of a file whose first part
// was delivered (splitRequest). The new file is written before the old one
// goes; a crash between the two leaves both, and openSpool keeps the one
// with fewer spans. If the new file cannot be written, the rest is
// dropped (counted): the old one would send its first part again forever.
func (s *spool) replace(f spoolFile, n int, rss []*tracepb.ResourceSpans) error {
	// Written outside the lock (a rest may be large): f is busy, so neither
	// eviction nor expiry takes it meanwhile.
	nf := spoolFile{seq: f.seq, created: f.created, spans: n}
	data, err := encodeSpoolFile(rss)
	if err == nil {
		nf.size = int64(len(data))
		err = s.writeFile(nf.name(), data)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy == f.seq {
		s.busy = 0
	}
	i, found := slices.BinarySearchFunc(s.files, f.seq, func(f spoolFile, seq uint64) int { return compareSeq(f.seq, seq) })
	if !found {
		// Not ours any more: the rest just written must go too, or the next
		// start would find it and send it again.
		if err == nil && nf.name() != f.name() {
			if err := os.Remove(filepath.Join(s.dir, nf.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("removing spool file", "file", nf.name(), "err", err)
			}
		}
		return nil
	}
	if err != nil {
		s.removeLocked(i, "") // its first part was delivered
		s.st.dropped(DropSpoolError, n)
		return fmt.Errorf("rewriting spool file %s: %w", f.name(), err)
	}
	old := s.files[i]
	if old.name() != nf.name() {
		if err := os.Remove(filepath.Join(s.dir, old.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("removing spool file", "file", old.name(), "err", err)
		}
	}
	s.bytes += nf.size - old.size
	s.files[i] = nf
	return nil
}

func (s *spool) writeFile(name string, data []byte) error {
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("spooling: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("spooling: %w", err)
	}
	if d, err := os.Open(s.dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// removeLocked deletes the i'th file, counting its spans as dropped for
// reason unless reason is empty (delivered).
func (s *spool) removeLocked(i int, reason string) {
	s.unlinkLocked(s.files[i], reason)
	s.files = slices.Delete(s.files, i, i+1)
}

// unlinkLocked deletes f's file and its bytes, counting its spans as
// dropped for reason unless reason is empty; the caller takes it out of
// files.
func (s *spool) unlinkLocked(f spoolFile, reason string) {
	if err := os.Remove(filepath.Join(s.dir, f.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("removing spool file", "file", f.name(), "err", err)
	}
	s.bytes -= f.size
	if reason != "" {
		s.st.dropped(reason, f.spans)
		s.log.Warn("spooled spans dropped", "reason", reason, "spans", f.spans, "spooled_at", f.created)
	}
}

// expireLocked drops files older than maxAge, all of them: files are in
// seq order, not in the order they were spooled (the sender spools a
// batch it retried after the spiller spooled later ones, and a rest keeps
// its file's age), so a young file may come before old ones. They are few
// (bounded by maxBytes), and the scan is one pass.
func (s *spool) expireLocked(now time.Time) {
	if s.maxAge <= 0 {
		return
	}
	s.files = slices.DeleteFunc(s.files, func(f spoolFile) bool {
		if f.seq == s.busy || now.Sub(f.created) <= s.maxAge {
			return false
		}
		s.unlinkLocked(f, DropSpoolAge)
		return true
	})
}

// oldest returns the oldest file and marks it busy until done; ok is false
// when the spool is empty.
func (s *spool) oldest() (f spoolFile, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(time.Now())
	if len(s.files) == 0 {
		return f, false
	}
	s.busy = s.files[0].seq
	return s.files[0], true
}

// read loads a file. A damaged or vanished one is dropped (counted) and an
// error returned. One that could not be read otherwise (EMFILE, EIO, ...:
// the condition may pass) is kept and an error wrapping errReadLater
// returned, and until a backoff has passed it is not tried again (the same
// error); after maxReadAttempts such failures in a row it is dropped too.
func (s *spool) read(f spoolFile) ([]*tracepb.ResourceSpans, error) {
	if s.deferred(f, time.Now()) {
		s.done(f, keep)
		return nil, fmt.Errorf("spool file %s unreadable a moment ago: %w", f.name(), errReadLater)
	}
	data, err := s.readFile(filepath.Join(s.dir, f.name()))
	if err == nil {
		var rss []*tracepb.ResourceSpans
		if rss, err = decodeSpoolFile(data); err == nil {
			s.readOK(f)
			return rss, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		if n, kept := s.readFailed(f, time.Now()); kept {
			s.log.Warn("reading a spool file failed; kept for a later attempt", "file", f.name(),
				"attempt", n, "of", maxReadAttempts, "err", err)
			s.done(f, keep)
			return nil, fmt.Errorf("reading spool file %s: %w (%w)", f.name(), err, errReadLater)
		}
	}
	s.readOK(f) // settled: dropped below
	s.done(f, DropSpoolError)
	return nil, fmt.Errorf("reading spool file %s: %w", f.name(), err)
}

// deferred says whether f failed to read and its backoff has not passed.
func (s *spool) deferred(f spoolFile, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unreadable.seq == f.seq && s.unreadable.fails > 0 && now.Before(s.unreadable.retryAt)
}

// readFailed counts a failed read of f; kept is false once f has failed
// maxReadAttempts times in a row (the caller drops it).
func (s *spool) readFailed(f spoolFile, now time.Time) (n int, kept bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.spoolReadErrors.Add(1)
	u := &s.unreadable
	if u.seq != f.seq {
		u.seq, u.fails = f.seq, 0
	}
	u.fails++
	if u.fails >= maxReadAttempts {
		return u.fails, false
	}
	u.retryAt = now.Add(s.readRetry << (u.fails - 1))
	return u.fails, true
}

// readOK ends the count of f's failed reads: each read starts afresh (a
// spool file is read again for each upload while the collector is down).
func (s *spool) readOK(f spoolFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unreadable.seq == f.seq {
		s.unreadable.seq, s.unreadable.fails = 0, 0
	}
}

func decodeSpoolFile(data []byte) ([]*tracepb.ResourceSpans, error) {
	if len(data) < 12 || string(data[:4]) != spoolMagic {
		return nil, errors.New("not a spool file")
	}
	n := binary.BigEndian.Uint32(data[4:8])
	if uint64(len(data)) != uint64(n)+12 {
		return nil, fmt.Errorf("length %d does not match the file's %d bytes", n, len(data))
	}
	body := data[8 : 8+n]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(data[8+n:]) {
		return nil, errors.New("checksum mismatch")
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	return req.ResourceSpans, nil
}

// done ends the use of f from oldest: "" deletes it as delivered, keep
// leaves it for a later attempt, any other reason deletes it as dropped.
func (s *spool) done(f spoolFile, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy == f.seq {
		s.busy = 0
	}
	if reason == keep {
		return
	}
	if i, found := slices.BinarySearchFunc(s.files, f.seq, func(f spoolFile, seq uint64) int { return compareSeq(f.seq, seq) }); found {
		s.removeLocked(i, reason)
	}
}

const keep = "keep"
