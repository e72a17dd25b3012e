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
	"github.com/weft-dev/weft/internal/testutil/spanrec"
)

func TestLoadClusters(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cluster  string
		env      map[string]string
		err      string   // substring; "" for none
		warn     []string // substrings of the log
		info     []string // substrings of the log, not warnings
		resource int      // attributes of the resource
		marks    bool     // a client call into 10.20.0.0/16 is marked
		claim    bool     // a server span from 203.0.113.9 claiming aws-us-west-2-prod-01 is marked
	}{
		{name: "nothing configured", resource: 0},
		{name: "full identity", cluster: "aws-us-east-1-prod-01",
			env:      map[string]string{"CLOUD_PROVIDER": "aws", "CLUSTER_REGION": "us-east-1", "ENVIRONMENT": "prod", "WEFT_CLUSTER_PEERS": "aws-us-west-2-prod-01=10.20.0.0/16"},
			info:     []string{"lists no CIDRs of this cluster", "trust_claims=peers"},
			resource: 4, marks: true},
		{name: "name only", cluster: "aws-us-east-1-prod-01", info: []string{"believed from loopback only"}, resource: 1},
		{name: "trust peers", cluster: "aws-us-east-1-prod-01",
			env:      map[string]string{"WEFT_CLUSTER_PEERS": "aws-us-west-2-prod-01=10.20.0.0/16;aws-us-east-1-prod-01=10.0.0.0/16", "WEFT_TRUST_CLUSTER_CLAIMS": "peers"},
			resource: 1, marks: true},
		{name: "trust any", cluster: "aws-us-east-1-prod-01",
			env:  map[string]string{"WEFT_CLUSTER_PEERS": "aws-us-west-2-prod-01=10.20.0.0/16;aws-us-east-1-prod-01=10.0.0.0/16", "WEFT_TRUST_CLUSTER_CLAIMS": " any "},
			warn: []string{"level=WARN", "WEFT_TRUST_CLUSTER_CLAIMS=any", "trust_claims=any"}, resource: 1, marks: true, claim: true},
		{name: "trust any without a map", cluster: "aws-us-east-1-prod-01", env: map[string]string{"WEFT_TRUST_CLUSTER_CLAIMS": "any"},
			warn: []string{"level=WARN", "WEFT_TRUST_CLUSTER_CLAIMS=any"}, resource: 1, claim: true},
		{name: "trust misspelt", cluster: "aws-us-east-1-prod-01", env: map[string]string{"WEFT_TRUST_CLUSTER_CLAIMS": "all"},
			err: `WEFT_TRUST_CLUSTER_CLAIMS: "all": want "peers" (the default) or "any"`},
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
			for _, w := range append(tc.warn, tc.info...) {
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
			next := spanrec.New()
			c.wrap(next, metrics.New()).Export(spans.Span{Kind: trace.SpanKindClient,
				Attrs: []attribute.KeyValue{attribute.String("network.peer.address", "10.20.0.1")}})
			got := next.Spans()
			if marked := len(got) == 1 && len(got[0].Attrs) == 3; marked != tc.marks {
				t.Errorf("marked %v, want %v: %v", marked, tc.marks, got)
			}
			// A claim from outside every listed cluster: believed only when
			// told to believe everyone.
			next = spanrec.New()
			c.wrap(next, metrics.New()).Export(spans.Span{Kind: trace.SpanKindServer, TraceState: "weft=aws-us-west-2-prod-01",
				Attrs: []attribute.KeyValue{attribute.String("network.peer.address", "203.0.113.9")}})
			src := ""
			got = next.Spans()
			for _, kv := range got[0].Attrs {
				if kv.Key == "cross_cluster.source" {
					src = kv.Value.AsString()
				}
			}
			if claimed := src == "aws-us-west-2-prod-01"; claimed != tc.claim {
				t.Errorf("claim believed %v, want %v: %v", claimed, tc.claim, got[0].Attrs)
			}
		})
	}
}
