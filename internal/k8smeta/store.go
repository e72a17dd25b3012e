// Package k8smeta knows which pod and container a traced process runs in,
// what OTel resource attributes that gives its spans, and whether the pod's
// annotations (or its namespace's) ask for tracing.
//
// It watches, through client-go informers (over its own small Client, not
// client-go's Clientset), the pods on this node only, all
// namespaces, ReplicaSets and Jobs (for their Deployment and CronJob
// owners) and this node (for its topology labels). When the API server is
// unreachable the caches keep serving what they had; the informers
// reconnect on their own.
package k8smeta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// Config configures a Store.
type Config struct {
	Client      *Client // from NewClient
	NodeName    string  // from the downward API (NODE_NAME)
	ClusterName string  // k8s.cluster.name; the API has no such thing
	Logger      *slog.Logger
	// Grace keeps a deleted pod's attributes this long, for late spans.
	Grace time.Duration // default 60 s
	// SyncTimeout bounds how long Start waits for the first list; after it,
	// Start returns and the informers keep trying in the background.
	SyncTimeout time.Duration // default 30 s
	// HealthInterval is how often the API server's /readyz is asked.
	HealthInterval time.Duration // default 5 s
}

// Store serves pod metadata from informer caches.
type Store struct {
	cfg                                        Config
	log                                        *slog.Logger
	pods, namespaces, replicaSets, jobs, nodes cache.SharedIndexInformer
	informers                                  []cache.SharedIndexInformer // the five above
	running                                    sync.WaitGroup              // their Run

	swMu      sync.Mutex
	enabled   map[string]bool // pod UID → last reported state
	switchFns []SwitchFunc

	graveMu sync.Mutex
	graves  map[string]*grave // pod UID → deleted pod

	hits, misses atomic.Uint64
	apiUp        atomic.Bool // the API server answered its last health check
	startOnce    sync.Once
	stopOnce     sync.Once
	stopped      chan struct{} // closed when the informers have stopped
	cancel       context.CancelFunc
}

// grave is a deleted pod's attributes, kept until expires.
type grave struct {
	expires    time.Time
	pod        Attrs            // without container attributes
	containers map[string]Attrs // container ID → attributes
}

const (
	indexContainerID = "containerID"
	indexUID         = "uid"
)

// New builds a Store; nothing talks to the API server before Start.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil || cfg.NodeName == "" {
		return nil, errors.New("k8smeta: Client and NodeName are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 60 * time.Second
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = 30 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 5 * time.Second
	}
	s := &Store{cfg: cfg, log: cfg.Logger, enabled: map[string]bool{}, graves: map[string]*grave{}}
	c := cfg.Client
	onNode := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
	}
	self := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", cfg.NodeName).String()
	}
	podIndexers := cache.Indexers{
		indexContainerID: func(o any) ([]string, error) {
			var ids []string
			for id := range containerIDs(o.(*corev1.Pod)) {
				ids = append(ids, id)
			}
			return ids, nil
		},
		indexUID: func(o any) ([]string, error) { return []string{string(o.(*corev1.Pod).UID)}, nil },
	}
	for _, i := range []struct {
		inf     *cache.SharedIndexInformer
		r       resource
		example runtime.Object
		idx     cache.Indexers
	}{
		{&s.pods, resource{rc: c.core, name: "pods", list: func() runtime.Object { return &corev1.PodList{} }, tweak: onNode},
			&corev1.Pod{}, podIndexers},
		{&s.namespaces, resource{rc: c.core, name: "namespaces", list: func() runtime.Object { return &corev1.NamespaceList{} }},
			&corev1.Namespace{}, nil},
		{&s.replicaSets, resource{rc: c.apps, name: "replicasets", list: func() runtime.Object { return &appsv1.ReplicaSetList{} }},
			&appsv1.ReplicaSet{}, nil},
		{&s.jobs, resource{rc: c.batch, name: "jobs", list: func() runtime.Object { return &batchv1.JobList{} }},
			&batchv1.Job{}, nil},
		{&s.nodes, resource{rc: c.core, name: "nodes", list: func() runtime.Object { return &corev1.NodeList{} }, tweak: self},
			&corev1.Node{}, nil},
	} {
		i.r.params = c.params
		inf, err := newInformer(i.r, i.example, i.idx)
		if err != nil {
			return nil, err
		}
		*i.inf = inf
	}
	s.informers = []cache.SharedIndexInformer{s.pods, s.namespaces, s.replicaSets, s.jobs, s.nodes}
	if err := s.handlers(); err != nil {
		return nil, err
	}
	return s, nil
}

// newInformer makes an informer over r with no resync, the given indexers
// plus the namespace index (as client-go's informer factory would have
// added), and managed fields dropped from cached objects to save memory.
func newInformer(r resource, example runtime.Object, idx cache.Indexers) (cache.SharedIndexInformer, error) {
	indexers := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
	for name, fn := range idx {
		indexers[name] = fn
	}
	inf := cache.NewSharedIndexInformerWithOptions(&cache.ListWatch{
		ListWithContextFunc:  r.List,
		WatchFuncWithContext: r.Watch,
	}, example, cache.SharedIndexInformerOptions{Indexers: indexers})
	if err := inf.SetTransform(func(o any) (any, error) {
		if m, ok := o.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		return o, nil
	}); err != nil {
		return nil, fmt.Errorf("k8smeta: %s transform: %w", r.name, err)
	}
	return inf, nil
}

func (s *Store) handlers() error {
	podH := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.onPod(o.(*corev1.Pod)) },
		UpdateFunc: func(_, o any) { s.onPod(o.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if pod, ok := o.(*corev1.Pod); ok {
				s.bury(pod)
				s.onPodGone(string(pod.UID))
			}
		},
	}
	nsH := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.onNamespace(o.(*corev1.Namespace)) },
		UpdateFunc: func(_, o any) { s.onNamespace(o.(*corev1.Namespace)) },
	}
	if _, err := s.pods.AddEventHandler(podH); err != nil {
		return fmt.Errorf("k8smeta: pod handler: %w", err)
	}
	if _, err := s.namespaces.AddEventHandler(nsH); err != nil {
		return fmt.Errorf("k8smeta: namespace handler: %w", err)
	}
	for name, inf := range map[string]cache.SharedIndexInformer{
		"pods": s.pods, "namespaces": s.namespaces, "replicasets": s.replicaSets, "jobs": s.jobs, "nodes": s.nodes,
	} {
		if err := inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			s.log.Warn("k8smeta: watch failed; serving cached metadata and retrying", "resource", name, "err", err)
		}); err != nil {
			return fmt.Errorf("k8smeta: %s watch error handler: %w", name, err)
		}
	}
	return nil
}

// OnSwitch registers fn for tracing-switch changes; call before Start.
func (s *Store) OnSwitch(fn SwitchFunc) {
	s.swMu.Lock()
	defer s.swMu.Unlock()
	s.switchFns = append(s.switchFns, fn)
}

// Start starts the informers and waits (at most SyncTimeout, or until ctx
// ends) for their first lists. A slow or absent API server is logged, not
// fatal. Calling Start again does nothing.
func (s *Store) Start(ctx context.Context) error {
	var err error
	s.startOnce.Do(func() {
		var run context.Context
		run, s.cancel = context.WithCancel(context.Background())
		for _, inf := range s.informers {
			s.running.Go(func() { inf.RunWithContext(run) })
		}
		s.apiUp.Store(true) // so that a first failure is logged
		go s.watchAPIServer(run)
		wait, cancel := context.WithTimeout(ctx, s.cfg.SyncTimeout)
		defer cancel()
		if !cache.WaitForCacheSync(wait.Done(), s.pods.HasSynced, s.namespaces.HasSynced,
			s.replicaSets.HasSynced, s.jobs.HasSynced, s.nodes.HasSynced) {
			s.log.Warn("k8smeta: caches not synced yet; continuing without full metadata", "after", s.cfg.SyncTimeout)
			if ctx.Err() != nil {
				err = fmt.Errorf("k8smeta: start: %w", ctx.Err())
			}
		}
	})
	return err
}

// Synced says whether every informer has completed its first list.
func (s *Store) Synced() bool {
	return s.pods.HasSynced() && s.namespaces.HasSynced() && s.replicaSets.HasSynced() &&
		s.jobs.HasSynced() && s.nodes.HasSynced()
}

// Shutdown stops the informers and waits for them (or for ctx). Safe to
// call twice, and before Start.
func (s *Store) Shutdown(ctx context.Context) error {
	s.startOnce.Do(func() {}) // a later Start must not start anything
	s.stopOnce.Do(func() {
		s.stopped = make(chan struct{})
		go func() {
			defer close(s.stopped)
			if s.cancel != nil {
				s.cancel()
			}
			s.running.Wait()
		}()
	})
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("k8smeta: shutdown: %w", ctx.Err())
	}
}
