//go:build e2e

// Package multicluster_test runs the three-cluster lab (network namespaces
// joined by veth pairs, one weft agent and one collector per cluster) once
// per federation shape of deploy/collector: hub-and-spoke, peer-to-peer,
// hybrid, and the hub as two replicas behind its gateway; and checks what
// is stored where. `make e2e` runs it; the build tag keeps it out of `go
// test ./...`, which runs packages in parallel: the lab owns fixed
// namespace names and addresses.
package multicluster_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/otlpjson"
	"github.com/weft-dev/weft/internal/sampling"
	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/promtool"
	"github.com/weft-dev/weft/test/multicluster/lab"
)

const ratio = 0.5

func startLab(t *testing.T) *lab.Lab {
	t.Helper()
	return startShape(t, lab.HubAndSpoke, []string{"HUB_DECISION_WAIT=3s", "HUB_SAMPLING_PERCENTAGE=50",
		"HUB_SLOW_THRESHOLD_MS=1000", "HUB_FILE_FLUSH_INTERVAL=200ms"}, nil)
}

// startShape starts the lab in shape with hubEnv for the hub (or each hub
// replica) and clusterEnv for the clusters' collectors and the gateway.
func startShape(t *testing.T, shape lab.Shape, hubEnv, clusterEnv []string) *lab.Lab {
	t.Helper()
	kernel.Require(t) // network namespaces, and agents that load BPF
	started := time.Now()
	wd, _ := os.Getwd()
	root := filepath.Join(wd, "..", "..")
	work := t.TempDir()
	agent := filepath.Join(work, "weft-agent")
	build := exec.Command("go", "build", "-o", agent, "./cmd/agent")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the agent: %v\n%s", err, out)
	}
	hub := exec.Command(filepath.Join(root, "scripts/otelcol.sh"), "hub")
	hub.Stderr = os.Stderr
	col, err := hub.Output()
	if err != nil {
		t.Fatalf("building the spoke/hub collector: %v", err)
	}
	lb, err := lab.Start(context.Background(), lab.Options{
		Root: root, Work: work, AgentBin: agent, Collector: strings.TrimSpace(string(col)),
		Log:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Shape:    shape,
		AgentEnv: []string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", fmt.Sprintf("OTEL_TRACES_SAMPLER_ARG=%v", ratio)},
		HubEnv:   hubEnv, ClusterEnv: clusterEnv,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s lab up in %v (stores: %v)", shape, time.Since(started).Round(100*time.Millisecond), lb.Stores())
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range lb.Clusters {
				t.Logf("== %s agent counters that are not zero:\n%s", c.Name, nonZero(t, lb.AgentStatus(c.Name)))
			}
			for _, l := range lb.Logs() {
				if b, err := os.ReadFile(l); err == nil {
					t.Logf("== %s (last 15 lines)\n%s", filepath.Base(l), tail(string(b), 15))
				}
			}
		}
		if err := lb.Stop(); err != nil {
			t.Errorf("stopping the lab: %v", err)
		}
		if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), "weft-") {
			t.Errorf("namespaces left behind: %s", out)
		}
	})
	return lb
}

// TestThreeClusters: 200 requests through api-gateway → auth → user
// (us-east-1) → order → inventory → shipping (us-west-2) → payment →
// billing (eu-west-1). Head sampling (parentbased_traceidratio 0.5) is
// decided once, at the entry, and followed everywhere: the hub holds one
// complete 15-span trace for exactly the requests whose trace ID the ratio
// keeps, none for the others. Every span has its cluster's identity;
// exactly the two cluster crossings carry cross_cluster.*, on both sides;
// the entry is marked as coming from outside any cluster.
func TestThreeClusters(t *testing.T) {
	lb := startLab(t)
	route := lab.Route(lb.Clusters)
	const n = 200
	send(t, lb, n, "x", route, nil)
	traces := waitStable(t, lb)

	byRequest := map[string][]otlpjson.Span{}
	for _, spans := range traces {
		id := ""
		for _, s := range spans {
			if s.Resource["service.name"] == "api-gateway" && s.Kind == 2 {
				id = queryID(s)
			}
		}
		if id == "" {
			t.Errorf("trace %s at the hub has no entry span (%d spans): a cluster decided alone", spans[0].TraceID, len(spans))
			continue
		}
		byRequest[id] = spans
	}
	s := sampler(t)
	kept := 0
	for i := range n {
		spans, ok := byRequest[fmt.Sprintf("x-%d", i)]
		if !ok {
			continue
		}
		kept++
		checkTrace(t, lb, spans, "")
		var tid [16]byte
		hex.Decode(tid[:], []byte(spans[0].TraceID))
		if !s.Sampled(tid, sampling.Root) {
			t.Errorf("request x-%d: trace %s kept, but the ratio rule drops it", i, spans[0].TraceID)
		}
	}
	t.Logf("hub kept %d of %d requests at head-sampling ratio %v", kept, n, ratio)
	logCost(t, lb)
	if kept < n*3/10 || kept > n*7/10 {
		t.Errorf("hub kept %d of %d requests, want about %v", kept, n, ratio*n)
	}
	// Every agent's /metrics, as Prometheus's own parser and linter
	// (promtool check metrics) read it: no problem, and the cross-cluster
	// latency a histogram family, as the design's CrossClusterLatencyHigh
	// needs.
	for _, c := range lb.Clusters {
		text := fetch(t, "http://"+lb.AgentStatus(c.Name)+"/metrics")
		out, err := promtool.Run(t, []byte(text), "check", "metrics", "--extended")
		if err != nil {
			t.Errorf("%s: promtool check metrics on the agent's /metrics: %v\n%s", c.Name, err, out)
		}
		if c.Name != lb.Clusters[len(lb.Clusters)-1].Name && !regexp.MustCompile(`(?m)^cross_cluster_request_duration_seconds +\d+ `).MatchString(out) {
			t.Errorf("%s: promtool does not see cross_cluster_request_duration_seconds as one histogram family:\n%s", c.Name, out)
		}
	}
	// Every agent counted all its spans, sampled or not.
	for _, c := range lb.Clusters {
		got := metric(t, lb.AgentStatus(c.Name), fmt.Sprintf(`spans_total{cluster=%q}`, c.Name))
		want := float64(n * 2 * len(c.Services)) // a server and a client span per service
		if c.Name == lb.Clusters[len(lb.Clusters)-1].Name {
			want -= n // the last service calls nobody
		}
		if got < want {
			t.Errorf("%s counted %v spans, want at least %v (unsampled ones too)", c.Name, got, want)
		}
	}
}

// checkTrace: 15 spans, each in its service's cluster with the cluster's
// identity, parents chained (the entry's may be remoteParent, the caller's
// span outside the clusters), cross-cluster marks exactly on the crossings.
func checkTrace(t *testing.T, lb *lab.Lab, spans []otlpjson.Span, remoteParent string) {
	t.Helper()
	if len(spans) != 15 {
		t.Errorf("trace %s: %d spans, want 15\n%s", spans[0].TraceID, len(spans), lab.Tree(spans))
		return
	}
	ids := map[string]otlpjson.Span{}
	for _, s := range spans {
		ids[s.SpanID] = s
	}
	marked := 0
	for _, s := range spans {
		svc, _ := s.Resource["service.name"].(string)
		c := lab.ClusterOf(lb.Clusters, svc)
		if c == nil {
			t.Errorf("span %s: unknown service %q", s.SpanID, svc)
			continue
		}
		for k, v := range map[string]string{"k8s.cluster.name": c.Name, "cloud.region": c.Region,
			"cloud.provider": c.Provider, "deployment.environment.name": c.Env} {
			if s.Resource[k] != v {
				t.Errorf("%s %d span: %s = %v, want %q", svc, s.Kind, k, s.Resource[k], v)
			}
		}
		if s.ParentSpanID != "" && s.ParentSpanID != remoteParent {
			if _, ok := ids[s.ParentSpanID]; !ok {
				t.Errorf("%s span %s: parent %s not in the trace", svc, s.SpanID, s.ParentSpanID)
			}
		}
		src, _ := s.Attrs["cross_cluster.source"].(string)
		dst, _ := s.Attrs["cross_cluster.target"].(string)
		want := [2]string{}
		switch {
		case svc == "api-gateway" && s.Kind == 2:
			want = [2]string{"external", c.Name}
		case svc == "user" && s.Kind == 3, svc == "order" && s.Kind == 2:
			want = [2]string{lb.Clusters[0].Name, lb.Clusters[1].Name}
		case svc == "shipping" && s.Kind == 3, svc == "payment" && s.Kind == 2:
			want = [2]string{lb.Clusters[1].Name, lb.Clusters[2].Name}
		}
		if [2]string{src, dst} != want {
			t.Errorf("%s kind %d: cross_cluster %q → %q, want %q → %q", svc, s.Kind, src, dst, want[0], want[1])
		}
		if src != "" {
			marked++
		}
	}
	if marked != 5 {
		t.Errorf("trace %s: %d spans marked cross-cluster, want 5", spans[0].TraceID, marked)
	}
}

// TestTailSamplingAndPartition: requests that stay in us-east-1 and come
// in sampled: the hub keeps every error and every slow one and about half
// of the rest. Then us-west-2 is cut from the hub for 60 s under traffic:
// when it heals, its spool drains and every trace is complete, once.
func TestTailSamplingAndPartition(t *testing.T) {
	lb := startLab(t)
	local := lab.LocalRoute(lb.Clusters)
	sampled := func(i int, kind string) http.Header {
		return http.Header{"Traceparent": {fmt.Sprintf("00-%032x-%016x-01", hash(kind, i), i+1)}}
	}
	const n = 40
	var wg sync.WaitGroup
	for _, k := range []struct{ kind, route string }{
		{"ok", local}, {"err", local + " fail"}, {"slow", local + " sleep=1100ms"},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				err := lb.Send(context.Background(), fmt.Sprintf("%s-%d", k.kind, i), k.route, sampled(i, k.kind))
				if (err != nil) != (k.kind == "err") {
					t.Errorf("%s-%d: %v", k.kind, i, err)
				}
			}
		}()
	}
	wg.Wait()
	traces := waitStable(t, lb)
	count := map[string]int{}
	for _, spans := range traces {
		for _, s := range spans {
			if s.Resource["service.name"] == "api-gateway" && s.Kind == 2 {
				count[strings.Split(queryID(s), "-")[0]]++
			}
		}
	}
	t.Logf("hub kept: %v of %d each", count, n)
	if count["err"] != n || count["slow"] != n {
		t.Errorf("hub kept %d error and %d slow traces of %d each, want all", count["err"], count["slow"], n)
	}
	if count["ok"] < n/5 || count["ok"] > n*4/5 {
		t.Errorf("hub kept %d of %d ordinary traces, want about half", count["ok"], n)
	}

	// Partition us-west-2 from the hub for 60 s under traffic.
	west := lb.Clusters[1].Name
	route := lab.Route(lb.Clusters)
	lb.Partition(west, true)
	start := time.Now()
	i := 0
	for time.Since(start) < 60*time.Second {
		if err := lb.Send(context.Background(), fmt.Sprintf("part-%d", i), route, sampled(i, "part")); err != nil {
			t.Fatal(err)
		}
		i++
		time.Sleep(500 * time.Millisecond)
	}
	lb.Partition(west, false)
	healed := time.Now()
	t.Logf("sent %d requests while %s was cut off for %v", i, west, healed.Sub(start).Round(time.Second))
	// The spoke reconnects at its gRPC backoff (it grew during the cut),
	// then drains its persistent queue.
	complete := 0
	var partial []string
	for deadline := time.Now().Add(240 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		spans, err := lb.HubSpans()
		if err != nil {
			t.Fatal(err)
		}
		complete, partial = 0, nil
		for _, tr := range lab.ByTrace(spans) {
			for _, s := range tr {
				if s.Resource["service.name"] == "api-gateway" && s.Kind == 2 && strings.HasPrefix(queryID(s), "part-") {
					if len(tr) == 15 {
						complete++
					} else {
						partial = append(partial, fmt.Sprintf("%s: %d spans", queryID(s), len(tr)))
					}
				}
			}
		}
		if complete == i {
			break
		}
	}
	t.Logf("%d of %d traces complete at the hub %v after the partition healed", complete, i, time.Since(healed).Round(time.Second))
	if complete != i {
		t.Errorf("%d of %d requests sent during the partition are complete at the hub; partial: %v", complete, i, partial)
	}
	waitStable(t, lb) // and nothing arrives twice
}

func send(t *testing.T, lb *lab.Lab, n int, prefix, route string, h http.Header) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := lb.Send(context.Background(), fmt.Sprintf("%s-%d", prefix, i), route, h); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// waitStable waits until what the hub kept stops growing.
func waitStable(t *testing.T, lb *lab.Lab) map[string][]otlpjson.Span {
	t.Helper()
	last, stable := -1, 0
	var spans []otlpjson.Span
	for deadline := time.Now().Add(120 * time.Second); stable < 6; {
		if time.Now().After(deadline) {
			t.Fatalf("the hub's output still changes after 120 s (%d spans)", len(spans))
		}
		time.Sleep(time.Second)
		var err error
		if spans, err = lb.HubSpans(); err != nil {
			t.Fatal(err)
		}
		if len(spans) == last && last > 0 {
			stable++
		} else {
			stable = 0
		}
		last = len(spans)
	}
	// A trace must not arrive twice (a spool or queue replaying it).
	seen := map[string]bool{}
	for _, s := range spans {
		if seen[s.SpanID] {
			t.Errorf("span %s (%v) at the hub twice", s.SpanID, s.Resource["service.name"])
		}
		seen[s.SpanID] = true
	}
	return lab.ByTrace(spans)
}

func queryID(s otlpjson.Span) string {
	q, _ := s.Attrs["url.query"].(string)
	for _, kv := range strings.Split(q, "&") {
		if v, ok := strings.CutPrefix(kv, "id="); ok {
			return v
		}
	}
	return ""
}

func sampler(t *testing.T) sampling.Sampler {
	s, err := sampling.Parse(func(k string) string {
		return map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": fmt.Sprint(ratio)}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fetch(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func metric(t *testing.T, addr, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(fetch(t, "http://"+addr+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

func hash(kind string, i int) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range []byte(fmt.Sprintf("%s-%d", kind, i)) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// nonZero lists an agent's non-zero weft_ series.
func nonZero(t *testing.T, addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "weft_") && !strings.HasSuffix(line, " 0") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
