// Package collector tests the spoke and hub collector configs of
// deploy/collector in a real OpenTelemetry Collector (built by
// scripts/otelcol.sh hub, several minutes the first time on a machine) and
// the Prometheus alert rules of deploy/prometheus with a real promtool.
package collector

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

const (
	decisionWait    = time.Second
	slowThresholdMs = 500
)

// The cluster identity the spoke is configured with.
var identity = map[string]string{
	"k8s.cluster.name":            "aws-us-east-1-prod-01",
	"k8s.cluster.uid":             "0c5b1f6e-5d0b-4bd8-9a43-6d7f2c1e9a10",
	"cloud.provider":              "aws",
	"cloud.region":                "us-east-1",
	"deployment.environment.name": "prod",
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// hub is a running hub.yaml collector and the port of its own metrics.
type hub struct {
	*otelcol.Collector
	metricsPort int
}

func startHub(t *testing.T, samplingPercentage int) hub {
	t.Helper()
	port := freePort(t, "127.0.0.1")
	return hub{otelcol.StartWith(t, otelcol.Options{
		Binary:       otelcol.HubBinary(t),
		Config:       filepath.Join(repoRoot(t), "deploy", "collector", "hub.yaml"),
		EndpointEnv:  "HUB_OTLP_GRPC_ENDPOINT",
		SpansFileEnv: "HUB_SPANS_FILE",
		Env: []string{
			"HUB_OTLP_HTTP_ENDPOINT=127.0.0.1:0",
			"HUB_DECISION_WAIT=" + decisionWait.String(),
			fmt.Sprintf("HUB_SLOW_THRESHOLD_MS=%d", slowThresholdMs),
			fmt.Sprintf("HUB_SAMPLING_PERCENTAGE=%d", samplingPercentage),
			"HUB_FILE_FLUSH_INTERVAL=100ms",
			"OTELCOL_METRICS_HOST=127.0.0.1",
			"OTELCOL_METRICS_PORT=" + strconv.Itoa(port),
		},
	}), port}
}

func startSpoke(t *testing.T, hubEndpoint, queueDir string) *otelcol.Collector {
	t.Helper()
	env := []string{
		"HUB_ENDPOINT=" + hubEndpoint,
		"HUB_INSECURE=true",
		"SPOKE_OTLP_HTTP_ENDPOINT=127.0.0.1:0",
		"SPOKE_QUEUE_DIR=" + queueDir,
		"SPOKE_RETRY_MAX_INTERVAL=1s",
		"SPOKE_BATCH_TIMEOUT=200ms",
		"OTELCOL_METRICS_HOST=127.0.0.1",
		"OTELCOL_METRICS_PORT=0",
		"CLUSTER_NAME=" + identity["k8s.cluster.name"],
		"CLUSTER_UID=" + identity["k8s.cluster.uid"],
		"CLOUD_PROVIDER=" + identity["cloud.provider"],
		"CLUSTER_REGION=" + identity["cloud.region"],
		"ENVIRONMENT=" + identity["deployment.environment.name"],
	}
	return otelcol.StartWith(t, otelcol.Options{
		Binary:      otelcol.HubBinary(t),
		Config:      filepath.Join(repoRoot(t), "deploy", "collector", "spoke.yaml"),
		EndpointEnv: "SPOKE_OTLP_GRPC_ENDPOINT",
		// The spoke has no file exporter; Spans on it finds nothing.
		SpansFileEnv: "WEFT_UNUSED_SPANS_FILE",
		Env:          env,
	})
}

// sender is an OTel SDK tracer provider exporting over OTLP/gRPC, as an
// instrumented service (or the weft agent) would.
type sender struct {
	tp *sdktrace.TracerProvider
	tr trace.Tracer
}

func newSender(t *testing.T, endpoint string, res ...attribute.KeyValue) *sender {
	t.Helper()
	exp, err := otlptracegrpc.New(context.Background(),
		otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	attrs := append([]attribute.KeyValue{attribute.String("service.name", "checkout")}, res...)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(100*time.Millisecond)),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
	)
	return &sender{tp: tp, tr: tp.Tracer("weft-collector-test")}
}

// flush sends everything ended so far and shuts the provider down.
func (s *sender) close(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.tp.Shutdown(ctx); err != nil {
		t.Fatalf("sending spans: %v", err)
	}
}

// traceOf records a two-span trace (a SERVER root and a CLIENT child) and
// returns its trace ID. dur is the root's duration; mod changes the child.
func (s *sender) traceOf(name string, dur time.Duration, mod func(trace.Span)) string {
	end := time.Now()
	start := end.Add(-dur)
	ctx, root := s.tr.Start(context.Background(), name,
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start))
	_, child := s.tr.Start(ctx, name+"/call",
		trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start.Add(time.Millisecond)))
	if mod != nil {
		mod(child)
	}
	child.End(trace.WithTimestamp(end.Add(-time.Millisecond)))
	root.End(trace.WithTimestamp(end))
	return root.SpanContext().TraceID().String()
}

func byTrace(spans []otelcol.Span) map[string][]otelcol.Span {
	m := map[string][]otelcol.Span{}
	for _, s := range spans {
		m[s.TraceID] = append(m[s.TraceID], s)
	}
	return m
}

func keys(m map[string][]otelcol.Span) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestSpokeToHubTailSampling sends one trace of each kind the hub must keep
// and plain traces through a spoke to a hub whose probabilistic remainder is
// 0%, so exactly the three kept traces must arrive, whole, with the spoke's
// cluster identity on their resources.
func TestSpokeToHubTailSampling(t *testing.T) {
	hub := startHub(t, 0)
	spoke := startSpoke(t, hub.Endpoint, t.TempDir())

	s := newSender(t, spoke.Endpoint)
	want := map[string]string{ // trace ID -> class
		s.traceOf("error", 10*time.Millisecond, func(sp trace.Span) {
			sp.SetStatus(codes.Error, "payment declined")
		}): "error",
		s.traceOf("slow", 2*slowThresholdMs*time.Millisecond, nil): "slow",
		s.traceOf("cross-cluster", 10*time.Millisecond, func(sp trace.Span) {
			sp.SetAttributes(attribute.String("cross_cluster.source", "aws-us-east-1-prod-01"),
				attribute.String("cross_cluster.target", "aws-us-west-2-prod-01"))
		}): "cross-cluster",
	}
	plain := map[string]bool{}
	for i := 0; i < 20; i++ {
		plain[s.traceOf(fmt.Sprintf("plain-%d", i), 10*time.Millisecond, func(sp trace.Span) {
			// A string attribute that is not cross_cluster.target must not match.
			sp.SetAttributes(attribute.String("cross_cluster.source", "aws-us-east-1-prod-01"))
		})] = true
	}
	s.close(t)

	hub.WaitSpans(t, 2*len(want), 30*time.Second, nil)
	// The plain traces were decided in the same decision tick as the kept
	// ones; wait one more decision period and a flush before the final read.
	time.Sleep(decisionWait + 500*time.Millisecond)
	got := byTrace(hub.Spans(t))

	for id, class := range want {
		spans := got[id]
		if len(spans) != 2 {
			t.Errorf("%s trace %s: hub has %d spans, want 2", class, id, len(spans))
		}
		for _, sp := range spans {
			for k, v := range identity {
				if sp.Resource[k] != v {
					t.Errorf("%s trace, span %s: resource %s = %v, want %q (set by the spoke)", class, sp.Name, k, sp.Resource[k], v)
				}
			}
			if sp.Resource["service.name"] != "checkout" {
				t.Errorf("span %s: service.name = %v: the sender's resource was not kept", sp.Name, sp.Resource["service.name"])
			}
		}
	}
	for id := range got {
		if _, ok := want[id]; ok {
			continue
		}
		if plain[id] {
			t.Errorf("plain trace %s (%s) was kept at a 0%% remainder", id, got[id][0].Name)
		} else {
			t.Errorf("unexpected trace %s at the hub", id)
		}
	}
	if !t.Failed() {
		t.Logf("hub kept %d traces (error, slow, cross-cluster) and dropped %d plain ones", len(got), len(plain))
	}
}

// TestHubRemainderAndAgentIdentity runs the same mix at a 100% remainder:
// every trace arrives; and a sender that already set k8s.cluster.name (the
// weft agent does, issue 8) keeps its value through the spoke.
func TestHubRemainderAndAgentIdentity(t *testing.T) {
	hub := startHub(t, 100)
	spoke := startSpoke(t, hub.Endpoint, t.TempDir())

	s := newSender(t, spoke.Endpoint, attribute.String("k8s.cluster.name", "aws-us-east-1-prod-02"))
	sent := map[string]bool{}
	for i := 0; i < 20; i++ {
		sent[s.traceOf(fmt.Sprintf("plain-%d", i), 10*time.Millisecond, nil)] = true
	}
	s.close(t)

	got := byTrace(hub.WaitSpans(t, 2*len(sent), 30*time.Second, nil))
	if len(got) != len(sent) {
		t.Errorf("hub has %d traces, want all %d at a 100%% remainder", len(got), len(sent))
	}
	for id := range sent {
		if len(got[id]) != 2 {
			t.Errorf("trace %s: %d spans at the hub, want 2", id, len(got[id]))
		}
		for _, sp := range got[id] {
			if sp.Resource["k8s.cluster.name"] != "aws-us-east-1-prod-02" {
				t.Errorf("span %s: k8s.cluster.name = %v, want the sender's aws-us-east-1-prod-02", sp.Name, sp.Resource["k8s.cluster.name"])
			}
			if sp.Resource["cloud.region"] != "us-east-1" {
				t.Errorf("span %s: cloud.region = %v, want us-east-1 filled in by the spoke", sp.Name, sp.Resource["cloud.region"])
			}
		}
	}
}

// TestSpokePersistentQueue stops the hub, sends spans to the spoke, restarts
// the spoke (its queue is on disk), then brings the hub back: every span
// arrives.
func TestSpokePersistentQueue(t *testing.T) {
	hub := startHub(t, 100)
	queueDir := t.TempDir()
	spoke := startSpoke(t, hub.Endpoint, queueDir)
	hub.Stop(t)

	s := newSender(t, spoke.Endpoint)
	sent := map[string]bool{}
	for i := 0; i < 25; i++ {
		sent[s.traceOf(fmt.Sprintf("partitioned-%d", i), 10*time.Millisecond, nil)] = true
	}
	s.close(t) // the spoke accepted them: from here they are the spoke's to keep

	// Let the spoke batch and fail at least one export attempt, then restart
	// it while the hub is still down: what was queued must survive on disk.
	time.Sleep(1500 * time.Millisecond)
	spoke.Restart(t)
	if entries, _ := os.ReadDir(queueDir); len(entries) == 0 {
		t.Errorf("persistent queue directory %s is empty", queueDir)
	}
	time.Sleep(500 * time.Millisecond)
	hub.Restart(t)

	spans := hub.WaitSpans(t, 2*len(sent), 60*time.Second, nil)
	got := byTrace(spans)
	var missing []string
	for id := range sent {
		if len(got[id]) < 2 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d traces lost across the hub outage and spoke restart: %s", len(missing), len(sent), strings.Join(missing, " "))
	}
	seen := map[string]int{}
	for _, sp := range spans {
		seen[sp.SpanID]++
	}
	dups := 0
	for id, n := range seen {
		if n > 1 {
			dups += n - 1
			t.Errorf("span %s stored %d times", id, n)
		}
	}
	// The queue delivers at least once: a batch in flight when the spoke
	// stopped may be sent again. The hub's span_dedup stores it once.
	dropped := otelcol.SumMetric(scrape(t, hub.metricsPort), "otelcol_processor_span_dedup_duplicate_spans", nil)
	t.Logf("%d traces sent, %d arrived after the outage (%d spans, %d stored twice; span_dedup dropped %v copies)",
		len(sent), len(got), len(spans), dups, dropped)
	for id := range got {
		if !sent[id] {
			t.Errorf("unexpected trace %s", id)
		}
	}
}

// TestConfigsValidate runs `otelcol validate` on every config of
// deploy/collector, the way an operator would before rolling them out,
// given what each requires (requiredEnv: the variables read without a
// default), and checks that each refuses to start without any one of them.
func TestConfigsValidate(t *testing.T) {
	bin := otelcol.HubBinary(t)
	root := repoRoot(t)
	identity := []string{"CLUSTER_NAME=aws-us-east-1-prod-01", "CLUSTER_UID=x", "CLOUD_PROVIDER=aws",
		"CLUSTER_REGION=us-east-1", "ENVIRONMENT=prod"}
	// A value for every variable some config requires.
	values := map[string]string{
		"HUB_ENDPOINT":          "hub.example:4317",
		"PEER_RING_MEMBERS":     "[ring.us-east-1.example:4319, ring.eu-west-1.example:4319]",
		"HUB_REPLICAS_HOSTNAME": "weft-hub-replicas.weft-hub.svc.cluster.local",
	}
	for _, kv := range identity {
		k, v, _ := strings.Cut(kv, "=")
		values[k] = v
	}
	// Queues and spans files somewhere writable.
	dir := t.TempDir()
	common := []string{"SPOKE_QUEUE_DIR=" + dir, "PEER_QUEUE_DIR=" + dir, "HYBRID_QUEUE_DIR=" + dir}
	for _, config := range []string{"spoke.yaml", "hub.yaml", "hub-gateway.yaml", "peer.yaml", "hybrid.yaml"} {
		path := filepath.Join(root, "deploy", "collector", config)
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		run := func(env ...string) (string, error) {
			cmd := exec.Command(bin, "validate", "--config", path)
			cmd.Env = append(append(os.Environ(), common...), env...)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		required := requiredEnv(string(text))
		var full []string
		for _, name := range required {
			v, ok := values[name]
			if !ok {
				t.Fatalf("%s requires %s: give the test a value for it", config, name)
			}
			full = append(full, name+"="+v)
		}
		if out, err := run(full...); err != nil {
			t.Errorf("%s: %v\n%s", config, err, out)
		}
		for i, name := range required {
			// os.Environ may carry the variable; an empty value overrides it.
			without := append(append([]string(nil), full[:i]...), full[i+1:]...)
			if out, err := run(append(without, name+"=")...); err == nil {
				t.Errorf("%s validated without %s; want a refusal:\n%s", config, name, out)
			}
		}
		t.Logf("%s: valid; refused without each of %v", config, required)
	}
}
