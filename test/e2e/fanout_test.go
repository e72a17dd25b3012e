package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
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
