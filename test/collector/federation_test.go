package collector

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// freePort returns a TCP port nothing listens on at host (a loopback
// address) at the moment.
func freePort(t *testing.T, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func netListen(host string, port int) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
	}
}

// scrape reads a collector's own metrics (the Prometheus text on its
// telemetry port).
func scrape(t *testing.T, port int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatalf("scraping the collector's metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// identityEnv is a cluster's identity as the collector configs read it.
func identityEnv(cluster string) []string {
	return []string{"CLUSTER_NAME=" + cluster, "CLUSTER_UID=uid-" + cluster, "CLOUD_PROVIDER=aws",
		"CLUSTER_REGION=" + strings.TrimSuffix(strings.TrimPrefix(cluster, "aws-"), "-prod-01"), "ENVIRONMENT=prod"}
}

// provider is an OTel SDK tracer provider exporting over OTLP/gRPC to each
// of endpoints: with two, every span takes two paths.
func provider(t *testing.T, cluster string, endpoints ...string) (*sdktrace.TracerProvider, trace.Tracer) {
	t.Helper()
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(resource.NewSchemaless(
		attribute.String("service.name", "svc-"+cluster), attribute.String("k8s.cluster.name", cluster)))}
	for _, ep := range endpoints {
		exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(ep), otlptracegrpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(100*time.Millisecond)))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return tp, tp.Tracer("weft-federation-test")
}

func shutdown(t *testing.T, tp *sdktrace.TracerProvider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("sending spans: %v", err)
	}
}

// place is where spans were stored: a collector's backend file.
type place struct {
	name string
	col  *otelcol.Collector
}

// stored reads every place and checks what the federation promises: no
// span stored twice (in one place or across places) and every trace in
// exactly one place. It returns trace ID → place → spans.
func stored(t *testing.T, places []place) map[string]map[string][]otelcol.Span {
	t.Helper()
	out := map[string]map[string][]otelcol.Span{}
	seen := map[string]string{}
	for _, p := range places {
		for _, s := range p.col.Spans(t) {
			if where, ok := seen[s.SpanID]; ok {
				t.Errorf("span %s (%s) stored twice: in %s and in %s", s.SpanID, s.Name, where, p.name)
				continue
			}
			seen[s.SpanID] = p.name
			if out[s.TraceID] == nil {
				out[s.TraceID] = map[string][]otelcol.Span{}
			}
			out[s.TraceID][p.name] = append(out[s.TraceID][p.name], s)
		}
	}
	for id, byPlace := range out {
		if len(byPlace) > 1 {
			var where []string
			for name, spans := range byPlace {
				where = append(where, fmt.Sprintf("%d spans in %s", len(spans), name))
			}
			sort.Strings(where)
			t.Errorf("trace %s is split: %s", id, strings.Join(where, ", "))
		}
	}
	return out
}

// waitStored waits until the places hold n spans in all and nothing more
// arrives for a while.
func waitStored(t *testing.T, places []place, n int, timeout time.Duration) {
	t.Helper()
	count := func() int {
		total := 0
		for _, p := range places {
			total += len(p.col.Spans(t))
		}
		return total
	}
	last, since := -1, time.Now()
	for deadline := time.Now().Add(timeout); ; time.Sleep(200 * time.Millisecond) {
		got := count()
		if got != last {
			last, since = got, time.Now()
		}
		if got >= n && time.Since(since) > 2*time.Second {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spans stored after %v, want %d", got, timeout, n)
		}
	}
}

type peer struct {
	name        string
	ring        string
	metricsPort int
	col         *otelcol.Collector
}

// startPeers runs deploy/collector/peer.yaml once per cluster, all on one
// ring.
func startPeers(t *testing.T, clusters ...string) []*peer {
	t.Helper()
	peers := make([]*peer, len(clusters))
	var ring []string
	for i, c := range clusters {
		peers[i] = &peer{name: c, ring: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")), metricsPort: freePort(t, "127.0.0.1")}
		ring = append(ring, peers[i].ring)
	}
	for _, p := range peers {
		p.col = otelcol.StartWith(t, otelcol.Options{
			Binary:       otelcol.HubBinary(t),
			Config:       filepath.Join(repoRoot(t), "deploy", "collector", "peer.yaml"),
			EndpointEnv:  "PEER_OTLP_GRPC_ENDPOINT",
			SpansFileEnv: "PEER_SPANS_FILE",
			Env: append([]string{
				"PEER_OTLP_HTTP_ENDPOINT=127.0.0.1:0",
				"PEER_RING_ENDPOINT=" + p.ring,
				"PEER_RING_MEMBERS=[" + strings.Join(ring, ", ") + "]",
				"PEER_RING_INSECURE=true",
				"PEER_QUEUE_DIR=" + t.TempDir(),
				"PEER_RETRY_MAX_INTERVAL=1s",
				"PEER_BATCH_TIMEOUT=200ms",
				"PEER_DECISION_WAIT=" + decisionWait.String(),
				"PEER_SAMPLING_PERCENTAGE=100",
				"PEER_FILE_FLUSH_INTERVAL=100ms",
				"OTELCOL_METRICS_HOST=127.0.0.1",
				"OTELCOL_METRICS_PORT=" + strconv.Itoa(p.metricsPort),
			}, identityEnv(p.name)...),
		})
		waitListening(t, p.ring)
	}
	return peers
}

func peerPlaces(peers []*peer) []place {
	var out []place
	for _, p := range peers {
		out = append(out, place{p.name, p.col})
	}
	return out
}

// twoSpanTrace records a SERVER root and a CLIENT child and returns the
// trace ID.
func twoSpanTrace(tr trace.Tracer, name string) string {
	ctx, root := tr.Start(context.Background(), name, trace.WithSpanKind(trace.SpanKindServer))
	_, child := tr.Start(ctx, name+"/call", trace.WithSpanKind(trace.SpanKindClient))
	child.End()
	root.End()
	return root.SpanContext().TraceID().String()
}

// TestPeerRingStoresEachTraceOnce runs three peer collectors on one ring.
// The spans of 30 traces are sent to two of them at once (two paths, as
// an agent that fails over after a lost answer would); 10 more go to the
// third only. Every trace must be stored whole, once, by exactly one
// peer — its owner — and span_dedup must count the second copies it drops.
func TestPeerRingStoresEachTraceOnce(t *testing.T) {
	east, west, eu := "aws-us-east-1-prod-01", "aws-us-west-2-prod-01", "aws-eu-west-1-prod-01"
	peers := startPeers(t, east, west, eu)

	tp2, twice := provider(t, east, peers[0].col.Endpoint, peers[1].col.Endpoint)
	tp1, once := provider(t, eu, peers[2].col.Endpoint)
	sent := map[string]string{} // trace ID → the cluster it was recorded in
	for i := 0; i < 30; i++ {
		sent[twoSpanTrace(twice, fmt.Sprintf("two-paths-%d", i))] = east
	}
	for i := 0; i < 10; i++ {
		sent[twoSpanTrace(once, fmt.Sprintf("one-path-%d", i))] = eu
	}
	shutdown(t, tp2)
	shutdown(t, tp1)

	places := peerPlaces(peers)
	waitStored(t, places, 2*len(sent), 30*time.Second)
	got := stored(t, places)
	owners := map[string]int{}
	for id, cluster := range sent {
		for where, spans := range got[id] {
			owners[where]++
			if len(spans) != 2 {
				t.Errorf("trace %s: %d spans at %s, want 2", id, len(spans), where)
			}
			for _, s := range spans {
				if s.Resource["k8s.cluster.name"] != cluster {
					t.Errorf("trace %s span %s: k8s.cluster.name %v, want %s", id, s.Name, s.Resource["k8s.cluster.name"], cluster)
				}
			}
		}
		if len(got[id]) == 0 {
			t.Errorf("trace %s (from %s) stored nowhere", id, cluster)
		}
	}
	if len(got) != len(sent) {
		t.Errorf("%d traces stored, want %d", len(got), len(sent))
	}
	// Trace IDs are random: 40 of them leave no owner without one.
	for _, p := range peers {
		if owners[p.name] == 0 {
			t.Errorf("%s owns none of %d traces: is the ring keyed by trace ID?", p.name, len(sent))
		}
	}
	var dups, passed float64
	for _, p := range peers {
		m := scrape(t, p.metricsPort)
		dups += otelcol.SumMetric(m, "otelcol_processor_span_dedup_duplicate_spans", nil)
		passed += otelcol.SumMetric(m, "otelcol_processor_span_dedup_passed_spans", nil)
	}
	// Each of the 80 spans passed on once. At least the 60 second copies
	// were dropped; more when the ring resent a batch (a peer's connection
	// to another was still coming up): at-least-once, made once here.
	if passed != 80 || dups < 60 {
		t.Errorf("span_dedup passed %v spans and dropped %v copies, want 80 and at least 60", passed, dups)
	}
	t.Logf("owners: %v; span_dedup dropped %v second copies", owners, dups)
}

// TestPeerOutage stops one peer while the others keep sending: the spans
// it owns wait in their ring queues and arrive when it is back. A batch
// that one peer refused is sent again whole, so the peers that took their
// part get it twice; every trace is still stored once, whole, by its owner.
func TestPeerOutage(t *testing.T) {
	east, west, eu := "aws-us-east-1-prod-01", "aws-us-west-2-prod-01", "aws-eu-west-1-prod-01"
	peers := startPeers(t, east, west, eu)
	peers[2].col.Stop(t)

	tp, tr := provider(t, east, peers[0].col.Endpoint)
	sent := map[string]bool{}
	for i := 0; i < 30; i++ {
		sent[twoSpanTrace(tr, fmt.Sprintf("outage-%d", i))] = true
	}
	shutdown(t, tp)
	time.Sleep(3 * time.Second) // several retries while eu is away
	peers[2].col.Restart(t)
	waitListening(t, peers[2].ring)

	places := peerPlaces(peers)
	waitStored(t, places, 2*len(sent), 60*time.Second)
	got := stored(t, places)
	atEU := 0
	for id := range sent {
		for where, spans := range got[id] {
			if len(spans) != 2 {
				t.Errorf("trace %s: %d spans at %s, want 2", id, len(spans), where)
			}
			if where == eu {
				atEU++
			}
		}
		if len(got[id]) == 0 {
			t.Errorf("trace %s stored nowhere", id)
		}
	}
	if atEU == 0 {
		t.Error("the stopped peer owns none of the traces: the test proved nothing")
	}
	var dups float64
	for _, p := range peers[:2] {
		dups += otelcol.SumMetric(scrape(t, p.metricsPort), "otelcol_processor_span_dedup_duplicate_spans", nil)
	}
	t.Logf("%d of %d traces waited for %s; span_dedup dropped %v copies resent with them", atEU, len(sent), eu, dups)
}

// TestHybridSplitsByCrossing runs two clusters' hybrid collectors
// (deploy/collector/hybrid.yaml) and a hub. Traces that stay in a cluster
// are sampled there and stored in the cluster's backend; traces that cross
// from east to west go, the spans of both clusters, to the hub, which
// stores them whole. No trace is in two places; an entry from outside
// every cluster is not a crossing.
func TestHybridSplitsByCrossing(t *testing.T) {
	east, west := "aws-us-east-1-prod-01", "aws-us-west-2-prod-01"
	hub := otelcol.StartWith(t, otelcol.Options{
		Binary:       otelcol.HubBinary(t),
		Config:       filepath.Join(repoRoot(t), "deploy", "collector", "hub.yaml"),
		EndpointEnv:  "HUB_OTLP_GRPC_ENDPOINT",
		SpansFileEnv: "HUB_SPANS_FILE",
		Env: []string{"HUB_OTLP_HTTP_ENDPOINT=127.0.0.1:0", "HUB_DECISION_WAIT=3s",
			"HUB_SAMPLING_PERCENTAGE=0", "HUB_FILE_FLUSH_INTERVAL=100ms",
			"OTELCOL_METRICS_HOST=127.0.0.1", "OTELCOL_METRICS_PORT=0"},
	})
	cluster := func(name string) *otelcol.Collector {
		return otelcol.StartWith(t, otelcol.Options{
			Binary:       otelcol.HubBinary(t),
			Config:       filepath.Join(repoRoot(t), "deploy", "collector", "hybrid.yaml"),
			EndpointEnv:  "HYBRID_OTLP_GRPC_ENDPOINT",
			SpansFileEnv: "LOCAL_SPANS_FILE",
			Env: append([]string{"HYBRID_OTLP_HTTP_ENDPOINT=127.0.0.1:0",
				"HUB_ENDPOINT=" + hub.Endpoint, "HUB_INSECURE=true",
				"HYBRID_QUEUE_DIR=" + t.TempDir(), "HYBRID_RETRY_MAX_INTERVAL=1s", "HYBRID_BATCH_TIMEOUT=200ms",
				"LOCAL_DECISION_WAIT=1s", "CROSSING_DECISION_WAIT=1s",
				"LOCAL_SAMPLING_PERCENTAGE=100", "LOCAL_FILE_FLUSH_INTERVAL=100ms",
				"OTELCOL_METRICS_HOST=127.0.0.1", "OTELCOL_METRICS_PORT=0"}, identityEnv(name)...),
		})
	}
	eastCol, westCol := cluster(east), cluster(west)
	tpE, trE := provider(t, east, eastCol.Endpoint)
	tpW, trW := provider(t, west, westCol.Endpoint)

	kind := map[string]string{} // trace ID → local, entry, crossing
	for i := 0; i < 10; i++ {
		kind[twoSpanTrace(trE, fmt.Sprintf("local-east-%d", i))] = "local"
		kind[twoSpanTrace(trW, fmt.Sprintf("local-west-%d", i))] = "local"

		// A call from outside into east, answered there: marked as an
		// entry, not a crossing.
		ctx, root := trE.Start(context.Background(), fmt.Sprintf("entry-%d", i), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("cross_cluster.source", "external"), attribute.String("cross_cluster.target", east)))
		_, c := trE.Start(ctx, "entry/call", trace.WithSpanKind(trace.SpanKindClient))
		c.End()
		root.End()
		kind[root.SpanContext().TraceID().String()] = "entry"

		// east's gateway calls west's order service: two spans on each side,
		// the crossing marked on both.
		mark := trace.WithAttributes(attribute.String("cross_cluster.source", east), attribute.String("cross_cluster.target", west))
		ctx, gw := trE.Start(context.Background(), fmt.Sprintf("crossing-%d", i), trace.WithSpanKind(trace.SpanKindServer))
		ctx, call := trE.Start(ctx, "order/Place", trace.WithSpanKind(trace.SpanKindClient), mark)
		ctx, srv := trW.Start(ctx, "order/Place", trace.WithSpanKind(trace.SpanKindServer), mark)
		_, db := trW.Start(ctx, "inventory/Reserve", trace.WithSpanKind(trace.SpanKindClient))
		db.End()
		srv.End()
		call.End()
		gw.End()
		kind[gw.SpanContext().TraceID().String()] = "crossing"
	}
	shutdown(t, tpE)
	shutdown(t, tpW)

	places := []place{{"hub", hub}, {east, eastCol}, {west, westCol}}
	// local: 2 spans each, 20; entry: 2 each, 10 traces; crossing: 4 each.
	waitStored(t, places, 20*2+10*2+10*4, 60*time.Second)
	got := stored(t, places)
	for id, k := range kind {
		byPlace := got[id]
		want, spans := "", 2
		switch k {
		case "local", "entry":
			want = east
			if k == "local" && byPlace[west] != nil {
				want = west
			}
		case "crossing":
			want, spans = "hub", 4
		}
		if len(byPlace[want]) != spans || len(byPlace) != 1 {
			var where []string
			for p, s := range byPlace {
				where = append(where, fmt.Sprintf("%s:%d", p, len(s)))
			}
			t.Errorf("%s trace %s stored as %v, want %d spans at %s only", k, id, where, spans, want)
		}
	}
	if len(got) != len(kind) {
		t.Errorf("%d traces stored, want %d", len(got), len(kind))
	}
}

// hostsFile is the hosts file the gateway resolves the replicas' name in,
// as a headless Service's DNS answer would list them.
type hostsFile struct {
	path string
	name string
}

// set rewrites the file in place (the same inode: the gateway sees it
// through a bind mount).
func (h hostsFile) set(t *testing.T, addrs ...string) {
	t.Helper()
	var b strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s %s\n", a, h.name)
	}
	if err := os.WriteFile(h.path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
