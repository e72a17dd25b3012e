package k8smeta

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/weft-dev/weft/internal/testutil/kernel"
)

// fake makes objects the way controllers would have, minus the controllers.
type fake struct {
	t  *testing.T
	c  kubernetes.Interface
	tx context.Context
}

func (f fake) namespace(name string, ann map[string]string) *corev1.Namespace {
	f.t.Helper()
	ns, err := f.c.CoreV1().Namespaces().Create(f.tx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	// No controller manager: pods are refused until "default" exists.
	if _, err := f.c.CoreV1().ServiceAccounts(name).Create(f.tx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	return ns
}

func owner(kind, name string, uid types.UID) []metav1.OwnerReference {
	api := map[string]string{"ReplicaSet": "apps/v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1",
		"DaemonSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1"}[kind]
	if uid == "" {
		sum := sha256.Sum256([]byte(kind + "/" + name))
		uid = types.UID("00000000-0000-4000-8000-" + hex.EncodeToString(sum[:6]))
	}
	yes := true
	return []metav1.OwnerReference{{APIVersion: api, Kind: kind, Name: name, UID: uid, Controller: &yes}}
}

// pod creates a running-looking pod on node with one container per name,
// and reports container IDs in its status as kubelet would.
func (f fake) pod(ns, name, node string, meta metav1.ObjectMeta, containers ...string) (*corev1.Pod, []string) {
	f.t.Helper()
	meta.Namespace, meta.Name = ns, name
	p := &corev1.Pod{ObjectMeta: meta, Spec: corev1.PodSpec{NodeName: node}}
	var ids []string
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "example/" + c})
	}
	p, err := f.c.CoreV1().Pods(ns).Create(f.tx, p, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, c := range containers {
		sum := sha256.Sum256([]byte(string(p.UID) + c))
		id := hex.EncodeToString(sum[:])
		ids = append(ids, id)
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c, ContainerID: "containerd://" + id, Image: "example/" + c, ImageID: "example/" + c})
	}
	p.Status.Phase = corev1.PodRunning
	if p, err = f.c.CoreV1().Pods(ns).UpdateStatus(f.tx, p, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	return p, ids
}

func (f fake) replicaSet(ns, name, deployment string) *appsv1.ReplicaSet {
	f.t.Helper()
	sel := map[string]string{"rs": name}
	rs, err := f.c.AppsV1().ReplicaSets(ns).Create(f.tx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: owner("Deployment", deployment, "")},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example/c"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return rs
}

func (f fake) job(ns, name, cronJob string) *batchv1.Job {
	f.t.Helper()
	j, err := f.c.BatchV1().Jobs(ns).Create(f.tx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: owner("CronJob", cronJob, "")},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "c", Image: "example/c"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

// eventually polls cond every 50 ms until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inCgroup starts a process and moves it into rel under the mount of the
// given cgroup type (cgroup2, or the v1 "pids" hierarchy), as kubelet and the
// runtime would. Directories and the process are removed at cleanup.
func inCgroup(t *testing.T, v2 bool, rel string) int {
	t.Helper()
	kernel.RequireRoot(t) // it makes cgroups and moves a process into one
	root := cgroupMount(t, v2)
	dir := filepath.Join(root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("cgroup %s: %v", dir, err)
	}
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		for d := dir; d != root && strings.HasPrefix(d, root); d = filepath.Dir(d) {
			_ = os.Remove(d)
		}
	})
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatalf("move %d into %s: %v", pid, dir, err)
	}
	return pid
}

func cgroupMount(t *testing.T, v2 bool) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mountpoint ... - fstype source superoptions
		pre, post, _ := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 {
			continue
		}
		if v2 && tail[0] == "cgroup2" || !v2 && tail[0] == "cgroup" && strings.Contains(","+tail[2]+",", ",pids,") {
			return fields[4]
		}
	}
	t.Skipf("no %s cgroup mount here", map[bool]string{true: "v2", false: "v1 pids"}[v2])
	return ""
}
