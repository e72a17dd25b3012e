package k8smeta

import (
	"context"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/weft-dev/weft/internal/procs"
	"github.com/weft-dev/weft/internal/selection"
	"github.com/weft-dev/weft/internal/testutil/kubeapi"
)

const (
	node    = "node-a"
	cluster = "test-cluster"
	grace   = 3 * time.Second
	// informerWait bounds waits for an informer event or a health probe
	// to be seen: a few ms when idle, seconds on a loaded CI machine
	// running packages in parallel. eventually returns once it is seen.
	informerWait = 30 * time.Second
)

// switches records the latest state the Store reported for each pod.
type switches struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *switches) set(uid string, on bool) { s.mu.Lock(); s.m[uid] = on; s.mu.Unlock() }
func (s *switches) get(uid types.UID) (on, seen bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	on, seen = s.m[string(uid)]
	return
}

// TestAgainstAPIServer runs every scenario against one real etcd and
// kube-apiserver (started once: ~5 s).
func TestAgainstAPIServer(t *testing.T) {
	c := kubeapi.Start(t)
	ctx := t.Context()
	f := fake{t: t, c: c.Client, tx: ctx}

	if _, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: node, Labels: map[string]string{
			"topology.kubernetes.io/region": "eu-west-1", "topology.kubernetes.io/zone": "eu-west-1b"}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ks, err := c.Client.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Objects that exist before the Store starts arrive in its first list.
	f.namespace("shop", nil)
	f.replicaSet("shop", "cart-7d4b9c", "cart")

	sw := &switches{m: map[string]bool{}}
	client, err := NewClient(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Client: client, NodeName: node, ClusterName: cluster, Grace: grace, HealthInterval: time.Second,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.OnSwitch(sw.set)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	if !s.Synced() {
		t.Fatal("caches not synced after Start")
	}

	base := Attrs{KeyClusterName: cluster, KeyClusterUID: string(ks.UID), KeyNode: node,
		KeyRegion: "eu-west-1", KeyZone: "eu-west-1b"}
	pod := func(ns, name string, extra Attrs) Attrs {
		a := maps.Clone(base)
		maps.Copy(a, Attrs{KeyNamespace: ns, KeyServiceNS: ns, KeyPodName: name})
		maps.Copy(a, extra)
		return a
	}
	lookup := func(t *testing.T, ref Ref, want Attrs) {
		t.Helper()
		var got Attrs
		eventually(t, informerWait, "attributes of "+ref.ContainerID+ref.PodUID, func() bool {
			var ok bool
			got, ok = s.Lookup(ref)
			return ok && maps.Equal(got, want)
		})
	}

	t.Run("workloads", func(t *testing.T) {
		job := f.job("shop", "report-29100000", "report")
		for _, tc := range []struct {
			name      string
			meta      metav1.ObjectMeta
			container string
			want      Attrs
		}{
			{"cart-7d4b9c-x1", metav1.ObjectMeta{OwnerReferences: owner("ReplicaSet", "cart-7d4b9c", "")}, "app",
				Attrs{KeyReplicaSet: "cart-7d4b9c", KeyDeployment: "cart", KeyService: "cart"}},
			{"db-0", metav1.ObjectMeta{OwnerReferences: owner("StatefulSet", "db", "")}, "postgres",
				Attrs{KeyStatefulSet: "db", KeyService: "db"}},
			{"logs-x2", metav1.ObjectMeta{OwnerReferences: owner("DaemonSet", "logs", "")}, "fluent",
				Attrs{KeyDaemonSet: "logs", KeyService: "logs"}},
			{"report-29100000-x3", metav1.ObjectMeta{OwnerReferences: owner("Job", job.Name, job.UID)}, "run",
				Attrs{KeyJob: job.Name, KeyCronJob: "report", KeyService: "report"}},
			{"bare", metav1.ObjectMeta{}, "main", Attrs{KeyService: "main"}},
			{"labelled", metav1.ObjectMeta{Labels: map[string]string{
				"app.kubernetes.io/name": "checkout", "app.kubernetes.io/version": "1.4.2"},
				OwnerReferences: owner("StatefulSet", "co", "")}, "main",
				Attrs{KeyStatefulSet: "co", KeyService: "checkout", KeyServiceVer: "1.4.2"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p, ids := f.pod("shop", tc.name, node, tc.meta, tc.container)
				want := pod("shop", tc.name, tc.want)
				maps.Copy(want, Attrs{KeyPodUID: string(p.UID), KeyContainer: tc.container, KeyContainerID: ids[0]})
				lookup(t, Ref{ContainerID: ids[0], PodUID: string(p.UID)}, want)
			})
		}
	})

	t.Run("two containers, by container ID and by pod UID", func(t *testing.T) {
		p, ids := f.pod("shop", "multi", node, metav1.ObjectMeta{}, "web", "sidecar")
		want := pod("shop", "multi", Attrs{KeyPodUID: string(p.UID), KeyContainer: "sidecar",
			KeyContainerID: ids[1], KeyService: "sidecar"})
		lookup(t, Ref{ContainerID: ids[1]}, want)
		// Container not in the status yet: the pod is known, the container is not.
		lookup(t, Ref{PodUID: string(p.UID)}, pod("shop", "multi", Attrs{KeyPodUID: string(p.UID)}))
	})

	t.Run("other nodes' pods are not watched", func(t *testing.T) {
		p, ids := f.pod("shop", "elsewhere", "node-b", metav1.ObjectMeta{}, "app")
		time.Sleep(time.Second)
		if a, ok := s.Lookup(Ref{ContainerID: ids[0], PodUID: string(p.UID)}); ok {
			t.Fatalf("pod of node-b found: %v", a)
		}
	})

	t.Run("real cgroups, as kubelet lays them out", func(t *testing.T) {
		p, ids := f.pod("shop", "cg", node, metav1.ObjectMeta{}, "app")
		u := strings.ReplaceAll(string(p.UID), "-", "_")
		want := pod("shop", "cg", Attrs{KeyPodUID: string(p.UID), KeyContainer: "app",
			KeyContainerID: ids[0], KeyService: "app"})
		for name, tc := range map[string]struct {
			v2  bool
			rel string
		}{
			"v2 systemd containerd": {true, "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + u +
				".slice/cri-containerd-" + ids[0] + ".scope"},
			"v1 cgroupfs": {false, "kubepods/besteffort/pod" + string(p.UID) + "/" + ids[0]},
		} {
			t.Run(name, func(t *testing.T) {
				pid := inCgroup(t, tc.v2, tc.rel)
				got, ok, err := s.LookupPID("/proc", pid)
				if err != nil || !ok || !maps.Equal(got, want) {
					t.Fatalf("LookupPID(%d) = %v, %v, %v\nwant %v", pid, got, ok, err, want)
				}
			})
		}
	})

	t.Run("switch", func(t *testing.T) {
		f.namespace("sw", nil)
		plain, _ := f.pod("sw", "plain", node, metav1.ObjectMeta{}, "app")
		on, _ := f.pod("sw", "on", node, metav1.ObjectMeta{Annotations: map[string]string{AnnotationTrace: "enabled"}}, "app")
		off, _ := f.pod("sw", "off", node, metav1.ObjectMeta{Annotations: map[string]string{AnnotationTrace: "disabled"}}, "app")
		expect := func(what string, want map[*corev1.Pod]bool) {
			t.Helper()
			eventually(t, informerWait, what, func() bool {
				for p, w := range want {
					if got, seen := sw.get(p.UID); !seen || got != w || s.EnabledPod(string(p.UID)) != w {
						return false
					}
				}
				return true
			})
		}
		expect("initial states", map[*corev1.Pod]bool{plain: false, on: true, off: false})

		annotate := func(kind, name string, ann string) {
			t.Helper()
			patch := []byte(`{"metadata":{"annotations":{"` + AnnotationTrace + `":` + ann + `}}}`)
			var err error
			if kind == "ns" {
				_, err = c.Client.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
			} else {
				_, err = c.Client.CoreV1().Pods("sw").Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		annotate("ns", "sw", `"enabled"`)
		expect("namespace enabled", map[*corev1.Pod]bool{plain: true, on: true, off: false})
		annotate("pod", "plain", `"disabled"`)
		expect("pod override disabled", map[*corev1.Pod]bool{plain: false, on: true, off: false})
		annotate("pod", "off", `null`)
		expect("pod override removed", map[*corev1.Pod]bool{plain: false, on: true, off: true})
		annotate("ns", "sw", `null`)
		expect("namespace disabled", map[*corev1.Pod]bool{plain: false, on: true, off: false})

		annotate("ns", "sw", `"enabled"`)
		expect("namespace enabled again", map[*corev1.Pod]bool{plain: false, on: true, off: true})
		late, _ := f.pod("sw", "late", node, metav1.ObjectMeta{}, "app")
		expect("new pod in enabled namespace", map[*corev1.Pod]bool{late: true})
		if err := c.Client.CoreV1().Pods("sw").Delete(ctx, "late", *metav1.NewDeleteOptions(0)); err != nil {
			t.Fatal(err)
		}
		expect("deleted pod switched off", map[*corev1.Pod]bool{late: false})
	})

	// A no carries to a cgroup's next execs (the agent keeps them back)
	// only when it is certain: no pod at all, or a pod whose switch the
	// store knows to be off. An enabled pod's, or an unknown pod's (the
	// informer may lag its first containers), does not.
	t.Run("quiet scope", func(t *testing.T) {
		sel := Selector{Store: s, ProcRoot: "/proc", Unified: true} // as on a cgroup v2 node
		off, offIDs := f.pod("sw", "quiet-off", node, metav1.ObjectMeta{Annotations: map[string]string{AnnotationTrace: "disabled"}}, "app")
		on, onIDs := f.pod("sw", "quiet-on", node, metav1.ObjectMeta{Annotations: map[string]string{AnnotationTrace: "enabled"}}, "app")
		eventually(t, informerWait, "both switches known", func() bool {
			_, k1 := s.Switch(string(off.UID))
			_, k2 := s.Switch(string(on.UID))
			return k1 && k2
		})
		rel := func(uid types.UID, id string) string {
			u := strings.ReplaceAll(string(uid), "-", "_")
			return "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + u + ".slice/cri-containerd-" + id + ".scope"
		}
		for name, tc := range map[string]struct {
			rel  string
			want selection.Scope
		}{
			"pod switched off": {rel(off.UID, offIDs[0]), selection.ScopeCgroup},
			"pod switched on":  {rel(on.UID, onIDs[0]), selection.ScopeNone},
			"pod not known":    {rel("0a1b2c3d-0000-4000-8000-00000000abcd", strings.Repeat("ab", 32)), selection.ScopeNone},
			"no pod":           {"weft-test.slice/not-a-pod.scope", selection.ScopeCgroup},
		} {
			t.Run(name, func(t *testing.T) {
				pid := inCgroup(t, true, tc.rel)
				if got := sel.QuietScope(procs.Info{PID: pid}); got != tc.want {
					t.Errorf("QuietScope = %v, want %v", got, tc.want)
				}
				// On a v1 or hybrid node a cgroup id may be shared.
				v1 := sel
				v1.Unified = false
				if got := v1.QuietScope(procs.Info{PID: pid}); got != selection.ScopeNone {
					t.Errorf("not unified: QuietScope = %v, want ScopeNone", got)
				}
			})
		}
	})

	t.Run("deleted pod kept for the grace period", func(t *testing.T) {
		p, ids := f.pod("shop", "short-lived", node, metav1.ObjectMeta{}, "app")
		ref := Ref{ContainerID: ids[0]}
		want := pod("shop", "short-lived", Attrs{KeyPodUID: string(p.UID), KeyContainer: "app",
			KeyContainerID: ids[0], KeyService: "app"})
		lookup(t, ref, want)
		if err := c.Client.CoreV1().Pods("shop").Delete(ctx, p.Name, *metav1.NewDeleteOptions(0)); err != nil {
			t.Fatal(err)
		}
		// client-go deletes the pod from the informer's store before it
		// calls our DeleteFunc (which buries it), on another goroutine: a
		// Lookup in between finds neither. Wait for both together: gone
		// from the cache and still found, from its grave.
		eventually(t, informerWait, "pod gone from the cache, still found", func() bool {
			if s.podBy(indexUID, string(p.UID)) != nil {
				return false
			}
			got, ok := s.Lookup(ref)
			return ok && maps.Equal(got, want)
		})
		eventually(t, grace+2*time.Second, "forgotten after grace", func() bool { _, ok := s.Lookup(ref); return !ok })
	})

	t.Run("API server down: cache kept, reconnects", func(t *testing.T) {
		p, ids := f.pod("shop", "survivor", node, metav1.ObjectMeta{}, "app")
		want := pod("shop", "survivor", Attrs{KeyPodUID: string(p.UID), KeyContainer: "app",
			KeyContainerID: ids[0], KeyService: "app"})
		lookup(t, Ref{ContainerID: ids[0]}, want)
		// Each probe may take HealthInterval: on a loaded machine one can
		// time out and report the API server down for a while.
		eventually(t, informerWait, "APIServerUp while it answers", s.APIServerUp)
		c.StopAPIServer()
		eventually(t, 10*time.Second, "outage noticed", func() bool { return !s.APIServerUp() })
		if got, ok := s.Lookup(Ref{ContainerID: ids[0]}); !ok || !maps.Equal(got, want) {
			t.Fatalf("during outage: %v %v", got, ok)
		}
		c.StartAPIServer()
		eventually(t, 30*time.Second, "API server seen back", s.APIServerUp)
		p2, ids2 := f.pod("shop", "after-outage", node, metav1.ObjectMeta{}, "app")
		want2 := pod("shop", "after-outage", Attrs{KeyPodUID: string(p2.UID), KeyContainer: "app",
			KeyContainerID: ids2[0], KeyService: "app"})
		eventually(t, 45*time.Second, "new pod seen after reconnect", func() bool {
			got, ok := s.Lookup(Ref{ContainerID: ids2[0]})
			return ok && maps.Equal(got, want2)
		})
	})

	t.Run("kubectl apply -k deploy/daemonset --dry-run=server", func(t *testing.T) {
		// Namespaced objects are only validated once their namespace exists.
		f.namespace("weft-system", nil)
		out, err := c.KubectlCmd("apply", "-k", filepath.Join("..", "..", "deploy", "daemonset"), "--dry-run=server")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, want := range []string{"daemonset.apps/weft-agent created (server dry run)",
			"clusterrole.rbac.authorization.k8s.io/weft-agent created (server dry run)"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("shutdown twice, start after shutdown", func(t *testing.T) {
		for range 2 {
			if err := s.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
