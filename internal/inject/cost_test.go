package inject

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// TestSkMsgCost measures the sk_msg program with bpf_stats (the same
// counters as sysctl kernel.bpf_stats_enabled=1): ns per run when a header
// is inserted, and when a message passes without an entry. Requests go
// one per sendmsg over one keep-alive connection. WEFT_INJECT_COST_N sets
// the number of requests per case (default 3000). Other load on the
// machine inflates single runs: batches of 250 give a median and a best
// batch besides the mean.
func TestSkMsgCost(t *testing.T) {
	inj := startInjector(t, HookAuto)
	addr := startServer(t)
	trackSelf(t, inj)
	n := costRuns(t)
	c := dial(t, addr)
	small := head("GET", "/cost", "User-Agent: weft-test/1.0\r\n", "Accept: */*\r\n")
	post := cat(head("POST", "/cost", "Content-Type: application/json\r\n", withLen(1024)), make([]byte, 1024))
	cases := []struct {
		name   string
		req    []byte
		ctx    bool
		reason string
	}{
		{"inject GET", small, true, "injected"},
		{"inject POST 1 KiB", post, true, "injected"},
		{"inject 3.9 KiB head", head("GET", "/cost", "X-Long: "+strings.Repeat("z", 3900)+"\r\n"), true, "injected"},
		{"no entry GET", small, false, "no_ctx"},
	}
	const batch = 250
	for _, tc := range cases {
		before := inj.Counters()
		var per []float64 // ns per run of each batch
		var runs uint64
		var total time.Duration
		for done := 0; done < n; done += batch {
			s0, err := inj.objs.InjectMsg.Stats()
			if err != nil {
				t.Fatal(err)
			}
			for range min(batch, n-done) {
				clearCtx(inj, c.cookie)
				if tc.ctx {
					setCtx(t, inj, c.cookie, newIDs())
				}
				c.roundTrip(t, tc.req)
			}
			s1, _ := inj.objs.InjectMsg.Stats()
			runs += s1.RunCount - s0.RunCount
			total += s1.Runtime - s0.Runtime
			per = append(per, float64((s1.Runtime-s0.Runtime).Nanoseconds())/float64(s1.RunCount-s0.RunCount))
		}
		if got := inj.Counters()[tc.reason] - before[tc.reason]; got != uint64(n) || runs != uint64(n) {
			t.Errorf("%s: %d runs, %s +%d, want %d", tc.name, runs, tc.reason, got, n)
		}
		slices.Sort(per)
		t.Logf("%-20s %5d runs  mean %5.0f  median %5.0f  best batch %5.0f ns/run", tc.name, runs,
			float64(total.Nanoseconds())/float64(runs), per[len(per)/2], per[0])
	}
}

// TestSkMsgCostH2 measures the sk_msg program on an HTTP/2 client
// connection, one request HEADERS frame per sendmsg (as grpc-go's loopy
// writer and net/http flush them): every block is walked (the HPACK table
// is followed from the preface), then a field is added, or a forwarded
// traceparent rewritten (a Huffman literal, then the same value by index),
// or nothing done for a stream without IDs. WEFT_INJECT_COST_N as above.
func TestSkMsgCostH2(t *testing.T) {
	inj := startH2Injector(t, HookAuto)
	n := costRuns(t)
	caller := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	cases := []struct {
		name   string
		frame  func(b *h2Builder, sid uint32, s injectH2Span) h2Frame
		span   func() injectH2Span // nil: no IDs
		reason string
	}{
		{"h2 add field", func(b *h2Builder, sid uint32, _ injectH2Span) h2Frame { return b.headers(sid, true) },
			func() injectH2Span { return newSpan(ctxSampled) }, "h2_injected"},
		// A new caller value every other request: a literal, then the
		// same by index.
		{"h2 forward rewrite", func(b *h2Builder, sid uint32, s injectH2Span) h2Frame { return b.forwarded(sid, caller, s) }, func() injectH2Span { return forwardedSpan(caller, ctxSampled|h2AppHeader) }, "forward_rewritten"},
		{"h2 no IDs", func(b *h2Builder, sid uint32, _ injectH2Span) h2Frame { return b.headers(sid, false) },
			nil, "h2_no_ctx"},
	}
	for _, tc := range cases {
		addr, got := startRecorder(t)
		h := dialH2(t, inj, addr)
		h.write(t, []byte(h2Preface))
		b := newH2Builder()
		tgid := uint32(os.Getpid())
		before := inj.Counters()
		var runs uint64
		var total time.Duration
		for i := range n {
			sid := uint32(2*i + 1)
			if sid%4 == 1 && tc.reason == "forward_rewritten" {
				caller = randomCaller()
			}
			var s injectH2Span
			if tc.span != nil {
				s = tc.span()
				k := injectH2Key{Tgid: tgid, StreamId: sid, Goid: h.goid}
				if err := inj.ids.Put(&k, &s); err != nil {
					t.Fatal(err)
				}
			}
			f := tc.frame(b, sid, s).wire()
			s0, _ := inj.objs.InjectMsg.Stats()
			h.write(t, f)
			s1, _ := inj.objs.InjectMsg.Stats()
			runs += s1.RunCount - s0.RunCount
			total += s1.Runtime - s0.Runtime
			if tc.span != nil {
				k := injectH2Key{Tgid: tgid, StreamId: sid, Goid: h.goid}
				inj.ids.Delete(&k)
			}
		}
		h.finish()
		<-got
		if d := inj.Counters()[tc.reason] - before[tc.reason]; d != uint64(n) || runs != uint64(n) {
			t.Errorf("%s: %d runs, %s +%d, want %d", tc.name, runs, tc.reason, d, n)
		}
		t.Logf("%-20s %5d runs  mean %5.0f ns/run", tc.name, runs, float64(total.Nanoseconds())/float64(runs))
	}
}

func randomCaller() string {
	b := make([]byte, 24)
	rand.Read(b)
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}

// costRuns turns bpf_stats on for the test and returns the requests per
// case: WEFT_INJECT_COST_N, else 3000.
func costRuns(t *testing.T) int {
	t.Helper()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatalf("enabling bpf_stats: %v", err)
	}
	t.Cleanup(func() { stats.Close() })
	if v, err := strconv.Atoi(os.Getenv("WEFT_INJECT_COST_N")); err == nil && v > 0 {
		return v
	}
	return 3000
}
