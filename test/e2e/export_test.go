package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestExportThroughOutage: the agent traces a server while its collector
// is stopped for 60 s and restarted on the same port. Every request's span arrives
// exactly once (compared by request id), from the memory queue and the
// disk spool, and the agent's /metrics say what the collector received.
func TestExportThroughOutage(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	bin := goBuild(t, filepath.Join(repoRoot(t), "testdata/httpserver"), "", filepath.Join(t.TempDir(), "weft-e2e-outage"))
	srv := startServer(t, "outage", bin)
	// A small queue, so the outage overflows it into the spool.
	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint, "WEFT_QUEUE_SIZE=200",
		"WEFT_SPOOL_DIR=" + t.TempDir()}, "-pid", fmt.Sprint(srv.PID()))
	ag.waitTracked(t, srv.PID())

	// Steady traffic from before the outage to after it.
	const outage = 60 * time.Second
	stop := make(chan struct{})
	sent := make(chan int)
	go func() {
		i := 0
		defer func() { sent <- i }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := http.Get(fmt.Sprintf("http://%s/hello?id=out-%d", srv.Addr, i))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			resp.Body.Close()
			i++
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(2 * time.Second)
	col.Stop(t)
	time.Sleep(outage)
	col.Restart(t)
	time.Sleep(2 * time.Second)
	close(stop)
	n := <-sent

	got := waitSpansSoft(t, col, n, 90*time.Second, func(s otelcol.Span) bool { return s.Kind == 2 })
	if len(got) != n {
		t.Logf("agent export metrics:\n%s", grepLines(scrape(t, ag), "weft_export"))
	}
	seen := map[string]int{}
	for _, s := range got {
		q, _ := s.Attrs["url.query"].(string)
		seen[q]++
	}
	missing, dup := 0, 0
	for i := range n {
		switch seen[fmt.Sprintf("id=out-%d", i)] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if missing != 0 || dup != 0 {
		t.Errorf("%d of %d spans missing, %d duplicated", missing, n, dup)
	}
	exported := ag.metric(t, `weft_export_spans_total{outcome="exported"}`)
	spooled := ag.metric(t, `weft_export_spans_total{outcome="spooled"}`)
	t.Logf("collector got %d server spans; agent: exported %v, spooled %v", len(got), exported, spooled)
	if int(exported) != len(got) {
		t.Errorf("agent says %v spans exported, the collector has %d", exported, len(got))
	}
	if spooled == 0 {
		t.Errorf("no span went through the spool: the outage did not overflow the queue")
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
