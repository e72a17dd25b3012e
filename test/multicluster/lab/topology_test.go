package lab

import (
	"strings"
	"testing"

	"github.com/weft-dev/weft/internal/otlpjson"
)

func TestRoute(t *testing.T) {
	cs := Topology()
	want := "grpc://127.0.0.1:9090 http://127.0.0.1:8081 grpc://10.99.2.2:9091 http://127.0.0.1:8082 " +
		"grpc://127.0.0.1:9092 http://10.99.3.2:8083 grpc://127.0.0.1:9093 fail"
	if got := Route(cs, "fail"); got != want {
		t.Errorf("Route:\n got %s\nwant %s", got, want)
	}
	if got := LocalRoute(cs); got != "grpc://127.0.0.1:9090 http://127.0.0.1:8081" {
		t.Errorf("LocalRoute: %s", got)
	}
	if got := PeersEnv(cs); got != "aws-us-east-1-shop-01=10.99.1.0/24;aws-us-west-2-shop-01=10.99.2.0/24;aws-eu-west-1-shop-01=10.99.3.0/24" {
		t.Errorf("PeersEnv: %s", got)
	}
	if c := ClusterOf(cs, "billing"); c == nil || c.Region != "eu-west-1" {
		t.Errorf("ClusterOf(billing) = %+v", c)
	}
	if ClusterOf(cs, "nobody") != nil {
		t.Error("ClusterOf(nobody) found a cluster")
	}
}

func TestTree(t *testing.T) {
	res := func(svc, cluster string) map[string]any {
		return map[string]any{"service.name": svc, "k8s.cluster.name": cluster}
	}
	spans := []otlpjson.Span{
		{TraceID: "t1", SpanID: "b", ParentSpanID: "a", Name: "Check", Kind: 3, StartUnixNano: 2e6, EndUnixNano: 8e6,
			Resource: res("user", "east"), Attrs: map[string]any{"cross_cluster.source": "east", "cross_cluster.target": "west"}},
		{TraceID: "t1", SpanID: "a", Name: "GET", Kind: 2, StartUnixNano: 0, EndUnixNano: 10e6, Resource: res("gateway", "east")},
		{TraceID: "t1", SpanID: "c", ParentSpanID: "b", Name: "Check", Kind: 2, StartUnixNano: 3e6, EndUnixNano: 7e6,
			Resource: res("order", "west"), StatusCode: 2},
		{TraceID: "t1", SpanID: "d", ParentSpanID: "gone", Name: "GET", Kind: 2, StartUnixNano: 9e6, EndUnixNano: 10e6, Resource: res("lost", "eu")},
	}
	got := Tree(spans)
	lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5:\n%s", len(lines), got)
	}
	for i, want := range []string{
		"trace t1: 4 spans in 3 clusters, 10.0 ms",
		"gateway SERVER", "└─ user CLIENT", "   └─ order SERVER", "lost SERVER",
	} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d = %q, want it to start with %q", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[2], "crosses east → west") || !strings.Contains(lines[3], "ERROR") {
		t.Errorf("marks missing:\n%s", got)
	}
	if Tree(nil) != "(no spans)\n" {
		t.Error("empty trace")
	}
}

func TestShapeHelpers(t *testing.T) {
	if got := RingMembers([]string{"127.0.0.1:1", "127.0.0.1:2"}); got != "[127.0.0.1:1, 127.0.0.1:2]" {
		t.Errorf("RingMembers = %s", got)
	}
	if got := hostsLines("hub", []string{"127.0.0.2", "127.0.0.3"}); got != "127.0.0.2 hub\n127.0.0.3 hub\n" {
		t.Errorf("hostsLines = %q", got)
	}
	if got := hostsLines("hub", nil); got != "" {
		t.Errorf("hostsLines of none = %q", got)
	}
	for _, tc := range []struct{ prefix, want string }{
		{"HUB", "HUB_SPANS_FILE"}, {"PEER", "PEER_SPANS_FILE"}, {"HYBRID", "LOCAL_SPANS_FILE"},
	} {
		if got := spanFileVar(tc.prefix); got != tc.want {
			t.Errorf("spanFileVar(%s) = %s, want %s", tc.prefix, got, tc.want)
		}
	}
	for s, want := range map[Shape]string{HubAndSpoke: "hub-and-spoke", PeerToPeer: "peer-to-peer",
		Hybrid: "hybrid", HubReplicas: "hub×2", Shape(9): "shape(9)"} {
		if s.String() != want {
			t.Errorf("Shape(%d) = %s, want %s", int(s), s, want)
		}
	}
}
