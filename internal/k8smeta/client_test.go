package k8smeta

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// request is what fakeAPI saw of one request.
type request struct {
	path      string
	query     url.Values
	accept    string
	userAgent string
}

// fakeAPI answers lists with one object "a" (with managed fields),
// watch-lists (sendInitialEvents=true) with "a" then the end-of-initial-
// events bookmark, other watches with an object "b", and holds watches open
// until the client leaves. It records requests.
type fakeAPI struct {
	mu   sync.Mutex
	reqs []request
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, request{r.URL.Path, r.URL.Query(), r.Header.Get("Accept"), r.Header.Get("User-Agent")})
	f.mu.Unlock()
	if r.URL.Path == "/readyz" {
		io.WriteString(w, "ok")
		return
	}
	parts := strings.Split(r.URL.Path, "/") // "", "api", "v1", "pods" or "", "apis", "apps", "v1", "replicasets"
	resource := parts[len(parts)-1]
	apiVersion := strings.Join(parts[2:len(parts)-1], "/")
	kind := map[string]string{"pods": "Pod", "namespaces": "Namespace", "nodes": "Node",
		"replicasets": "ReplicaSet", "jobs": "Job"}[resource]
	w.Header().Set("Content-Type", "application/json")
	q := r.URL.Query()
	switch {
	case q.Get("watch") != "true":
		fmt.Fprintf(w, `{"kind":"%sList","apiVersion":%q,"metadata":{"resourceVersion":"7"},"items":[
			{"metadata":{"name":"a","namespace":"n","resourceVersion":"6",
			"managedFields":[{"manager":"kubectl","operation":"Apply"}]}}]}`, kind, apiVersion)
	case q.Get("sendInitialEvents") == "true":
		fmt.Fprintf(w, `{"type":"ADDED","object":{"kind":%q,"apiVersion":%q,"metadata":{"name":"a","namespace":"n",
			"resourceVersion":"6","managedFields":[{"manager":"kubectl","operation":"Apply"}]}}}`+"\n", kind, apiVersion)
		fmt.Fprintf(w, `{"type":"BOOKMARK","object":{"kind":%q,"apiVersion":%q,"metadata":{"resourceVersion":"7",
			"annotations":{"k8s.io/initial-events-end":"true"}}}}`+"\n", kind, apiVersion)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	default:
		fmt.Fprintf(w, `{"type":"ADDED","object":{"kind":%q,"apiVersion":%q,"metadata":{"name":"b","namespace":"n",
			"resourceVersion":"8","managedFields":[{"manager":"kubectl","operation":"Apply"}]}}}`+"\n", kind, apiVersion)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
}

func (f *fakeAPI) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func fakeClient(t *testing.T) (*Client, *fakeAPI) {
	f := &fakeAPI{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := NewClient(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

// TestClientRequests: List and Watch send the options as the generated
// typed clients do, prefer protobuf, name themselves, and decode the answer.
func TestClientRequests(t *testing.T) {
	c, f := fakeClient(t)
	ctx := t.Context()
	pods := resource{rc: c.core, params: c.params, name: "pods",
		list:  func() runtime.Object { return &corev1.PodList{} },
		tweak: func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=node-a" }}

	obj, err := pods.List(ctx, metav1.ListOptions{ResourceVersion: "0", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := obj.(*corev1.PodList); !ok || len(l.Items) != 1 || l.Items[0].Name != "a" || l.ResourceVersion != "7" {
		t.Fatalf("list decoded as %#v", obj)
	}
	timeout := int64(300)
	w, err := pods.Watch(ctx, metav1.ListOptions{ResourceVersion: "7", AllowWatchBookmarks: true,
		TimeoutSeconds: &timeout})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if p, ok := ev.Object.(*corev1.Pod); ev.Type != watch.Added || !ok || p.Name != "b" {
			t.Fatalf("watch event %v %#v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
	w.Stop()
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("requests: %+v", reqs)
	}
	want := []struct {
		path  string
		query url.Values
	}{
		{"/api/v1/pods", url.Values{"fieldSelector": {"spec.nodeName=node-a"}, "resourceVersion": {"0"}, "limit": {"500"}}},
		{"/api/v1/pods", url.Values{"fieldSelector": {"spec.nodeName=node-a"}, "resourceVersion": {"7"},
			"allowWatchBookmarks": {"true"}, "timeoutSeconds": {"300"}, "watch": {"true"}, "timeout": {"5m0s"}}},
		{"/readyz", url.Values{}},
	}
	for i, w := range want {
		r := reqs[i]
		if r.path != w.path || r.query.Encode() != w.query.Encode() {
			t.Errorf("request %d: %s?%s, want %s?%s", i, r.path, r.query.Encode(), w.path, w.query.Encode())
		}
		if !strings.HasPrefix(r.userAgent, rest.DefaultKubernetesUserAgent()) {
			t.Errorf("request %d: User-Agent %q", i, r.userAgent)
		}
		if i < 2 && !strings.HasPrefix(r.accept, "application/vnd.kubernetes.protobuf") {
			t.Errorf("request %d: Accept %q, want protobuf first", i, r.accept)
		}
	}
}

// TestStoreInformers: the Store watches the right resources with the
// right selectors, indexes pods by namespace too, drops managed fields,
// syncs, and Shutdown waits for the informers.
func TestStoreInformers(t *testing.T) {
	c, f := fakeClient(t)
	s, err := New(Config{Client: c, NodeName: "node-a", SyncTimeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for name, inf := range map[string]cache.SharedIndexInformer{"pods": s.pods, "namespaces": s.namespaces,
		"replicasets": s.replicaSets, "jobs": s.jobs, "nodes": s.nodes} {
		idx := inf.GetIndexer().GetIndexers()
		if _, ok := idx[cache.NamespaceIndex]; !ok {
			t.Errorf("%s: no namespace index", name)
		}
		if name == "pods" {
			for _, n := range []string{indexContainerID, indexUID} {
				if _, ok := idx[n]; !ok {
					t.Errorf("pods: no %s index", n)
				}
			}
		}
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) }) // before the fake's Close
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !s.Synced() {
		t.Fatal("not synced")
	}
	// Both the watch-list (the WatchListClient default) and list+watch
	// paths cache what the fake lists: check the first request of each.
	wantSel := map[string]string{"/api/v1/pods": "spec.nodeName=node-a", "/api/v1/nodes": "metadata.name=node-a",
		"/api/v1/namespaces": "", "/apis/apps/v1/replicasets": "", "/apis/batch/v1/jobs": ""}
	seen := map[string]bool{}
	for _, r := range f.requests() {
		sel, ok := wantSel[r.path]
		if !ok {
			continue
		}
		seen[r.path] = true
		if got := r.query.Get("fieldSelector"); got != sel {
			t.Errorf("%s?%s: fieldSelector %q, want %q", r.path, r.query.Encode(), got, sel)
		}
	}
	if len(seen) != len(wantSel) {
		t.Errorf("resources requested: %v, want %v", seen, wantSel)
	}
	// "a" came in the first list (or watch-list); with list+watch, "b" may
	// have come in the watch that follows.
	if _, ok, _ := s.pods.GetStore().GetByKey("n/a"); !ok {
		t.Errorf("pod n/a not cached: %v", s.pods.GetStore().ListKeys())
	}
	for _, o := range s.pods.GetStore().List() {
		if p := o.(*corev1.Pod); p.ManagedFields != nil {
			t.Errorf("%s: managed fields kept: %v", p.Name, p.ManagedFields)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, inf := range s.informers {
		if !inf.IsStopped() {
			t.Error("an informer still runs after Shutdown")
		}
	}
}

// TestShutdownBeforeStart: nothing to wait for; Start afterwards is a no-op.
func TestShutdownBeforeStart(t *testing.T) {
	c, f := fakeClient(t)
	s, err := New(Config{Client: c, NodeName: "node-a", SyncTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := f.requests(); len(r) != 0 {
		t.Fatalf("requests after Shutdown: %+v", r)
	}
}
