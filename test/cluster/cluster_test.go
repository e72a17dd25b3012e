//go:build e2e

// Package cluster runs weft as users do: on a real one-node Kubernetes
// cluster (scripts/cluster.sh: etcd, kube-apiserver, controller-manager,
// scheduler, containerd, kubelet, bridge CNI), installed with
// `kubectl apply -k deploy/daemonset` from an image built by
// build/Containerfile without a registry. `make e2e` runs it (the build
// tag keeps it out of `go test ./...`: it owns the node's cluster ports).
package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

const node = "weft-node"

type cluster struct {
	root, kubeconfig, kubectl string
}

// TestDaemonSetOnRealCluster: the DaemonSet runs on a real node; demo pods
// in an annotated namespace are traced with their real pod metadata, the
// same image in a plain namespace is not, until its namespace is
// annotated at runtime. Teardown leaves nothing behind.
func TestDaemonSetOnRealCluster(t *testing.T) {
	kernel.Require(t) // it runs a kubelet, containerd and the agent's BPF
	c := up(t)
	col := otelcol.Start(t)
	tmp := t.TempDir()

	// Images, built from Containerfiles by buildah and imported into the
	// node's containerd: the agent's own, and the unmodified demo server.
	agentCtx, appCtx := filepath.Join(tmp, "agent"), filepath.Join(tmp, "app")
	c.goBuild(t, ".", "./cmd/agent", filepath.Join(agentCtx, "weft-agent"))
	c.goBuild(t, "testdata/httpserver", ".", filepath.Join(appCtx, "app")) // its own module
	c.script(t, "image", "localhost/weft-agent:dev", agentCtx, filepath.Join(c.root, "build/Containerfile"))
	c.script(t, "image", "localhost/weft-demo:dev", appCtx, filepath.Join(c.root, "testdata/pause/Containerfile"))

	// deploy/daemonset as is, through an overlay with what this node
	// needs: the local collector, no kube-proxy (host network, API server
	// on loopback), the imported image.
	overlay := filepath.Join(tmp, "overlay")
	os.MkdirAll(overlay, 0o755)
	base, _ := filepath.Rel(overlay, filepath.Join(c.root, "deploy/daemonset"))
	writeFile(t, filepath.Join(overlay, "kustomization.yaml"), fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [%s]
configMapGenerator:
  - name: weft-config
    behavior: merge
    literals: [cluster-name=e2e-node, otlp-endpoint=http://%s]
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: DaemonSet
      metadata: {name: weft-agent, namespace: weft-system}
      spec:
        template:
          spec:
            hostNetwork: true
            dnsPolicy: ClusterFirstWithHostNet
            containers:
              - name: agent
                imagePullPolicy: Never
                env:
                  - {name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1"}
                  - {name: KUBERNETES_SERVICE_PORT, value: "6443"}
            volumes:
              - name: spool
                hostPath: {path: /var/lib/weft-cluster/agent-spool, type: DirectoryOrCreate}
`, base, col.Endpoint))
	t.Log(c.run(t, "apply", "-k", overlay))
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.cmd("-n", "weft-system", "logs", "ds/weft-agent", "--tail=60").CombinedOutput()
			t.Logf("agent log:\n%s", out)
		}
	})
	c.run(t, "-n", "weft-system", "rollout", "status", "ds/weft-agent", "--timeout=180s")

	traced := c.demo(t, "traced", true)
	plain := c.demo(t, "plain", false)

	// The agent attaches after the pod starts; wait for its first span.
	deadline := time.Now().Add(90 * time.Second)
	for n := 0; len(spansWith(col.Spans(t), "warm-")) == 0; n++ {
		if time.Now().After(deadline) {
			t.Fatal("no span from the annotated namespace's pod in 90 s")
		}
		get(t, traced.ip, fmt.Sprintf("warm-%d", n))
		time.Sleep(500 * time.Millisecond)
	}
	const n = 20
	for i := range n {
		get(t, traced.ip, fmt.Sprintf("t-%d", i))
		get(t, plain.ip, fmt.Sprintf("p-%d", i))
	}
	got := col.WaitSpans(t, n, 60*time.Second, func(s otelcol.Span) bool { return hasID(s, "t-") })
	time.Sleep(3 * time.Second) // time for spans that must not come
	if p := spansWith(col.Spans(t), "p-"); len(p) != 0 {
		t.Errorf("%d spans from the plain namespace's pod", len(p))
	}
	want := map[string]string{
		"k8s.namespace.name": "traced", "k8s.pod.name": traced.name, "k8s.pod.uid": traced.uid,
		"k8s.container.name": "shop", "container.id": traced.containerID, "k8s.node.name": node,
		"k8s.deployment.name": "shop", "k8s.cluster.name": "e2e-node", "service.name": "shop",
		"service.version": "1.2.3", "service.namespace": "traced",
	}
	for _, s := range got {
		for k, v := range want {
			if s.Resource[k] != v {
				t.Errorf("span %s: resource %s = %v, want %q", s.SpanID, k, s.Resource[k], v)
			}
		}
		if uid, _ := s.Resource["k8s.cluster.uid"].(string); uid == "" {
			t.Errorf("span %s: no k8s.cluster.uid", s.SpanID)
		}
		if s.Kind != 2 {
			t.Errorf("span %s: kind %d, want 2 (server)", s.SpanID, s.Kind)
		}
	}
	t.Logf("%d spans from pod %s with its metadata, none from %s", len(got), traced.name, plain.name)

	// Switched on at runtime, without restarting the plain pod.
	c.run(t, "annotate", "namespace", "plain", "weft.dev/trace=enabled")
	deadline = time.Now().Add(30 * time.Second)
	for i := 0; len(spansWith(col.Spans(t), "on-")) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("annotating the plain namespace gave no span in 30 s")
		}
		get(t, plain.ip, fmt.Sprintf("on-%d", i))
		time.Sleep(250 * time.Millisecond)
	}
	if restarts := c.run(t, "-n", "plain", "get", "pod", plain.name, "-o", "jsonpath={.status.containerStatuses[0].restartCount}"); restarts != "0" {
		t.Errorf("plain pod restarted %s times", restarts)
	}

	// Pod to pod across the CNI bridge: the traced pod's call to the other
	// carries its context, so the callee's server span is the caller's
	// client span's child, in the caller's trace.
	const calls = 10
	for i := range calls {
		to := fmt.Sprintf("http://%s:8080/work?id=callee-%d", plain.ip, i)
		resp, err := http.Get(fmt.Sprintf("http://%s:8080/call?id=caller-%d&to=%s", traced.ip, i, url.QueryEscape(to)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	col.WaitSpans(t, calls, 60*time.Second, func(s otelcol.Span) bool { return hasID(s, "callee-") && s.Kind == 2 })
	all := col.Spans(t)
	byID := map[string]otelcol.Span{}
	for _, s := range all {
		byID[s.SpanID] = s
	}
	for _, callee := range spansWith(all, "callee-") {
		if callee.Kind != 2 {
			continue
		}
		client, ok := byID[callee.ParentSpanID]
		if !ok || client.Kind != 3 || client.TraceID != callee.TraceID || client.Resource["k8s.pod.name"] != traced.name {
			t.Errorf("callee span %s (trace %s, parent %s): not the child of a client span of pod %s",
				callee.SpanID, callee.TraceID, callee.ParentSpanID, traced.name)
			continue
		}
		if callee.Resource["k8s.pod.name"] != plain.name || callee.Resource["k8s.namespace.name"] != "plain" {
			t.Errorf("callee span %s: pod %v in %v", callee.SpanID, callee.Resource["k8s.pod.name"], callee.Resource["k8s.namespace.name"])
		}
	}

	metrics := c.agentMetrics(t)
	for _, m := range []string{"weft_k8s_apiserver_up 1", "weft_k8s_synced 1", "weft_inject_enabled 1"} {
		if !strings.Contains(metrics, m+"\n") {
			t.Errorf("agent metrics lack %q", m)
		}
	}
	if !strings.Contains(metrics, "weft_export_spool_bytes ") {
		t.Error("the agent runs without its disk spool")
	}

	if !t.Failed() {
		down(t, c) // on failure, up's cleanup tears down after the diagnostics
	}
}

type pod struct{ name, uid, ip, containerID string }

// demo deploys the unmodified demo server as a Deployment in namespace ns.
func (c *cluster) demo(t *testing.T, ns string, annotate bool) pod {
	t.Helper()
	ann := ""
	if annotate {
		ann = `  annotations: {weft.dev/trace: "enabled"}`
	}
	f := filepath.Join(t.TempDir(), ns+".yaml")
	writeFile(t, f, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %s
%s
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, namespace: %s}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata:
      labels: {app: shop, app.kubernetes.io/name: shop, app.kubernetes.io/version: "1.2.3"}
    spec:
      containers:
        - name: shop
          image: localhost/weft-demo:dev
          imagePullPolicy: Never
          args: ["-addr=0.0.0.0:8080"]
`, ns, ann, ns))
	c.run(t, "apply", "-f", f)
	c.run(t, "-n", ns, "rollout", "status", "deploy/shop", "--timeout=120s")
	out := c.run(t, "-n", ns, "get", "pods", "-l", "app=shop", "-o", "json")
	var list struct {
		Items []struct {
			Metadata struct{ Name, UID string }
			Status   struct {
				PodIP             string
				ContainerStatuses []struct{ ContainerID string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 1 || len(list.Items[0].Status.ContainerStatuses) != 1 {
		t.Fatalf("pods of %s: %v\n%s", ns, err, out)
	}
	p := list.Items[0]
	_, id, _ := strings.Cut(p.Status.ContainerStatuses[0].ContainerID, "://")
	return pod{name: p.Metadata.Name, uid: p.Metadata.UID, ip: p.Status.PodIP, containerID: id}
}

func get(t *testing.T, ip, id string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s:8080/work?id=%s", ip, id))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func hasID(s otelcol.Span, prefix string) bool {
	q, _ := s.Attrs["url.query"].(string)
	return strings.HasPrefix(q, "id="+prefix)
}

func spansWith(all []otelcol.Span, prefix string) []otelcol.Span {
	var out []otelcol.Span
	for _, s := range all {
		if hasID(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// agentMetrics reads the agent's /metrics (host network: the node's port).
func (c *cluster) agentMetrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:9464/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

func up(t *testing.T) *cluster {
	t.Helper()
	wd, _ := os.Getwd()
	c := &cluster{root: filepath.Join(wd, "..", "..")}
	c.kubeconfig = strings.TrimSpace(c.script(t, "up"))
	bins := strings.TrimSpace(c.scriptEnv(t, []string{"K8S_BINS=kubectl"}, filepath.Join(c.root, "scripts/k8s-bins.sh")))
	c.kubectl = filepath.Join(bins, "kubectl")
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, args := range [][]string{{"get", "pods", "-A", "-o", "wide"}, {"get", "events", "-A"}} {
			out, _ := c.cmd(args...).CombinedOutput()
			t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
		}
		if os.Getenv("WEFT_KEEP_CLUSTER") != "" {
			t.Logf("cluster kept (WEFT_KEEP_CLUSTER): kubectl --kubeconfig %s; scripts/cluster.sh down", c.kubeconfig)
			return
		}
		down(t, c)
	})
	return c
}

// down stops the cluster and checks that the host is as before.
func down(t *testing.T, c *cluster) {
	t.Helper()
	c.script(t, "down")
	if err := exec.Command("ip", "link", "show", "weft0").Run(); err == nil {
		t.Error("bridge weft0 left behind")
	}
	mounts, _ := os.ReadFile("/proc/mounts")
	if strings.Contains(string(mounts), "/var/lib/weft-cluster") {
		t.Error("mounts under /var/lib/weft-cluster left behind")
	}
	if out, _ := exec.Command("iptables", "-S").Output(); strings.Contains(string(out), "KUBE-") {
		t.Errorf("iptables rules left behind:\n%s", out)
	}
	if out, _ := exec.Command("pgrep", "-f", "kubelet|kube-apiserver|containerd-shim|/weft-agent").Output(); len(out) > 0 {
		t.Errorf("processes left behind: %s", out)
	}
}

func (c *cluster) cmd(args ...string) *exec.Cmd {
	return exec.Command(c.kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
}

func (c *cluster) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.cmd(args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return strings.TrimSpace(string(out))
}

func (c *cluster) script(t *testing.T, args ...string) string {
	t.Helper()
	return c.scriptEnv(t, nil, filepath.Join(c.root, "scripts/cluster.sh"), args...)
}

func (c *cluster) scriptEnv(t *testing.T, env []string, path string, args ...string) string {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(path), strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// goBuild builds a static binary of pkg, from module directory dir.
func (c *cluster) goBuild(t *testing.T, dir, pkg, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = filepath.Join(c.root, dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
