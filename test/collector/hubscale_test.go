package collector

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// withHosts is a wrapper the gateway runs under: a mount namespace of its
// own in which hosts is /etc/hosts, so the replicas' name resolves as the
// test says (a headless Service's DNS answer) and nothing else on the
// machine is touched. unshare and sh exec in place: the collector keeps
// the wrapper's PID and gets its signals.
const withHosts = `#!/bin/sh
exec unshare --mount --propagation private sh -c 'mount --bind "$WEFT_HOSTS" /etc/hosts && exec "$WEFT_OTELCOL" "$@"' otelcol "$@"
`

type replica struct {
	addr        string // its OTLP/gRPC address, as DNS lists it
	metricsPort int
	col         *otelcol.Collector
}

// TestHubReplicasReroute: two hub replicas (deploy/collector/hub.yaml)
// behind the gateway (hub-gateway.yaml) that resolves them by DNS name.
// Traces stream in, each in two parts 1.5 s apart (the CLIENT child first,
// the SERVER root, which carries the error the errors policy keeps, last),
// longer than the replicas' decision wait: only a replica given the trace
// whole sees the error. Mid-stream, replica 1 leaves the DNS answer and is
// told to stop, as Kubernetes stops a pod. Every error trace must be kept
// whole by exactly one replica, the others nowhere, traces sent after the
// stop must reach replica 0, and what is missing must be what the gateway's
// own metrics count as lost.
func TestHubReplicasReroute(t *testing.T) {
	kernel.RequireRoot(t) // a mount namespace for the gateway's /etc/hosts
	bin := otelcol.HubBinary(t)
	root := repoRoot(t)
	dir := t.TempDir()

	// The replicas listen on two loopback addresses, one port: the DNS
	// resolver takes one port for every address.
	var port int
	for {
		port = freePort(t, "127.0.0.2")
		if l, err := netListen("127.0.0.3", port); err == nil {
			l.Close()
			break
		}
	}
	hosts := hostsFile{path: filepath.Join(dir, "hosts"), name: "hub-replicas"}
	replicas := make([]*replica, 2)
	var addrs []string
	for i := range replicas {
		r := &replica{addr: fmt.Sprintf("127.0.0.%d:%d", i+2, port), metricsPort: freePort(t, "127.0.0.1")}
		r.col = otelcol.StartWith(t, otelcol.Options{
			Binary: bin, Config: filepath.Join(root, "deploy", "collector", "hub.yaml"),
			// StartWith waits for this address: the HTTP receiver's.
			EndpointEnv:  "HUB_OTLP_HTTP_ENDPOINT",
			SpansFileEnv: "HUB_SPANS_FILE",
			Env: []string{"HUB_OTLP_GRPC_ENDPOINT=" + r.addr,
				"HUB_DECISION_WAIT=1s", "HUB_SAMPLING_PERCENTAGE=0", "HUB_SLOW_THRESHOLD_MS=60000", "HUB_FILE_FLUSH_INTERVAL=100ms",
				"OTELCOL_METRICS_HOST=127.0.0.1", "OTELCOL_METRICS_PORT=" + strconv.Itoa(r.metricsPort)},
		})
		waitListening(t, r.addr)
		replicas[i] = r
		addrs = append(addrs, fmt.Sprintf("127.0.0.%d", i+2))
	}
	hosts.set(t, addrs...)

	wrapper := filepath.Join(dir, "with-hosts")
	if err := os.WriteFile(wrapper, []byte(withHosts), 0o755); err != nil {
		t.Fatal(err)
	}
	gwMetrics := freePort(t, "127.0.0.1")
	gateway := otelcol.StartWith(t, otelcol.Options{
		Binary: wrapper, Config: filepath.Join(root, "deploy", "collector", "hub-gateway.yaml"),
		EndpointEnv:  "GATEWAY_OTLP_GRPC_ENDPOINT",
		SpansFileEnv: "WEFT_UNUSED_SPANS_FILE",
		Env: []string{"WEFT_OTELCOL=" + bin, "WEFT_HOSTS=" + hosts.path,
			"GATEWAY_OTLP_HTTP_ENDPOINT=127.0.0.1:0",
			"HUB_REPLICAS_HOSTNAME=" + hosts.name, "HUB_REPLICAS_PORT=" + strconv.Itoa(port),
			"HUB_RESOLVER_INTERVAL=1s", "HUB_INSECURE=true",
			"GATEWAY_GROUP_WAIT=2500ms", "GATEWAY_RETRY_MAX_ELAPSED=60s",
			"OTELCOL_METRICS_HOST=127.0.0.1", "OTELCOL_METRICS_PORT=" + strconv.Itoa(gwMetrics)},
	})

	tp, tr := provider(t, "aws-us-east-1-prod-01", gateway.Endpoint)
	type sentTrace struct {
		err   bool
		after bool // its first span was sent after replica 1 was stopped
	}
	var mu sync.Mutex
	sent := map[string]sentTrace{}
	var wg sync.WaitGroup
	var stopped time.Time
	start := time.Now()
	for i := 0; time.Since(start) < 10*time.Second; i++ {
		if stopped.IsZero() && time.Since(start) > 5*time.Second {
			// Out of the DNS answer and SIGTERM at once, as for a pod.
			hosts.set(t, addrs[0])
			replicas[1].col.Stop(t)
			stopped = time.Now()
			t.Logf("replica 1 stopped at %v", stopped.Sub(start).Round(time.Millisecond))
		}
		after := !stopped.IsZero()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, root := tr.Start(context.Background(), fmt.Sprintf("req-%d", i), trace.WithSpanKind(trace.SpanKindServer))
			_, child := tr.Start(ctx, "call", trace.WithSpanKind(trace.SpanKindClient))
			child.End()
			mu.Lock()
			sent[root.SpanContext().TraceID().String()] = sentTrace{err: i%2 == 0, after: after}
			mu.Unlock()
			time.Sleep(1500 * time.Millisecond)
			if i%2 == 0 {
				root.SetStatus(codes.Error, "declined")
			}
			root.End()
		}()
		time.Sleep(40 * time.Millisecond)
	}
	wg.Wait()
	shutdown(t, tp)

	places := []place{{"replica-0", replicas[0].col}, {"replica-1", replicas[1].col}}
	errTraces := 0
	for _, s := range sent {
		if s.err {
			errTraces++
		}
	}
	settle(t, places, 2*errTraces, 30*time.Second)
	got := stored(t, places)

	kept := map[string]int{}
	missing := 0
	for id, s := range sent {
		byPlace := got[id]
		if !s.err {
			if len(byPlace) > 0 {
				t.Errorf("trace %s has no error but was kept: %v", id, byPlace)
			}
			continue
		}
		if len(byPlace) == 0 {
			missing++
			continue
		}
		for where, spans := range byPlace {
			kept[where]++
			if len(spans) != 2 {
				t.Errorf("error trace %s kept with %d of its 2 spans at %s: decided on part of the trace", id, len(spans), where)
			}
			if s.after && where != "replica-0" {
				t.Errorf("trace %s began after replica 1 stopped, but is at %s", id, where)
			}
		}
	}
	gw := scrape(t, gwMetrics)
	lost := otelcol.SumMetric(gw, "otelcol_exporter_send_failed_spans", nil) +
		otelcol.SumMetric(gw, "otelcol_exporter_enqueue_failed_spans", nil)
	evicted := otelcol.SumMetric(gw, "otelcol_processor_groupbytrace_traces_evicted", nil)
	failures := otelcol.SumMetric(gw, "otelcol_loadbalancer_backend_outcome", map[string]string{"success": "false"})
	t.Logf("%d traces sent (%d with an error); kept: %v; missing %d; gateway: %v spans lost, %v traces evicted, %v failed sends to a replica",
		len(sent), errTraces, kept, missing, lost, evicted, failures)
	if kept["replica-0"] == 0 || kept["replica-1"] == 0 {
		t.Errorf("kept by replica: %v; want traces at both (the ring spreads them)", kept)
	}
	if float64(2*missing) != lost || evicted != 0 {
		t.Errorf("%d error traces (%d spans) missing, but the gateway counts %v spans lost and %v traces evicted",
			missing, 2*missing, lost, evicted)
	}
}

// settle waits until the places hold at least n spans and nothing has
// arrived for 3 s, or timeout; unlike waitStored it does not fail: what is
// missing is for the caller to account for.
func settle(t *testing.T, places []place, n int, timeout time.Duration) {
	t.Helper()
	last, since := -1, time.Now()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		got := 0
		for _, p := range places {
			got += len(p.col.Spans(t))
		}
		if got != last {
			last, since = got, time.Now()
		}
		if got >= n && time.Since(since) > 3*time.Second {
			return
		}
	}
}
