package tcpopt

import (
	"context"
	"testing"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/probes/sockio"
	"github.com/weft-dev/weft/internal/protocols/http1"
	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/testutil/kernel"
	"github.com/weft-dev/weft/internal/testutil/spanrec"
)

// TestSwitchedOff: off by configuration is the agent's tcp_option feature
// and every process's capability, off with that reason; nothing loads, and
// Shutdown is safe without Start and twice.
func TestSwitchedOff(t *testing.T) {
	board := status.New(nil)
	fam := New(probes.Deps{Status: board}, nil, Config{})
	ctx := context.Background()
	if err := fam.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown before Start: %v", err)
	}
	if err := fam.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const why = "switched off by configuration"
	if f := board.Features(); len(f) != 1 || f[0] != (status.Feature{Name: status.TCPOption, On: false, Why: why}) {
		t.Errorf("features %+v, want tcp_option off: %s", f, why)
	}
	board.Add(42, "/bin/x", "go1.26", nil)
	fam.Track(&probes.Process{PID: 42, GoVersion: "go1.26"})
	if p, _ := board.Get(42); p.Capabilities[status.TCPOption] != (status.Capability{On: false, Why: why}) {
		t.Errorf("process capability %+v, want off: %s", p.Capabilities[status.TCPOption], why)
	}
	for range 2 {
		if err := fam.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStartOnThisKernel: on the kernel under test the family loads with
// sockio's maps and attaches (feature probes say the kernel has the
// header-option API), says so for the agent and for Go and non-Go
// processes, and shuts down twice without error. A kernel without the API
// would fail here: the family would be off, and the e2e tests need it on.
func TestStartOnThisKernel(t *testing.T) {
	kernel.Require(t)
	if err := Supported(); err != nil {
		t.Fatalf("kernel lacks the header-option API: %v", err)
	}
	ctx := context.Background()
	met := metrics.New()
	board := status.New(met)
	// The kernel types shared by the loads, as in the agent.
	deps := probes.Deps{Metrics: met, Status: board, Config: probes.Config{TCPOption: true}, BTF: probes.NewKernelBTF()}
	sock := sockio.New(deps, conntrack.Protocols{
		Fallback: http1.New(http1.Config{Sink: spanrec.New(), Metrics: met, MaxHeaderBytes: 8192}),
	})
	if err := sock.Start(ctx); err != nil {
		t.Fatalf("starting sockio: %v", err)
	}
	t.Cleanup(func() { sock.Shutdown(ctx) })
	fam := New(deps, sock, Config{On: true})
	if err := fam.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var feat status.Feature
	for _, f := range board.Features() {
		if f.Name == status.TCPOption {
			feat = f
		}
	}
	if !feat.On {
		t.Fatalf("tcp_option feature %+v, want on", feat)
	}
	board.Add(1, "/bin/go-prog", "go1.26", nil)
	board.Add(2, "/usr/bin/python3", "", nil)
	fam.Track(&probes.Process{PID: 1, GoVersion: "go1.26"})
	fam.Track(&probes.Process{PID: 2})
	if p, _ := board.Get(1); !p.Capabilities[status.TCPOption].On {
		t.Errorf("Go process: %+v, want on", p.Capabilities[status.TCPOption])
	}
	// A non-Go program's calls carry the option where the capture source
	// sees a send before its bytes leave.
	if p, _ := board.Get(2); p.Capabilities[status.TCPOption].On != (sock.PreSend() != "") {
		t.Errorf("non-Go process with pre-send hook %q: %+v", sock.PreSend(), p.Capabilities[status.TCPOption])
	}
	if s := fam.Stats(); len(s) != len(statNames) {
		t.Errorf("stats %v", s)
	}
	for range 2 {
		if err := fam.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
