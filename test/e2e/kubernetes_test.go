package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/weft-dev/weft/internal/testutil/kubeapi"
	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// TestKubernetesSwitch: against a real kube-apiserver, an unmodified server
// running in a cgroup laid out as kubelet lays it out, with a matching Pod
// (owned by a ReplicaSet of a Deployment), is traced only while its
// namespace (or the pod itself) says weft.dev/trace: "enabled", switched
// at runtime without touching the process, and its spans carry the pod's
// identity.
func TestKubernetesSwitch(t *testing.T) {
	needRoot(t)
	cluster := kubeapi.Start(t)
	c := cluster.Client
	ctx := context.Background()
	const node, ns = "weft-e2e-node", "shop"
	controller := true // owner references as controllers write them
	must(c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	must(c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}))
	rs := must(c.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "orders-7d4f9", OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "orders", UID: types.UID("0d0e0f00-0000-4000-8000-000000000001"), Controller: &controller}}},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "orders"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "orders"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "orders", Image: "example/orders"}}}}},
	}, metav1.CreateOptions{}))
	pod := must(c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "orders-7d4f9-x2k8q", Labels: map[string]string{"app": "orders", "app.kubernetes.io/version": "1.4.2"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &controller}}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "orders", Image: "example/orders"}}},
	}, metav1.CreateOptions{}))
	sum := sha256.Sum256([]byte(pod.UID))
	containerID := hex.EncodeToString(sum[:])
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "orders", ContainerID: "containerd://" + containerID, Image: "example/orders", ImageID: "example/orders"}}
	pod.Status.Phase = corev1.PodRunning
	pod = must(c.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}))

	// The server, moved into the pod's container cgroup (cgroup v2,
	// systemd driver, containerd) as the runtime would.
	col := otelcol.Start(t)
	bin := goBuild(t, filepath.Join(repoRoot(t), "testdata/httpserver"), "", filepath.Join(t.TempDir(), "orders"))
	srv := startServer(t, "orders", bin)
	uid := strings.ReplaceAll(string(pod.UID), "-", "_")
	dir := filepath.Join("/sys/fs/cgroup/unified", "kubepods.slice", "kubepods-besteffort.slice",
		"kubepods-besteffort-pod"+uid+".slice", "cri-containerd-"+containerID+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Cmd.Process.Kill()
		srv.Cmd.Wait()
		for d := dir; d != "/sys/fs/cgroup/unified"; d = filepath.Dir(d) {
			os.Remove(d)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(srv.PID())), 0o644); err != nil {
		t.Fatal(err)
	}

	ag := startAgent(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint, "NODE_NAME=" + node, "WEFT_CLUSTER_NAME=e2e-1"},
		"-kubeconfig", cluster.Kubeconfig)
	send := func(id string) {
		resp, err := http.Get(fmt.Sprintf("http://%s/hello?id=%s", srv.Addr, id))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	spansOf := func(id string) []otelcol.Span {
		var out []otelcol.Span
		for _, s := range col.Spans(t) {
			if q, _ := s.Attrs["url.query"].(string); q == "id="+id {
				out = append(out, s)
			}
		}
		return out
	}
	// switchedWithin sends a request every 200 ms for 8 s after a switch
	// and, once export has had time, reports when the first request whose
	// span presence matches want (and of every one after it) was sent.
	switchedWithin := func(prefix string, want bool, since time.Time) (time.Duration, bool) {
		var sentAt []time.Time
		for i := 0; time.Since(since) < 8*time.Second; i++ {
			sentAt = append(sentAt, time.Now())
			send(fmt.Sprintf("%s-%d", prefix, i))
			time.Sleep(200 * time.Millisecond)
		}
		// Batching and the collector's file: when spans are wanted, until
		// the last request's is there (a slow guest's export lags).
		for deadline := time.Now().Add(30 * time.Second); want && len(sentAt) > 0 &&
			len(spansOf(fmt.Sprintf("%s-%d", prefix, len(sentAt)-1))) == 0 && time.Now().Before(deadline); {
			time.Sleep(250 * time.Millisecond)
		}
		time.Sleep(3 * time.Second)
		first := -1
		for i := len(sentAt) - 1; i >= 0; i-- {
			if (len(spansOf(fmt.Sprintf("%s-%d", prefix, i))) > 0) != want {
				break
			}
			first = i
		}
		if first < 0 {
			return 0, false
		}
		d := sentAt[first].Sub(since)
		return d, d <= 5*time.Second
	}
	annotate := func(kind, value string) {
		patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{"weft.dev/trace":%q}}}`, value))
		var err error
		if kind == "namespace" {
			_, err = c.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{})
		} else {
			_, err = c.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	time.Sleep(2 * time.Second) // the agent's first scan and informer sync
	send("off-0")
	time.Sleep(2 * time.Second)
	if got := spansOf("off-0"); len(got) != 0 {
		t.Fatalf("%d spans from a pod in a namespace without the annotation", len(got))
	}

	annotate("namespace", "enabled")
	if d, ok := switchedWithin("on", true, time.Now()); !ok {
		t.Fatalf("requests sent %v after annotating the namespace still gave no span (want within 5 s)", d)
	} else {
		t.Logf("namespace switch on: every request from %v after the annotation has its span", d.Round(100*time.Millisecond))
	}
	var s otelcol.Span
	for _, sp := range col.Spans(t) {
		if q, _ := sp.Attrs["url.query"].(string); strings.HasPrefix(q, "id=on-") {
			s = sp
		}
	}
	want := map[string]string{
		"k8s.namespace.name": ns, "k8s.pod.name": pod.Name, "k8s.pod.uid": string(pod.UID),
		"k8s.container.name": "orders", "container.id": containerID, "k8s.node.name": node,
		"k8s.deployment.name": "orders", "k8s.cluster.name": "e2e-1", "service.name": "orders",
		"service.version": "1.4.2", "service.namespace": ns,
	}
	for k, v := range want {
		if s.Resource[k] != v {
			t.Errorf("resource %s = %v, want %q", k, s.Resource[k], v)
		}
	}
	if uid, _ := s.Resource["k8s.cluster.uid"].(string); uid == "" {
		t.Errorf("no k8s.cluster.uid (the kube-system namespace's UID)")
	}

	annotate("pod", "disabled") // the pod's own annotation wins
	if d, ok := switchedWithin("podoff", false, time.Now()); !ok {
		t.Fatalf("requests sent %v after the pod's annotation said disabled still gave spans (want none after 5 s)", d)
	} else {
		t.Logf("pod switch off: no span for any request from %v after the annotation", d.Round(100*time.Millisecond))
	}

	resp, err := http.Get("http://" + ag.statusAddr + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep struct{ Processes []struct{ PID int } }
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("reading /status: %v", err)
	}
	for _, p := range rep.Processes {
		if p.PID == srv.PID() {
			t.Errorf("pid %d still traced (in /status) after its pod was switched off", p.PID)
		}
	}

	// API server gone: the agent says so in its own log (nothing in klog's
	// format on stderr) and keeps going.
	cluster.StopAPIServer()
	const gone = "API server unreachable; serving cached metadata"
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(ag.stderr.String(), gone) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	logs := ag.stderr.String()
	if !strings.Contains(logs, gone) {
		t.Errorf("the agent's log says nothing 30 s after the API server stopped")
	}
	if up := ag.metric(t, "weft_k8s_apiserver_up"); up != 0 {
		t.Errorf("weft_k8s_apiserver_up = %v with the API server down", up)
	}
	klogLine := regexp.MustCompile(`(?m)^[IWEF]\d{4} \d\d:\d\d:\d\d`)
	if l := klogLine.FindString(logs); l != "" {
		t.Errorf("klog wrote its own format to stderr (%q...), not through slog", l)
	}
	select {
	case err := <-ag.exited:
		t.Errorf("agent exited while the API server was down: %v", err)
	default:
	}
}
