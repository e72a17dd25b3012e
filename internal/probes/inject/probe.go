package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/cilium/ebpf"

	"github.com/weft-dev/weft/internal/inject"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/status"
)

// injectFamily runs the socket-layer traceparent injector as a probe family,
// between sockio and gohttp: gohttp writes the IDs into its map. On a kernel
// without sockops/sk_msg or cgroup v2 it logs once and stays off; spans still
// come, and every request it did not propagate is counted.
type injectFamily struct {
	inj     *inject.Injector
	log     *slog.Logger
	shared  *probes.SharedMaps
	met     *metrics.Registry
	status  *status.Board
	enabled bool
	off     string // why injection is off
}

// registerInject registers the injector. With a cluster name it also adds
// tracestate weft=<cluster> after each traceparent, so that the next hop's
// agent knows which cluster the call came from.
func registerInject(reg *probes.Registry, on bool, cgroup, cluster string) {
	reg.Register("inject", func(d probes.Deps) (probes.Probe, error) {
		inj := inject.New(d.Log.With("component", "inject"), cgroup)
		if err := inj.SetTraceState("weft", cluster); err != nil {
			// Context still propagates; the next hop learns the caller's
			// cluster from its address instead.
			d.Log.Warn("cluster name not sent in tracestate", "err", err)
		}
		return &injectFamily{inj: inj, log: d.Log,
			shared: d.Shared, met: d.Metrics, status: d.Status, enabled: on, off: "switched off by configuration"}, nil
	})
}

func (f *injectFamily) Name() string { return "inject" }

func (f *injectFamily) Start(ctx context.Context) error {
	f.met.Gauge("weft_inject_enabled", "1 when traceparent injection at the socket layer runs",
		func() float64 {
			if f.enabled {
				return 1
			}
			return 0
		})
	if !f.enabled {
		f.log.Info("traceparent injection switched off by configuration")
		return nil
	}
	use := map[string]*ebpf.Map{}
	for _, name := range []string{"procs", "h2_ids"} {
		if m, ok := f.shared.Map(name); ok {
			use[name] = m
		}
	}
	f.inj.UseMaps(use)
	if err := f.inj.Start(ctx); err != nil {
		f.enabled = false
		f.off = "unavailable on this kernel: " + err.Error()
		if errors.Is(err, inject.ErrUnsupported) {
			return nil // logged by the injector; spans still flow
		}
		f.log.Warn("traceparent injection unavailable", "err", err)
		return nil
	}
	f.shared.Publish("inject_ctx", f.inj.CtxMap())
	for _, name := range []string{"injected", "no_ctx", "repeat", "not_http", "app_header", "split", "too_long", "write_fail", "no_state", "sockhash_add", "sockhash_fail", "iter_add",
		"h2_injected", "h2_no_ctx", "h2_app_header", "h2_split", "h2_too_long", "h2_lost", "h2_repeat"} {
		f.met.Gauge("weft_inject_total", "socket-layer injector outcomes, by name",
			func() float64 { return float64(f.inj.Counters()[name]) }, "name", name)
	}
	return nil
}

// Track puts a Go process's client sockets under the injector. Only Go
// processes: their client probe supplies the IDs, and the Go runtime never
// sizes reads with FIONREAD, which reads 0 on sockets in the sockhash.
func (f *injectFamily) Track(p *probes.Process) error {
	switch {
	case !f.enabled:
		f.status.Set(p.PID, status.Injection, false, f.off)
		return nil
	case p.GoVersion == "":
		f.status.Set(p.PID, status.Injection, false, "not a Go program: its sockets stay out of the sockhash, where FIONREAD reads 0")
		return nil
	}
	if err := f.inj.Track(p.PID, nil); err != nil {
		f.status.Set(p.PID, status.Injection, false, err.Error())
		return err
	}
	f.status.Set(p.PID, status.Injection, true, "sk_msg on its client sockets (HTTP/1 and h2c)")
	return nil
}

func (f *injectFamily) Untrack(pid int) {
	if f.enabled {
		f.inj.Untrack(pid)
	}
}

func (f *injectFamily) Shutdown(ctx context.Context) error { return f.inj.Shutdown(ctx) }
