package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/attribute"

	"github.com/weft-dev/weft/internal/clusters"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
)

// clusterConfig is this cluster's identity and what the agent knows of
// the other clusters (issue 8).
type clusterConfig struct {
	id    clusters.Identity
	peers clusters.Peers
	trust clusters.Trust
}

// loadClusters reads the cluster identity and the remote-cluster map:
//
//	clusterName (-cluster-name, WEFT_CLUSTER_NAME, CLUSTER_NAME)  k8s.cluster.name
//	CLOUD_PROVIDER                                                cloud.provider
//	CLUSTER_REGION                                                cloud.region
//	ENVIRONMENT                                                   deployment.environment.name
//	WEFT_CLUSTER_PEERS   <cluster>=<cidr>[,<cidr>...] entries separated by ";" or new lines
//	WEFT_TRUST_CLUSTER_CLAIMS  peers (default): callers' claims of their cluster (tracestate
//	                     weft=, X-Source-Cluster) are believed from loopback and the peer map's
//	                     addresses only; any: from every caller, outside ones too
//
// A name off the naming convention, or at odds with CLOUD_PROVIDER or
// CLUSTER_REGION, is a warning, as is WEFT_TRUST_CLUSTER_CLAIMS=any. A peer
// map or trust value that does not parse is an error, as is a peer map
// without a name for this cluster: marks need both ends.
func loadClusters(clusterName string, getenv func(string) string, log *slog.Logger) (clusterConfig, error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	id := clusters.Identity{
		Name:        strings.TrimSpace(clusterName),
		Provider:    env("CLOUD_PROVIDER"),
		Region:      env("CLUSTER_REGION"),
		Environment: env("ENVIRONMENT"),
	}
	for _, err := range id.Check() {
		log.Warn("cluster identity", "err", err)
	}
	peers, err := clusters.ParsePeers(getenv("WEFT_CLUSTER_PEERS"))
	if err != nil {
		return clusterConfig{}, fmt.Errorf("parsing WEFT_CLUSTER_PEERS: %w", err)
	}
	trust, err := clusters.ParseTrust(env("WEFT_TRUST_CLUSTER_CLAIMS"))
	if err != nil {
		return clusterConfig{}, fmt.Errorf("WEFT_TRUST_CLUSTER_CLAIMS: %w", err)
	}
	if id.Name == "" && !peers.Empty() {
		return clusterConfig{}, errors.New("WEFT_CLUSTER_PEERS is set but this cluster has no name (set CLUSTER_NAME or -cluster-name)")
	}
	if id.Name == "" {
		log.Info("no cluster name: spans carry no cluster identity and no cross-cluster marks")
		return clusterConfig{id: id}, nil
	}
	log.Info("cluster identity", "name", id.Name, "provider", id.Provider, "region", id.Region,
		"environment", id.Environment, "peers", strings.Join(peers.Clusters(), ","), "trust_claims", trust.String())
	switch {
	case trust == clusters.TrustAny:
		log.Warn("WEFT_TRUST_CLUSTER_CLAIMS=any: callers' cluster claims (tracestate weft=, X-Source-Cluster) are believed from every address; an outside caller can pass for any cluster")
	case peers.Empty():
		log.Info("no WEFT_CLUSTER_PEERS: callers' cluster claims (tracestate weft=, X-Source-Cluster) are believed from loopback only; list the clusters' CIDRs, or set WEFT_TRUST_CLUSTER_CLAIMS=any")
	case !peers.Has(id.Name):
		log.Info("WEFT_CLUSTER_PEERS lists no CIDRs of this cluster: callers in no listed cluster are not marked external, and their cluster claims are not believed", "cluster", id.Name)
	}
	return clusterConfig{id: id, peers: peers, trust: trust}, nil
}

// resource is what every span's resource gets from the cluster identity.
func (c clusterConfig) resource() []attribute.KeyValue { return c.id.Resource() }

// wrap marks spans that cross a cluster boundary on their way to next.
// Without a name for this cluster there is no boundary to speak of.
func (c clusterConfig) wrap(next spans.Sink, met *metrics.Registry) spans.Sink {
	if c.id.Name == "" {
		return next
	}
	return clusters.NewSink(next, clusters.Config{Own: c.id.Name, Peers: c.peers, Trust: c.trust}, met)
}
