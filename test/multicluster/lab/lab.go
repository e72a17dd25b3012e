package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weft-dev/weft/internal/otlpjson"
)

// Options configure a lab.
type Options struct {
	Root      string // the repository (deploy/collector configs, testdata)
	Work      string // a directory for binaries, logs, queues and spools
	AgentBin  string // weft-agent
	Collector string // the spoke/hub collector (scripts/otelcol.sh hub)
	Log       *slog.Logger
	// Shape is how the clusters' collectors federate (default HubAndSpoke).
	Shape Shape

	// AgentEnv is added to every agent's environment (e.g. the sampler).
	AgentEnv []string
	// HubEnv is added to the hub's, or to each hub replica's
	// (HUB_SAMPLING_PERCENTAGE, HUB_SLOW_THRESHOLD_MS, HUB_DECISION_WAIT).
	HubEnv []string
	// ClusterEnv is added to every cluster's collector (spoke, peer or
	// hybrid: PEER_DECISION_WAIT, LOCAL_SAMPLING_PERCENTAGE, ...) and to
	// the hub gateway's (GATEWAY_GROUP_WAIT).
	ClusterEnv []string
}

// Lab is a running three-cluster lab.
type Lab struct {
	Clusters []Cluster
	HubFile  string // OTLP JSON lines of what the hub kept ("" when there is no single hub)

	opts     Options
	procs    []*proc // in start order; stopped in reverse
	proxies  map[string]*proxy
	agents   map[string]*proc
	statuses map[string]string // cluster → agent status address
	client   *http.Client

	stores   []store           // where spans end up, in a stable order
	metrics  map[string]string // collector name → its telemetry address
	grpc     map[string]string // collector name → its OTLP/gRPC address
	replicas []*hubReplica     // HubReplicas only
	hosts    string            // HubReplicas: the gateway's /etc/hosts
}

// store is one place that keeps spans: a collector's file exporter.
type store struct{ name, path string }

// Start builds the services, makes the network and starts the collectors
// of the shape (hub or replicas, gateway, proxies, the clusters'
// collectors), the agents and the services, waiting for each to be ready.
// On error, what was started is stopped.
func Start(ctx context.Context, o Options) (l *Lab, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	l = &Lab{Clusters: Topology(), opts: o, proxies: map[string]*proxy{}, agents: map[string]*proc{},
		statuses: map[string]string{}, client: &http.Client{Timeout: 30 * time.Second},
		metrics: map[string]string{}, grpc: map[string]string{}}
	defer func() {
		if err != nil {
			l.Stop()
			l = nil
		}
	}()
	bin := filepath.Join(o.Work, "grpcserver")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(o.Root, "testdata", "grpcserver")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return l, fmt.Errorf("building the demo service: %w\n%s", err, out)
	}
	if err := setupNetwork(l.Clusters); err != nil {
		return l, err
	}
	var clusterCollector func(context.Context, *Cluster) (string, error)
	switch o.Shape {
	case HubAndSpoke:
		if err = l.startHub(ctx); err == nil {
			err = l.startProxies(l.grpc["hub"])
		}
		clusterCollector = l.startSpoke
	case HubReplicas:
		var gateway string
		if gateway, err = l.startReplicas(ctx, 2); err == nil {
			err = l.startProxies(gateway)
		}
		clusterCollector = l.startSpoke
	case Hybrid:
		if err = l.startHub(ctx); err == nil {
			err = l.startProxies(l.grpc["hub"])
		}
		clusterCollector = l.startHybrid
	case PeerToPeer:
		clusterCollector, err = l.peerRing()
	default:
		err = fmt.Errorf("unknown shape %d", o.Shape)
	}
	if err != nil {
		return l, err
	}
	for i := range l.Clusters {
		c := &l.Clusters[i]
		endpoint, err := clusterCollector(ctx, c)
		if err != nil {
			return l, err
		}
		if err := l.startCluster(ctx, c, endpoint, bin); err != nil {
			return l, err
		}
	}
	return l, nil
}

func (l *Lab) start(ctx context.Context, name string, env []string, argv ...string) (*proc, error) {
	p, err := startProc(name, filepath.Join(l.opts.Work, name+".log"), env, argv...)
	if err != nil {
		return nil, err
	}
	l.procs = append(l.procs, p)
	return p, nil
}

// startHub runs hub.yaml: the hub of HubAndSpoke and Hybrid.
func (l *Lab) startHub(ctx context.Context) error {
	l.HubFile = filepath.Join(l.opts.Work, "hub.jsonl")
	_, err := l.startCollector(ctx, "hub", "hub.yaml", "HUB", "127.0.0.1", l.HubFile, l.opts.HubEnv)
	return err
}

// startProxies puts a proxy (which Partition cuts) between each cluster
// and target, the hub's or the gateway's address.
func (l *Lab) startProxies(target string) error {
	for i := range l.Clusters {
		p, err := newProxy(target)
		if err != nil {
			return fmt.Errorf("proxy to the hub: %w", err)
		}
		l.proxies[l.Clusters[i].Name] = p
	}
	return nil
}

// startCollector runs deploy/collector/<config> as name, its OTLP/gRPC
// receiver on host (a loopback address) at a free port, its file exporter
// (if it has one, as <prefix>_SPANS_FILE) writing to spans. It returns
// the gRPC address.
func (l *Lab) startCollector(ctx context.Context, name, config, prefix, host, spans string, env []string) (string, error) {
	return l.startCollectorOn(ctx, name, config, prefix, freeAddrOn(host), spans, env, l.opts.Collector)
}

// startAttempts bounds the restarts of a collector that exited because a
// port picked for it was taken between freePort's check and its bind.
const startAttempts = 3

// startCollectorOn runs a collector whose gRPC address addr gives (a
// fixed one, or a fresh free port per attempt) and waits until it listens.
func (l *Lab) startCollectorOn(ctx context.Context, name, config, prefix string, addr func() (string, error), spans string, env []string, argv0 string, args ...string) (string, error) {
	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		grpcAddr, err := addr()
		if err != nil {
			return "", err
		}
		httpPort, err := freePort()
		if err != nil {
			return "", err
		}
		metricsPort, err := freePort()
		if err != nil {
			return "", err
		}
		base := []string{
			prefix + "_OTLP_GRPC_ENDPOINT=" + grpcAddr,
			prefix + "_OTLP_HTTP_ENDPOINT=127.0.0.1:" + strconv.Itoa(httpPort),
			"OTELCOL_METRICS_HOST=127.0.0.1", "OTELCOL_METRICS_PORT=" + strconv.Itoa(metricsPort),
		}
		if spans != "" {
			base = append(base, spanFileVar(prefix)+"="+spans)
		}
		argv := append(append([]string{argv0}, args...), "--config", filepath.Join(l.opts.Root, "deploy/collector", config))
		p, err := l.start(ctx, name, append(base, env...), argv...)
		if err != nil {
			return "", err
		}
		err = waitListening(ctx, p, grpcAddr, 30*time.Second)
		if errors.Is(err, errExited) && strings.Contains(p.tail(50), "address already in use") {
			lastErr = fmt.Errorf("%s collector, attempt %d: %w", name, attempt, err)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("%s collector: %w", name, err)
		}
		if spans != "" {
			l.stores = append(l.stores, store{name, spans})
		}
		l.metrics[name] = "127.0.0.1:" + strconv.Itoa(metricsPort)
		l.grpc[name] = grpcAddr
		return grpcAddr, nil
	}
	return "", lastErr
}

// fixedAddr is startCollectorOn's address when the caller chose it.
func fixedAddr(addr string) func() (string, error) {
	return func() (string, error) { return addr, nil }
}

// freeAddrOn picks a fresh free port on host at each call.
func freeAddrOn(host string) func() (string, error) {
	return func() (string, error) {
		port, err := freePortOn(host)
		if err != nil {
			return "", err
		}
		return net.JoinHostPort(host, strconv.Itoa(port)), nil
	}
}

// spanFileVar is the variable a config's file exporter reads its path from.
func spanFileVar(prefix string) string {
	if prefix == "HYBRID" {
		return "LOCAL_SPANS_FILE"
	}
	return prefix + "_SPANS_FILE"
}

func identityEnv(c *Cluster) []string {
	return []string{"CLUSTER_NAME=" + c.Name, "CLUSTER_REGION=" + c.Region,
		"CLOUD_PROVIDER=" + c.Provider, "ENVIRONMENT=" + c.Env, "CLUSTER_UID=lab-" + c.Short}
}

// startSpoke runs spoke.yaml for c, sending to the hub (or the gateway)
// through c's proxy.
func (l *Lab) startSpoke(ctx context.Context, c *Cluster) (string, error) {
	env := append([]string{
		"HUB_ENDPOINT=" + l.proxies[c.Name].addr(), "HUB_INSECURE=true",
		"SPOKE_QUEUE_DIR=" + filepath.Join(l.opts.Work, "queue-"+c.Short),
		"SPOKE_RETRY_MAX_INTERVAL=2s",
	}, identityEnv(c)...)
	return l.startCollector(ctx, "spoke-"+c.Short, "spoke.yaml", "SPOKE", "127.0.0.1", "", append(env, l.opts.ClusterEnv...))
}

// startHybrid runs hybrid.yaml for c: local traces to its own store,
// crossing ones to the hub through c's proxy.
func (l *Lab) startHybrid(ctx context.Context, c *Cluster) (string, error) {
	env := append([]string{
		"HUB_ENDPOINT=" + l.proxies[c.Name].addr(), "HUB_INSECURE=true",
		"HYBRID_QUEUE_DIR=" + filepath.Join(l.opts.Work, "queue-"+c.Short),
		"HYBRID_RETRY_MAX_INTERVAL=2s",
	}, identityEnv(c)...)
	return l.startCollector(ctx, "local-"+c.Short, "hybrid.yaml", "HYBRID", "127.0.0.1",
		filepath.Join(l.opts.Work, "local-"+c.Short+".jsonl"), append(env, l.opts.ClusterEnv...))
}

// peerRing picks every cluster's ring address and returns what starts
// each cluster's peer.yaml collector on it.
func (l *Lab) peerRing() (func(context.Context, *Cluster) (string, error), error) {
	rings := map[string]string{}
	var members []string
	for _, c := range l.Clusters {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		rings[c.Name] = "127.0.0.1:" + strconv.Itoa(p)
		members = append(members, rings[c.Name])
	}
	return func(ctx context.Context, c *Cluster) (string, error) {
		env := append([]string{
			"PEER_RING_ENDPOINT=" + rings[c.Name], "PEER_RING_MEMBERS=" + RingMembers(members), "PEER_RING_INSECURE=true",
			"PEER_QUEUE_DIR=" + filepath.Join(l.opts.Work, "queue-"+c.Short),
			"PEER_RETRY_MAX_INTERVAL=2s",
		}, identityEnv(c)...)
		addr, err := l.startCollector(ctx, "peer-"+c.Short, "peer.yaml", "PEER", "127.0.0.1",
			filepath.Join(l.opts.Work, "peer-"+c.Short+".jsonl"), append(env, l.opts.ClusterEnv...))
		if err != nil {
			return "", err
		}
		return addr, waitPort(ctx, rings[c.Name], 30*time.Second)
	}, nil
}

// RingMembers is the value of PEER_RING_MEMBERS: a YAML flow list.
func RingMembers(addrs []string) string { return "[" + strings.Join(addrs, ", ") + "]" }

// startCluster starts c's agent, exporting to endpoint (its cluster's
// collector), and c's services.
func (l *Lab) startCluster(ctx context.Context, c *Cluster, endpoint, bin string) error {
	identity := []string{"CLUSTER_NAME=" + c.Name, "CLUSTER_REGION=" + c.Region,
		"CLOUD_PROVIDER=" + c.Provider, "ENVIRONMENT=" + c.Env}
	statusPort, err := freePort()
	if err != nil {
		return err
	}
	status := "127.0.0.1:" + strconv.Itoa(statusPort)
	prefix := "weft-" + c.Short + "-"
	env := append(append([]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + endpoint,
		"WEFT_CLUSTER_PEERS=" + PeersEnv(l.Clusters),
		"WEFT_SPOOL_DIR=" + filepath.Join(l.opts.Work, "spool-"+c.Short),
	}, identity...), l.opts.AgentEnv...)
	agent, err := l.start(ctx, "agent-"+c.Short, env, l.opts.AgentBin, "-exe", prefix+"*", "-status-addr", status)
	if err != nil {
		return err
	}
	if _, err := agent.waitLine(ctx, "weft-agent running", 60*time.Second); err != nil {
		return err
	}
	l.agents[c.Name], l.statuses[c.Name] = agent, status

	for _, s := range c.Services {
		exe := filepath.Join(l.opts.Work, prefix+s.Name)
		if err := copyFile(bin, exe); err != nil {
			return err
		}
		argv := []string{"ip", "netns", "exec", nsName(c), exe, "-addr", "0.0.0.0:" + strconv.Itoa(s.Port)}
		if s.HTTP {
			argv = append(argv, "-http")
		}
		p, err := l.start(ctx, prefix+s.Name, []string{"OTEL_SERVICE_NAME=" + s.Name}, argv...)
		if err != nil {
			return err
		}
		if _, err := p.waitLine(ctx, "LISTEN", 30*time.Second); err != nil {
			return err
		}
	}
	// The agent has found every service (new processes come through exec).
	if _, err := agent.waitLines(ctx, "tracing process", len(c.Services), 30*time.Second); err != nil {
		return err
	}
	l.opts.Log.Info("cluster up", "cluster", c.Name, "namespace", nsName(c), "address", c.IP, "services", len(c.Services))
	return nil
}

// Send makes one request into the entry service (from the host, outside
// every cluster) with the given hop list; header adds request headers.
func (l *Lab) Send(ctx context.Context, id, route string, header http.Header) error {
	c := &l.Clusters[0]
	u := fmt.Sprintf("http://%s:%d/hop?id=%s&next=%s", c.IP, c.Services[0].Port, url.QueryEscape(id), url.QueryEscape(route))
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return fmt.Errorf("request %s: %w", id, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("request %s: %s", id, resp.Status)
	}
	return nil
}

// Partition cuts (or heals) the link between a cluster's collector and the
// hub (or the hub gateway). Peer-to-peer has no such link.
func (l *Lab) Partition(cluster string, cut bool) {
	if p := l.proxies[cluster]; p != nil {
		p.setCut(cut)
	}
}

// HubSpans reads what the hub has kept so far.
func (l *Lab) HubSpans() ([]otlpjson.Span, error) {
	if l.HubFile == "" {
		return nil, fmt.Errorf("the %s shape has no single hub", l.opts.Shape)
	}
	return readSpans(l.HubFile)
}

func readSpans(path string) ([]otlpjson.Span, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return otlpjson.ParseLines(b)
}

// Stores names every place that keeps spans in this shape: "hub", the
// hub replicas ("replica-0", ...), the clusters' own stores ("peer-east",
// "local-east", ...).
func (l *Lab) Stores() []string {
	var out []string
	for _, s := range l.stores {
		out = append(out, s.name)
	}
	return out
}

// Stored reads what every store has kept so far, by store name.
func (l *Lab) Stored() (map[string][]otlpjson.Span, error) {
	out := map[string][]otlpjson.Span{}
	for _, s := range l.stores {
		spans, err := readSpans(s.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		out[s.name] = spans
	}
	return out, nil
}

// Collectors names every collector of the lab (CollectorMetrics takes
// these names), sorted.
func (l *Lab) Collectors() []string {
	var out []string
	for name := range l.metrics {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// CollectorMetrics returns a collector's own metrics (Prometheus text):
// name is "hub", "gateway", "replica-0", "spoke-east", "peer-east",
// "local-east", ...
func (l *Lab) CollectorMetrics(name string) (string, error) {
	addr, ok := l.metrics[name]
	if !ok {
		return "", fmt.Errorf("no collector %q in the %s shape", name, l.opts.Shape)
	}
	resp, err := l.client.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", fmt.Errorf("%s metrics: %w", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("%s metrics: %w", name, err)
	}
	return string(b), nil
}

// AgentStatus is an agent's status address (/metrics, /status).
func (l *Lab) AgentStatus(cluster string) string { return l.statuses[cluster] }

// Logs lists every process's log file.
func (l *Lab) Logs() []string {
	var out []string
	for _, p := range l.procs {
		out = append(out, p.log)
	}
	return out
}

// Stop stops everything in reverse order and removes the network. Safe to
// call twice.
func (l *Lab) Stop() error {
	var errs []error
	for i := len(l.procs) - 1; i >= 0; i-- {
		if err := l.procs[i].stop(10 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", l.procs[i].name, err))
		}
	}
	l.procs = nil
	for _, p := range l.proxies {
		p.close()
	}
	teardownNetwork(l.Clusters)
	return errors.Join(errs...)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}
