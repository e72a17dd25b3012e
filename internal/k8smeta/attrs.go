package k8smeta

import (
	"sort"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OpenTelemetry semantic-convention keys of the resource attributes.
const (
	KeyNamespace   = "k8s.namespace.name"
	KeyPodName     = "k8s.pod.name"
	KeyPodUID      = "k8s.pod.uid"
	KeyContainer   = "k8s.container.name"
	KeyContainerID = "container.id"
	KeyNode        = "k8s.node.name"
	KeyReplicaSet  = "k8s.replicaset.name"
	KeyDeployment  = "k8s.deployment.name"
	KeyStatefulSet = "k8s.statefulset.name"
	KeyDaemonSet   = "k8s.daemonset.name"
	KeyJob         = "k8s.job.name"
	KeyCronJob     = "k8s.cronjob.name"
	KeyClusterName = "k8s.cluster.name"
	KeyClusterUID  = "k8s.cluster.uid"
	KeyService     = "service.name"
	KeyServiceVer  = "service.version"
	KeyServiceNS   = "service.namespace"
	KeyRegion      = "cloud.region"
	KeyZone        = "cloud.availability_zone"

	labelName    = "app.kubernetes.io/name"
	labelVersion = "app.kubernetes.io/version"
)

// Attrs are resource attributes keyed by their semantic-convention names.
type Attrs map[string]string

// KeyValues returns the attributes sorted by key, for an OTel resource.
func (a Attrs) KeyValues() []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, 0, len(a))
	for k, v := range a {
		kvs = append(kvs, attribute.String(k, v))
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	return kvs
}

func (a Attrs) set(k, v string) {
	if v != "" {
		a[k] = v
	}
}

// lister is what attribute building needs from the informer caches; nil
// results mean "not known (yet)".
type lister interface {
	replicaSet(ns, name string) *appsv1.ReplicaSet
	job(ns, name string) *batchv1.Job
}

// workload names the pod's controller and, one level up, its owner: a
// ReplicaSet's Deployment, a Job's CronJob.
func workload(pod *corev1.Pod, l lister, a Attrs) (name string) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return ""
	}
	switch ref.Kind {
	case "ReplicaSet":
		a.set(KeyReplicaSet, ref.Name)
		if rs := l.replicaSet(pod.Namespace, ref.Name); rs != nil {
			if o := metav1.GetControllerOf(rs); o != nil && o.Kind == "Deployment" {
				a.set(KeyDeployment, o.Name)
				return o.Name
			}
			return ref.Name
		}
		// Not in the cache yet: a Deployment's ReplicaSet is named
		// <deployment>-<pod-template-hash>, and the pod carries the hash.
		if h := pod.Labels["pod-template-hash"]; h != "" {
			if d, ok := strings.CutSuffix(ref.Name, "-"+h); ok {
				a.set(KeyDeployment, d)
				return d
			}
		}
		return ref.Name
	case "StatefulSet":
		a.set(KeyStatefulSet, ref.Name)
	case "DaemonSet":
		a.set(KeyDaemonSet, ref.Name)
	case "Job":
		a.set(KeyJob, ref.Name)
		if j := l.job(pod.Namespace, ref.Name); j != nil {
			if o := metav1.GetControllerOf(j); o != nil && o.Kind == "CronJob" {
				a.set(KeyCronJob, o.Name)
				return o.Name
			}
		}
	}
	return ref.Name
}

// podAttrs are the attributes of one container of pod (container "" for
// the pod alone); base holds the cluster- and node-wide ones.
func podAttrs(pod *corev1.Pod, container, containerID string, base Attrs, l lister) Attrs {
	a := make(Attrs, 20)
	for k, v := range base {
		a[k] = v
	}
	a.set(KeyNamespace, pod.Namespace)
	a.set(KeyServiceNS, pod.Namespace)
	a.set(KeyPodName, pod.Name)
	a.set(KeyPodUID, string(pod.UID))
	a.set(KeyNode, pod.Spec.NodeName)
	a.set(KeyContainer, container)
	a.set(KeyContainerID, containerID)
	wl := workload(pod, l, a)
	service := pod.Labels[labelName]
	for _, s := range []string{wl, container} {
		if service == "" {
			service = s
		}
	}
	a.set(KeyService, service)
	a.set(KeyServiceVer, pod.Labels[labelVersion])
	return a
}

// containerIDs maps each container's runtime ID ("containerd://<id>" in the
// status, the bare <id> here) to its name.
func containerIDs(pod *corev1.Pod) map[string]string {
	m := map[string]string{}
	for _, list := range [][]corev1.ContainerStatus{
		pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses, pod.Status.EphemeralContainerStatuses,
	} {
		for _, cs := range list {
			if id := bareID(cs.ContainerID); id != "" {
				m[id] = cs.Name
			}
		}
	}
	return m
}

func bareID(s string) string {
	if _, id, ok := strings.Cut(s, "://"); ok {
		return id
	}
	return s
}

// nodeAttrs are the node's topology labels as cloud attributes.
func nodeAttrs(n *corev1.Node, a Attrs) {
	for key, labels := range map[string][]string{
		KeyRegion: {"topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region"},
		KeyZone:   {"topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"},
	} {
		for _, l := range labels {
			if v := n.Labels[l]; v != "" {
				a[key] = v
				break
			}
		}
	}
}
