package sockio

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/listener"
	"github.com/weft-dev/weft/internal/testutil/spanrec"
)

// TestReadBeforeItsWrite: a traced Go server's client calls, whose
// sends the kernel is made to record late (kernel.StallSends holds each for
// milliseconds after its bytes have gone), so that the answer's read is
// recorded first (net/http reads on another goroutine than it writes).
// The table puts each read back after its write: every call is a client
// span with its own answer, none is lost and none takes the next one's.
func TestReadBeforeItsWrite(t *testing.T) {
	kernel.Require(t)
	bin := filepath.Join(t.TempDir(), "httpserver")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../../../testdata/httpserver"
	build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test server: %v\n%s", err, out)
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "answer "+r.URL.Query().Get("id"))
	}))
	defer upstream.Close()
	eachSource(t, func(t *testing.T, capture string) {
		srv := listener.Start(t, bin, "-addr", "127.0.0.1:0")
		pid := srv.Cmd.Process.Pid
		kernel.StallSends(t, 1<<22, pid) // before the probe's programs: it runs first
		rec, met := spanrec.New(), metrics.New()
		p := newProbe(rec, met, capture)
		if err := p.Start(context.Background()); err != nil {
			t.Fatalf("starting sockio: %v", err)
		}
		defer p.Shutdown(context.Background())
		if err := p.Track(&probes.Process{PID: pid}); err != nil {
			t.Fatal(err)
		}
		const n = 6
		for i := range n {
			resp, err := http.Get(fmt.Sprintf("http://%s/call?to=%s/?id=%d", srv.Addr, upstream.URL, i))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "200" {
				t.Fatalf("call %d: %q", i, b)
			}
		}
		got := rec.WaitExactly(t, 2*n, 20*time.Second)
		calls := 0
		for _, s := range got {
			full, _ := attr(s, "url.full").(string)
			if !strings.HasPrefix(full, upstream.URL) {
				continue
			}
			calls++
			if st := attr(s, "http.response.status_code"); st != int64(200) {
				t.Errorf("%s: status %v", full, st)
			}
			if s.End.Before(s.Start) {
				t.Errorf("%s: ends %v before it starts", full, s.Start.Sub(s.End))
			}
		}
		if calls != n {
			t.Errorf("%d client spans, want %d", calls, n)
		}
		// The stall made the race: some reads waited for their write.
		if held := met.Value("weft_conntrack_reads_held_total", "outcome", "after_write"); held == 0 {
			t.Errorf("no read was held for its write: the stall did not make the race")
		}
		for _, o := range []string{"before_write", "late", "full"} {
			if v := met.Value("weft_conntrack_reads_held_total", "outcome", o); v != 0 {
				t.Errorf("%d reads held fed %s", v, o)
			}
		}
	})
}
