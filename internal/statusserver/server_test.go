package statusserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type fakeMetrics struct{}

func (fakeMetrics) WriteText(w io.Writer) error {
	_, err := io.WriteString(w, "weft_up 1\n")
	return err
}

var statusHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	io.WriteString(w, `[{"pid":42,"exe":"/usr/bin/secret-service"}]`)
})

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// The public listener: what Prometheus and the kubelet need, not /status;
// the local one: /status too.
func TestPublicAndLocalListeners(t *testing.T) {
	clk := newFakeClock()
	live := NewLiveness(clk.now)
	hb := live.Register("sockio", 5*time.Second)
	var ready atomic.Bool
	s := start(t, Config{
		PublicAddr: "127.0.0.1:0", LocalAddr: "127.0.0.1:0",
		StatusLocalOnly: true, // loopback in the test, treated as the pod-network address
		Metrics:         fakeMetrics{}, Status: statusHandler,
		Ready: ready.Load, Live: live,
	})
	pub, loc := s.PublicAddr(), s.LocalAddr()
	if pub == "" || loc == "" || pub == loc || s.StatusAddr() != loc {
		t.Fatalf("addresses: public %q local %q status %q", pub, loc, s.StatusAddr())
	}

	if code, body := get(t, pub, "/status"); code != http.StatusNotFound || strings.Contains(body, "secret-service") {
		t.Fatalf("public /status: %d %q, want 404 without the process list", code, body)
	}
	if code, body := get(t, loc, "/status"); code != http.StatusOK || !strings.Contains(body, "secret-service") {
		t.Fatalf("local /status: %d %q", code, body)
	}

	for _, addr := range []string{pub, loc} {
		if code, body := get(t, addr, "/metrics"); code != http.StatusOK || body != "weft_up 1\n" {
			t.Fatalf("%s /metrics: %d %q", addr, code, body)
		}
		if code, body := get(t, addr, "/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Fatalf("%s /healthz: %d %q", addr, code, body)
		}
		if code, _ := get(t, addr, "/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("%s /readyz before ready: %d, want 503", addr, code)
		}
		if code, _ := get(t, addr, "/debug/pprof/"); code != http.StatusNotFound {
			t.Fatalf("%s pprof not asked for: %d, want 404", addr, code)
		}
	}
	ready.Store(true)
	if code, body := get(t, pub, "/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/readyz when ready: %d %q", code, body)
	}

	// /healthz follows the heartbeats.
	clk.advance(8 * time.Second)
	code, body := get(t, pub, "/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "sockio: no progress for 8s (max 5s)") {
		t.Fatalf("/healthz with sockio stuck: %d %q", code, body)
	}
	hb.Beat()
	if code, _ := get(t, pub, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after a beat: %d", code)
	}
}

// A public listener bound to every address never serves /status, whatever
// StatusLocalOnly says.
func TestWildcardPublicHidesStatus(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skipf("cannot bind 0.0.0.0 here: %v", err)
	}
	ln.Close()
	s := start(t, Config{PublicAddr: "0.0.0.0:0", LocalAddr: "127.0.0.1:0", Status: statusHandler, Metrics: fakeMetrics{}})
	_, port, _ := net.SplitHostPort(s.PublicAddr())
	pub := net.JoinHostPort("127.0.0.1", port)
	if code, _ := get(t, pub, "/status"); code != http.StatusNotFound {
		t.Fatalf("public /status on 0.0.0.0: %d, want 404", code)
	}
	if code, _ := get(t, pub, "/metrics"); code != http.StatusOK {
		t.Fatalf("public /metrics: %d", code)
	}
	if s.LocalAddr() == "" || s.StatusAddr() != s.LocalAddr() {
		t.Fatalf("local %q status %q", s.LocalAddr(), s.StatusAddr())
	}
	if code, _ := get(t, s.LocalAddr(), "/status"); code != http.StatusOK {
		t.Fatalf("local /status: %d", code)
	}
}

// A loopback public address (the default outside Kubernetes) serves
// /status itself; no second listener is opened, so several agents on one
// host (the e2e tests) do not fight over the local port.
func TestLoopbackPublicServesStatus(t *testing.T) {
	s := start(t, Config{PublicAddr: "127.0.0.1:0", LocalAddr: "127.0.0.1:0", Status: statusHandler})
	if s.LocalAddr() != "" {
		t.Fatalf("local listener opened at %s: want none", s.LocalAddr())
	}
	if s.StatusAddr() != s.PublicAddr() {
		t.Fatalf("StatusAddr %q, want the public %q", s.StatusAddr(), s.PublicAddr())
	}
	if code, body := get(t, s.PublicAddr(), "/status"); code != http.StatusOK || !strings.Contains(body, "secret-service") {
		t.Fatalf("/status: %d %q", code, body)
	}
}

func TestPprofWhenAsked(t *testing.T) {
	s := start(t, Config{PublicAddr: "127.0.0.1:0", Pprof: true})
	if code, body := get(t, s.PublicAddr(), "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof: %d", code)
	}
}

// A local address that is not loopback is refused, and the public
// listener already opened is closed again.
func TestLocalMustBeLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pub := ln.Addr().String()
	ln.Close()
	s, err := Start(Config{PublicAddr: pub, StatusLocalOnly: true, LocalAddr: "0.0.0.0:0"})
	if err == nil {
		s.Shutdown(context.Background())
		t.Fatal("local 0.0.0.0: want an error")
	}
	if !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("error %q does not say why", err)
	}
	ln, err = net.Listen("tcp", pub)
	if err != nil {
		t.Fatalf("public listener left open after the error: %v", err)
	}
	ln.Close()
}

func TestListenErrorsSurface(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := Start(Config{PublicAddr: taken.Addr().String()}); err == nil {
		t.Fatal("public address taken: want an error")
	}
	if _, err := Start(Config{PublicAddr: "127.0.0.1:0", StatusLocalOnly: true, LocalAddr: taken.Addr().String()}); err == nil {
		t.Fatal("local address taken: want an error")
	}
	if _, err := Start(Config{PublicAddr: "not an address"}); err == nil {
		t.Fatal("malformed address: want an error")
	}
}

func TestShutdown(t *testing.T) {
	var nilServer *Server
	if err := nilServer.Shutdown(context.Background()); err != nil {
		t.Fatalf("nil Shutdown: %v", err)
	}
	s, err := Start(Config{PublicAddr: "127.0.0.1:0", LocalAddr: "127.0.0.1:0", StatusLocalOnly: true, Status: statusHandler})
	if err != nil {
		t.Fatal(err)
	}
	pub, loc := s.PublicAddr(), s.LocalAddr()
	get(t, pub, "/healthz")
	for i := range 2 {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown #%d: %v", i+1, err)
		}
	}
	for _, addr := range []string{pub, loc} {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			t.Fatalf("%s still served after Shutdown", addr)
		}
	}
	// Nothing configured: a server with no listener, still safe to stop.
	empty, err := Start(Config{})
	if err != nil || empty.StatusAddr() != "" {
		t.Fatalf("empty config: %v %q", err, empty.StatusAddr())
	}
	if err := empty.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
