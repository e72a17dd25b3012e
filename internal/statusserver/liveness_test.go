package statusserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func find(t *testing.T, comps []Component, name string) Component {
	t.Helper()
	for _, c := range comps {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("component %q not in %v", name, comps)
	return Component{}
}

func TestLivenessWindows(t *testing.T) {
	clk := newFakeClock()
	l := NewLiveness(clk.now)
	if _, ok := l.Check(); !ok {
		t.Fatal("no component registered: want alive")
	}
	sockio := l.Register("sockio", 5*time.Second)
	disc := l.Register("discovery", time.Second)

	clk.advance(900 * time.Millisecond)
	if comps, ok := l.Check(); !ok {
		t.Fatalf("within both windows: %v", comps)
	}
	clk.advance(200 * time.Millisecond)
	comps, ok := l.Check()
	if ok {
		t.Fatal("discovery silent 1.1s with a 1s window: want not alive")
	}
	d := find(t, comps, "discovery")
	if d.Alive() || d.Silence != 1100*time.Millisecond {
		t.Fatalf("discovery = %+v", d)
	}
	if got, want := d.String(), "discovery: no progress for 1.1s (max 1s)"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if s := find(t, comps, "sockio"); !s.Alive() {
		t.Fatalf("sockio = %+v", s)
	}

	disc.Beat()
	if comps, ok := l.Check(); !ok {
		t.Fatalf("after a beat: %v", comps)
	}

	// Exactly at the window's end is still alive; a nanosecond later not.
	clk.advance(5*time.Second - 1100*time.Millisecond)
	disc.Beat()
	if comps, ok := l.Check(); !ok {
		t.Fatalf("sockio silent exactly 5s: %v", comps)
	}
	clk.advance(time.Nanosecond)
	if _, ok := l.Check(); ok {
		t.Fatal("sockio silent 5s+1ns: want not alive")
	}
	sockio.Beat()
	if comps, ok := l.Check(); !ok {
		t.Fatalf("after sockio's beat: %v", comps)
	}
}

func TestLivenessWindowStartsAtRegistration(t *testing.T) {
	clk := newFakeClock()
	l := NewLiveness(clk.now)
	clk.advance(time.Hour) // the agent took long to start: not held against a later component
	l.Register("late", time.Second)
	if comps, ok := l.Check(); !ok {
		t.Fatalf("just registered: %v", comps)
	}
	clk.advance(2 * time.Second)
	if _, ok := l.Check(); ok {
		t.Fatal("never beat after registering, 2s > 1s: want not alive")
	}
}

func TestLivenessWedged(t *testing.T) {
	clk := newFakeClock()
	l := NewLiveness(clk.now)
	exp := l.Register("exporter", 30*time.Second)

	exp.Wedged("sender stuck in an upload")
	exp.Beat() // beats do not clear a wedge
	clk.advance(2 * time.Second)
	exp.Wedged("sender stuck in an upload past its deadline")
	comps, ok := l.Check()
	if ok {
		t.Fatal("wedged: want not alive")
	}
	c := find(t, comps, "exporter")
	if c.WedgedFor != 2*time.Second {
		t.Fatalf("WedgedFor = %s, want 2s (since the first Wedged)", c.WedgedFor)
	}
	if got, want := c.String(), "exporter: wedged for 2s: sender stuck in an upload past its deadline"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}

	exp.Ok()
	if comps, ok := l.Check(); !ok {
		t.Fatalf("after Ok: %v", comps)
	}
}

func TestLivenessStop(t *testing.T) {
	clk := newFakeClock()
	l := NewLiveness(clk.now)
	a := l.Register("a", time.Second)
	b := l.Register("b", time.Second)
	a.Stop()
	a.Stop()
	clk.advance(time.Minute)
	b.Beat()
	a.Beat() // ignored
	comps, ok := l.Check()
	if !ok || len(comps) != 1 || comps[0].Name != "b" {
		t.Fatalf("after a.Stop: %v, %v", comps, ok)
	}
}

func TestLivenessNil(t *testing.T) {
	var l *Liveness
	h := l.Register("x", time.Second)
	if h != nil {
		t.Fatal("nil Liveness: want a nil heartbeat")
	}
	h.Beat()
	h.Wedged("x")
	h.Ok()
	h.Stop()
	if _, ok := l.Check(); !ok {
		t.Fatal("nil Liveness: want alive")
	}
	rec := httptest.NewRecorder()
	l.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Fatalf("nil Liveness /healthz: %d %q", rec.Code, rec.Body.String())
	}
}

func TestRegisterNonPositivePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("want a panic")
		}
	}()
	NewLiveness(nil).Register("x", 0)
}

func TestHealthzHandler(t *testing.T) {
	clk := newFakeClock()
	l := NewLiveness(clk.now)
	sock := l.Register("sockio", 5*time.Second)
	l.Register("discovery", time.Minute)

	get := func(url string) (int, string) {
		rec := httptest.NewRecorder()
		l.ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthy: %d %q", code, body)
	}
	code, body := get("/healthz?verbose")
	if code != http.StatusOK || !strings.Contains(body, "sockio: ok") || !strings.Contains(body, "discovery: ok") {
		t.Fatalf("healthy, verbose: %d %q", code, body)
	}

	clk.advance(12 * time.Second)
	code, body = get("/healthz")
	want := "unhealthy\nsockio: no progress for 12s (max 5s)\n"
	if code != http.StatusServiceUnavailable || body != want {
		t.Fatalf("sockio stuck: %d %q, want 503 %q", code, body, want)
	}
	sock.Beat()
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Fatalf("after a beat: %d %q", code, body)
	}
}

// Beat races with Check and Register (go test -race).
func TestLivenessConcurrent(t *testing.T) {
	l := NewLiveness(nil)
	h := l.Register("hot", time.Minute)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					h.Beat()
				}
			}
		}()
	}
	for i := range 100 {
		if i%10 == 0 {
			l.Register("more", time.Minute).Stop()
		}
		if comps, ok := l.Check(); !ok {
			t.Errorf("beating: %v", comps)
		}
	}
	close(stop)
	wg.Wait()
}

func BenchmarkBeat(b *testing.B) {
	h := NewLiveness(nil).Register("hot", time.Second)
	for b.Loop() {
		h.Beat()
	}
}
