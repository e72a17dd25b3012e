// Package lab runs weft's three-cluster lab on one machine: each cluster
// is a network namespace holding its unmodified services, with its own
// weft agent and spoke collector; the spokes forward to one hub collector
// that tail-samples. The demo (cmd/weft-demo) and the end-to-end test
// (test/multicluster, beside it) both drive it; it is test tooling, not
// agent code, and builds without the e2e tag because the demo imports it.
//
// Agents and collectors run in the host's namespace (BPF and /proc are
// the host's anyway); services run in their cluster's namespace and call
// other clusters across veth pairs on one bridge, so a peer's address
// says which cluster it is in. Each spoke reaches the hub through a proxy
// the lab can cut, to partition one cluster from the hub.
package lab

import (
	"fmt"
	"net/netip"
	"strings"
)

// Cluster is one simulated cluster.
type Cluster struct {
	Name     string // k8s.cluster.name, by the convention <provider>-<region>-<purpose>-<number>
	Short    string // namespace and executable prefix: weft-<Short>
	Provider string // cloud.provider
	Region   string // cloud.region
	Env      string // deployment.environment.name
	Subnet   netip.Prefix
	IP       netip.Addr // its services listen here (and on its loopback)
	Services []Service
}

// Service is one unmodified program: grpcserver, speaking gRPC or HTTP/1.
type Service struct {
	Name string // service.name
	HTTP bool   // serves HTTP/1.1 GET /hop instead of gRPC
	Port int
}

// Topology is the seed's picture: a request enters api-gateway in
// us-east-1, goes through auth and user, crosses to order, inventory and
// shipping in us-west-2, then to payment and billing in eu-west-1.
func Topology() []Cluster {
	mk := func(short, region string, n int, svcs ...Service) Cluster {
		ip := netip.AddrFrom4([4]byte{10, 99, byte(n), 2})
		return Cluster{
			Name: "aws-" + region + "-shop-01", Short: short, Provider: "aws", Region: region, Env: "demo",
			Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(n), 0}), 24), IP: ip, Services: svcs,
		}
	}
	return []Cluster{
		mk("east", "us-east-1", 1,
			Service{Name: "api-gateway", HTTP: true, Port: 8080},
			Service{Name: "auth", Port: 9090},
			Service{Name: "user", HTTP: true, Port: 8081}),
		mk("west", "us-west-2", 2,
			Service{Name: "order", Port: 9091},
			Service{Name: "inventory", HTTP: true, Port: 8082},
			Service{Name: "shipping", Port: 9092}),
		mk("eu", "eu-west-1", 3,
			Service{Name: "payment", HTTP: true, Port: 8083},
			Service{Name: "billing", Port: 9093}),
	}
}

// hop is how a caller in cluster from addresses service s of cluster to.
func hop(from, to *Cluster, s Service) string {
	host := "127.0.0.1" // inside a cluster: its own loopback
	if from != to {
		host = to.IP.String()
	}
	scheme := "grpc"
	if s.HTTP {
		scheme = "http"
	}
	return fmt.Sprintf("%s://%s:%d", scheme, host, s.Port)
}

// Route is the hop list the entry service (the first service of the first
// cluster) relays: every other service once, in order, then extra
// pseudo-hops ("fail", "sleep=D").
func Route(clusters []Cluster, extra ...string) string {
	var hops []string
	prev := &clusters[0]
	for i := range clusters {
		c := &clusters[i]
		for j, s := range c.Services {
			if i == 0 && j == 0 {
				continue // the entry: the request is sent to it
			}
			hops = append(hops, hop(prev, c, s))
			prev = c
		}
	}
	return strings.Join(append(hops, extra...), " ")
}

// LocalRoute stays in the first cluster.
func LocalRoute(clusters []Cluster, extra ...string) string {
	c := &clusters[0]
	var hops []string
	for _, s := range c.Services[1:] {
		hops = append(hops, hop(c, c, s))
	}
	return strings.Join(append(hops, extra...), " ")
}

// PeersEnv is the agents' map of clusters to address ranges.
func PeersEnv(clusters []Cluster) string {
	var parts []string
	for _, c := range clusters {
		parts = append(parts, c.Name+"="+c.Subnet.String())
	}
	return strings.Join(parts, ";")
}

// ClusterOf finds the cluster a service runs in.
func ClusterOf(clusters []Cluster, service string) *Cluster {
	for i := range clusters {
		for _, s := range clusters[i].Services {
			if s.Name == service {
				return &clusters[i]
			}
		}
	}
	return nil
}
