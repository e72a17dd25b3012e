// Package clusters says which cluster a span ran in and where a call
// crossed from one cluster into another, so that a trace assembled at the
// hub from several clusters' agents reads as one journey.
//
// Identity: every span's resource gets k8s.cluster.name, cloud.provider,
// cloud.region and deployment.environment.name from configuration
// (Identity). Cluster names follow <provider>-<region>-<purpose>-<number>,
// e.g. aws-us-east-1-prod-01; a name that does not, or that disagrees with
// the configured provider or region, is reported, never refused.
//
// Boundaries: a Sink adds cross_cluster.source and cross_cluster.target to
//
//   - a CLIENT span whose peer address (network.peer.address, else
//     server.address when it is an IP) lies in a CIDR of another cluster of
//     the peer map: source is this cluster, target that one;
//   - a SERVER span whose caller is in another cluster: source is the
//     caller's cluster, target this one. The caller's cluster is, first
//     found: the "weft" member of the request's tracestate (weft=<cluster>,
//     added by the calling weft agent); the X-Source-Cluster request header
//     (sent by clients without weft, such as load generators); the peer
//     map's cluster of the peer address; or "external" when the address is
//     in no listed cluster, this cluster's own CIDRs are listed (without
//     them an in-cluster caller cannot be told from an outside one), and
//     the address is not loopback, link-local, multicast or unspecified.
//
// A caller that names this cluster, or an address in this cluster's CIDRs,
// marks nothing. Claims (tracestate, header) come before the address
// because the address lies behind proxies and sidecars, where every caller
// seems local. A claim whose value is not a valid cluster name is ignored
// (and counted), and the next source is asked.
//
// Trust: a well-formed claim is believed only from a caller whose network
// peer address (network.peer.address, never client.address, which may come
// from a forwarding header) is loopback (this pod's or node's network
// namespace, e.g. a sidecar) or lies in a prefix of the peer map, of any
// cluster, this one's own included. From any other caller, or one whose
// address is unknown, the claim is refused (reason untrusted_source), so
// that an outside caller cannot pass for a peer cluster; without a peer map
// only loopback callers are believed. A claim of this cluster from an
// address in another cluster's prefix is refused too (denies_crossing): a
// claim may say which cluster a crossing came from, but not deny a crossing
// the address shows. A refused claim is counted and the next source asked,
// the address last. Config.Trust = TrustAny believes every claim, as before
// these checks. Proxies in this cluster relay claims they were sent: strip
// X-Source-Cluster and tracestate's weft member from outside requests at
// the edge.
//
// The peer map (ParsePeers) is a list of <cluster>=<cidr>[,<cidr>...]
// entries separated by ";" or new lines; the longest matching prefix wins.
package clusters
