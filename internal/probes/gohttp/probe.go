// Package gohttp is the Go net/http client probe family: one uprobe per
// outgoing request, on net/http.(*persistConn).roundTrip, in the goroutine
// that made the call. It links the call to the server request that
// goroutine (or its parent) is serving, which the socket layer cannot know,
// and hands the client span's IDs to sockio and the injector by socket.
package gohttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/weft-dev/weft/internal/goinspect"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/probes/sockio"
	"github.com/weft-dev/weft/internal/status"
)

// Name is the family's name.
const Name = "gohttp"

// roundTrip is the one function probed: every Transport-based client
// (http.Get, http.Client, reverse proxies) sends HTTP/1 requests through it.
const roundTrip = "net/http.(*persistConn).roundTrip"

// CtxMap is the injector's map of client-span IDs by socket, which this
// probe fills; nil when injection is off.
type CtxMap interface{ CtxMap() *ebpf.Map }

// Probe attaches the round-trip uprobe to the executables of traced Go
// processes that contain an HTTP client.
type Probe struct {
	deps probes.Deps
	log  *slog.Logger
	sock *sockio.Probe
	inj  CtxMap
	objs gohttpObjects

	uprobes probes.Uprobes
	set     *probes.UprobeSet[struct{}]
}

// New makes an unstarted probe that works with sockio's maps and, when inj
// is not nil, the injector's: start it after both.
func New(d probes.Deps, sock *sockio.Probe, inj CtxMap) *Probe {
	d = d.WithDefaults()
	return &Probe{deps: d, log: d.Log.With("probe", Name), sock: sock, inj: inj, set: probes.NewUprobeSet[struct{}]()}
}

// Name implements probes.Probe.
func (p *Probe) Name() string { return Name }

// Start loads the program with sockio's maps (and the injector's, when it
// runs) in place of its own.
func (p *Probe) Start(ctx context.Context) error {
	spec, err := loadGohttp()
	if err != nil {
		return fmt.Errorf("reading gohttp BPF object: %w", err)
	}
	if err := p.deps.Config.SetSampling(spec); err != nil {
		return fmt.Errorf("preparing gohttp BPF object: %w", err)
	}
	if p.uprobes, err = probes.NewUprobes(); err != nil {
		return err
	}
	if err := p.uprobes.Prepare(spec, "round_trip"); err != nil {
		return err
	}
	maps, err := p.sock.Maps()
	if err != nil {
		return fmt.Errorf("gohttp uses sockio's maps: %w", err)
	}
	repl := map[string]*ebpf.Map{"procs": maps.Procs, "goctx": maps.Goctx, "client_ctxs": maps.ClientCtxs}
	injecting := false
	if p.inj != nil {
		if m := p.inj.CtxMap(); m != nil {
			repl["inject_ctx"] = m
			injecting = true
		}
	}
	if err := spec.LoadAndAssign(&p.objs, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		return fmt.Errorf("loading gohttp BPF program: %w", err)
	}
	p.set.SetLoaded()
	probes.KernelCounters(p.deps.Metrics, "weft_gohttp_kernel_total", "Go client probe counters by name", p.objs.GohttpStats,
		map[uint32]string{0: "calls", 1: "linked", 2: "skipped_tls", 3: "no_socket", 4: "no_cookie"})
	if !injecting {
		// Every linked call still gets its span; none reaches the next hop.
		p.deps.Metrics.Gauge("weft_requests_unpropagated_total", "client requests sent without a traceparent by weft, by reason",
			func() float64 { return float64(p.stat(0)) }, "reason", "injection_off")
	}
	p.set.LinksGauge(p.deps.Metrics, Name)
	return nil
}

func (p *Probe) stat(idx uint32) uint64 { return probes.SumPerCPU(p.objs.GohttpStats, idx) }

// Track attaches the uprobe to the process's executable, once per
// executable. Programs without a net/http client are left alone.
func (p *Probe) Track(proc *probes.Process) error {
	if proc.GoVersion == "" {
		return nil
	}
	if missing := missingOffsets(proc); missing != "" {
		p.deps.Status.Set(proc.PID, status.HTTPClientLinks, false,
			fmt.Sprintf("%s layout unknown (no DWARF, not in weft's table): %s", proc.GoVersion, missing))
		return nil
	}
	key, err := probes.ExeKeyOf(proc.ExePath)
	if err != nil {
		return nil // the process is gone; discovery will untrack it
	}
	p.set.Locked(func(exes *probes.Exes[struct{}], loaded bool) {
		if loaded {
			p.track(exes, proc, key)
		}
	})
	return nil
}

// track attaches to a new executable or counts a process of a known one;
// called under the set's lock.
func (p *Probe) track(exes *probes.Exes[struct{}], proc *probes.Process, key probes.ExeKey) {
	if _, ok := exes.Info(key); ok {
		exes.Use(proc.PID, key)
		p.deps.Status.Set(proc.PID, status.HTTPClientLinks, true, "uprobe on "+roundTrip)
		return
	}
	ls, err := p.attach(proc)
	if errors.Is(err, goinspect.ErrNoFunc) {
		p.log.Debug("no net/http client in executable", "pid", proc.PID)
		p.deps.Status.Set(proc.PID, status.HTTPClientLinks, false, "no net/http client in the executable")
		return
	}
	if err != nil {
		// Server spans still come from the socket layer; only this process's
		// calls lose their parent. Say so, and carry on.
		p.deps.Metrics.Counter("weft_uprobe_attach_failures_total", "uprobes that did not attach, by family", "family", Name).Add(1)
		p.log.Warn("client calls of this process will not be linked", "pid", proc.PID, "err", err)
		p.deps.Status.Set(proc.PID, status.HTTPClientLinks, false, err.Error())
		return
	}
	exes.Attached(key, ls, struct{}{})
	exes.Use(proc.PID, key)
	p.deps.Status.Set(proc.PID, status.HTTPClientLinks, true, "uprobe on "+roundTrip)
	p.log.Info("uprobe attached", "pid", proc.PID, "func", roundTrip)
}

func (p *Probe) attach(proc *probes.Process) ([]link.Link, error) {
	exe := proc.ExePath
	b, release, err := proc.Inspect()
	if err != nil {
		return nil, err
	}
	defer release()
	f, err := b.Func(roundTrip)
	if err != nil {
		return nil, err
	}
	ex, err := link.OpenExecutable(exe)
	if err != nil {
		return nil, fmt.Errorf("opening %s for uprobes: %w", exe, err)
	}
	ls, err := p.uprobes.Attach(ex, roundTrip, p.objs.RoundTrip, f.Offset)
	if err != nil {
		return nil, fmt.Errorf("attaching to %s in %s: %w", roundTrip, exe, err)
	}
	return ls, nil
}

// Untrack detaches the uprobe when the last process of its executable goes:
// a uprobe traps in every process that maps the file, traced or not.
func (p *Probe) Untrack(pid int) { p.set.Release(pid, nil) }

// Shutdown detaches every uprobe; safe twice and without Start.
func (p *Probe) Shutdown(context.Context) error {
	p.set.Shutdown(p.objs.Close)
	return nil
}

// missingOffsets names the offsets the probe needs that the process lacks
// (the BPF side reads them from sockio's per-process settings).
func missingOffsets(proc *probes.Process) string {
	var missing []string
	if proc.GoidOffset == 0 {
		missing = append(missing, "runtime.g.goid")
	}
	for _, f := range sockio.GoFields {
		if _, ok := proc.GoOffsets[f]; !ok {
			missing = append(missing, f)
		}
	}
	return strings.Join(missing, ", ")
}
