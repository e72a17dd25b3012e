package inject_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/goinspect"
	"github.com/weft-dev/weft/internal/inject"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	probeinject "github.com/weft-dev/weft/internal/probes/inject"
	"github.com/weft-dev/weft/internal/probes/sockio"
	"github.com/weft-dev/weft/internal/protocols/http1"
	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/spanrec"
)

// injectTotals reads the family's weft_inject_total series.
func injectTotals(t *testing.T, met *metrics.Registry) map[string]string {
	t.Helper()
	var buf bytes.Buffer
	if err := met.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for sc := bufio.NewScanner(&buf); sc.Scan(); {
		var name, v string
		if _, err := fmt.Sscanf(sc.Text(), "weft_inject_total{name=%q} %s", &name, &v); err == nil {
			out[name] = v
		}
	}
	return out
}

// TestCgoProgramStaysOut: the agent's injector family, running, is handed
// a cgo program the way discovery hands it (Cgo from goinspect): it leaves
// injection off with the cgo reason, and neither the connection the
// program had nor one it makes afterwards enters the sockhash: FIONREAD,
// asked from C, counts the bytes waiting (TestFIONREADCgo shows it says 0
// for a socket in the sockhash).
func TestCgoProgramStaysOut(t *testing.T) { inject.EachHook(t, testCgoProgramStaysOut) }

func testCgoProgramStaysOut(t *testing.T, h inject.Hook) {
	kernel.Require(t)
	ctx := context.Background()
	addr := inject.StartSender(t)
	cl := inject.StartFionread(t, addr)
	cl.Dial(t) // before Track: the iterator would add it

	met := metrics.New()
	board := status.New(met)
	deps := probes.Deps{Metrics: met, Status: board}
	sock := sockio.New(deps, conntrack.Protocols{
		Fallback: http1.New(http1.Config{Sink: spanrec.New(), Metrics: met, MaxHeaderBytes: 8192}),
	})
	if err := sock.Start(ctx); err != nil {
		t.Fatalf("starting sockio: %v", err)
	}
	t.Cleanup(func() { sock.Shutdown(ctx) })
	fam := probeinject.New(deps, sock, probeinject.Config{On: true, Hook: h})
	if err := fam.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fam.Shutdown(ctx) })
	if fam.CtxMap() == nil {
		t.Fatal("injection is not running")
	}
	var feat *status.Feature
	for _, f := range board.Features() {
		if f.Name == status.Injection {
			feat = &f
		}
	}
	if feat == nil || !feat.On || !strings.Contains(feat.Why, "connecting process") {
		t.Errorf("the board's injection feature: %+v, want on, saying how it learns the connecting process", feat)
	}

	exe := fmt.Sprintf("/proc/%d/exe", cl.PID)
	b, err := goinspect.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	p := &probes.Process{PID: cl.PID, ExePath: exe, GoVersion: b.GoVersion, CCalls: b.CCalls}
	b.Close()
	if p.GoVersion == "" || p.CCalls != "main" {
		t.Fatalf("goinspect on the cgo test program: Go %q, C called from %q, want main", p.GoVersion, p.CCalls)
	}
	board.Add(p.PID, exe, p.GoVersion, nil)
	if err := fam.Track(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fam.Untrack(p.PID) })
	st, _ := board.Get(p.PID)
	if c := st.Capabilities[status.Injection]; c.On || !strings.HasPrefix(c.Why, probeinject.CgoOff) {
		t.Errorf("injection status %+v, want off: %q", c, probeinject.CgoOff)
	}
	// A pure Go process (this test's) gets injection, and its status says
	// how its connections are found.
	self := &probes.Process{PID: os.Getpid(), GoVersion: "go"}
	board.Add(self.PID, "self", self.GoVersion, nil)
	if err := fam.Track(self); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fam.Untrack(self.PID) })
	if st, _ := board.Get(self.PID); !st.Capabilities[status.Injection].On || !strings.Contains(st.Capabilities[status.Injection].Why, "connecting process") {
		t.Errorf("a Go process's injection status %+v, want on, saying how", st.Capabilities[status.Injection])
	}
	if !strings.HasPrefix(probeinject.CgoOff, "cgo program:") {
		t.Errorf("reason %q", probeinject.CgoOff)
	}

	cl.Dial(t) // after Track: sockops sees its connect
	got := cl.FIONREAD(t)
	if len(got) != 2 || got[0] != inject.FionreadSent || got[1] != inject.FionreadSent {
		t.Errorf("FIONREAD from C: %v, want %d on both connections (0: in the sockhash)", got, inject.FionreadSent)
	}
	if tot := injectTotals(t, met); tot["sockhash_add"] != "0" || tot["iter_add"] != "0" {
		t.Errorf("sockets added to the sockhash: %s at connect, %s by the iterator; want none", tot["sockhash_add"], tot["iter_add"])
	}
}
