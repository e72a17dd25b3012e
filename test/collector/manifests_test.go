package collector

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/weft-dev/weft/internal/testutil/kubeapi"
)

// hubObjects is what deploy/hub declares, decoded.
type hubObjects struct {
	namespace   string
	partOf      string // the pods' app.kubernetes.io/part-of
	metricsPort string // the name of the collectors' telemetry port
	services    map[string]*corev1.Service
	statefulSet *appsv1.StatefulSet
	gateway     *appsv1.Deployment
	configMaps  map[string]*corev1.ConfigMap // from kubectl kustomize only
}

// decodeAll decodes a multi-document YAML stream of Kubernetes objects.
func decodeAll(data []byte) ([]runtime.Object, error) {
	r := yaml.NewYAMLReader(bufioReader(data))
	var out []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("decoding %.60q: %w", doc, err)
		}
		out = append(out, obj)
	}
}

func collect(t *testing.T, objs []runtime.Object) hubObjects {
	t.Helper()
	h := hubObjects{services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Namespace:
			h.namespace = o.Name
		case *corev1.Service:
			h.services[o.Name] = o
		case *corev1.ConfigMap:
			h.configMaps[o.Name] = o
		case *appsv1.StatefulSet:
			h.statefulSet = o
		case *appsv1.Deployment:
			h.gateway = o
		}
	}
	if h.statefulSet == nil || h.gateway == nil {
		t.Fatal("deploy/hub declares no StatefulSet or no Deployment")
	}
	h.partOf = h.statefulSet.Spec.Template.Labels["app.kubernetes.io/part-of"]
	for _, p := range h.statefulSet.Spec.Template.Spec.Containers[0].Ports {
		if p.ContainerPort == 8888 {
			h.metricsPort = p.Name
		}
	}
	return h
}

// renderHub decodes deploy/hub's own manifests (not the generated
// ConfigMap, which needs kustomize).
func renderHub(t *testing.T) hubObjects {
	t.Helper()
	var objs []runtime.Object
	for _, f := range []string{"namespace.yaml", "replicas.yaml", "gateway.yaml"} {
		data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "hub", f))
		if err != nil {
			t.Fatal(err)
		}
		o, err := decodeAll(data)
		if err != nil {
			t.Fatalf("deploy/hub/%s: %v", f, err)
		}
		objs = append(objs, o...)
	}
	return collect(t, objs)
}

var envRef = regexp.MustCompile(`\$\{env:([A-Z0-9_]+)(:-[^}]*)?\}`)

// requiredEnv lists the environment variables a collector config reads
// without a default, sorted.
func requiredEnv(config string) []string {
	seen := map[string]bool{}
	for _, m := range envRef.FindAllStringSubmatch(config, -1) {
		if m[2] == "" {
			seen[m[1]] = true
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestRequiredEnv(t *testing.T) {
	for _, tc := range []struct {
		config string
		want   string
	}{
		{"a: ${env:X}", "X"},
		{"a: ${env:X:-1}", ""},
		{"a: ${env:X:-}\nb: ${env:Y}\nc: ${env:Y}", "Y"},
		{"path: ${env:DIR:-/var/lib/otelcol}/q  host: ${env:B}", "B"},
		{"# ${env:IN_A_COMMENT} still counts", "IN_A_COMMENT"},
	} {
		if got := strings.Join(requiredEnv(tc.config), ","); got != tc.want {
			t.Errorf("requiredEnv(%q) = %q, want %q", tc.config, got, tc.want)
		}
	}
}

func containerEnv(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// TestHubManifests renders deploy/hub with kubectl kustomize and has a real
// kube-apiserver validate every object (kubectl apply --dry-run=server),
// then checks that the pieces fit: the gateway resolves the replicas'
// headless Service by its full DNS name and port; each collector mounts its
// config from deploy/collector byte for byte and is given every variable
// that config requires; the StatefulSet's Service is the headless one.
func TestHubManifests(t *testing.T) {
	api := kubeapi.Start(t)
	root := repoRoot(t)
	dir := filepath.Join(root, "deploy", "hub")
	if out, err := api.KubectlCmd("apply", "-f", filepath.Join(dir, "namespace.yaml")); err != nil {
		t.Fatalf("creating the namespace: %v\n%s", err, out)
	}
	if out, err := api.KubectlCmd("apply", "--dry-run=server", "-k", dir); err != nil {
		t.Fatalf("kubectl apply --dry-run=server -k deploy/hub: %v\n%s", err, out)
	} else {
		t.Logf("the API server accepts deploy/hub:\n%s", strings.TrimSpace(out))
	}
	rendered, err := api.KubectlCmd("kustomize", dir)
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, rendered)
	}
	objs, err := decodeAll([]byte(rendered))
	if err != nil {
		t.Fatal(err)
	}
	h := collect(t, objs)

	sts, gw := h.statefulSet, h.gateway
	headless := h.services[sts.Spec.ServiceName]
	if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone || headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("the StatefulSet's Service %q is not a headless Service of ready pods: %+v", sts.Spec.ServiceName, headless)
	}
	if *sts.Spec.Replicas < 2 {
		t.Errorf("%d hub replicas, want at least 2", *sts.Spec.Replicas)
	}
	for k, v := range headless.Spec.Selector {
		if sts.Spec.Template.Labels[k] != v {
			t.Errorf("headless Service selects %s=%s, the replicas' pods have %q", k, v, sts.Spec.Template.Labels[k])
		}
	}
	gwEnv := containerEnv(gw.Spec.Template.Spec.Containers[0])
	if want := fmt.Sprintf("%s.%s.svc.cluster.local", headless.Name, sts.Namespace); gwEnv["HUB_REPLICAS_HOSTNAME"] != want {
		t.Errorf("gateway resolves %q, want the headless Service %q", gwEnv["HUB_REPLICAS_HOSTNAME"], want)
	}
	var grpcPort int32
	for _, p := range sts.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == "otlp-grpc" {
			grpcPort = p.ContainerPort
		}
	}
	if gwEnv["HUB_REPLICAS_PORT"] != fmt.Sprint(grpcPort) || grpcPort != 4317 {
		t.Errorf("gateway sends to port %s, replicas listen on %d (hub.yaml's default 4317)", gwEnv["HUB_REPLICAS_PORT"], grpcPort)
	}
	if gw.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || *gw.Spec.Replicas != 1 {
		t.Errorf("gateway: %d replicas, strategy %s; want one at a time (deploy/hub/gateway.yaml)", *gw.Spec.Replicas, gw.Spec.Strategy.Type)
	}

	for _, pod := range []struct {
		name   string
		spec   corev1.PodSpec
		config string
	}{{"hub replica", sts.Spec.Template.Spec, "hub.yaml"}, {"gateway", gw.Spec.Template.Spec, "hub-gateway.yaml"}} {
		c := pod.spec.Containers[0]
		if want := "--config=/etc/otelcol/" + pod.config; len(c.Args) != 1 || c.Args[0] != want {
			t.Errorf("%s runs %v, want %s", pod.name, c.Args, want)
		}
		var cm *corev1.ConfigMap
		for _, v := range pod.spec.Volumes {
			if v.ConfigMap != nil && len(v.ConfigMap.Items) == 1 && v.ConfigMap.Items[0].Path == pod.config {
				cm = h.configMaps[v.ConfigMap.Name]
			}
		}
		if cm == nil {
			t.Errorf("%s mounts no ConfigMap with %s", pod.name, pod.config)
			continue
		}
		file, err := os.ReadFile(filepath.Join(root, "deploy", "collector", pod.config))
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data[pod.config] != string(file) {
			t.Errorf("%s: ConfigMap %s's %s differs from deploy/collector/%s", pod.name, cm.Name, pod.config, pod.config)
		}
		env := containerEnv(c)
		for _, name := range requiredEnv(string(file)) {
			if env[name] == "" {
				t.Errorf("%s: %s requires %s, the container does not set it", pod.name, pod.config, name)
			}
		}
		if h.metricsPort != "metrics" {
			t.Errorf("the replicas' port 8888 is named %q, want metrics (deploy/prometheus scrapes it)", h.metricsPort)
		}
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
