package probes

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
)

// Uprobes attaches uprobes the way the kernel allows with the least
// privilege: a uprobe_multi link per program (kernel >= 6.6; it needs
// CAP_BPF and CAP_PERFMON), else one perf event per probe point (which
// some kernels refuse without CAP_SYS_ADMIN: measured on 6.18). The choice
// is made once, by probing the kernel, before the programs are loaded: a
// program loaded for uprobe_multi attaches only that way.
type Uprobes struct{ multi bool }

// NewUprobes probes the kernel for uprobe_multi links.
func NewUprobes() (Uprobes, error) {
	err := features.HaveBPFLinkUprobeMulti()
	switch {
	case err == nil:
		return Uprobes{multi: true}, nil
	case errors.Is(err, ebpf.ErrNotSupported):
		return Uprobes{}, nil
	default:
		return Uprobes{}, fmt.Errorf("probing for uprobe_multi links: %w", err)
	}
}

// Describe says how uprobes attach here, for the status board.
func (u Uprobes) Describe() string {
	if u.multi {
		return "uprobe_multi links (one per program and executable)"
	}
	return "perf-event uprobes, one per probe point: this kernel has no uprobe_multi (Linux 6.6+); " +
		"the agent needs CAP_SYS_ADMIN for them (deploy/components/old-kernels)"
}

// Multi says whether uprobe_multi links are used.
func (u Uprobes) Multi() bool { return u.multi }

// Prepare sets the attach type of the named programs of spec; call
// before loading it.
func (u Uprobes) Prepare(spec *ebpf.CollectionSpec, programs ...string) error {
	if !u.multi {
		return nil
	}
	for _, name := range programs {
		ps, ok := spec.Programs[name]
		if !ok {
			return fmt.Errorf("preparing uprobes: no program %s", name)
		}
		ps.AttachType = ebpf.AttachTraceUprobeMulti
	}
	return nil
}

// Attach attaches prog at the given file offsets of ex (fn names them in
// errors and, for perf events, in the kernel's event name): one link with
// uprobe_multi, one per offset otherwise. On error nothing stays attached.
func (u Uprobes) Attach(ex *link.Executable, fn string, prog *ebpf.Program, offsets ...uint64) ([]link.Link, error) {
	if u.multi {
		l, err := ex.UprobeMulti(nil, prog, &link.UprobeMultiOptions{Addresses: offsets})
		if err != nil {
			return nil, fmt.Errorf("uprobe_multi on %s at %#x: %w", fn, offsets, err)
		}
		return []link.Link{l}, nil
	}
	var links []link.Link
	for _, off := range offsets {
		l, err := ex.Uprobe(fn, prog, &link.UprobeOptions{Address: off})
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			return nil, fmt.Errorf("uprobe on %s at %#x: %w", fn, off, err)
		}
		links = append(links, l)
	}
	return links, nil
}
