// Package tcpopt runs the TCP header-option channel of trace context as a
// probe family (bpf/tcpopt.bpf.c): a sockops program on the agent's cgroup,
// beside the injector's, writes a traced client's request context in an
// option on the segment that starts the request and reads the options
// other hosts' agents wrote; cgroup/connect4/6 tell it which connections
// are traced processes' (sockops cannot read the process on 6.1). It
// shares sockio's maps: the Go client probe, or sockio for other programs'
// threads, files each call's IDs in one,
// sockio gives a request the context of the other. No payload byte
// changes, so it works whatever the bytes are and whoever reads them.
package tcpopt

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"

	"github.com/weft-dev/weft/internal/inject"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/probes/sockio"
	"github.com/weft-dev/weft/internal/status"
)

// Name is the family's name.
const Name = "tcpopt"

// Config is how the family runs.
type Config struct {
	On     bool   // false: switched off by configuration
	Cgroup string // cgroup mount whose v2 hierarchy the programs cover ("": inject.DefaultCgroup)
}

// Probe is the TCP-option family.
type Probe struct {
	deps  probes.Deps
	sock  *sockio.Probe
	cfg   Config
	objs  tcpoptObjects
	links []link.Link
	on    bool
	why   string // what it rests on, or why it is off
}

// New makes the family, which uses sockio's maps: start it after sockio.
func New(d probes.Deps, sock *sockio.Probe, cfg Config) *Probe {
	d = d.WithDefaults()
	d.Log = d.Log.With("probe", Name)
	if cfg.Cgroup == "" {
		cfg.Cgroup = inject.DefaultCgroup
	}
	return &Probe{deps: d, sock: sock, cfg: cfg, why: "switched off by configuration"}
}

// Name implements probes.Probe.
func (p *Probe) Name() string { return Name }

// statNames name tcpopt_stats' counters (enum tcpopt_stat).
var statNames = map[uint32]string{
	uint32(tcpoptTcpoptStatOPT_WRITTEN):      "written",
	uint32(tcpoptTcpoptStatOPT_NO_ROOM):      "no_room",
	uint32(tcpoptTcpoptStatOPT_RESERVE_FAIL): "reserve_fail",
	uint32(tcpoptTcpoptStatOPT_STORE_FAIL):   "store_fail",
	uint32(tcpoptTcpoptStatOPT_MISSED):       "missed",
	uint32(tcpoptTcpoptStatOPT_READ):         "read",
	uint32(tcpoptTcpoptStatOPT_REPEAT):       "repeat",
	uint32(tcpoptTcpoptStatOPT_WRITE_ON):     "sockets_writing",
}

// ErrUnsupported wraps what the kernel lacks for the channel.
var ErrUnsupported = errors.New("TCP header options unavailable on this kernel")

// Supported checks with feature probes (never error text) that the kernel
// has what the family needs: the header-option helpers in sockops
// programs (5.10+) and socket storage and the process in cgroup/connect.
func Supported() error {
	checks := []struct {
		typ ebpf.ProgramType
		fn  asm.BuiltinFunc
	}{
		{ebpf.SockOps, asm.FnReserveHdrOpt}, {ebpf.SockOps, asm.FnStoreHdrOpt}, {ebpf.SockOps, asm.FnLoadHdrOpt},
		{ebpf.SockOps, asm.FnGetSocketCookie}, {ebpf.SockOps, asm.FnSkStorageGet},
		{ebpf.CGroupSockAddr, asm.FnGetCurrentPidTgid}, {ebpf.CGroupSockAddr, asm.FnSkStorageGet},
	}
	for _, c := range checks {
		if err := features.HaveProgramHelper(c.typ, c.fn); err != nil {
			return fmt.Errorf("%w: no %v in %v programs: %w", ErrUnsupported, c.fn, c.typ, err)
		}
	}
	if err := features.HaveMapType(ebpf.SkStorage); err != nil {
		return fmt.Errorf("%w: no socket storage: %w", ErrUnsupported, err)
	}
	return nil
}

// Start loads and attaches the programs, unless the family is off or the
// kernel cannot run it (then it stays off, with the reason on the status
// board: spans still come, parents only from headers).
func (p *Probe) Start(ctx context.Context) error {
	p.deps.Metrics.Gauge("weft_tcpopt_enabled", "1 when trace context travels in TCP header options",
		func() float64 {
			if p.on {
				return 1
			}
			return 0
		})
	if !p.cfg.On {
		p.deps.Status.Feature(status.TCPOption, false, p.why)
		return nil
	}
	if err := p.start(); err != nil {
		p.why = "unavailable: " + err.Error()
		p.deps.Status.Feature(status.TCPOption, false, p.why)
		if errors.Is(err, ErrUnsupported) {
			p.deps.Log.Info("TCP option channel off", "why", err)
			return nil
		}
		p.deps.Log.Warn("TCP option channel off", "err", err)
		return nil
	}
	p.on = true
	p.why = "sockops header options on traced processes' connections (cgroup " + p.cfg.Cgroup + ")"
	p.deps.Status.Feature(status.TCPOption, true, p.why)
	probes.KernelCounters(p.deps.Metrics, "weft_tcpopt_total", "TCP header-option outcomes, by name", p.objs.TcpoptStats, statNames)
	return nil
}

func (p *Probe) start() error {
	if err := Supported(); err != nil {
		return err
	}
	maps, err := p.sock.Maps()
	if err != nil {
		return fmt.Errorf("tcpopt uses sockio's maps: %w", err)
	}
	cg, err := inject.Cgroup2Root(p.cfg.Cgroup)
	if err != nil {
		return err
	}
	p.cfg.Cgroup = cg
	spec, err := loadTcpopt()
	if err != nil {
		return fmt.Errorf("reading tcpopt BPF object: %w", err)
	}
	repl := map[string]*ebpf.Map{"procs": maps.Procs, "tcpopt_txs": maps.TCPOptTx, "tcpopt_rxs": maps.TCPOptRx}
	if err := spec.LoadAndAssign(&p.objs, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		return fmt.Errorf("loading tcpopt BPF programs: %w", err)
	}
	for _, a := range []struct {
		prog   *ebpf.Program
		attach ebpf.AttachType
	}{
		// connect hooks first: a socket connected between the two
		// attachments would simply not write options.
		{p.objs.TcpoptConnect4, ebpf.AttachCGroupInet4Connect},
		{p.objs.TcpoptConnect6, ebpf.AttachCGroupInet6Connect},
		{p.objs.TcpoptSockops, ebpf.AttachCGroupSockOps},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cg, Attach: a.attach, Program: a.prog})
		if err != nil {
			p.close()
			return fmt.Errorf("attaching %v to %s: %w", a.attach, cg, err)
		}
		p.links = append(p.links, l)
	}
	p.deps.Log.Info("attached", "cgroup", cg)
	return nil
}

// Stats returns the kernel counters by name (for tests and benchmarks).
func (p *Probe) Stats() map[string]uint64 {
	out := make(map[string]uint64, len(statNames))
	if !p.on {
		return out
	}
	for idx, name := range statNames {
		out[name] = probes.SumPerCPU(p.objs.TcpoptStats, idx)
	}
	return out
}

// Track says on the status board whether the process's requests carry the
// option: a Go program's net/http calls (the client probe files them), any
// other program's HTTP/1 calls (sockio files them by thread, before their
// bytes leave, where the capture source has a hook for it).
func (p *Probe) Track(proc *probes.Process) error {
	switch {
	case !p.on:
		p.deps.Status.Set(proc.PID, status.TCPOption, false, p.why)
	case proc.GoVersion == "" && p.sock.PreSend() == "":
		p.deps.Status.Set(proc.PID, status.TCPOption, false,
			"not a Go program, and the capture source has no hook before a send's bytes leave (tcp_sendmsg_locked: Linux 6.16+; or -capture syscalls); options it receives are read")
	case proc.GoVersion == "":
		p.deps.Status.Set(proc.PID, status.TCPOption, true,
			"HTTP/1 calls on connections opened while traced, their IDs filed at "+p.sock.PreSend())
	default:
		p.deps.Status.Set(proc.PID, status.TCPOption, true, "net/http client calls on connections opened while traced")
	}
	return nil
}

// Untrack implements probes.Probe: the kernel side forgets with the sockets.
func (p *Probe) Untrack(int) {}

// Shutdown detaches and closes everything; safe twice and without Start.
func (p *Probe) Shutdown(context.Context) error {
	p.close()
	p.on = false
	return nil
}

func (p *Probe) close() {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
	p.objs.Close()
	p.objs = tcpoptObjects{}
}
