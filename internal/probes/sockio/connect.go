package sockio

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
)

// ConnectFailures is the feature of making CLIENT spans of connects that
// fail before a byte is sent.
const ConnectFailures = "connect_failures"

// connectSource is on_connect (bpf/sockio.bpf.c): at a traced process's
// connect it picks the call's IDs from the goroutine or thread, and
// reports the connect if it fails. It needs bpf_task_pt_regs in tracing
// programs (Linux 5.15+) for the Go goroutine; loaded apart, so that a
// kernel without it only lacks this.
type connectSource struct {
	coll *ebpf.Collection
	link link.Link
}

// loadConnect loads and attaches on_connect over the maps the capture
// source loaded; failing only turns the feature off.
func (p *Probe) loadConnect(spec *ebpf.CollectionSpec) {
	c, err := newConnectSource(spec, &p.maps, p.deps.BTF.Cache())
	if err != nil {
		p.log.Info("failed connects give no span", "why", err)
		p.deps.Status.Feature(ConnectFailures, false, err.Error())
		return
	}
	p.connect = c
	p.deps.Status.Feature(ConnectFailures, true,
		"inet_sock_set_state: a connect that fails before a byte is sent is a CLIENT span with error.type")
}

func newConnectSource(spec *ebpf.CollectionSpec, maps *sockioMaps, kernel *btf.Cache) (*connectSource, error) {
	// The helper is shared by every tracing program type; the library
	// probes it for kprobes.
	if err := features.HaveProgramHelper(ebpf.Kprobe, asm.FnTaskPtRegs); err != nil {
		return nil, fmt.Errorf("tracing programs here have no bpf_task_pt_regs (Linux 5.15+): %w", err)
	}
	spec = spec.Copy()
	for name := range spec.Programs {
		if name != "on_connect" {
			delete(spec.Programs, name)
		}
	}
	repl, err := mapsByName(maps)
	if err != nil {
		return nil, err
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl, Cache: kernel})
	if err != nil {
		return nil, fmt.Errorf("loading on_connect: %w", err)
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: coll.Programs["on_connect"]})
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("attaching on_connect: %w", err)
	}
	return &connectSource{coll: coll, link: l}, nil
}

func (c *connectSource) close() {
	c.link.Close()
	c.coll.Close()
}
