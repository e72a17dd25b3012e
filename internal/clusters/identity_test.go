package clusters

import (
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

func TestResource(t *testing.T) {
	for _, tc := range []struct {
		id   Identity
		want []attribute.KeyValue
	}{
		{Identity{}, nil},
		{Identity{Name: "aws-us-east-1-prod-01", Provider: "aws", Region: "us-east-1", Environment: "prod"}, []attribute.KeyValue{
			attribute.String("k8s.cluster.name", "aws-us-east-1-prod-01"), attribute.String("cloud.provider", "aws"),
			attribute.String("cloud.region", "us-east-1"), attribute.String("deployment.environment.name", "prod")}},
		{Identity{Region: "eu-west-1"}, []attribute.KeyValue{attribute.String("cloud.region", "eu-west-1")}},
	} {
		got := tc.id.Resource()
		if len(got) != len(tc.want) {
			t.Errorf("%+v: %v, want %v", tc.id, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%+v: %v, want %v", tc.id, got, tc.want)
			}
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   Identity
		want []string // one substring per expected problem
	}{
		{"conventional", Identity{Name: "aws-us-east-1-prod-01", Provider: "aws", Region: "us-east-1"}, nil},
		{"case of provider and region", Identity{Name: "gcp-europe-west1-shop-2", Provider: "gcp", Region: "Europe-West1"}, nil},
		{"no name", Identity{Provider: "aws"}, nil},
		{"name only", Identity{Name: "aws-us-east-1-prod-01"}, nil},
		{"off convention", Identity{Name: "prod", Region: "us-east-1"}, []string{"does not follow"}},
		{"wrong region", Identity{Name: "aws-us-east-1-prod-01", Provider: "aws", Region: "us-west-2"}, []string{`CLUSTER_REGION says "us-west-2"`}},
		{"wrong provider and region", Identity{Name: "aws-us-east-1-prod-01", Provider: "gcp", Region: "us-west-2"},
			[]string{`CLOUD_PROVIDER says "gcp"`, `CLUSTER_REGION says "us-west-2"`}},
		{"unknown provider", Identity{Name: "hetzner-fsn1-web-1", Provider: "hetzner"}, []string{"not one of the OpenTelemetry"}},
		{"bad characters", Identity{Name: "my cluster"}, []string{"want up to", "does not follow"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.id.Check()
			if len(errs) != len(tc.want) {
				t.Fatalf("problems %v, want %d", errs, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("problem %d %q lacks %q", i, errs[i], w)
				}
			}
		})
	}
}
