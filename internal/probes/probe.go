// Package probes defines what a probe family is and keeps the families the
// agent runs. Each family lives in its own sub-package with its BPF object,
// its loader and a pure event-to-span converter.
package probes

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cilium/ebpf"

	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/weft-dev/weft/internal/goinspect"
	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/sampling"
	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/statusserver"
	"github.com/weft-dev/weft/internal/tick"
)

// Process is a selected process as probes see it.
type Process struct {
	PID       int
	StartTime uint64 // with PID, identifies this process instance
	ExePath   string // path to open the executable (/proc/self/fd/N of discovery's open file, or /proc/PID/exe)
	GoVersion string // "" when not a Go program
	// CCalls names a package of the program that calls C libraries
	// (goinspect.Binary.CCalls), which then share its sockets; "" for
	// pure Go, the standard library's own cgo (net's resolver) included.
	CCalls     string
	GoidOffset uint64 // offset of goid in runtime.g; 0 when unknown
	// GoOffsets holds struct field offsets ("net/http.persistConn.conn")
	// found in the binary's DWARF or weft's table; absent when unknown.
	GoOffsets map[string]uint64
	// Modules holds the versions of the dependencies probes care about
	// (google.golang.org/grpc, golang.org/x/net), from the build info.
	Modules  map[string]string
	Resource *resource.Resource
	// Exec names the executable as the kernel did at this process's exec
	// (bpf/execsel.h); nil for a process found by the /proc scan. With it,
	// a family files its per-process value as the executable's template,
	// which its exec program copies for the next selected process of the
	// same file before that process runs (Template).
	Exec *ExecKey
	// Exe is the executable as discovery inspected it, open while the
	// families Track the first process of an executable; nil otherwise.
	// Families reach it through Inspect.
	Exe *goinspect.Binary
	// Layouts are the struct layouts learnt from other executables'
	// DWARF (discovery's), which an executable Inspect opens uses; nil:
	// none.
	Layouts *goinspect.Layouts
}

// ExecKey names an executable the way the kernel does at exec: struct
// exe_key in bpf/execsel.h (inode number and the inode's address, opaque).
type ExecKey struct{ Ino, Inode uint64 }

// Template files v as the per-process value a family's exec program gives
// the next selected processes of p's executable (bpf/execsel.h); nothing
// when p did not come from an exec event or the family has no template
// map.
func Template(m *ebpf.Map, p *Process, v any) error {
	if m == nil || p.Exec == nil {
		return nil
	}
	if err := m.Put(*p.Exec, v); err != nil {
		return fmt.Errorf("filing the exec template of %s: %w", p.ExePath, err)
	}
	return nil
}

// Inspect returns the process's executable: the one discovery opened,
// shared by every family, or else a fresh one. release closes what this
// call opened.
func (p *Process) Inspect() (b *goinspect.Binary, release func(), err error) {
	if p.Exe != nil {
		return p.Exe, func() {}, nil
	}
	b, err = goinspect.Open(p.ExePath)
	if err != nil {
		return nil, nil, fmt.Errorf("inspecting %s: %w", p.ExePath, err)
	}
	if p.Layouts != nil {
		b.UseLayouts(p.Layouts)
	}
	return b, func() { b.Close() }, nil
}

// Probe is one probe family. Start loads and attaches its programs; Track and
// Untrack switch a process on and off; Shutdown detaches everything and is
// safe to call twice or without Start.
type Probe interface {
	Name() string
	Start(ctx context.Context) error
	Track(p *Process) error
	Untrack(pid int)
	Shutdown(ctx context.Context) error
}

// Deps is what every probe family is given.
type Deps struct {
	Log     *slog.Logger
	Metrics *metrics.Registry
	Config  Config
	Status  *status.Board // what each family does for each process; nil works
	// Live takes heartbeats of the families' loops for /healthz; nil works.
	Live *statusserver.Liveness
	// BTF is the kernel's BTF, decoded once for the loads of the agent's
	// start (ebpf.CollectionOptions.Cache); nil works.
	BTF *KernelBTF
}

// Config holds the settings probes share.
type Config struct {
	MaxHeaderBytes int // HTTP heads longer than this are skipped and counted
	// Capture names the socket capture source ("" or "auto": the cheapest
	// the kernel has; "syscalls" forces the syscall-tracepoint fallback).
	Capture string
	// Sampler decides, where the kernel makes span IDs, the sampled flag
	// the next hop is sent; nil is sampling.Default.
	Sampler *sampling.Sampler
	// InjectHTTP1Bytes is what the injector adds to each HTTP/1 request it
	// gives context to (0: the bare traceparent line), so that the socket
	// probe still recognises a connection's first request.
	InjectHTTP1Bytes uint32
	// InjectHTTP1MergedBytes is what it adds to a request that has a
	// tracestate of its own (the traceparent line and its member first in
	// that list; 0: the bare traceparent line).
	InjectHTTP1MergedBytes uint32
	// MaxConns and MaxConnBytes bound the connection table (count, and
	// estimated bytes of parser state); zero takes conntrack's defaults.
	MaxConns, MaxConnBytes int
	// TCPOption: trace context also travels in a TCP header option
	// (the tcpopt family): the client probe files each request's IDs for
	// it and sockio gives a request the parent an option carried.
	TCPOption bool
	// Headers: the injector adds traceparent headers to the requests of
	// Go programs that call no C. Without it (or for a cgo program) a Go
	// program's h2c streams take their TCP option from the capture
	// source's pre-send hook.
	Headers bool
}

// The constants every object that makes span IDs has (bpf/tracectx.h).
const (
	sampleBoundVar  = "sample_bound"
	sampleParentVar = "sample_parent"
)

// SetSampling writes the sampler into a BPF object's constants before it is
// loaded, so the kernel decides as user space does.
func (c Config) SetSampling(spec *ebpf.CollectionSpec) error {
	s := sampling.Default()
	if c.Sampler != nil {
		s = *c.Sampler
	}
	parent := uint8(0)
	if s.ParentBased() {
		parent = 1
	}
	for name, v := range map[string]any{sampleBoundVar: s.Bound(), sampleParentVar: parent} {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("setting the sampler: the BPF object has no %s", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("setting the sampler's %s: %w", name, err)
		}
	}
	return nil
}

// WithDefaults fills what a family may be given without: a metrics
// registry of its own and a logger that discards.
func (d Deps) WithDefaults() Deps {
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return d
}

// SumPerCPU sums entry idx of a per-CPU array of counters; 0 when it
// cannot be read (the map is closed).
func SumPerCPU(m *ebpf.Map, idx uint32) uint64 {
	var per []uint64
	if err := m.Lookup(idx, &per); err != nil {
		return 0
	}
	var sum uint64
	for _, v := range per {
		sum += v
	}
	return sum
}

// KernelCounters serves a family's per-CPU BPF counters as one metric,
// read at scrape time, labelled name=names[idx].
func KernelCounters(met *metrics.Registry, metric, help string, m *ebpf.Map, names map[uint32]string) {
	for idx, name := range names {
		met.Gauge(metric, help, func() float64 { return float64(SumPerCPU(m, idx)) }, "name", name)
	}
}

// Every calls poll each period until stop is closed; a family's user
// space runs it in its own goroutine to act on counts its BPF keeps. The
// calls are on the agent's timer grid (tick), with its other periodic work.
func Every(stop <-chan struct{}, period time.Duration, poll func()) {
	tick.Every(stop, period, poll)
}
