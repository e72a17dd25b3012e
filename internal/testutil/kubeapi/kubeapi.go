// Package kubeapi runs a real etcd and kube-apiserver on loopback for tests:
// no kubelet, no controllers, just the API a node agent talks to.
//
// kube-apiserver and kubectl are built by scripts/k8s-bins.sh from the Go
// module proxy and cached in ~/.cache/weft (the first build, of every
// Kubernetes binary the tests use, takes ~16 min);
// etcd is Debian's etcd-server. Tests are skipped only under -short.
package kubeapi

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	readyTimeout = 90 * time.Second
	token        = "weft-test-admin-token"
)

// Cluster is a running etcd + kube-apiserver.
type Cluster struct {
	Config     *rest.Config // admin (system:masters) over TLS
	Client     kubernetes.Interface
	Kubeconfig string // a file for kubectl, same identity as Config
	Kubectl    string // path of the kubectl built alongside kube-apiserver

	t      testing.TB
	dir    string
	args   []string
	binDir string
	mu     sync.Mutex
	api    *proc
}

var build = sync.OnceValues(func() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "k8s-bins.sh"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/k8s-bins.sh: %w\n%s", err, tail(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
})

// Start starts etcd and kube-apiserver, waits until the API is ready and
// kube-system exists, and stops both when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("kubeapi: real etcd + kube-apiserver; skipped with -short")
	}
	binDir, err := build()
	if err != nil {
		t.Fatalf("kubeapi: cannot build kube-apiserver: %v", err)
	}
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("kubeapi: etcd not found (apt-get install etcd-server): %v", err)
	}
	dir := t.TempDir()
	pki, err := makePKI(dir)
	if err != nil {
		t.Fatalf("kubeapi: certificates: %v", err)
	}
	ports := freePorts(t, 3)
	etcdURL := "http://127.0.0.1:" + ports[0]
	peerURL := "http://127.0.0.1:" + ports[1]
	etcd := startProc(t, dir, "etcd", etcdBin,
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL)
	t.Cleanup(etcd.stop)

	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, dir: dir, binDir: binDir, Kubectl: filepath.Join(binDir, "kubectl")}
	c.args = []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + ports[2],
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--tls-cert-file=" + pki.certFile, "--tls-private-key-file=" + pki.keyFile,
		"--token-auth-file=" + tokens, "--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + pki.saPubFile,
		"--service-account-signing-key-file=" + pki.saKeyFile,
		"--service-cluster-ip-range=10.96.0.0/16", "--allow-privileged=true",
		"--endpoint-reconciler-type=none", // no real node IP to publish on loopback
	}
	c.Config = &rest.Config{
		Host: "https://127.0.0.1:" + ports[2], BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: pki.caPEM},
		QPS:             100, Burst: 200,
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		t.Fatal(err)
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, []byte(kubeconfig(c.Config.Host, pki.caFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	c.StartAPIServer()
	t.Cleanup(c.StopAPIServer)
	return c
}

// StopAPIServer stops kube-apiserver (etcd keeps running), e.g. to test
// what clients do during an outage.
func (c *Cluster) StopAPIServer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		c.api.stop()
		c.api = nil
	}
}

// StartAPIServer (re)starts kube-apiserver on the same address and waits
// until it is ready.
func (c *Cluster) StartAPIServer() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		return
	}
	c.api = startProc(c.t, c.dir, "kube-apiserver", filepath.Join(c.binDir, "kube-apiserver"), c.args...)
	if err := c.waitReady(c.api); err != nil {
		c.t.Fatalf("kubeapi: %v\n%s", err, c.api.logTail())
	}
}

func (c *Cluster) waitReady(p *proc) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return err
	}
	var last string
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("kube-apiserver exited: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready in %v: %s", readyTimeout, last)
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := hc.Get(c.Config.Host + "/readyz")
		if err != nil {
			last = err.Error()
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = resp.Status
			continue
		}
		// kube-system is made by a post-start controller; readyz may win the race.
		if _, err := c.Client.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{}); err != nil {
			last = err.Error()
			continue
		}
		return nil
	}
}

// KubectlCmd runs kubectl against the cluster and returns its combined output.
func (c *Cluster) KubectlCmd(args ...string) (string, error) {
	cmd := exec.Command(c.Kubectl, append([]string{"--kubeconfig=" + c.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func kubeconfig(host, caFile string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, host, caFile, token)
}

// freePorts picks n free loopback ports (held open together so they differ).
func freePorts(t testing.TB, n int) []string {
	var ls []net.Listener
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "k8s-bins.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("kubeapi: scripts/k8s-bins.sh not found above the working directory")
		}
		dir = parent
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}
