// Command loadgen sends HTTP/1.1 GETs at a fixed rate over keep-alive
// connections, for benchmarks that need a rate wrk cannot hold (wrk only
// saturates). Each of -c connections has its own schedule (rate/c, phases
// spread); a request that falls behind is sent at once, so the achieved
// rate shows whether the target was held. It prints one line:
//
//	LOAD rps=1999.8 p50_us=120 p99_us=410 calls=15998 errors=0
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	target := flag.String("url", "", "URL to GET (http only)")
	rate := flag.Float64("rate", 2000, "requests per second, all connections together")
	conns := flag.Int("c", 8, "keep-alive connections")
	dur := flag.Duration("d", 8*time.Second, "how long to send")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" || *rate <= 0 || *conns <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen: want -url http://host:port/path, -rate > 0, -c > 0")
		os.Exit(2)
	}
	req := []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: weft-loadgen\r\n\r\n", u.RequestURI(), u.Host))
	interval := time.Duration(float64(*conns) / *rate * float64(time.Second))
	start := time.Now().Add(50 * time.Millisecond)
	end := start.Add(*dur)

	var mu sync.Mutex
	var lat []time.Duration
	calls, errs := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var mine []time.Duration
			n, bad := 0, 0
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				calls += n
				errs += bad
				mu.Unlock()
			}()
			var c net.Conn
			var br *bufio.Reader
			next := start.Add(interval * time.Duration(i) / time.Duration(*conns))
			for next.Before(end) {
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				next = next.Add(interval)
				if c == nil {
					var err error
					if c, err = net.Dial("tcp", u.Host); err != nil {
						bad++
						continue
					}
					br = bufio.NewReader(c)
				}
				t0 := time.Now()
				if err := get(c, br, req); err != nil {
					bad++
					c.Close()
					c = nil
					continue
				}
				mine = append(mine, time.Since(t0))
				n++
			}
			if c != nil {
				c.Close()
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if elapsed > *dur {
		elapsed = *dur // the last sends are scheduled before end
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(p float64) int64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))].Microseconds()
	}
	fmt.Printf("LOAD rps=%.1f p50_us=%d p99_us=%d calls=%d errors=%d\n",
		float64(calls)/elapsed.Seconds(), pct(0.50), pct(0.99), calls, errs)
}

// get sends one request and reads the whole response.
func get(c net.Conn, br *bufio.Reader, req []byte) error {
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
