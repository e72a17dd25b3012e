package lab

import (
	"fmt"
	"os/exec"
	"strings"
)

// bridge joins the clusters' namespaces; the host is 10.99.0.1 on it.
const (
	bridge     = "weftlab0"
	bridgeAddr = "10.99.0.1/16"
)

func nsName(c *Cluster) string   { return "weft-" + c.Short }
func vethName(c *Cluster) string { return "wl-" + c.Short }

// run runs a command, with its output in the error.
func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupNetwork makes the bridge and one namespace per cluster, joined to
// it by a veth pair, with the cluster's address and a route to the host.
func setupNetwork(clusters []Cluster) error {
	teardownNetwork(clusters) // what a killed earlier run left
	steps := [][]string{
		{"ip", "link", "add", bridge, "type", "bridge"},
		{"ip", "addr", "add", bridgeAddr, "dev", bridge},
		{"ip", "link", "set", bridge, "up"},
	}
	for i := range clusters {
		c := &clusters[i]
		ns, veth := nsName(c), vethName(c)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "link", "set", veth, "master", bridge},
			[]string{"ip", "link", "set", veth, "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "-n", ns, "addr", "add", c.IP.String() + "/16", "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", ns, "route", "add", "default", "via", strings.Split(bridgeAddr, "/")[0]},
		)
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			teardownNetwork(clusters)
			return fmt.Errorf("setting up the lab network: %w", err)
		}
	}
	return nil
}

// teardownNetwork removes the namespaces (their veth ends go with them)
// and the bridge; what is already gone is fine.
func teardownNetwork(clusters []Cluster) {
	for i := range clusters {
		exec.Command("ip", "netns", "del", nsName(&clusters[i])).Run()
		exec.Command("ip", "link", "del", vethName(&clusters[i])).Run()
	}
	exec.Command("ip", "link", "del", bridge).Run()
}
