package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Shape is how the clusters' collectors federate (deploy/collector).
type Shape int

const (
	// HubAndSpoke: spoke.yaml in each cluster, one hub.yaml.
	HubAndSpoke Shape = iota
	// PeerToPeer: peer.yaml in each cluster, each trace stored by the
	// cluster that owns its trace ID; no hub.
	PeerToPeer
	// Hybrid: hybrid.yaml in each cluster, local traces stored there,
	// crossing ones at one hub.yaml.
	Hybrid
	// HubReplicas: spoke.yaml in each cluster, hub-gateway.yaml in front of
	// two hub.yaml replicas found by DNS name.
	HubReplicas
)

func (s Shape) String() string {
	switch s {
	case HubAndSpoke:
		return "hub-and-spoke"
	case PeerToPeer:
		return "peer-to-peer"
	case Hybrid:
		return "hybrid"
	case HubReplicas:
		return "hub×2"
	}
	return "shape(" + strconv.Itoa(int(s)) + ")"
}

// replicasName is the DNS name the gateway resolves to the replicas'
// addresses, from a hosts file of its own (see withHosts).
const replicasName = "weft-hub-replicas"

// withHosts runs a command in a mount namespace of its own in which
// $WEFT_HOSTS is /etc/hosts: the gateway resolves replicasName as a
// headless Service's DNS answer would, and the machine's /etc/hosts is
// untouched. unshare and sh exec in place, so the collector keeps the
// PID the lab signals.
const withHosts = `#!/bin/sh
exec unshare --mount --propagation private sh -c 'mount --bind "$WEFT_HOSTS" /etc/hosts && exec "$@"' with-hosts "$@"
`

type hubReplica struct {
	ip   string // a loopback address of its own: DNS lists addresses, one port for all
	proc *proc
}

// startReplicas runs n hub.yaml replicas on 127.0.0.2, 127.0.0.3, ...
// (one port) and the gateway in front of them; it returns the gateway's
// address.
func (l *Lab) startReplicas(ctx context.Context, n int) (string, error) {
	port, err := commonPort(n)
	if err != nil {
		return "", err
	}
	for i := 0; i < n; i++ {
		r := &hubReplica{ip: fmt.Sprintf("127.0.0.%d", i+2)}
		name := fmt.Sprintf("replica-%d", i)
		addr := net.JoinHostPort(r.ip, strconv.Itoa(port))
		if _, err := l.startCollectorOn(ctx, name, "hub.yaml", "HUB", fixedAddr(addr),
			filepath.Join(l.opts.Work, name+".jsonl"), l.opts.HubEnv, l.opts.Collector); err != nil {
			return "", err
		}
		r.proc = l.procs[len(l.procs)-1]
		l.replicas = append(l.replicas, r)
	}
	l.hosts = filepath.Join(l.opts.Work, "hosts")
	if err := l.writeHosts(); err != nil {
		return "", err
	}
	wrapper := filepath.Join(l.opts.Work, "with-hosts")
	if err := os.WriteFile(wrapper, []byte(withHosts), 0o755); err != nil {
		return "", fmt.Errorf("writing %s: %w", wrapper, err)
	}
	env := append([]string{"WEFT_HOSTS=" + l.hosts,
		"HUB_REPLICAS_HOSTNAME=" + replicasName, "HUB_REPLICAS_PORT=" + strconv.Itoa(port),
		"HUB_RESOLVER_INTERVAL=1s", "HUB_INSECURE=true"}, l.opts.ClusterEnv...)
	return l.startCollectorOn(ctx, "gateway", "hub-gateway.yaml", "GATEWAY", freeAddrOn("127.0.0.1"), "", env,
		wrapper, l.opts.Collector)
}

// hostsLines is the hosts file listing ips under name.
func hostsLines(name string, ips []string) string {
	var b strings.Builder
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s %s\n", ip, name)
	}
	return b.String()
}

// writeHosts lists the running replicas. It rewrites the file in place:
// the gateway sees it through a bind mount of this inode.
func (l *Lab) writeHosts() error {
	var ips []string
	for _, r := range l.replicas {
		if r.proc != nil {
			ips = append(ips, r.ip)
		}
	}
	if err := os.WriteFile(l.hosts, []byte(hostsLines(replicasName, ips)), 0o644); err != nil {
		return fmt.Errorf("writing the gateway's hosts file: %w", err)
	}
	return nil
}

// StopReplica does what Kubernetes does when a hub replica's pod is
// deleted: the replica leaves the DNS answer and gets SIGTERM at once;
// it has grace to decide what it holds.
func (l *Lab) StopReplica(i int) error {
	if i < 0 || i >= len(l.replicas) || l.replicas[i].proc == nil {
		return fmt.Errorf("no running replica %d", i)
	}
	p := l.replicas[i].proc
	l.replicas[i].proc = nil
	if err := l.writeHosts(); err != nil {
		return err
	}
	if err := p.stop(30 * time.Second); err != nil {
		return fmt.Errorf("stopping replica %d: %w", i, err)
	}
	return nil
}

// commonPort finds a port free on 127.0.0.2 ... 127.0.0.(n+1) alike.
func commonPort(n int) (int, error) {
	for attempt := 0; attempt < 20; attempt++ {
		port, err := freePortOn("127.0.0.2")
		if err != nil {
			return 0, err
		}
		free := true
		for i := 1; i < n && free; i++ {
			l, err := net.Listen("tcp", net.JoinHostPort(fmt.Sprintf("127.0.0.%d", i+2), strconv.Itoa(port)))
			if err != nil {
				free = false
				continue
			}
			l.Close()
		}
		if free {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free on %d loopback addresses", n)
}
