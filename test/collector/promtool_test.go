package collector

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spanmetrics"
	"github.com/weft-dev/weft/internal/spans"
	"github.com/weft-dev/weft/internal/testutil/promtool"
	"github.com/weft-dev/weft/internal/testutil/spanrec"
)

// TestAlertRules checks deploy/prometheus/alerts.yaml with promtool: the
// rules parse and their expressions are valid PromQL (check rules), and on
// synthetic series each alert fires for the case it is written for and not
// for the healthy neighbour (test rules, testdata/alerts_test.yaml).
func TestAlertRules(t *testing.T) {
	rules := filepath.Join(repoRoot(t), "deploy", "prometheus", "alerts.yaml")
	out, err := promtool.Run(t, nil, "check", "rules", "--lint=all", "--lint-fatal", rules)
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	t.Logf("promtool check rules: %s", strings.TrimSpace(out))

	// promtool resolves rule_files relative to the test file: put both in
	// one directory.
	dir := t.TempDir()
	for src, dst := range map[string]string{
		rules: "alerts.yaml",
		filepath.Join("testdata", "alerts_test.yaml"): "alerts_test.yaml",
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := promtool.Run(t, nil, "test", "rules", filepath.Join(dir, "alerts_test.yaml")); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// The multi-cluster design's alerts, as its text gives them.
var designAlerts = []struct{ name, expr, forDur, severity string }{
	{"CrossClusterLatencyHigh",
		`histogram_quantile(0.99, sum(rate(cross_cluster_request_duration_seconds_bucket[5m])) by (le, source_cluster, target_cluster)) > 1`,
		"5m", "warning"},
	{"ClusterTracesPropagationFailure",
		`sum(rate(spans_without_parent_context_total[5m])) by (cluster) / sum(rate(spans_total[5m])) by (cluster) > 0.1`,
		"5m", "warning"},
	{"CollectorFederationDown", `up{job="otel-hub-collector"} == 0`, "2m", "critical"},
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert  string            `json:"alert"`
			Record string            `json:"record"`
			Expr   string            `json:"expr"`
			For    string            `json:"for"`
			Labels map[string]string `json:"labels"`
		} `json:"rules"`
	} `json:"groups"`
}

// TestDesignAlertsVerbatim: each of the design's alerts is in alerts.yaml
// once, by its name, with the design's expression, duration and severity
// character for character, so an operator who knows the design's rules
// finds them unchanged.
func TestDesignAlertsVerbatim(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(data, &rf); err != nil {
		t.Fatal(err)
	}
	for _, want := range designAlerts {
		found := 0
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert != want.name {
					continue
				}
				found++
				if got := strings.TrimSpace(r.Expr); got != want.expr {
					t.Errorf("%s: expr\n got %s\nwant %s", want.name, got, want.expr)
				}
				if r.For != want.forDur || r.Labels["severity"] != want.severity {
					t.Errorf("%s: for %q severity %q, want %q %q", want.name, r.For, r.Labels["severity"], want.forDur, want.severity)
				}
			}
		}
		if found != 1 {
			t.Errorf("%s: %d rules by that name, want 1", want.name, found)
		}
	}
}

type promConfig struct {
	RuleFiles     []string `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName string `json:"job_name"`
		SD      []struct {
			Role       string `json:"role"`
			Namespaces struct {
				Names []string `json:"names"`
			} `json:"namespaces"`
		} `json:"kubernetes_sd_configs"`
		Relabel []struct {
			Source []string `json:"source_labels"`
			Regex  string   `json:"regex"`
			Action string   `json:"action"`
		} `json:"relabel_configs"`
	} `json:"scrape_configs"`
}

// TestPrometheusConfig: deploy/prometheus/prometheus.yaml is a valid
// Prometheus config that loads alerts.yaml (promtool check config), and its
// otel-hub-collector job, the one CollectorFederationDown watches, keeps
// the metrics port of the pods deploy/hub runs, in deploy/hub's namespace.
func TestPrometheusConfig(t *testing.T) {
	path := filepath.Join(repoRoot(t), "deploy", "prometheus", "prometheus.yaml")
	out, err := promtool.Run(t, nil, "check", "config", "--lint=all", "--lint-fatal", path)
	if err != nil || !strings.Contains(out, "1 rule files found") {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pc promConfig
	if err := yaml.Unmarshal(data, &pc); err != nil {
		t.Fatal(err)
	}
	hub := renderHub(t)
	for _, job := range pc.ScrapeConfigs {
		if job.JobName != "otel-hub-collector" {
			continue
		}
		if len(job.SD) != 1 || job.SD[0].Role != "pod" || strings.Join(job.SD[0].Namespaces.Names, ",") != hub.namespace {
			t.Errorf("otel-hub-collector discovers %+v, want the pods of namespace %s", job.SD, hub.namespace)
		}
		keeps := map[string]string{}
		for _, r := range job.Relabel {
			if r.Action == "keep" {
				keeps[strings.Join(r.Source, ",")] = r.Regex
			}
		}
		if re := keeps["__meta_kubernetes_pod_label_app_kubernetes_io_part_of"]; re == "" || !regexp.MustCompile("^(?:"+re+")$").MatchString(hub.partOf) {
			t.Errorf("otel-hub-collector keeps part-of %q, but deploy/hub's pods are part of %q", re, hub.partOf)
		}
		if re := keeps["__meta_kubernetes_pod_container_port_name"]; re != hub.metricsPort {
			t.Errorf("otel-hub-collector keeps port %q, but deploy/hub names the metrics port %q", re, hub.metricsPort)
		}
		return
	}
	t.Error("no otel-hub-collector job: CollectorFederationDown would never see a target")
}

// TestMetricsExposition runs weft's own metrics (the spanmetrics sink that
// makes the series the alerts use, and a gauge, a kernel-side count and a
// plain counter) through promtool check metrics, Prometheus's parser and
// linter: no problem reported, and cross_cluster_request_duration_seconds
// parsed as one histogram family, not as loose _bucket/_sum/_count series.
func TestMetricsExposition(t *testing.T) {
	reg := metrics.New()
	sink := spanmetrics.New(spanrec.New(), reg, "aws-us-east-1-prod-01")
	t0 := time.Unix(1000, 0)
	sink.Export(spans.Span{Kind: trace.SpanKindServer, Start: t0, End: t0.Add(time.Millisecond)})
	sink.Export(spans.Span{Kind: trace.SpanKindClient, Parent: trace.SpanID{1}, Start: t0, End: t0.Add(300 * time.Millisecond),
		Attrs: []attribute.KeyValue{attribute.String("cross_cluster.source", "aws-us-east-1-prod-01"),
			attribute.String("cross_cluster.target", "aws-us-west-2-prod-01")}})
	sink.Export(spans.Span{Kind: trace.SpanKindClient, Parent: trace.SpanID{2}, Start: t0, End: t0.Add(2 * time.Second),
		Attrs: []attribute.KeyValue{attribute.String("cross_cluster.source", "aws-us-east-1-prod-01"),
			attribute.String("cross_cluster.target", "aws-eu-west-1-prod-01")}})
	reg.Gauge("weft_export_queue_spans", "spans in the export memory queue", func() float64 { return 12 })
	reg.Gauge("weft_sockio_kernel_total", "kernel-side counts", func() float64 { return 3 }, "name", "ringbuf_full")
	reg.ByLabel("weft_export_spans_total", "spans handled by the exporter", "outcome").Inc("exported")
	var text strings.Builder
	if err := reg.WriteText(&text); err != nil {
		t.Fatal(err)
	}

	out, err := promtool.Run(t, []byte(text.String()), "check", "metrics", "--extended")
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\nexposition:\n%s", err, out, text.String())
	}
	// --extended lists each family the parser made with its series count:
	// a histogram is one family of (buckets + _sum + _count) per label set.
	wantCard := map[string]string{
		"cross_cluster_request_duration_seconds": "28", // (11 buckets + +Inf + sum + count) × 2 pairs
		"spans_total":                            "1",
		"spans_without_parent_context_total":     "1",
		"weft_sockio_kernel_total":               "1",
	}
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			got[f[0]] = f[1]
		}
	}
	for name, card := range wantCard {
		if got[name] != card {
			t.Errorf("promtool sees %s with %q series, want %s:\n%s", name, got[name], card, out)
		}
	}
	for name := range got {
		if strings.HasSuffix(name, "_bucket") {
			t.Errorf("promtool parsed %s as a family of its own: the histogram's TYPE is missing", name)
		}
	}
	for _, want := range []string{
		"# TYPE cross_cluster_request_duration_seconds histogram\n",
		"# TYPE spans_total counter\n",
		"# TYPE weft_sockio_kernel_total counter\n",
		"# TYPE weft_export_queue_spans gauge\n",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}
