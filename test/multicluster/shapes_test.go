//go:build e2e

package multicluster_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/otlpjson"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
	"github.com/weft-dev/weft/test/multicluster/lab"
)

// request is one request the test sent with its own traceparent: the head
// decision (the sampled flag) is the caller's, and the agents follow it
// (parentbased_traceidratio), so the test knows every trace ID and which
// ones must be stored.
type request struct {
	id      string
	traceID string
	parent  string // the caller's span ID: the entry span's parent
	sampled bool
	sentAt  time.Time
}

func newRequest(prefix string, i int, sampled bool) request {
	id := fmt.Sprintf("%s-%d", prefix, i)
	return request{id: id, traceID: fmt.Sprintf("%016x%016x", hash(prefix, i), hash(id, 7)),
		parent: fmt.Sprintf("%016x", hash(id, 11)|1), sampled: sampled}
}

func (r request) header() http.Header {
	flags := "00"
	if r.sampled {
		flags = "01"
	}
	return http.Header{"Traceparent": {fmt.Sprintf("00-%s-%s-%s", r.traceID, r.parent, flags)}}
}

// sendAll sends requests through route, eight at a time.
func sendAll(t *testing.T, lb *lab.Lab, route string, reqs []request) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range reqs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			reqs[i].sentAt = time.Now()
			if err := lb.Send(context.Background(), reqs[i].id, route, reqs[i].header()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// stores waits until every store of the lab together holds want spans and
// nothing more arrives for 5 s (or 120 s have passed: the checks then say
// what is missing), checks that no span is stored twice (in one store or
// in two) and that no trace is split across stores, and returns trace ID
// → store → spans.
func stores(t *testing.T, lb *lab.Lab, want int) map[string]map[string][]otlpjson.Span {
	t.Helper()
	last, since := -1, time.Now()
	var byStore map[string][]otlpjson.Span
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var err error
		if byStore, err = lb.Stored(); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, spans := range byStore {
			n += len(spans)
		}
		if n != last {
			last, since = n, time.Now()
		}
		if n >= want && time.Since(since) > 5*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the stores hold %d spans after 120 s, want %d", n, want)
			break
		}
	}
	out := map[string]map[string][]otlpjson.Span{}
	seen := map[string]string{}
	for store, spans := range byStore {
		for _, s := range spans {
			if where, ok := seen[s.SpanID]; ok {
				t.Errorf("span %s (%v) stored twice: in %s and in %s", s.SpanID, s.Resource["service.name"], where, store)
				continue
			}
			seen[s.SpanID] = store
			if out[s.TraceID] == nil {
				out[s.TraceID] = map[string][]otlpjson.Span{}
			}
			out[s.TraceID][store] = append(out[s.TraceID][store], s)
		}
	}
	for id, at := range out {
		if len(at) > 1 {
			var where []string
			for store, spans := range at {
				where = append(where, fmt.Sprintf("%d spans in %s", len(spans), store))
			}
			sort.Strings(where)
			t.Errorf("trace %s is split: %s", id, strings.Join(where, ", "))
		}
	}
	return out
}

// placeOf is the one store holding a trace ("" if none; stores reports a
// split).
func placeOf(at map[string][]otlpjson.Span) (string, []otlpjson.Span) {
	for store, spans := range at {
		return store, spans
	}
	return "", nil
}

// checkRequests: every sampled request is one whole cross-cluster trace in
// exactly one store, which want approves; an unsampled one is nowhere. It
// returns how many traces each store holds.
func checkRequests(t *testing.T, lb *lab.Lab, got map[string]map[string][]otlpjson.Span, reqs []request, want func(request, string) bool) map[string]int {
	t.Helper()
	count := map[string]int{}
	for _, r := range reqs {
		store, spans := placeOf(got[r.traceID])
		switch {
		case !r.sampled && store != "":
			t.Errorf("request %s was not head-sampled, but %s stored %d spans of it", r.id, store, len(spans))
		case r.sampled && store == "":
			t.Errorf("request %s (trace %s) was head-sampled but is stored nowhere", r.id, r.traceID)
		case r.sampled:
			count[store]++
			if !want(r, store) {
				t.Errorf("request %s is stored in %s", r.id, store)
			}
			checkTrace(t, lb, spans, r.parent)
		}
	}
	return count
}

func sampledHalf(prefix string, n int) []request {
	reqs := make([]request, n)
	for i := range reqs {
		reqs[i] = newRequest(prefix, i, i%2 == 0)
	}
	return reqs
}

// TestPeerToPeer: each cluster's collector is deploy/collector/peer.yaml;
// the spans of every trace go to the one cluster that owns its trace ID,
// which tail-samples it whole and stores it. Every head-sampled request is
// one whole 15-span trace in exactly one cluster's store, the traces
// spread over the clusters, nothing is stored twice.
func TestPeerToPeer(t *testing.T) {
	lb := startShape(t, lab.PeerToPeer, nil, []string{"PEER_DECISION_WAIT=3s", "PEER_SAMPLING_PERCENTAGE=0",
		"PEER_FILE_FLUSH_INTERVAL=200ms"})
	reqs := sampledHalf("p2p", 120)
	sendAll(t, lb, lab.Route(lb.Clusters), reqs)
	got := stores(t, lb, 15*len(reqs)/2)
	count := checkRequests(t, lb, got, reqs, func(request, string) bool { return true })
	t.Logf("traces per owner: %v", count)
	logCost(t, lb)
	for _, store := range lb.Stores() {
		if count[store] == 0 {
			t.Errorf("%s owns none of the %d traces: the ring is not keyed by trace ID", store, len(reqs)/2)
		}
	}
	if len(got) != len(reqs)/2 {
		t.Errorf("%d traces stored, want the %d head-sampled requests'", len(got), len(reqs)/2)
	}
	for _, store := range lb.Stores() {
		m, err := lb.CollectorMetrics(store)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: span_dedup passed %v spans, dropped %v copies", store,
			otelcol.SumMetric(m, "otelcol_processor_span_dedup_passed_spans", nil),
			otelcol.SumMetric(m, "otelcol_processor_span_dedup_duplicate_spans", nil))
	}
}

// TestHybrid: each cluster's collector is deploy/collector/hybrid.yaml. A
// request that crosses clusters is one whole trace at the hub; a request
// that stays in us-east-1 is one whole trace in us-east-1's own store (its
// local sampler keeps them all here); neither is anywhere else.
func TestHybrid(t *testing.T) {
	lb := startShape(t, lab.Hybrid,
		[]string{"HUB_DECISION_WAIT=6s", "HUB_SAMPLING_PERCENTAGE=0", "HUB_FILE_FLUSH_INTERVAL=200ms"},
		[]string{"LOCAL_DECISION_WAIT=3s", "CROSSING_DECISION_WAIT=3s", "LOCAL_SAMPLING_PERCENTAGE=100",
			"LOCAL_FILE_FLUSH_INTERVAL=200ms"})
	crossing := sampledHalf("cross", 60)
	local := sampledHalf("local", 60)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sendAll(t, lb, lab.Route(lb.Clusters), crossing) }()
	go func() { defer wg.Done(); sendAll(t, lb, lab.LocalRoute(lb.Clusters), local) }()
	wg.Wait()
	got := stores(t, lb, 15*len(crossing)/2+5*len(local)/2)

	count := checkRequests(t, lb, got, crossing, func(_ request, store string) bool { return store == "hub" })
	east := "local-" + lb.Clusters[0].Short
	for _, r := range local {
		store, spans := placeOf(got[r.traceID])
		switch {
		case !r.sampled && store != "":
			t.Errorf("local request %s was not head-sampled, but %s stored it", r.id, store)
		case r.sampled && store != east:
			t.Errorf("local request %s is stored in %q, want %s", r.id, store, east)
		case r.sampled:
			count[store]++
			checkLocalTrace(t, lb, spans, r.parent)
		}
	}
	t.Logf("traces per store: %v", count)
	logCost(t, lb)
	if len(got) != len(crossing)/2+len(local)/2 {
		t.Errorf("%d traces stored, want %d", len(got), len(crossing)/2+len(local)/2)
	}
}

// checkLocalTrace: the LocalRoute trace, five spans all in the first
// cluster (api-gateway, auth, user), none marked as crossing but the entry.
func checkLocalTrace(t *testing.T, lb *lab.Lab, spans []otlpjson.Span, remoteParent string) {
	t.Helper()
	if len(spans) != 5 {
		t.Errorf("local trace %s: %d spans, want 5\n%s", spans[0].TraceID, len(spans), lab.Tree(spans))
		return
	}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	for _, s := range spans {
		if s.Resource["k8s.cluster.name"] != lb.Clusters[0].Name {
			t.Errorf("local trace span of %v in %v", s.Resource["service.name"], s.Resource["k8s.cluster.name"])
		}
		if s.ParentSpanID != "" && s.ParentSpanID != remoteParent && !ids[s.ParentSpanID] {
			t.Errorf("local trace %s: span %s's parent %s missing", s.TraceID, s.SpanID, s.ParentSpanID)
		}
		entry := s.Resource["service.name"] == "api-gateway" && s.Kind == 2
		if src, _ := s.Attrs["cross_cluster.source"].(string); (src != "") != entry || (entry && src != "external") {
			t.Errorf("local trace %s: %v kind %d has cross_cluster.source %q", s.TraceID, s.Resource["service.name"], s.Kind, src)
		}
	}
}

// TestHubReplicas: the spokes send to deploy/collector/hub-gateway.yaml,
// which sends each trace whole to one of two hub.yaml replicas by trace ID,
// finding them by DNS name. Requests stream in; mid-stream replica 1
// leaves the DNS answer and gets SIGTERM, as a deleted pod does. Every
// head-sampled request is one whole trace at exactly one replica — traces
// sent after the stop at replica 0 — or, if lost, counted by the gateway's
// own metrics.
func TestHubReplicas(t *testing.T) {
	lb := startShape(t, lab.HubReplicas,
		[]string{"HUB_DECISION_WAIT=2s", "HUB_SAMPLING_PERCENTAGE=0", "HUB_FILE_FLUSH_INTERVAL=200ms"},
		[]string{"GATEWAY_GROUP_WAIT=4s", "GATEWAY_RETRY_MAX_ELAPSED=60s"})
	route := lab.Route(lb.Clusters)
	var reqs []request
	var stoppedAt time.Time
	start := time.Now()
	for i := 0; time.Since(start) < 18*time.Second; i++ {
		if stoppedAt.IsZero() && time.Since(start) > 10*time.Second {
			if err := lb.StopReplica(1); err != nil {
				t.Fatal(err)
			}
			stoppedAt = time.Now()
			t.Logf("replica-1 stopped %v into the stream, after %d requests", stoppedAt.Sub(start).Round(time.Millisecond), i)
		}
		r := newRequest("stream", i, i%2 == 0)
		r.sentAt = time.Now()
		if err := lb.Send(context.Background(), r.id, route, r.header()); err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, r)
		time.Sleep(50 * time.Millisecond)
	}
	got := stores(t, lb, 15*((len(reqs)+1)/2))

	missing := 0
	count := map[string]int{}
	for _, r := range reqs {
		store, spans := placeOf(got[r.traceID])
		switch {
		case !r.sampled && store != "":
			t.Errorf("request %s was not head-sampled, but %s stored it", r.id, store)
		case r.sampled && store == "":
			missing++
		case r.sampled:
			count[store]++
			checkTrace(t, lb, spans, r.parent)
			if r.sentAt.After(stoppedAt) && store != "replica-0" {
				t.Errorf("request %s was sent after replica-1 stopped but is at %s", r.id, store)
			}
		}
	}
	gw, err := lb.CollectorMetrics("gateway")
	if err != nil {
		t.Fatal(err)
	}
	lost := otelcol.SumMetric(gw, "otelcol_exporter_send_failed_spans", nil) + otelcol.SumMetric(gw, "otelcol_exporter_enqueue_failed_spans", nil)
	evicted := otelcol.SumMetric(gw, "otelcol_processor_groupbytrace_traces_evicted", nil)
	incomplete := otelcol.SumMetric(gw, "otelcol_processor_groupbytrace_incomplete_releases", nil)
	t.Logf("%d requests (%d head-sampled); kept per replica: %v; missing %d; gateway: %v spans lost, %v traces evicted, %v incomplete releases, %v failed sends to a replica",
		len(reqs), (len(reqs)+1)/2, count, missing, lost, evicted, incomplete,
		otelcol.SumMetric(gw, "otelcol_loadbalancer_backend_outcome", map[string]string{"success": "false"}))
	if count["replica-0"] == 0 || count["replica-1"] == 0 {
		t.Errorf("kept per replica: %v; want both before the stop", count)
	}
	logCost(t, lb)
	if float64(15*missing) != lost || evicted != 0 {
		t.Errorf("%d head-sampled requests missing (%d spans), the gateway counts %v spans lost, %v traces evicted",
			missing, 15*missing, lost, evicted)
	}
}

// logCost logs what the shape's collectors cost at the end of a run: how
// many, their memory (RSS), and the spans that left their cluster for
// another place (a hub, a gateway, another cluster's collector), from the
// collectors' own exporter counters.
func logCost(t *testing.T, lb *lab.Lab) {
	t.Helper()
	var rss, out float64
	names := lb.Collectors()
	for _, name := range names {
		m, err := lb.CollectorMetrics(name)
		if err != nil {
			t.Logf("%s: no metrics (stopped?): %v", name, err)
			continue
		}
		rss += otelcol.SumMetric(m, "otelcol_process_memory_rss", nil)
		if strings.HasPrefix(name, "spoke-") || strings.HasPrefix(name, "local-") {
			out += otelcol.SumMetric(m, "otelcol_exporter_sent_spans", map[string]string{"exporter": "otlp_grpc/hub"})
		}
		if strings.HasPrefix(name, "peer-") {
			out += otelcol.SumMetric(m, "otelcol_exporter_sent_spans", map[string]string{"exporter": "load_balancing/ring"})
		}
	}
	t.Logf("%s: %d collectors, %.0f MiB RSS in all; %v spans sent on by the clusters' collectors (peer-to-peer: to every owner, this cluster included)",
		lb.Stores(), len(names), rss/(1<<20), out)
}
