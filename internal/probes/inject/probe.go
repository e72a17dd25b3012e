// Package inject runs the socket-layer context injector (internal/inject)
// as a probe family, between sockio and the Go client probes: they write
// the IDs into its map, it reads sockio's. On a kernel without
// sockops/sk_msg, bpf_loop (before 5.17) or cgroup v2 it logs once and
// stays off; spans still come, and every request it did not propagate is
// counted. Whether it runs, and how, is the agent's "injection" feature
// on the status board.
package inject

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf"

	"github.com/weft-dev/weft/internal/inject"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/probes/sockio"
	"github.com/weft-dev/weft/internal/status"
)

// Name is the family's name.
const Name = "inject"

// Config is how the family runs.
type Config struct {
	On     bool   // false: switched off by configuration
	Cgroup string // cgroup mount whose v2 hierarchy the sockops program covers
	// Cluster, when set, goes out as tracestate weft=<cluster> after each
	// traceparent, so that the next hop's agent knows which cluster the
	// call came from.
	Cluster string
	// Hook is how the injector learns which process connects: HookAuto
	// (the zero value) lets the kernel decide; tests force HookConnect.
	Hook inject.Hook
}

// Probe is the injector family.
type Probe struct {
	inj     *inject.Injector
	sock    *sockio.Probe
	log     *slog.Logger
	met     *metrics.Registry
	status  *status.Board
	enabled bool
	off     string // why injection is off
	on      string // what it rests on, when on
}

// New makes the family, which reads sockio's maps: start it after sockio.
func New(d probes.Deps, sock *sockio.Probe, cfg Config) *Probe {
	d = d.WithDefaults()
	inj := inject.New(d.Log.With("component", "inject"), cfg.Cgroup)
	inj.SetHook(cfg.Hook)
	inj.SetKernelBTF(d.BTF.Cache)
	if err := inj.SetTraceState("weft", cfg.Cluster); err != nil {
		// Context still propagates; the next hop learns the caller's
		// cluster from its address instead.
		d.Log.Warn("cluster name not sent in tracestate", "err", err)
	}
	return &Probe{inj: inj, sock: sock, log: d.Log, met: d.Metrics, status: d.Status,
		enabled: cfg.On, off: "switched off by configuration"}
}

// Name implements probes.Probe.
func (f *Probe) Name() string { return Name }

// After implements probes.Dependent: the injector reads sockio's maps.
func (f *Probe) After() []probes.Probe { return []probes.Probe{f.sock} }

// CtxMap is the map the Go client probes leave each call's IDs in, by
// socket; nil when injection is off.
func (f *Probe) CtxMap() *ebpf.Map {
	if !f.enabled {
		return nil
	}
	return f.inj.CtxMap()
}

// Start loads and attaches the injector, unless it is off or the kernel
// cannot run it.
func (f *Probe) Start(ctx context.Context) error {
	f.met.Gauge("weft_inject_enabled", "1 when traceparent injection at the socket layer runs",
		func() float64 {
			if f.enabled {
				return 1
			}
			return 0
		})
	if !f.enabled {
		f.log.Info("traceparent injection switched off by configuration")
		f.status.Feature(status.Injection, false, f.off)
		return nil
	}
	maps, err := f.sock.Maps()
	if err != nil {
		return fmt.Errorf("the injector reads sockio's maps: %w", err)
	}
	f.inj.UseMaps(map[string]*ebpf.Map{"procs": maps.Procs, "h2_ids": maps.H2IDs, "exec_sel": maps.ExecSel})
	if err := f.inj.Start(ctx); err != nil {
		f.enabled = false
		f.off = "unavailable on this kernel: " + err.Error()
		f.status.Feature(status.Injection, false, f.off)
		if errors.Is(err, inject.ErrUnsupported) {
			return nil // logged by the injector; spans still flow
		}
		f.log.Warn("traceparent injection unavailable", "err", err)
		return nil
	}
	_, how := f.inj.Hook()
	f.on = "sk_msg on its client sockets (HTTP/1 and h2c); " + how
	f.status.Feature(status.Injection, true, "sk_msg on traced Go processes' client sockets (HTTP/1 and h2c); "+how)
	for _, name := range inject.CounterNames() {
		f.met.Gauge("weft_inject_total", "socket-layer injector outcomes, by name",
			func() float64 { return float64(f.inj.Counters()[name]) }, "name", name)
	}
	return nil
}

// CgoOff starts the status of injection for a program that calls C
// libraries; the package that calls them follows.
const CgoOff = "cgo program: a C library may size reads with FIONREAD, which reads 0 on sockets in the sockhash"

// Track puts a Go process's client sockets under the injector. Only Go
// processes whose own code calls no C: their client probe supplies the
// IDs, and the Go runtime never sizes reads with FIONREAD, which reads 0
// on sockets in the sockhash. A program whose packages call C libraries
// (librdkafka, libcurl, libpq...) shares its sockets with them, which
// may, so it is left out whole. The standard library's own cgo (net's
// resolver, os/user) reads no socket's byte count and does not count.
func (f *Probe) Track(p *probes.Process) error {
	switch {
	case !f.enabled:
		f.status.Set(p.PID, status.Injection, false, f.off)
		return nil
	case p.GoVersion == "":
		f.status.Set(p.PID, status.Injection, false, "not a Go program: its sockets stay out of the sockhash, where FIONREAD reads 0")
		return nil
	case p.CCalls != "":
		f.status.Set(p.PID, status.Injection, false, CgoOff+" (C called from "+p.CCalls+")")
		return nil
	}
	if err := f.inj.Track(p.PID, nil); err != nil {
		f.status.Set(p.PID, status.Injection, false, err.Error())
		return err
	}
	if p.Exec != nil {
		if err := f.inj.Template(*p.Exec); err != nil {
			f.log.Warn("next processes of this executable wait for user space", "pid", p.PID, "err", err)
		}
	}
	f.status.Set(p.PID, status.Injection, true, f.on)
	return nil
}

// Untrack takes a process's sockets out of the sockhash.
func (f *Probe) Untrack(pid int) {
	if f.enabled {
		f.inj.Untrack(pid)
	}
}

// Shutdown detaches the injector; safe twice and without Start.
func (f *Probe) Shutdown(ctx context.Context) error { return f.inj.Shutdown(ctx) }

// Forwarded reports (once) whether the client span with this ID had the
// traceparent its app forwarded rewritten to it (inject.Injector.Forwarded).
func (f *Probe) Forwarded(span [8]byte) bool { return f.inj.Forwarded(span) }
