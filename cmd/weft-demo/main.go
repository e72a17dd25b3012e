// Command weft-demo is `make demo`: three clusters on this machine
// (network namespaces, each with its own weft agent and spoke collector),
// a hub collector that tail-samples, and eight unmodified services that a
// request crosses from us-east-1 to us-west-2 to eu-west-1 over HTTP and
// gRPC. It sends traffic, then prints one trace as the hub stored it: a
// tree and waterfall with each span's cluster and the cross-cluster edges.
//
//	weft-demo -agent bin/weft-agent -collector "$(scripts/otelcol.sh hub)"
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/weft-dev/weft/internal/otlpjson"
	"github.com/weft-dev/weft/test/multicluster/lab"
)

func main() {
	agent := flag.String("agent", "bin/weft-agent", "the weft-agent binary")
	collector := flag.String("collector", "", "the spoke/hub collector (scripts/otelcol.sh hub)")
	requests := flag.Int("n", 20, "requests to send")
	keep := flag.Bool("keep", false, "keep the lab running until interrupted")
	remainder := flag.Int("remainder", 10, "percent of ordinary traces (no error, not slow, not cross-cluster) the hub keeps")
	flag.Parse()
	if err := run(*agent, *collector, *requests, *remainder, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "weft-demo:", err)
		os.Exit(1)
	}
}

func run(agent, collector string, n, remainder int, keep bool) error {
	if collector == "" {
		return fmt.Errorf("-collector is required (scripts/otelcol.sh hub prints it)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "weft-demo-")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if ok {
			os.RemoveAll(work)
		} else {
			fmt.Fprintln(os.Stderr, "weft-demo: logs kept in", work)
		}
	}()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	fmt.Println("== starting three clusters: network namespaces, agents, spoke collectors, a hub")
	lb, err := lab.Start(ctx, lab.Options{Root: root, Work: work, AgentBin: agent, Collector: collector, Log: log,
		AgentEnv: []string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.5"},
		HubEnv:   []string{"HUB_DECISION_WAIT=2s", fmt.Sprintf("HUB_SAMPLING_PERCENTAGE=%d", remainder)}})
	if err != nil {
		return err
	}
	defer lb.Stop()
	for _, c := range lb.Clusters {
		var names []string
		for _, s := range c.Services {
			names = append(names, s.Name)
		}
		fmt.Printf("   %-22s %-10s %s  %s\n", c.Name, "weft-"+c.Short, c.IP, strings.Join(names, ", "))
	}

	fmt.Printf("== sending %d requests into api-gateway (head sampling: parentbased_traceidratio 0.5)\n", n)
	route := lab.Route(lb.Clusters)
	fmt.Println("   route:", route)
	for i := range n {
		if err := lb.Send(ctx, fmt.Sprintf("demo-%d", i), route, nil); err != nil {
			return err
		}
	}
	fmt.Println("== waiting for the hub's tail-sampling decisions")
	// The hub decides a trace HUB_DECISION_WAIT after its first span; wait
	// until what it keeps stops growing.
	var traces map[string][]otlpjson.Span
	last, stable := -1, 0
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && stable < 4; {
		time.Sleep(time.Second)
		spans, err := lb.HubSpans()
		if err != nil {
			return err
		}
		traces = lab.ByTrace(spans)
		if len(spans) == last && len(spans) > 0 {
			stable++
		} else {
			stable = 0
		}
		last = len(spans)
	}
	ids := make([]string, 0, len(traces))
	for id := range traces {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		return len(traces[ids[i]]) > len(traces[ids[j]]) || len(traces[ids[i]]) == len(traces[ids[j]]) && ids[i] < ids[j]
	})
	fmt.Printf("   the hub kept %d traces of %d requests (the rest were not head-sampled)\n", len(traces), n)
	if len(ids) == 0 {
		return fmt.Errorf("the hub kept no trace; logs: %s", strings.Join(lb.Logs(), " "))
	}
	fmt.Println()
	fmt.Print(lab.Tree(traces[ids[0]]))
	if keep {
		fmt.Println("\n== running; interrupt to stop")
		<-ctx.Done()
	}
	ok = true
	return nil
}
