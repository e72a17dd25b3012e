package k8smeta

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Lookup returns the resource attributes for a process's cgroup reference:
// by container ID from the pods' statuses, else by pod UID (container name
// known only for single-container pods), else from a pod deleted less than
// Grace ago. ok is false when no pod matched; the attributes then hold
// what is known anyway (container.id, k8s.pod.uid, node, cluster).
func (s *Store) Lookup(ref Ref) (a Attrs, ok bool) {
	base := s.base()
	if pod := s.podBy(indexContainerID, ref.ContainerID); pod != nil {
		s.hits.Add(1)
		return podAttrs(pod, containerIDs(pod)[ref.ContainerID], ref.ContainerID, base, s), true
	}
	if pod := s.podBy(indexUID, ref.PodUID); pod != nil {
		name := ""
		if len(pod.Spec.Containers) == 1 {
			name = pod.Spec.Containers[0].Name
		}
		s.hits.Add(1)
		return podAttrs(pod, name, ref.ContainerID, base, s), true
	}
	if a, ok := s.ghost(ref); ok {
		s.hits.Add(1)
		return a, true
	}
	s.misses.Add(1)
	base.set(KeyContainerID, ref.ContainerID)
	base.set(KeyPodUID, ref.PodUID)
	return base, false
}

// LookupPID reads /proc/<pid>/cgroup under procRoot and looks it up.
func (s *Store) LookupPID(procRoot string, pid int) (Attrs, bool, error) {
	ref, err := ReadCgroup(procRoot, pid)
	if err != nil {
		return nil, false, err
	}
	a, ok := s.Lookup(ref)
	return a, ok, nil
}

// Stats counts lookups that found a pod and lookups that did not.
func (s *Store) Stats() (hits, misses uint64) { return s.hits.Load(), s.misses.Load() }

// base holds the cluster and node attributes every span gets.
func (s *Store) base() Attrs {
	a := Attrs{}
	a.set(KeyClusterName, s.cfg.ClusterName)
	a.set(KeyNode, s.cfg.NodeName)
	if ns := s.namespace("kube-system"); ns != nil {
		a.set(KeyClusterUID, string(ns.UID))
	}
	if o, ok, _ := s.nodes.GetIndexer().GetByKey(s.cfg.NodeName); ok {
		nodeAttrs(o.(*corev1.Node), a)
	}
	return a
}

func (s *Store) podBy(index, key string) *corev1.Pod {
	if key == "" {
		return nil
	}
	objs, err := s.pods.GetIndexer().ByIndex(index, key)
	if err != nil || len(objs) == 0 {
		return nil
	}
	return objs[0].(*corev1.Pod)
}

func (s *Store) namespace(name string) *corev1.Namespace {
	o, ok, _ := s.namespaces.GetIndexer().GetByKey(name)
	if !ok {
		return nil
	}
	return o.(*corev1.Namespace)
}

func (s *Store) replicaSet(ns, name string) *appsv1.ReplicaSet {
	o, ok, _ := s.replicaSets.GetIndexer().GetByKey(ns + "/" + name)
	if !ok {
		return nil
	}
	return o.(*appsv1.ReplicaSet)
}

func (s *Store) job(ns, name string) *batchv1.Job {
	o, ok, _ := s.jobs.GetIndexer().GetByKey(ns + "/" + name)
	if !ok {
		return nil
	}
	return o.(*batchv1.Job)
}

// bury keeps a deleted pod's attributes for Grace, and drops expired ones.
func (s *Store) bury(pod *corev1.Pod) {
	base := s.base()
	g := &grave{
		expires:    time.Now().Add(s.cfg.Grace),
		pod:        podAttrs(pod, "", "", base, s),
		containers: map[string]Attrs{},
	}
	for id, name := range containerIDs(pod) {
		g.containers[id] = podAttrs(pod, name, id, base, s)
	}
	s.graveMu.Lock()
	defer s.graveMu.Unlock()
	now := time.Now()
	for uid, old := range s.graves {
		if now.After(old.expires) {
			delete(s.graves, uid)
		}
	}
	s.graves[string(pod.UID)] = g
}

func (s *Store) ghost(ref Ref) (Attrs, bool) {
	s.graveMu.Lock()
	defer s.graveMu.Unlock()
	now := time.Now()
	for uid, g := range s.graves {
		if now.After(g.expires) {
			continue
		}
		if a, ok := g.containers[ref.ContainerID]; ok && ref.ContainerID != "" {
			return a, true
		}
		if uid == ref.PodUID {
			a := Attrs{}
			for k, v := range g.pod {
				a[k] = v
			}
			a.set(KeyContainerID, ref.ContainerID)
			return a, true
		}
	}
	return nil, false
}
