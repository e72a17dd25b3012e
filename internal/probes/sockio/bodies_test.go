package sockio

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/listener"
	"github.com/weft-dev/weft/internal/testutil/spanrec"
)

// TestBodiesLeftOut: a server whose sends are chosen (testdata/bodies.py)
// answers on one keep-alive connection with Content-Length bodies in the
// head's send, in sends of their own, announced but absent (HEAD), chunked,
// and made of bytes that look like responses. Every response gives one
// exact span (status, body length, and an end that waits for a late last
// send) from both capture sources. The sock tracepoints must have left
// bodies out of the ring (body_cut, body_skipped); the syscall source
// copies them.
func TestBodiesLeftOut(t *testing.T) {
	kernel.Require(t)
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "testdata/bodies.py")
	type req struct {
		method, path string
		size         int64 // the response body's length on the wire
		minDur       time.Duration
		upload       int // request body bytes
	}
	reqs := []req{
		{"GET", "/cut", 100000, 0, 0},
		{"GET", "/split", 300000, 50 * time.Millisecond, 0},
		{"HEAD", "/head", 0, 0, 0},
		{"GET", "/split", 300000, 50 * time.Millisecond, 0},
		{"GET", "/chunked", -1, 0, 0},
		{"GET", "/lookalike", 40000, 0, 0},
		{"GET", "/hello", 5, 0, 0},
		{"GET", "/cut", 100000, 0, 0},
		{"POST", "/hello", 5, 0, 1 << 20},
		{"GET", "/hello", 5, 0, 0},
	}
	eachSource(t, func(t *testing.T, capture string) {
		rec := spanrec.New()
		p := newProbe(rec, metrics.New(), capture)
		if err := p.Start(context.Background()); err != nil {
			t.Fatalf("starting sockio: %v", err)
		}
		defer p.Shutdown(context.Background())
		srv := listener.Start(t, "/usr/bin/python3", script)
		if err := p.Track(&probes.Process{PID: srv.Cmd.Process.Pid}); err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, DisableCompression: true}}
		for _, r := range reqs {
			var body io.Reader
			if r.upload > 0 {
				body = bytes.NewReader(bytes.Repeat([]byte("u"), r.upload))
			}
			hr, _ := http.NewRequest(r.method, "http://"+srv.Addr+r.path, body)
			resp, err := client.Do(hr)
			if err != nil {
				t.Fatalf("%s %s: %v", r.method, r.path, err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s %s: status %d, %d body bytes, %v", r.method, r.path, resp.StatusCode, n, err)
			}
		}
		got := rec.WaitExactly(t, len(reqs), 10*time.Second)
		for i, s := range got {
			r := reqs[i]
			where := fmt.Sprintf("span %d (%s %s)", i, r.method, r.path)
			if s.Name != r.method || attr(s, "url.path") != r.path || attr(s, "http.response.status_code") != int64(200) {
				t.Errorf("%s: %q %v status %v", where, s.Name, attr(s, "url.path"), attr(s, "http.response.status_code"))
			}
			if size := attr(s, "http.response.body.size"); r.size > 0 && size != r.size {
				t.Errorf("%s: http.response.body.size %v, want %d", where, size, r.size)
			}
			if up := attr(s, "http.request.body.size"); r.upload > 0 && up != int64(r.upload) {
				t.Errorf("%s: http.request.body.size %v, want %d", where, up, r.upload)
			}
			if d := s.End.Sub(s.Start); d < r.minDur {
				t.Errorf("%s: lasted %v, want at least %v (the end is the last send's)", where, d, r.minDur)
			}
		}
		cut, skipped := p.kernelStat(23), p.kernelStat(22)
		t.Logf("%s: body_cut %d, body_skipped %d", capture, cut, skipped)
		switch {
		case leavesBodiesOut(p.source):
			// /cut's sends (2), /split's later sends (2 x 10; /lookalike's
			// are copied: each starts like a response) and the upload's
			// reads after its first.
			if cut < 2 || skipped < 21 {
				t.Errorf("body_cut %d (want >= 2), body_skipped %d (want >= 21)", cut, skipped)
			}
		default:
			if cut+skipped != 0 {
				t.Errorf("body_cut %d, body_skipped %d: want 0", cut, skipped)
			}
		}
	})
}
