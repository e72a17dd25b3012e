// Command weft-agent traces unmodified programs on this node: it selects
// processes, attaches the probe families to them, and exports their spans.
//
// The pipeline, top to bottom:
//
//	discovery (which processes) → probe families: capture source → connection
//	table → protocol parsers (spans) → span stages → export (OTLP, console, jsonl)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/discovery"
	"github.com/weft-dev/weft/internal/inject"
	"github.com/weft-dev/weft/internal/k8smeta"
	"github.com/weft-dev/weft/internal/kernelfs"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/probes/gogrpc"
	"github.com/weft-dev/weft/internal/probes/gohttp"
	"github.com/weft-dev/weft/internal/probes/gospawn"
	injectprobe "github.com/weft-dev/weft/internal/probes/inject"
	"github.com/weft-dev/weft/internal/probes/sockio"
	"github.com/weft-dev/weft/internal/probes/tcpopt"
	"github.com/weft-dev/weft/internal/protocols/http1"
	"github.com/weft-dev/weft/internal/protocols/http2"
	"github.com/weft-dev/weft/internal/protocols/tcpconnect"
	"github.com/weft-dev/weft/internal/redact"
	"github.com/weft-dev/weft/internal/selection"
	"github.com/weft-dev/weft/internal/spanmetrics"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/statusserver"
)

// version is set by the build (-ldflags -X main.version=...).
var version = "dev"

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	pids, exes, ports listFlag
	exporter          string
	serviceName       string
	statusAddr        string
	statusLocalAddr   string
	maxHeaderBytes    int
	maxConns          int
	maxConnBytes      int
	capture           string
	logLevel          string
	pprof             bool
	inject            bool
	propagation       propagation
	goroutines        string
	cgroup            string
	kube              kubeOptions
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("weft-agent", flag.ContinueOnError)
	fs.Var(&o.pids, "pid", "trace this process id (repeatable; env WEFT_PIDS, comma-separated)")
	fs.Var(&o.exes, "exe", "trace executables matching this glob, full path or base name (repeatable; env WEFT_EXES)")
	fs.Var(&o.ports, "port", "trace processes listening on this TCP port (repeatable; env WEFT_PORTS)")
	fs.StringVar(&o.exporter, "exporter", envOr("WEFT_EXPORTER", "otlp"), "otlp (OTEL_EXPORTER_OTLP_* settings apply), console or jsonl")
	fs.StringVar(&o.serviceName, "service-name", os.Getenv("WEFT_SERVICE_NAME"), "service.name for traced processes (default: executable name; OTEL_SERVICE_NAME wins)")
	fs.StringVar(&o.statusAddr, "status-addr", envOr("WEFT_STATUS_ADDR", "127.0.0.1:9464"), "address of /metrics, /healthz and /readyz (and /status when it is loopback); empty to disable")
	fs.StringVar(&o.statusLocalAddr, "status-local-addr", envOr("WEFT_STATUS_LOCAL_ADDR", "127.0.0.1:9465"), "loopback address of /status when -status-addr is not loopback; empty to disable")
	fs.IntVar(&o.maxHeaderBytes, "max-header-bytes", 8192, "HTTP heads longer than this are skipped and counted")
	fs.IntVar(&o.maxConns, "max-conns", conntrack.DefaultMaxConns, "connections the agent keeps parser state for (env WEFT_MAX_CONNS); past it the least recently active are dropped and counted")
	fs.IntVar(&o.maxConnBytes, "max-conn-bytes", conntrack.DefaultMaxBytes, "bytes of parser state the agent keeps for all connections (env WEFT_MAX_CONN_BYTES); past it the least recently active are dropped and counted")
	fs.StringVar(&o.capture, "capture", envOr("WEFT_CAPTURE", sockio.SourceAuto), "how socket bytes are captured (env WEFT_CAPTURE): auto (the cheapest this kernel has), sock_tracepoints (Linux 6.3+) or syscalls (any kernel)")
	fs.BoolVar(&o.inject, "inject", os.Getenv("WEFT_INJECT") != "false", "insert traceparent into traced Go clients' HTTP/1 requests at the socket layer (env WEFT_INJECT=false to switch off)")
	prop := fs.String("propagation", envOr("WEFT_PROPAGATION", "headers,tcp"), "how trace context reaches the next hop (env WEFT_PROPAGATION): headers,tcp, headers (traceparent in traced Go clients' HTTP requests), tcp (a TCP header option on each request's first segment: any payload, any server) or none")
	fs.StringVar(&o.goroutines, "go-goroutines", envOr("WEFT_GO_GOROUTINES", gospawn.ModeAuto), "how far a Go call is linked up its goroutines (env WEFT_GO_GOROUTINES): parent (the goroutine serving a request and the ones it starts; no extra cost), tree (any depth, and a goroutine stays its request's after the response: one uprobe hit per goroutine started) or auto (parent, and tree for an executable once one of its calls would be a root while its process serves)")
	fs.StringVar(&o.cgroup, "cgroup2", envOr("WEFT_CGROUP2", inject.DefaultCgroup), "cgroup mount whose v2 hierarchy (itself, or its \"unified\" folder on hybrid hosts) the injector's sockops program covers")
	fs.BoolVar(&o.pprof, "pprof", false, "serve Go profiles under /debug/pprof on the status address")
	fs.BoolVar(&o.kube.on, "kubernetes", envOr("WEFT_KUBERNETES", map[bool]string{true: "true", false: "false"}[os.Getenv("NODE_NAME") != ""]) == "true",
		"trace the processes of this node's pods annotated weft.dev/trace=enabled (or in such namespaces), with their pod's metadata (default: when NODE_NAME is set)")
	fs.StringVar(&o.kube.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (default: in-cluster)")
	fs.StringVar(&o.kube.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (env NODE_NAME, from the downward API)")
	fs.StringVar(&o.kube.clusterName, "cluster-name", firstEnv("WEFT_CLUSTER_NAME", "CLUSTER_NAME"), "k8s.cluster.name of every span")
	fs.StringVar(&o.logLevel, "log-level", envOr("WEFT_LOG_LEVEL", "info"), "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if o.propagation, err = parsePropagation(*prop); err != nil {
		return o, err
	}
	// -inject=false (WEFT_INJECT=false), older than -propagation, still
	// switches the header channel off.
	o.propagation.headers = o.propagation.headers && o.inject
	switch o.goroutines {
	case gospawn.ModeParent, gospawn.ModeAuto, gospawn.ModeTree:
	default:
		return o, fmt.Errorf("-go-goroutines %q: want %s, %s or %s", o.goroutines, gospawn.ModeAuto, gospawn.ModeParent, gospawn.ModeTree)
	}
	switch o.capture {
	case sockio.SourceAuto, sockio.SourceSockTracepoints, sockio.SourceSyscalls:
	default:
		return o, fmt.Errorf("-capture %q: want %s, %s or %s", o.capture, sockio.SourceAuto, sockio.SourceSockTracepoints, sockio.SourceSyscalls)
	}
	if err := envInts(fs, map[string]struct {
		env string
		dst *int
	}{"max-conns": {"WEFT_MAX_CONNS", &o.maxConns}, "max-conn-bytes": {"WEFT_MAX_CONN_BYTES", &o.maxConnBytes}}); err != nil {
		return o, err
	}
	return o, nil
}

// envInts fills numeric options a flag did not set from the environment;
// a value that is not a number is an error naming it.
func envInts(fs *flag.FlagSet, vars map[string]struct {
	env string
	dst *int
}) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, v := range vars {
		s := os.Getenv(v.env)
		if set[name] || s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%s=%q: not a number: %w", v.env, s, err)
		}
		*v.dst = n
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "status" {
		if err := statusCommand(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "weft-agent status:", err)
			os.Exit(1)
		}
		return
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "weft-agent:", err)
		os.Exit(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "weft-agent: bad -log-level:", err)
		os.Exit(2)
	}
	// Logs go to stderr: stdout belongs to the console and jsonl exporters.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	setMemoryLimit(log, os.ReadFile)
	setProcs(log, os.Getenv)
	allowBPFMemory(log)
	if err := run(o, log); err != nil {
		log.Error("weft-agent stopped", "err", err)
		os.Exit(1)
	}
}

// component is what run starts and, in reverse order, shuts down.
type component interface {
	Shutdown(ctx context.Context) error
}

// run builds the pipeline and runs it until a signal:
//
//	discovery → probe families: capture source → connection table → protocol parsers
//	          → span stages (cross-cluster marks, metrics, sampling) → export
//
// Each stage is made with the stage after it, so they are built from the
// export end; the probe families start in the order they depend on each
// other, and everything stops in reverse.
func run(o options, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	standalone, err := selection.ParseStandalone(o.pids, o.exes, o.ports, os.Getenv)
	if err != nil {
		return fmt.Errorf("reading the selection: %w", err)
	}
	clusters, err := loadClusters(o.kube.clusterName, os.Getenv, log)
	if err != nil {
		return fmt.Errorf("reading the cluster identity: %w", err)
	}
	sampling, err := loadSampling(os.Getenv)
	if err != nil {
		return fmt.Errorf("reading the sampler: %w", err)
	}
	met := metrics.New()
	live := statusserver.NewLiveness(nil)
	var started []component
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := len(started) - 1; i >= 0; i-- {
			if err := started[i].Shutdown(sctx); err != nil {
				log.Warn("shutdown", "err", err)
			}
		}
		log.Info("detached and stopped")
	}()

	// Export, and the stages a span passes on its way there: cross-cluster
	// marks, then metrics (every span counted where the alerts look,
	// sampled or not), then the head sampler.
	// Spans' attribute arrays go round: the protocols take them, the
	// exporter gives them back once a span is encoded.
	attrs := &spans.AttrPool{}
	sink, exp, err := newSink(ctx, o.exporter, attrs, met, live, log)
	if err != nil {
		return err
	}
	if exp != nil {
		started = append(started, exp)
	}
	sink = sampling.wrap(sink, met)
	sink = spanmetrics.New(sink, met, o.kube.clusterName)
	sink = clusters.wrap(sink, met)

	// Protocols: what the connection table parses captured bytes as. A
	// connection is HTTP/1 unless another protocol claims its first bytes.
	// URLs lose their secrets before they become attributes.
	red := redaction(os.Getenv)
	// Client spans ask the injector whether it rewrote a forwarded
	// traceparent; the injector is made below (it needs sockio, which
	// needs the protocols), before anything is captured.
	var inj *injectprobe.Probe
	forwarded := func(span [8]byte) bool { return inj != nil && inj.Forwarded(span) }
	// HTTP/2 streams of connections open before tracing began ask the
	// gRPC probe (made below too) for the paths HPACK hid.
	var grpcProbe *gogrpc.Probe
	names := namerFunc(func(pid uint32) {
		if grpcProbe != nil {
			grpcProbe.WantNames(pid)
		}
	})
	protocols := conntrack.Protocols{
		Fallback: http1.New(http1.Config{Sink: sink, Metrics: met, MaxHeaderBytes: o.maxHeaderBytes, Redact: red, Attrs: attrs,
			Forwarded: forwarded}),
		Sniffed: []conntrack.Protocol{
			http2.New(http2.Config{Sink: sink, Metrics: met, Redact: red, Attrs: attrs, Names: names,
				Forwarded: forwarded}),
		},
		// Calls whose connect failed before a byte was sent.
		Failed: tcpconnect.New(tcpconnect.Config{Sink: sink, Metrics: met}),
	}

	// Probe families, each listed after those it uses; each starts once
	// those have, beside the others. sockio captures traced sockets' bytes
	// (capture source → connection table → protocols); the injector and
	// the Go probes share its kernel maps, gohttp the injector's too.
	// Tracepoint links find their event IDs in tracefs, and cilium/ebpf
	// remembers the first time it found none: it is mounted (where the
	// host has not) before any family attaches.
	if err := kernelfs.EnsureTracefs(); err != nil {
		return err
	}
	board := status.New(met)
	board.SetKernel(kernelRelease())
	pcfg := probes.Config{
		MaxHeaderBytes:         o.maxHeaderBytes,
		InjectHTTP1Bytes:       inject.HTTP1Added("weft", o.kube.clusterName),
		InjectHTTP1MergedBytes: inject.HTTP1MergedAdded("weft", o.kube.clusterName),
		MaxConns:               o.maxConns,
		MaxConnBytes:           o.maxConnBytes,
		Capture:                o.capture,
		TCPOption:              o.propagation.tcp,
		Headers:                o.propagation.headers,
	}
	sampling.probes(&pcfg)
	// The kernel's BTF is decoded once for the families' BPF loads.
	kernelBTF := probes.NewKernelBTF()
	deps := probes.Deps{Log: log, Metrics: met, Status: board, Config: pcfg, Live: live, BTF: kernelBTF}
	sock := sockio.New(deps, protocols)
	inj = injectprobe.New(deps, sock, injectprobe.Config{On: o.propagation.headers, Cgroup: o.cgroup, Cluster: o.kube.clusterName})
	opt := tcpopt.New(deps, sock, tcpopt.Config{On: o.propagation.tcp, Cgroup: o.cgroup})
	grpcProbe = gogrpc.New(deps, sock)
	families := probes.NewFamilies(log, board, sock, inj, opt, gohttp.New(deps, sock, inj), grpcProbe,
		gospawn.New(deps, sock, gospawn.Config{Mode: o.goroutines}))
	started = append(started, families)
	if err := families.Start(ctx); err != nil {
		return err
	}
	// Dropped before discovery reads executables: held through the scan,
	// it raised the agent's peak RSS by 7 MiB (1,000 processes).
	kernelBTF.Release()

	// Discovery: which processes the families trace, and their identity.
	resCfg := discovery.ResourceConfig{ServiceName: o.serviceName, Version: version}
	var store *k8smeta.Store
	var sel selection.Selector = standalone
	if o.kube.on {
		if store, err = startKube(ctx, o.kube, log); err != nil {
			return err
		}
		started = append(started, store)
		kubeMetrics(met, store)
		sel = selection.Any{standalone, k8smeta.Selector{Store: store, ProcRoot: "/proc", Unified: k8smeta.UnifiedCgroups()}}
		resCfg.Extra = podAttributes(store)
	}
	resCfg.Extra = withIdentity(clusters.resource(), resCfg.Extra)
	// The kernel selects the next processes of an executable already
	// selected at their exec (sockio's exec_sel): short-lived ones too.
	shared, err := sock.Maps()
	if err != nil {
		return err
	}
	disc := discovery.New(discovery.Config{Selector: sel, NeedsPorts: standalone.NeedsPorts(),
		Resource: resCfg, GoFields: append(append([]string{}, sockio.GoFields...), gohttp.GoFields...), ExecSel: shared.ExecSel,
		SyscallsTraced: sock.Source() == sockio.SourceSyscalls, Status: board}, log, met, families)
	if store != nil {
		// A pod switched on or off: decide again for every process. Told
		// before discovery's first scan, which may decide on a switch that
		// moves while it runs (a Recheck waits for the scan's end).
		store.OnSwitch(func(string, bool) { disc.Recheck() })
	}
	if err := disc.Start(ctx); err != nil {
		return fmt.Errorf("starting discovery: %w", err)
	}
	// Discovery stops first so no process is tracked during teardown.
	started = append(started, disc)

	if o.statusAddr != "" {
		srv, err := statusserver.Start(statusserver.Config{PublicAddr: o.statusAddr, LocalAddr: o.statusLocalAddr,
			Pprof: o.pprof, Metrics: met, Status: board, Live: live, Log: log,
			// Ready once the probes are attached, discovery has scanned and,
			// in Kubernetes, the pod metadata cache has synced.
			Ready: func() bool { return store == nil || store.Synced() }})
		if err != nil {
			return err
		}
		started = append(started, srv)
	}
	log.Info("weft-agent running", "version", version, "exporter", o.exporter, "families", families.Names(),
		"sampler", sampling.sampler.String())
	<-ctx.Done()
	log.Info("signal received; detaching")
	return nil
}

// redaction is the URL redaction policy: the default secret query keys,
// WEFT_REDACT_QUERY_KEYS (comma-separated) added, and the whole query kept
// as sent when WEFT_KEEP_RAW_QUERY=true (userinfo is replaced regardless).
func redaction(getenv func(string) string) redact.Policy {
	p := redact.Default()
	if keys := getenv("WEFT_REDACT_QUERY_KEYS"); keys != "" {
		p = p.With(strings.Split(keys, ",")...)
	}
	return p.KeepQuery(getenv("WEFT_KEEP_RAW_QUERY") == "true")
}

// withIdentity adds the configured cluster identity after a process's own
// extra attributes (its pod's): configuration wins over what the node's
// labels say (cloud.region). The identity holds only what was set.
func withIdentity(identity []attribute.KeyValue, extra func(pid int) []attribute.KeyValue) func(pid int) []attribute.KeyValue {
	if len(identity) == 0 {
		return extra
	}
	return func(pid int) []attribute.KeyValue {
		if extra == nil {
			return identity
		}
		return append(append([]attribute.KeyValue(nil), extra(pid)...), identity...)
	}
}

// namerFunc makes a function an http2.StreamNamer.
type namerFunc func(pid uint32)

func (f namerFunc) WantNames(pid uint32) { f(pid) }
