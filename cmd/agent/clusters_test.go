package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
)

type collectSpans struct{ got []spans.Span }

func (c *collectSpans) Export(s spans.Span) { c.got = append(c.got, s) }

func TestLoadClusters(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cluster  string
		env      map[string]string
		err      string   // substring; "" for none
		warn     []string // substrings of the log
		resource int      // attributes of the resource
		marks    bool     // a client call into 10.20.0.0/16 is marked
	}{
		{name: "nothing configured", resource: 0},
		{name: "full identity", cluster: "aws-us-east-1-prod-01",
			env:      map[string]string{"CLOUD_PROVIDER": "aws", "CLUSTER_REGION": "us-east-1", "ENVIRONMENT": "prod", "WEFT_CLUSTER_PEERS": "aws-us-west-2-prod-01=10.20.0.0/16"},
			resource: 4, marks: true},
		{name: "region disagrees", cluster: "aws-us-east-1-prod-01", env: map[string]string{"CLUSTER_REGION": "us-west-2"},
			warn: []string{"level=WARN", `CLUSTER_REGION says \"us-west-2\"`}, resource: 2},
		{name: "off convention still runs", cluster: "prod", warn: []string{"level=WARN", "<provider>-<region>-<purpose>-<number>"}, resource: 1},
		{name: "malformed peers", cluster: "aws-us-east-1-prod-01", env: map[string]string{"WEFT_CLUSTER_PEERS": "a=10.0.0.0/8;b:10.1.0.0/16"},
			err: `parsing WEFT_CLUSTER_PEERS: peer entry 2 "b:10.1.0.0/16"`},
		{name: "peers without a name", env: map[string]string{"WEFT_CLUSTER_PEERS": "a=10.0.0.0/8"}, err: "no name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			c, err := loadClusters(tc.cluster, func(k string) string { return tc.env[k] }, log)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.warn {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log lacks %s:\n%s", w, logs.String())
				}
			}
			if len(tc.warn) == 0 && strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("unexpected warning:\n%s", logs.String())
			}
			if got := c.resource(); len(got) != tc.resource {
				t.Errorf("resource %v, want %d attributes", got, tc.resource)
			}
			next := &collectSpans{}
			c.wrap(next, metrics.New()).Export(spans.Span{Kind: trace.SpanKindClient,
				Attrs: []attribute.KeyValue{attribute.String("network.peer.address", "10.20.0.1")}})
			if marked := len(next.got) == 1 && len(next.got[0].Attrs) == 3; marked != tc.marks {
				t.Errorf("marked %v, want %v: %v", marked, tc.marks, next.got)
			}
		})
	}
}
