package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

	// AgentEnv is added to every agent's environment (e.g. the sampler).
	AgentEnv []string
	// HubEnv is added to the hub's (HUB_SAMPLING_PERCENTAGE,
	// HUB_SLOW_THRESHOLD_MS, HUB_DECISION_WAIT).
	HubEnv []string
}

// Lab is a running three-cluster lab.
type Lab struct {
	Clusters []Cluster
	HubFile  string // OTLP JSON lines of what the hub kept

	opts     Options
	procs    []*proc // in start order; stopped in reverse
	proxies  map[string]*proxy
	agents   map[string]*proc
	statuses map[string]string // cluster → agent status address
	client   *http.Client
}

// Start builds the services, makes the network and starts hub, proxies,
// spokes, agents and services, waiting for each to be ready. On error,
// what was started is stopped.
func Start(ctx context.Context, o Options) (l *Lab, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	l = &Lab{Clusters: Topology(), opts: o, proxies: map[string]*proxy{}, agents: map[string]*proc{},
		statuses: map[string]string{}, client: &http.Client{Timeout: 30 * time.Second},
		HubFile: filepath.Join(o.Work, "hub.jsonl")}
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
	if err := l.startHub(ctx); err != nil {
		return l, err
	}
	for i := range l.Clusters {
		if err := l.startCluster(ctx, &l.Clusters[i], bin); err != nil {
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

func (l *Lab) startHub(ctx context.Context) error {
	grpcPort, err := freePort()
	if err != nil {
		return err
	}
	httpPort, _ := freePort()
	metricsPort, _ := freePort()
	addr := "127.0.0.1:" + strconv.Itoa(grpcPort)
	env := append([]string{
		"HUB_OTLP_GRPC_ENDPOINT=" + addr,
		"HUB_OTLP_HTTP_ENDPOINT=127.0.0.1:" + strconv.Itoa(httpPort),
		"HUB_SPANS_FILE=" + l.HubFile,
		"OTELCOL_METRICS_HOST=127.0.0.1", "OTELCOL_METRICS_PORT=" + strconv.Itoa(metricsPort),
	}, l.opts.HubEnv...)
	if _, err := l.start(ctx, "hub", env, l.opts.Collector, "--config", filepath.Join(l.opts.Root, "deploy/collector/hub.yaml")); err != nil {
		return err
	}
	if err := waitPort(ctx, addr, 30*time.Second); err != nil {
		return fmt.Errorf("hub collector: %w", err)
	}
	for i := range l.Clusters {
		p, err := newProxy(addr)
		if err != nil {
			return fmt.Errorf("proxy to the hub: %w", err)
		}
		l.proxies[l.Clusters[i].Name] = p
	}
	return nil
}

func (l *Lab) startCluster(ctx context.Context, c *Cluster, bin string) error {
	spokePort, err := freePort()
	if err != nil {
		return err
	}
	httpPort, _ := freePort()
	metricsPort, _ := freePort()
	spoke := "127.0.0.1:" + strconv.Itoa(spokePort)
	identity := []string{"CLUSTER_NAME=" + c.Name, "CLUSTER_REGION=" + c.Region,
		"CLOUD_PROVIDER=" + c.Provider, "ENVIRONMENT=" + c.Env}
	env := append([]string{
		"CLUSTER_UID=lab-" + c.Short,
		"HUB_ENDPOINT=" + l.proxies[c.Name].addr(), "HUB_INSECURE=true",
		"SPOKE_OTLP_GRPC_ENDPOINT=" + spoke, "SPOKE_OTLP_HTTP_ENDPOINT=127.0.0.1:" + strconv.Itoa(httpPort),
		"SPOKE_QUEUE_DIR=" + filepath.Join(l.opts.Work, "queue-"+c.Short),
		"SPOKE_RETRY_MAX_INTERVAL=2s",
		"OTELCOL_METRICS_HOST=127.0.0.1", "OTELCOL_METRICS_PORT=" + strconv.Itoa(metricsPort),
	}, identity...)
	if _, err := l.start(ctx, "spoke-"+c.Short, env, l.opts.Collector, "--config", filepath.Join(l.opts.Root, "deploy/collector/spoke.yaml")); err != nil {
		return err
	}
	if err := waitPort(ctx, spoke, 30*time.Second); err != nil {
		return fmt.Errorf("spoke of %s: %w", c.Name, err)
	}

	statusPort, err := freePort()
	if err != nil {
		return err
	}
	status := "127.0.0.1:" + strconv.Itoa(statusPort)
	prefix := "weft-" + c.Short + "-"
	env = append(append([]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + spoke,
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

// Partition cuts (or heals) the link between a cluster's spoke and the hub.
func (l *Lab) Partition(cluster string, cut bool) {
	if p := l.proxies[cluster]; p != nil {
		p.setCut(cut)
	}
}

// HubSpans reads what the hub has kept so far.
func (l *Lab) HubSpans() ([]otlpjson.Span, error) {
	b, err := os.ReadFile(l.HubFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return otlpjson.ParseLines(b)
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
