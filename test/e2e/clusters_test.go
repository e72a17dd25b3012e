package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// The agent under test plays cluster east; the peer map gives clusters
// west and eu one loopback address each (the whole of 127/8 is loopback
// on Linux), so that the servers listening there are "in" those clusters.
const (
	clEast = "aws-us-east-1-prod-01"
	clWest = "aws-us-west-2-prod-01"
	clEU   = "aws-eu-west-1-prod-01"
)

// TestClusters: every span carries the configured cluster identity, and
// exactly the spans that cross a boundary carry cross_cluster.source and
// cross_cluster.target: client calls into another cluster's addresses, and
// server spans whose caller names another cluster in tracestate or
// X-Source-Cluster, or calls from another cluster's address, or from an
// address in no cluster (external). Loopback and this cluster's own
// addresses mark nothing.
func TestClusters(t *testing.T) {
	needRoot(t)
	col := otelcol.Start(t)
	root, dir := repoRoot(t), t.TempDir()
	bin := goBuild(t, filepath.Join(root, "testdata/httpserver"), "", filepath.Join(dir, "weft-e2e-clusters"))
	start := func(name, listen string) *server {
		s := startServer(t, name, bin, "-addr", listen+":0")
		s.Addr = net.JoinHostPort(listen, fmt.Sprint(s.Port))
		return s
	}
	// A listens on every address: the external caller reaches it on the
	// host's own non-loopback address.
	a, b, c := start("a", "0.0.0.0"), start("b", "127.0.0.2"), start("c", "127.0.0.3")
	a.Addr = net.JoinHostPort("127.0.0.1", fmt.Sprint(a.Port))
	hostIP := nonLoopbackIPv4(t)

	env := []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + col.Endpoint,
		"CLUSTER_NAME=" + clEast, "CLOUD_PROVIDER=aws", "CLUSTER_REGION=us-east-1", "ENVIRONMENT=e2e",
		"WEFT_CLUSTER_PEERS=" + clEast + "=127.0.0.1/32;\n" + clWest + "=127.0.0.2;" + clEU + "=127.0.0.3/32",
	}
	ag := startAgent(t, env, "-exe", filepath.Base(bin))
	for _, s := range []*server{a, b, c} {
		ag.waitTracked(t, s.PID())
	}

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	chain := func(n string) string {
		cURL := fmt.Sprintf("http://%s/work?id=%sc1", c.Addr, n)
		bURL := fmt.Sprintf("http://%s/call?id=%sb1&to=%s", b.Addr, n, url.QueryEscape(cURL))
		return n + "a1&to=" + url.QueryEscape(bURL)
	}
	// A chain A → B → C, then single requests into A from the test, which
	// is not traced: only A's server spans come of those. The chain runs
	// once first (spans "w...", not checked here) to open A's and B's
	// keep-alive connections, so that the checked chain uses them. (First
	// requests of new connections with tracestate injected are covered by
	// TestMixedChain and the three-cluster lab.)
	requests := []struct {
		id, from string
		header   map[string]string
	}{
		{chain("w"), "127.0.0.1", nil},
		{chain(""), "127.0.0.1", nil},
		{"a2", "127.0.0.1", map[string]string{"X-Source-Cluster": clWest}},
		{"a3", "127.0.0.1", map[string]string{"traceparent": tp, "tracestate": "congo=t61rcWkgMzE,weft=" + clEU, "X-Source-Cluster": clWest}},
		{"a4", "127.0.0.1", map[string]string{"traceparent": tp, "tracestate": "weft=" + clEast, "X-Source-Cluster": clWest}},
		{"a5", "127.0.0.1", map[string]string{"X-Source-Cluster": "not a cluster!"}},
		{"a6", "127.0.0.2", nil},
		{"a7", "127.0.0.9", nil},
		{"a8", hostIP, nil},
	}
	for _, r := range requests {
		target := a.Addr
		if r.from == hostIP {
			target = net.JoinHostPort(hostIP, fmt.Sprint(a.Port))
		}
		path := "/work?id="
		if strings.Contains(r.id, "&to=") {
			path = "/call?id="
		}
		callFrom(t, r.from, "http://"+target+path+r.id, r.header)
	}

	type cross struct{ src, dst string }
	want := map[string]cross{
		"server:a1": {}, "client:b1": {clEast, clWest}, "server:b1": {}, "client:c1": {clEast, clEU}, "server:c1": {},
		"server:a2": {clWest, clEast},     // X-Source-Cluster
		"server:a3": {clEU, clEast},       // tracestate before the header
		"server:a4": {},                   // tracestate names this cluster
		"server:a5": {},                   // a header that is no name; then the address: loopback
		"server:a6": {clWest, clEast},     // from west's address
		"server:a7": {},                   // loopback in no cluster
		"server:a8": {"external", clEast}, // a host address in no cluster, own CIDRs known
	}
	checked := func(s otelcol.Span) bool {
		_, id, _ := strings.Cut(spanID(s), ":")
		return id != "" && !strings.HasPrefix(id, "w")
	}
	got := col.WaitSpans(t, len(want), 60*time.Second, checked)
	// The identity is on every span, the warm-up's too.
	for _, s := range col.Spans(t) {
		for k, v := range map[string]string{"k8s.cluster.name": clEast, "cloud.provider": "aws", "cloud.region": "us-east-1",
			"deployment.environment.name": "e2e"} {
			if s.Resource[k] != v {
				t.Errorf("%s: resource %s = %v, want %q", spanID(s), k, s.Resource[k], v)
			}
		}
	}
	seen := map[string]int{}
	for _, s := range got {
		key := spanID(s)
		seen[key]++
		w, ok := want[key]
		if !ok {
			t.Errorf("unexpected span %s %+v", key, s.Attrs)
			continue
		}
		src, hasSrc := s.Attrs["cross_cluster.source"]
		dst, hasDst := s.Attrs["cross_cluster.target"]
		if w == (cross{}) {
			if hasSrc || hasDst {
				t.Errorf("%s: marked %v → %v, want no mark", key, src, dst)
			}
		} else if src != w.src || dst != w.dst {
			t.Errorf("%s: marked %v → %v, want %s → %s", key, src, dst, w.src, w.dst)
		}
	}
	for key := range want {
		if seen[key] != 1 {
			t.Errorf("%s: %d spans, want 1", key, seen[key])
		}
	}

	// Every marked CLIENT span is counted, the warm-up's too once they come.
	var toWest, toEU float64
	for _, s := range col.Spans(t) {
		if s.Kind != 3 {
			continue
		}
		switch s.Attrs["cross_cluster.target"] {
		case clWest:
			toWest++
		case clEU:
			toEU++
		}
	}
	if toWest < 1 || toEU < 1 {
		t.Errorf("marked client calls: %v to west, %v to eu; want at least one each", toWest, toEU)
	}
	for series, n := range map[string]float64{
		`weft_cross_cluster_spans_total{kind="client",via="address"}`:                                                   toWest + toEU,
		`weft_cross_cluster_spans_total{kind="server",via="tracestate"}`:                                                1,
		`weft_cross_cluster_spans_total{kind="server",via="header"}`:                                                    1,
		`weft_cross_cluster_spans_total{kind="server",via="address"}`:                                                   1,
		`weft_cross_cluster_spans_total{kind="server",via="external"}`:                                                  1,
		`weft_cross_cluster_claims_ignored_total{via="header"}`:                                                         1,
		`cross_cluster_request_duration_seconds_count{source_cluster="` + clEast + `",target_cluster="` + clWest + `"}`: toWest,
		`cross_cluster_request_duration_seconds_count{source_cluster="` + clEast + `",target_cluster="` + clEU + `"}`:   toEU,
	} {
		if got := ag.metric(t, series); got != n {
			t.Errorf("%s = %v, want %v", series, got, n)
		}
	}
	if log := ag.stderr.String(); !strings.Contains(log, `msg="cluster identity" name=`+clEast) || strings.Contains(log, "level=WARN msg=\"cluster identity\"") {
		t.Errorf("agent log about the identity:\n%s", tail(log, 30))
	}
}

// callFrom sends one GET from the local address from (a new connection),
// with extra request headers, and wants a 200.
func callFrom(t *testing.T, from, u string, header map[string]string) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       func(ctx context.Context, n, addr string) (net.Conn, error) { return d.DialContext(ctx, n, addr) },
	}}
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", u, from, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(body), "error") {
		t.Fatalf("GET %s from %s: %d %q", u, from, resp.StatusCode, body)
	}
}

// nonLoopbackIPv4 is an address of this host a caller outside every
// listed cluster can use.
func nonLoopbackIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	t.Fatalf("this host has no non-loopback IPv4 address to call from: %v", addrs)
	return ""
}
