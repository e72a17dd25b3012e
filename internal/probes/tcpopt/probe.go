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
	"io"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

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
	objs  objects
	links []link.Link
	on    bool
	why   string // what it rests on, or why it is off

	// The iterator that gives a process's older connections the option
	// callbacks; nil where iter/tcp or its bpf_setsockopt does not load.
	iterProg *ebpf.Program
	iter     *link.Iter
	iterWhy  string
	mu       sync.Mutex // one iterator run at a time (tcpopt_inodes)
	sockets  *inject.Sockets
}

// objects are the family's maps and the programs every kernel it runs on
// loads; the iterator loads apart (loadIter): older kernels refuse it.
type objects struct {
	tcpoptMaps
	Connect4 *ebpf.Program `ebpf:"tcpopt_connect4"`
	Connect6 *ebpf.Program `ebpf:"tcpopt_connect6"`
	Sockops  *ebpf.Program `ebpf:"tcpopt_sockops"`
}

func (o *objects) Close() {
	o.tcpoptMaps.Close()
	for _, p := range []*ebpf.Program{o.Connect4, o.Connect6, o.Sockops} {
		if p != nil {
			p.Close()
		}
	}
}

// New makes the family, which uses sockio's maps: start it after sockio.
func New(d probes.Deps, sock *sockio.Probe, cfg Config) *Probe {
	d = d.WithDefaults()
	d.Log = d.Log.With("probe", Name)
	if cfg.Cgroup == "" {
		cfg.Cgroup = inject.DefaultCgroup
	}
	return &Probe{deps: d, sock: sock, cfg: cfg, why: "switched off by configuration", sockets: inject.NewSockets()}
}

// Name implements probes.Probe.
func (p *Probe) Name() string { return Name }

// The family is not a probes.Dependent on purpose: it starts after every
// family listed before it, the injector included, so that its sockops and
// connect programs join the cgroup after the injector's, in the same order
// on every start.

// statNames name tcpopt_stats' counters (enum tcpopt_stat).
var statNames = map[uint32]string{
	uint32(tcpoptTcpoptStatOPT_WRITTEN):      "written",
	uint32(tcpoptTcpoptStatOPT_NO_ROOM):      "no_room",
	uint32(tcpoptTcpoptStatOPT_RESERVE_FAIL): "reserve_fail",
	uint32(tcpoptTcpoptStatOPT_STORE_FAIL):   "store_fail",
	uint32(tcpoptTcpoptStatOPT_MISSED):       "missed",
	uint32(tcpoptTcpoptStatOPT_NOT_AT_START): "not_at_start",
	uint32(tcpoptTcpoptStatOPT_READ):         "read",
	uint32(tcpoptTcpoptStatOPT_REPEAT):       "repeat",
	uint32(tcpoptTcpoptStatOPT_WRITE_ON):     "sockets_writing",
	uint32(tcpoptTcpoptStatOPT_ITER_ON):      "older_connections",
	uint32(tcpoptTcpoptStatOPT_ITER_FAIL):    "older_connections_refused",
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
	if err := spec.LoadAndAssign(&p.objs, &ebpf.CollectionOptions{MapReplacements: repl, Cache: p.deps.BTF.Cache()}); err != nil {
		return fmt.Errorf("loading tcpopt BPF programs: %w", err)
	}
	for _, a := range []struct {
		prog   *ebpf.Program
		attach ebpf.AttachType
	}{
		// connect hooks first: a socket connected between the two
		// attachments would simply not write options.
		{p.objs.Connect4, ebpf.AttachCGroupInet4Connect},
		{p.objs.Connect6, ebpf.AttachCGroupInet6Connect},
		{p.objs.Sockops, ebpf.AttachCGroupSockOps},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cg, Attach: a.attach, Program: a.prog})
		if err != nil {
			p.close()
			return fmt.Errorf("attaching %v to %s: %w", a.attach, cg, err)
		}
		p.links = append(p.links, l)
	}
	if err := p.loadIter(spec); err != nil {
		// The verifier's log is long: the status keeps its first line.
		p.iterWhy = "the kernel refuses iter/tcp with socket storage and bpf_setsockopt: " + firstLine(err.Error())
		p.deps.Log.Info("connections older than the tracing carry no option", "why", err)
	} else if err := p.probeIter(); err != nil {
		p.iterWhy = err.Error()
		p.iter.Close()
		p.iterProg.Close()
		p.iter, p.iterProg = nil, nil
		p.deps.Log.Info("connections older than the tracing carry no option", "why", err)
	} else {
		p.iterWhy = "iter/tcp sets the option callbacks with bpf_setsockopt(TCP_BPF_SOCK_OPS_CB_FLAGS)"
	}
	p.deps.Status.Feature(OlderConnections, p.iter != nil, p.iterWhy)
	p.deps.Log.Info("attached", "cgroup", cg, "iterator", p.iter != nil)
	return nil
}

// OlderConnections is the feature of giving connections made before a
// process was traced the option callbacks.
const OlderConnections = "tcp_option_older_connections"

// probeIter checks that the kernel lets the iterator set the callback
// flags, on a loopback connection of the agent's own (the flag is a
// bpf_setsockopt option newer than iter/tcp's bpf_setsockopt; only a run
// tells).
func (p *Probe) probeIter() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("probing the iterator: %w", err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("probing the iterator: %w", err)
	}
	defer c.Close()
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return fmt.Errorf("probing the iterator: %w", err)
	}
	var st unix.Stat_t
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil || serr != nil {
		return fmt.Errorf("probing the iterator: socket inode: %w", errors.Join(err, serr))
	}
	on, fail := probes.SumPerCPU(p.objs.TcpoptStats, uint32(tcpoptTcpoptStatOPT_ITER_ON)),
		probes.SumPerCPU(p.objs.TcpoptStats, uint32(tcpoptTcpoptStatOPT_ITER_FAIL))
	// The agent's own connection is not one of a traced process's: the
	// counters go back to what they were once the probe is read.
	idx := []uint32{uint32(tcpoptTcpoptStatOPT_ITER_ON), uint32(tcpoptTcpoptStatOPT_ITER_FAIL)}
	saved := make([][]uint64, len(idx))
	for i, k := range idx {
		if err := p.objs.TcpoptStats.Lookup(k, &saved[i]); err != nil {
			return fmt.Errorf("probing the iterator: reading its counters: %w", err)
		}
	}
	defer func() {
		for i, k := range idx {
			if err := p.objs.TcpoptStats.Put(k, saved[i]); err != nil {
				p.deps.Log.Warn("restoring the iterator's counters after its probe", "err", err)
			}
		}
	}()
	if err := p.runIter(os.Getpid(), []uint64{st.Ino}, nil); err != nil {
		return fmt.Errorf("probing the iterator: %w", err)
	}
	switch {
	case probes.SumPerCPU(p.objs.TcpoptStats, uint32(tcpoptTcpoptStatOPT_ITER_FAIL)) > fail:
		return errors.New("the kernel refuses bpf_setsockopt(TCP_BPF_SOCK_OPS_CB_FLAGS) in iter/tcp")
	case probes.SumPerCPU(p.objs.TcpoptStats, uint32(tcpoptTcpoptStatOPT_ITER_ON)) == on:
		return errors.New("the iterator did not find a loopback connection of the agent's")
	}
	return nil
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// loadIter loads the iterator over the family's maps.
func (p *Probe) loadIter(spec *ebpf.CollectionSpec) error {
	var it struct {
		Iter *ebpf.Program `ebpf:"tcpopt_iter"`
	}
	m := p.objs.tcpoptMaps
	repl := map[string]*ebpf.Map{"procs": m.Procs, "tcpopt_inodes": m.TcpoptInodes, "tcpopt_own": m.TcpoptOwn,
		"tcpopt_rxs": m.TcpoptRxs, "tcpopt_stats": m.TcpoptStats, "tcpopt_txs": m.TcpoptTxs}
	if err := spec.LoadAndAssign(&it, &ebpf.CollectionOptions{MapReplacements: repl, Cache: p.deps.BTF.Cache()}); err != nil {
		return fmt.Errorf("loading iter/tcp: %w", err)
	}
	l, err := link.AttachIter(link.IterOptions{Program: it.Iter})
	if err != nil {
		it.Iter.Close()
		return fmt.Errorf("attaching iter/tcp: %w", err)
	}
	p.iterProg, p.iter = it.Iter, l
	return nil
}

// older gives pid's established connections the option callbacks: the
// ones it made write options, all parse them. Run in pid's network
// namespace, with its socket inodes listed for the iterator.
func (p *Probe) older(pid int) (int, error) {
	out, in, err := p.sockets.Connections(pid)
	if err != nil {
		return 0, err
	}
	if len(out)+len(in) == 0 {
		return 0, nil
	}
	return len(out) + len(in), p.runIter(pid, in, out)
}

// runIter runs the iterator in pid's network namespace over the sockets
// with the given inodes: all parse options, the outgoing ones write them.
func (p *Probe) runIter(pid int, in, out []uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.objs.TcpoptInodes
	defer func() {
		for _, ino := range append(out, in...) {
			_ = m.Delete(ino)
		}
	}()
	for _, list := range []struct {
		inodes   []uint64
		outgoing uint8
	}{{out, 1}, {in, 0}} {
		for _, ino := range list.inodes {
			if err := m.Put(ino, tcpoptTcpoptInode{Tgid: uint32(pid), Outgoing: list.outgoing}); err != nil {
				return fmt.Errorf("listing socket inode %d: %w", ino, err)
			}
		}
	}
	return inject.InNetns(pid, func() error {
		rd, err := p.iter.Open()
		if err != nil {
			return fmt.Errorf("opening the tcp iterator: %w", err)
		}
		defer rd.Close()
		_, err = io.Copy(io.Discard, rd)
		return err
	})
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
	if p.on && p.iter != nil {
		if n, err := p.older(proc.PID); err != nil {
			p.deps.Log.Warn("older connections carry no option", "pid", proc.PID, "err", err)
		} else if n > 0 {
			p.deps.Log.Debug("older connections given the option callbacks", "pid", proc.PID, "connections", n)
		}
	}
	switch {
	case !p.on:
		p.deps.Status.Set(proc.PID, status.TCPOption, false, p.why)
	case proc.GoVersion == "" && p.sock.PreSend() == "":
		p.deps.Status.Set(proc.PID, status.TCPOption, false,
			"not a Go program, and the capture source has no hook before a send's bytes leave (tcp_sendmsg_locked: Linux 6.16+; or -capture syscalls); options it receives are read")
	case proc.GoVersion == "" && p.sock.PreSend() == "sys_enter":
		// sys_enter's program has no stack left for the HTTP/2 scan.
		p.deps.Status.Set(proc.PID, status.TCPOption, true,
			"HTTP/1 calls on connections opened while traced, their IDs filed at sys_enter; HTTP/2 calls only over TLS (the first stream each write opens, filed at the library's write)")
	case proc.GoVersion == "":
		p.deps.Status.Set(proc.PID, status.TCPOption, true,
			"HTTP/1 calls, and the first HTTP/2 stream each write opens, on connections opened while traced, their IDs filed at "+p.sock.PreSend())
	case (proc.CCalls != "" || !p.deps.Config.Headers) && p.sock.PreSend() == "":
		// No header reaches its h2c streams either (sockio counts them in
		// weft_propagation_gaps_total).
		p.deps.Status.Set(proc.PID, status.TCPOption, true,
			"net/http client calls on connections opened while traced; its h2c and gRPC streams carry no context "+
				"(no header reaches them, and their option needs tcp_sendmsg_locked, Linux 6.16+, or -capture syscalls)")
	case proc.CCalls != "" || !p.deps.Config.Headers:
		p.deps.Status.Set(proc.PID, status.TCPOption, true,
			"net/http client calls and h2c streams on connections opened while traced (h2c's filed at "+p.sock.PreSend()+")")
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
	if p.iter != nil {
		p.iter.Close()
		p.iterProg.Close()
		p.iter, p.iterProg = nil, nil
	}
	p.objs.Close()
	p.objs = objects{}
}
