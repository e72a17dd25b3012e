package export

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/metrics"
)

// The "agent" TestAgentKilled kills is this test binary run again with
// these variables set: it exports childSpans to an unreachable collector,
// says "ready" once the spool holds them, and waits to be killed.
const (
	childEnvEndpoint = "WEFT_EXPORT_CHILD_ENDPOINT"
	childEnvDir      = "WEFT_EXPORT_CHILD_SPOOL"
	childSpans       = 1000
)

func TestChildAgent(t *testing.T) {
	endpoint, dir := os.Getenv(childEnvEndpoint), os.Getenv(childEnvDir)
	if endpoint == "" {
		t.Skip("only run as TestAgentKilled's child")
	}
	cfg := fastConfig(endpoint)
	cfg.QueueSize, cfg.BatchSize, cfg.SpoolAfter, cfg.SpoolDir = 200, 50, 1, dir
	reg := metrics.New()
	o, err := NewOTLP(cfg, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	o.Start()
	for i := range childSpans {
		// Back-pressure, as a steady producer would meet it: on a loaded
		// machine the spiller's fsyncs are slow, and spans past a full
		// queue would be dropped, never reaching the spool this test reads.
		for o.q.size() >= cfg.QueueSize*7/8 { // past 3/4 the spiller runs
			time.Sleep(5 * time.Millisecond)
		}
		o.Export(testSpan(1, i))
	}
	// Ready once most spans are on disk and the spiller has caught up (on a
	// busy machine some may have met a full queue: those are counted, and
	// the parent only checks what the spool holds). Caught up means below
	// the mark that wakes the spiller, not below the half it spills down
	// to: pushes after its last run may leave up to 3/4 in memory, and
	// with the collector down the sender retries the older spool files,
	// so nothing else would ever take them out.
	for reg.Value(spansMetric, "outcome", "spooled") < childSpans/2 || o.q.size() > cfg.QueueSize*3/4 {
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("ready %d\n", reg.Value(spansMetric, "outcome", "spooled"))
	time.Sleep(time.Minute) // killed long before
	o.Shutdown(context.Background())
}

func startChildAgent(t *testing.T, endpoint, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildAgent$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnvEndpoint+"="+endpoint, childEnvDir+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready") {
				ready <- sc.Text()
			}
		}
		close(ready)
	}()
	select {
	case line, ok := <-ready:
		if !ok {
			t.Fatal("child agent exited before spooling")
		}
		t.Logf("child agent: %s", line)
	case <-time.After(90 * time.Second):
		t.Fatal("child agent not ready after 90 s")
	}
	return cmd
}
