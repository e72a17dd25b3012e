package inject

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/probes/sockio"
	"github.com/weft-dev/weft/internal/protocols/http1"
	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/spanrec"
)

// TestSwitchedOff: injection off by configuration is the agent's
// "injection" feature, off with that reason, and so is every process's
// capability; nothing is loaded.
func TestSwitchedOff(t *testing.T) {
	board := status.New(nil)
	fam := New(probes.Deps{Status: board}, nil, Config{})
	ctx := context.Background()
	if err := fam.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fam.Shutdown(ctx) })
	const why = "switched off by configuration"
	if f := board.Features(); len(f) != 1 || f[0] != (status.Feature{Name: status.Injection, On: false, Why: why}) {
		t.Errorf("features %+v, want injection off: %s", f, why)
	}
	board.Add(42, "/bin/x", "go1.26", nil)
	if err := fam.Track(&probes.Process{PID: 42, GoVersion: "go1.26"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := board.Get(42); p.Capabilities[status.Injection] != (status.Capability{On: false, Why: why}) {
		t.Errorf("process capability %+v, want off: %s", p.Capabilities[status.Injection], why)
	}
	if fam.CtxMap() != nil {
		t.Error("CtxMap while off")
	}
}

// TestStartOnThisKernel: the family on the kernel under test (this host,
// or a guest of scripts/vm/run.sh) starts either way: with injection on,
// saying how it learns connecting processes, or, on a kernel without
// bpf_loop (5.10), off with that reason, for the agent and each process,
// and inert.
func TestStartOnThisKernel(t *testing.T) {
	kernel.Require(t)
	ctx := context.Background()
	met := metrics.New()
	board := status.New(met)
	// The kernel types shared by the loads, as in the agent.
	deps := probes.Deps{Metrics: met, Status: board, BTF: probes.NewKernelBTF()}
	sock := sockio.New(deps, conntrack.Protocols{
		Fallback: http1.New(http1.Config{Sink: spanrec.New(), Metrics: met, MaxHeaderBytes: 8192}),
	})
	if err := sock.Start(ctx); err != nil {
		t.Fatalf("starting sockio: %v", err)
	}
	t.Cleanup(func() { sock.Shutdown(ctx) })
	fam := New(deps, sock, Config{On: true})
	if err := fam.Start(ctx); err != nil {
		t.Fatalf("Start: %v (the agent must keep going)", err)
	}
	t.Cleanup(func() { fam.Shutdown(ctx) })
	var feat *status.Feature
	for _, f := range board.Features() {
		if f.Name == status.Injection {
			feat = &f
		}
	}
	if feat == nil {
		t.Fatal("no injection feature on the board")
	}
	t.Logf("injection on=%v: %s", feat.On, feat.Why)
	self := &probes.Process{PID: os.Getpid(), GoVersion: "go"}
	board.Add(self.PID, "self", self.GoVersion, nil)
	if err := fam.Track(self); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fam.Untrack(self.PID) })
	c, _ := board.Get(self.PID)
	capab := c.Capabilities[status.Injection]
	if features.HaveProgramHelper(ebpf.SkMsg, asm.FnLoop) != nil {
		if feat.On || !strings.Contains(feat.Why, "needs bpf_loop, Linux 5.17+") || fam.CtxMap() != nil {
			t.Errorf("without bpf_loop: feature %+v, ctx map %v; want off, naming bpf_loop", *feat, fam.CtxMap())
		}
		if capab.On || capab.Why != feat.Why {
			t.Errorf("process capability %+v, want off: %s", capab, feat.Why)
		}
		return
	}
	if !feat.On || !strings.Contains(feat.Why, "connecting process") || fam.CtxMap() == nil {
		t.Errorf("feature %+v, ctx map %v; want on, saying how", *feat, fam.CtxMap())
	}
	if !capab.On || !strings.Contains(capab.Why, "connecting process") {
		t.Errorf("process capability %+v, want on, saying how", capab)
	}
}
