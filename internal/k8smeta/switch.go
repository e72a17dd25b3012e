package k8smeta

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// AnnotationTrace switches tracing: "enabled" on a namespace turns it on for
// the namespace's pods; on a pod, "enabled" or "disabled" overrides the
// namespace. Anything else on a pod defers to the namespace.
const AnnotationTrace = "weft.dev/trace"

// Enabled says whether pod is to be traced. ns may be nil (not known yet).
func Enabled(ns *corev1.Namespace, pod *corev1.Pod) bool {
	switch pod.Annotations[AnnotationTrace] {
	case "enabled":
		return true
	case "disabled":
		return false
	}
	return ns != nil && ns.Annotations[AnnotationTrace] == "enabled"
}

// SwitchFunc is told each pod's state when first seen, on every change,
// and enabled=false when an enabled pod is deleted. Calls are serialised; it must
// not block for long (informer events wait for it).
type SwitchFunc func(podUID string, enabled bool)

// reconcile reports pod's state if it is new or changed. Needs s.swMu.
func (s *Store) reconcileLocked(pod *corev1.Pod) {
	on := Enabled(s.namespace(pod.Namespace), pod)
	uid := string(pod.UID)
	if prev, seen := s.enabled[uid]; seen && prev == on {
		return
	}
	s.enabled[uid] = on
	s.log.Debug("k8smeta: tracing switch", "pod", pod.Namespace+"/"+pod.Name, "uid", uid, "enabled", on)
	for _, fn := range s.switchFns {
		fn(uid, on)
	}
}

func (s *Store) onPod(pod *corev1.Pod) {
	s.swMu.Lock()
	defer s.swMu.Unlock()
	s.reconcileLocked(pod)
}

// onNamespace re-evaluates every pod of the namespace on this node.
func (s *Store) onNamespace(ns *corev1.Namespace) {
	objs, err := s.pods.GetIndexer().ByIndex(cache.NamespaceIndex, ns.Name) // added by newInformer
	if err != nil {
		s.log.Warn("k8smeta: pods by namespace", "namespace", ns.Name, "err", err)
		return
	}
	s.swMu.Lock()
	defer s.swMu.Unlock()
	for _, o := range objs {
		if pod, ok := o.(*corev1.Pod); ok {
			s.reconcileLocked(pod)
		}
	}
}

func (s *Store) onPodGone(uid string) {
	s.swMu.Lock()
	defer s.swMu.Unlock()
	prev, seen := s.enabled[uid]
	delete(s.enabled, uid)
	if seen && prev {
		for _, fn := range s.switchFns {
			fn(uid, false)
		}
	}
}

// Switch reports the last known state of a pod's switch, and whether the
// pod is known at all.
func (s *Store) Switch(podUID string) (on, known bool) {
	s.swMu.Lock()
	defer s.swMu.Unlock()
	on, known = s.enabled[podUID]
	return on, known
}

// EnabledPod reports the last known state of a pod (false if unknown).
func (s *Store) EnabledPod(podUID string) bool {
	s.swMu.Lock()
	defer s.swMu.Unlock()
	return s.enabled[podUID]
}
