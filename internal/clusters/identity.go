package clusters

import (
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
)

// Resource attribute keys (OpenTelemetry semantic conventions).
const (
	KeyClusterName = "k8s.cluster.name"
	KeyProvider    = "cloud.provider"
	KeyRegion      = "cloud.region"
	KeyEnvironment = "deployment.environment.name"
)

// Span attribute keys of a crossing.
const (
	KeySource = "cross_cluster.source"
	KeyTarget = "cross_cluster.target"
)

// knownProviders are the cloud.provider values the conventions define.
var knownProviders = []string{"alibaba_cloud", "aws", "azure", "gcp", "heroku", "ibm_cloud", "oracle_cloud", "tencent_cloud"}

// Identity is this cluster as configured; empty fields are unknown.
type Identity struct {
	Name        string // k8s.cluster.name
	Provider    string // cloud.provider
	Region      string // cloud.region
	Environment string // deployment.environment.name
}

// Resource returns the identity's resource attributes, the known ones only.
func (id Identity) Resource() []attribute.KeyValue {
	var kvs []attribute.KeyValue
	for _, f := range []struct{ key, v string }{
		{KeyClusterName, id.Name}, {KeyProvider, id.Provider}, {KeyRegion, id.Region}, {KeyEnvironment, id.Environment},
	} {
		if f.v != "" {
			kvs = append(kvs, attribute.String(f.key, f.v))
		}
	}
	return kvs
}

// Check lists what is wrong with the identity: a name off the naming
// convention, a provider or region the name contradicts, a provider the
// conventions do not know. None of it stops the agent; callers warn.
func (id Identity) Check() []error {
	var errs []error
	if id.Provider != "" && !slices.Contains(knownProviders, id.Provider) {
		errs = append(errs, fmt.Errorf("cloud provider %q is not one of the OpenTelemetry cloud.provider values %v", id.Provider, knownProviders))
	}
	if id.Name == "" {
		return errs
	}
	if !ValidName(id.Name) {
		errs = append(errs, fmt.Errorf("cluster name %q: want up to %d letters, digits, '.', '_' or '-'", id.Name, MaxNameLen))
	}
	n, err := ParseName(id.Name)
	if err != nil {
		return append(errs, err)
	}
	if id.Provider != "" && !strings.EqualFold(n.Provider, id.Provider) {
		errs = append(errs, fmt.Errorf("cluster name %q says provider %q, CLOUD_PROVIDER says %q", id.Name, n.Provider, id.Provider))
	}
	if id.Region != "" && !strings.EqualFold(n.Region, id.Region) {
		errs = append(errs, fmt.Errorf("cluster name %q says region %q, CLUSTER_REGION says %q", id.Name, n.Region, id.Region))
	}
	return errs
}
