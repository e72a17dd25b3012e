package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/testutil/otelcol"
)

// getAll GETs n URLs through hc, at most conc at a time (0: all n at once,
// released together), and fails the test once all are answered if any gave
// a transport error or an answer other than 200 with body want. get(i)
// gives the i-th request's name in error messages ("request 7") and its
// URL.
func getAll(t *testing.T, hc *http.Client, n, conc int, get func(i int) (name, url string), want string) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	var sem chan struct{}
	if conc > 0 {
		sem = make(chan struct{}, conc)
		close(start)
	}
	for i := range n {
		wg.Add(1)
		if sem != nil {
			sem <- struct{}{}
		}
		go func() {
			defer func() {
				if sem != nil {
					<-sem
				}
				wg.Done()
			}()
			<-start
			name, u := get(i)
			resp, err := hc.Get(u)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != want {
				t.Errorf("%s: %d %q", name, resp.StatusCode, body)
			}
		}()
	}
	if sem == nil {
		close(start)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// request names the i-th request for getAll: "request 7".
func request(i int) string { return fmt.Sprintf("request %d", i) }

// spansByKey polls the collector, once a second until want distinct keys
// are held or timeout passes, and returns its spans by key(s) (spans whose
// key is "" are left out). It never fails the test: the caller reports
// which keys are missing.
func spansByKey(t *testing.T, col *otelcol.Collector, want int, timeout time.Duration, key func(otelcol.Span) string) map[string]otelcol.Span {
	t.Helper()
	by := map[string]otelcol.Span{}
	for deadline := time.Now().Add(timeout); len(by) < want && time.Now().Before(deadline); time.Sleep(time.Second) {
		clear(by)
		for _, s := range col.Spans(t) {
			if k := key(s); k != "" {
				by[k] = s
			}
		}
	}
	return by
}

// spansWithKeys waits (up to timeout) until a span of each wanted key is
// there (key naming a span's, "" none), and returns the spans by key.
func spansWithKeys(t *testing.T, col *otelcol.Collector, timeout time.Duration, key func(otelcol.Span) string, want []string) map[string]otelcol.Span {
	t.Helper()
	by := map[string]otelcol.Span{}
	for _, s := range waitKeys(t, col, timeout, key, want...) {
		if k := key(s); k != "" {
			by[k] = s
		}
	}
	return by
}

// roleKey keys a span for spansByKey by the role of the process that made
// it (role maps a process.pid to "a", "b", ...) and its spanID: "a
// server:a7". Spans of processes without a role get "".
func roleKey(role map[string]string) func(otelcol.Span) string {
	return func(s otelcol.Span) string {
		if r := role[fmt.Sprint(s.Resource["process.pid"])]; r != "" {
			return r + " " + spanID(s)
		}
		return ""
	}
}
