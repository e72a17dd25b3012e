package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/weft-dev/weft/internal/k8smeta"
	"github.com/weft-dev/weft/internal/metrics"
)

// kubeOptions say whether and how the agent reads Kubernetes.
type kubeOptions struct {
	on          bool   // -kubernetes (default: when NODE_NAME is set, as the DaemonSet does)
	kubeconfig  string // -kubeconfig; empty: in-cluster
	nodeName    string // -node-name / NODE_NAME
	clusterName string // -cluster-name / WEFT_CLUSTER_NAME, CLUSTER_NAME
}

// startKube starts the pod metadata store: informers for this node's pods
// and their owners. The store serves pods' tracing switch (selection) and
// resource attributes (enrichment); it keeps serving from its cache when
// the API server is down.
func startKube(ctx context.Context, o kubeOptions, log *slog.Logger) (*k8smeta.Store, error) {
	if o.nodeName == "" {
		return nil, fmt.Errorf("kubernetes: no node name (set NODE_NAME from the downward API, or -node-name)")
	}
	routeKlog(log)
	var cfg *rest.Config
	var err error
	if o.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client configuration: %w", err)
	}
	client, err := k8smeta.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	store, err := k8smeta.New(k8smeta.Config{Client: client, NodeName: o.nodeName, ClusterName: o.clusterName,
		Logger: log.With("component", "k8smeta")})
	if err != nil {
		return nil, err
	}
	if err := store.Start(ctx); err != nil {
		return nil, fmt.Errorf("kubernetes: starting informers: %w", err)
	}
	return store, nil
}

// podAttributes gives a process its pod's resource attributes (and the
// node's and cluster's for processes outside pods).
func podAttributes(store *k8smeta.Store) func(pid int) []attribute.KeyValue {
	return func(pid int) []attribute.KeyValue {
		a, _, err := store.LookupPID("/proc", pid)
		if err != nil {
			return nil
		}
		return a.KeyValues()
	}
}

func firstEnv(keys ...string) string {
	for _, k := range keys {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}

// routeKlog sends what client-go logs through klog (to stderr, in klog's
// own format, by default) to the agent's logger. klog is process-wide.
func routeKlog(log *slog.Logger) {
	klog.SetSlogLogger(log.With("component", "client-go"))
}

// kubeMetrics exports the metadata store's state.
func kubeMetrics(met *metrics.Registry, store *k8smeta.Store) {
	met.Gauge("weft_k8s_apiserver_up", "1 while the API server answers its health check; 0: serving cached metadata",
		func() float64 { return b2f(store.APIServerUp()) })
	met.Gauge("weft_k8s_synced", "1 once every informer has listed its resources", func() float64 { return b2f(store.Synced()) })
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
