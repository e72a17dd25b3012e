// Package gogrpc is the grpc-go probe family. gRPC spans come from the
// HTTP/2 frames sockio reads at the socket layer; this family adds what
// only the process knows: which server call a client call is made for
// (in-process links) and which IDs each stream carries, so that the
// injector can add a traceparent to outgoing calls and a server's span
// continues its caller's trace. One uprobe hit per server call (grpc
// 1.77+: handlers' calls find their span through their context; two
// before, or once handlers call out without it), two per client call; see
// bpf/gogrpc.bpf.c and bpf/grpcctx.h.
package gogrpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/weft-dev/weft/internal/goinspect"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/probes/sockio"
	"github.com/weft-dev/weft/internal/status"
)

// Name is the family's name.
const Name = "gogrpc"

// exeInfo is what an executable's layout allows, shared by its processes.
type exeInfo struct {
	cfg    gogrpcGrpcCfg
	server error // why the server half is missing, or nil
	client error // why the client half is missing, or nil
	grpc   string
	// lazy: the hooks that link calls by goroutine, not attached yet
	// (handleStream with cfg.CtxWalk): path is the executable to attach
	// them to, proc a process of it (for the exec template).
	lazy []hook
	path string
	proc *probes.Process
}

// pollEvery is how often the processes whose handlers' goroutines are not
// hooked are checked for calls that needed them.
const pollEvery = 500 * time.Millisecond

// lazyAttempts bounds the attempts to attach an executable's handleStream
// hook.
const lazyAttempts = 3

// Probe attaches grpc-go's uprobes to executables of traced processes.
type Probe struct {
	deps probes.Deps
	log  *slog.Logger
	sock *sockio.Probe
	objs gogrpcObjects

	uprobes    probes.Uprobes
	set        *probes.UprobeSet[exeInfo]
	lazyHooked *atomic.Uint64
	// batchFallbacks: polls of grpc_procs whose batch read failed.
	batchFallbacks *atomic.Uint64
	// lazy: executables whose handleStream hook waits, and how often
	// attaching it failed (under set's lock).
	lazy      map[probes.ExeKey]bool
	lazyFails map[probes.ExeKey]int
	// plans: the layouts read, by executable content (goinspect's
	// ContentKey), under set's lock: a copy of an executable on another
	// inode (each container of an image has its own) is not read again.
	plans map[string]*plan

	// names: the processes whose streams' paths the probes send
	// (WantNames), kept across reconfigure.
	namesMu sync.Mutex
	names   map[uint32]bool

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// New makes an unstarted probe that works with sockio's maps (which the
// injector reads too): start it after sockio.
func New(d probes.Deps, sock *sockio.Probe) *Probe {
	d = d.WithDefaults()
	return &Probe{deps: d, log: d.Log.With("probe", Name), sock: sock, set: probes.NewUprobeSet[exeInfo](),
		lazy: map[probes.ExeKey]bool{}, lazyFails: map[probes.ExeKey]int{}, plans: map[string]*plan{}, names: map[uint32]bool{}, stop: make(chan struct{})}
}

// Name implements probes.Probe.
func (p *Probe) Name() string { return Name }

// After implements probes.Dependent: the hooks use sockio's maps.
func (p *Probe) After() []probes.Probe { return []probes.Probe{p.sock} }

// statNames names the kernel-side counters (enum gogrpc_stat).
var statNames = map[gogrpcGogrpcStat]string{
	gogrpcGogrpcStatGG_SERVER_STREAMS: "server_streams",
	gogrpcGogrpcStatGG_REMOTE_PARENT:  "remote_parent",
	gogrpcGogrpcStatGG_HANDLERS:       "handlers",
	gogrpcGogrpcStatGG_HANDLER_LINKED: "handlers_linked",
	gogrpcGogrpcStatGG_CLIENT_CALLS:   "client_calls",
	gogrpcGogrpcStatGG_CLIENT_LINKED:  "client_calls_linked",
	gogrpcGogrpcStatGG_APP_HEADER:     "app_traceparent",
	gogrpcGogrpcStatGG_ORIGINATED:     "client_streams",
	gogrpcGogrpcStatGG_OPTION_PARENT:  "option_parent",
	gogrpcGogrpcStatGG_B3PARENT:       "b3_parent",
	gogrpcGogrpcStatGG_B3NO_CONTEXT:   "b3_no_context",
	gogrpcGogrpcStatGG_CTX_LINKED:     "client_calls_context_linked",
	gogrpcGogrpcStatGG_NAMES:          "names_sent",
}

// Start loads the programs with sockio's maps in place of their own.
func (p *Probe) Start(ctx context.Context) error {
	spec, err := loadGogrpc()
	if err != nil {
		return fmt.Errorf("reading gogrpc BPF object: %w", err)
	}
	if err := p.deps.Config.SetSampling(spec); err != nil {
		return fmt.Errorf("preparing gogrpc BPF object: %w", err)
	}
	if p.uprobes, err = probes.NewUprobes(); err != nil {
		return err
	}
	p.deps.Status.Feature("uprobes", true, p.uprobes.Describe())
	if err := p.uprobes.Prepare(spec, "operate_headers", "handle_stream", "header_fields", "loopy_headers", "loopy_write_header"); err != nil {
		return err
	}
	maps, err := p.sock.Maps()
	if err != nil {
		return fmt.Errorf("gogrpc uses sockio's maps: %w", err)
	}
	repl := map[string]*ebpf.Map{"procs": maps.Procs, "goctx": maps.Goctx, "gospawn": maps.Gospawn, "go_roots": maps.GoRoots, "h2_ids": maps.H2IDs, "events": maps.Events, "exec_sel": maps.ExecSel,
		"tls_opts_g": maps.TLSOptsG, "grpc_procs": maps.GRPCProcs, "grpc_streams": maps.GRPCStreams}
	if err := spec.LoadAndAssign(&p.objs, &ebpf.CollectionOptions{MapReplacements: repl, Cache: p.deps.BTF.Cache()}); err != nil {
		return fmt.Errorf("loading gogrpc BPF programs: %w", err)
	}
	p.set.SetLoaded()
	if err := p.set.AttachExec(p.objs.GogrpcExec); err != nil {
		p.log.Warn("processes selected at exec wait for user space", "err", err)
	}
	for _, name := range statNames {
		p.deps.Metrics.Gauge("weft_gogrpc_kernel_total", "gRPC probe counters by name",
			func() float64 { return float64(p.Stat(name)) }, "name", name)
	}
	p.set.LinksGauge(p.deps.Metrics, Name)
	p.lazyHooked = p.deps.Metrics.Counter("weft_gogrpc_handler_hooks_total",
		"executables whose gRPC handlers' or callers' goroutines were hooked (handleStream, createHeaderFields) because calls found no server span through their context")
	p.batchFallbacks = probes.BatchFallbacks(p.deps.Metrics, "grpc_procs")
	p.wg.Add(1)
	go p.watch()
	return nil
}

// watch hooks handleStream in the executables whose processes' calls
// needed it.
func (p *Probe) watch() {
	defer p.wg.Done()
	probes.Every(p.stop, pollEvery, p.poll)
}

// unlinkedCounts reads the unlinked-call counts of the processes of the
// executables whose hooks wait (pids, by executable), from grpc_procs: a
// lookup each when they are few, the map read whole in batches when many
// (a lookup each was a system call each, every 500 ms).
func (p *Probe) unlinkedCounts(pids map[probes.ExeKey][]int) map[int]uint32 {
	var keys []uint32
	for _, ps := range pids {
		for _, pid := range ps {
			keys = append(keys, uint32(pid))
		}
	}
	counts := map[int]uint32{}
	err := probes.ReadEntries(p.objs.GrpcProcs, keys, func(pid uint32, c gogrpcGrpcCfg) {
		if c.Unlinked > 0 {
			counts[int(pid)] = c.Unlinked
		}
	}, p.batchFallbacks)
	if err != nil {
		p.log.Debug("polling grpc_procs", "err", err)
	}
	return counts
}

// poll reads the unlinked-call counts of the processes whose handlers' or
// callers' goroutines are not hooked. A process that serves requests and
// whose calls do not carry a gRPC server stream's context (a handler's
// http.Get or context.Background(); an HTTP handler's gRPC call) is linked
// by goroutine, as before contexts were followed: handleStream and
// createHeaderFields are attached to its executable, and every process of
// it told so.
func (p *Probe) poll() {
	p.set.Locked(func(exes *probes.Exes[exeInfo], loaded bool) {
		if !loaded {
			return
		}
		waiting := map[probes.ExeKey][]int{}
		for key := range p.lazy {
			a, ok := exes.Info(key)
			if !ok || len(a.lazy) == 0 {
				delete(p.lazy, key)
				delete(p.lazyFails, key)
				continue
			}
			waiting[key] = exes.PIDs(key)
		}
		if len(waiting) == 0 {
			return
		}
		unlinked := p.unlinkedCounts(waiting)
		for key, pids := range waiting {
			a, _ := exes.Info(key)
			var n uint32
			var by int
			for _, pid := range pids {
				if c := unlinked[pid]; c > 0 {
					n, by = c, pid
					break
				}
			}
			if n == 0 {
				continue
			}
			links, err := p.attachLazy(a, key)
			if err != nil {
				// Tried again at the next polls (the executable's path
				// may have been an exited process's /proc/PID/exe).
				p.lazyFails[key]++
				p.log.Warn("hooking gRPC handlers' goroutines", "pid", by, "attempt", p.lazyFails[key], "err", err)
				if p.lazyFails[key] >= lazyAttempts {
					// Given up: the calls' misses go to go_roots again
					// (gospawn's auto mode), not to a hook never coming.
					delete(p.lazy, key)
					delete(p.lazyFails, key)
					a.cfg.Handlers = 1
					a.lazy = nil
					exes.Grow(key, nil, a)
					p.reconfigure(a, pids)
				}
				continue
			}
			delete(p.lazy, key)
			delete(p.lazyFails, key)
			lazy := a.lazy
			a.lazy = nil
			a.cfg.Handlers = 1
			if !exes.Grow(key, links, a) {
				for _, l := range links {
					l.Close()
				}
				continue
			}
			p.lazyHooked.Add(1)
			names := hookNames(lazy)
			p.log.Info("gRPC goroutine hooks attached: calls of a process that serves requests found no server span through their context",
				"pid", by, "unlinked", n, "exe", a.path, "hooks", names)
			why := fmt.Sprintf("uprobes for grpc %s; %s after %d calls of pid %d found no server span through their context", a.grpc, names, n, by)
			p.reconfigure(a, pids)
			for _, pid := range pids {
				for _, h := range lazy {
					capability := status.GRPCClientLinks
					if h.prog == "handle_stream" {
						capability = status.GRPCServerLinks
					}
					p.deps.Status.Set(pid, capability, true, why)
				}
			}
		}
	})
}

// reconfigure gives an executable's processes, and those it starts next,
// its changed settings.
func (p *Probe) reconfigure(a exeInfo, pids []int) {
	for _, pid := range pids {
		cfg := a.cfg
		if p.wantsNames(uint32(pid)) {
			cfg.Names = 1
		}
		_ = p.objs.GrpcProcs.Update(uint32(pid), cfg, ebpf.UpdateExist)
	}
	if a.proc != nil && a.proc.Exec != nil {
		if err := probes.Template(p.objs.GrpcTemplates, a.proc, a.cfg); err != nil {
			p.log.Warn("next processes of this executable wait for user space", "exe", a.path, "err", err)
		}
	}
}

// hookNames lists the functions of hooks, for the log and the status.
func hookNames(hooks []hook) string {
	names := make([]string, len(hooks))
	for i, h := range hooks {
		names[i] = h.fn[strings.LastIndexByte(h.fn, '.')+1:]
	}
	return strings.Join(names, ", ")
}

// attachLazy attaches an executable's goroutine hooks, whose offsets were
// read from the file key names: a path that now opens another file (a
// /proc/PID/exe whose PID was reused) is refused, for a uprobe at another
// program's offsets could break it.
func (p *Probe) attachLazy(a exeInfo, key probes.ExeKey) ([]link.Link, error) {
	if k, err := probes.ExeKeyOf(a.path); err != nil || k != key {
		return nil, fmt.Errorf("%s no longer opens the executable the hooks were planned for (%v)", a.path, err)
	}
	ex, err := link.OpenExecutable(a.path)
	if err != nil {
		return nil, fmt.Errorf("opening %s for uprobes: %w", a.path, err)
	}
	return p.attachHooks(ex, a.lazy)
}

// Stat returns a kernel-side counter by its name, summed over CPUs.
func (p *Probe) Stat(name string) uint64 {
	var loaded bool
	p.set.Locked(func(_ *probes.Exes[exeInfo], l bool) { loaded = l })
	if !loaded {
		return 0
	}
	for idx, n := range statNames {
		if n != name {
			continue
		}
		return probes.SumPerCPU(p.objs.GogrpcStats, uint32(idx))
	}
	return 0
}

// Track attaches the uprobes to the process's executable (once per
// executable) and gives the process its layout. Programs without grpc-go
// are left alone.
func (p *Probe) Track(proc *probes.Process) error {
	if proc.GoVersion == "" {
		return nil
	}
	if _, ok := proc.Modules[grpcModule]; !ok && proc.Modules != nil {
		// Discovery read the build info once per executable: no grpc-go,
		// nothing to open (planFor would say errNotGRPC after reading the
		// symbol table again, for every process).
		return nil
	}
	if _, ok := proc.Modules[grpcModule]; ok && proc.GoidOffset == 0 {
		// Every link is keyed by goroutine.
		why := proc.GoVersion + " goroutine layout unknown (no DWARF, not in weft's table)"
		p.deps.Status.Set(proc.PID, status.GRPCServerLinks, false, why)
		p.deps.Status.Set(proc.PID, status.GRPCClientLinks, false, why)
		return nil
	}
	key, err := probes.ExeKeyOf(proc.ExePath)
	if err != nil {
		return nil // the process is gone; discovery will untrack it
	}
	p.set.Locked(func(exes *probes.Exes[exeInfo], loaded bool) {
		if loaded {
			err = p.track(exes, proc, key)
		}
	})
	return err
}

// track attaches to a new executable or counts a process of a known one,
// and gives the process its layout; called under the set's lock.
func (p *Probe) track(exes *probes.Exes[exeInfo], proc *probes.Process, key probes.ExeKey) error {
	a, ok := exes.Info(key)
	if !ok {
		var links []link.Link
		var err error
		a, links, err = p.attach(proc)
		if errors.Is(err, errNotGRPC) {
			return nil
		}
		if err != nil {
			// Spans still come from the socket layer; only links and
			// propagation of this program's gRPC calls are lost.
			p.deps.Metrics.Counter("weft_uprobe_attach_failures_total", "uprobes that did not attach, by family", "family", Name).Add(1)
			p.log.Warn("gRPC calls of this process will not be linked or propagated", "pid", proc.PID, "err", err)
			p.deps.Status.Set(proc.PID, status.GRPCServerLinks, false, err.Error())
			p.deps.Status.Set(proc.PID, status.GRPCClientLinks, false, err.Error())
			return nil
		}
		exes.Attached(key, links, a)
		if len(a.lazy) != 0 {
			p.lazy[key] = true
		}
	}
	for capability, why := range map[string]error{status.GRPCServerLinks: a.server, status.GRPCClientLinks: a.client} {
		if why != nil {
			p.deps.Status.Set(proc.PID, capability, false, why.Error())
		} else {
			p.deps.Status.Set(proc.PID, capability, true, "uprobes for grpc "+a.grpc)
		}
	}
	if err := p.objs.GrpcProcs.Put(uint32(proc.PID), a.cfg); err != nil {
		return fmt.Errorf("configuring gRPC probe for pid %d: %w", proc.PID, err)
	}
	exes.Use(proc.PID, key)
	if proc.Exec != nil {
		if err := probes.Template(p.objs.GrpcTemplates, proc, a.cfg); err != nil {
			p.log.Warn("next processes of this executable wait for user space", "pid", proc.PID, "err", err)
		} else {
			exes.Linger(key)
		}
	}
	return nil
}

// maxPlans bounds the layouts kept by content.
const maxPlans = 256

// planOf is planFor, once per executable content; called under set's lock.
// A plan is shared, never changed.
func (p *Probe) planOf(b *goinspect.Binary) (*plan, error) {
	key := b.ContentKey()
	if pl, ok := p.plans[key]; ok && key != "" {
		return pl, nil
	}
	pl, err := planFor(b)
	if err != nil || key == "" {
		return pl, err
	}
	if len(p.plans) >= maxPlans {
		clear(p.plans)
	}
	p.plans[key] = pl
	return pl, nil
}

// attach reads the executable's layout and attaches what it allows.
func (p *Probe) attach(proc *probes.Process) (exeInfo, []link.Link, error) {
	b, release, err := proc.Inspect()
	if err != nil {
		return exeInfo{}, nil, err
	}
	defer release()
	pl, err := p.planOf(b)
	if err != nil {
		return exeInfo{}, nil, err
	}
	ex, err := link.OpenExecutable(proc.ExePath)
	if err != nil {
		return exeInfo{}, nil, fmt.Errorf("opening %s for uprobes: %w", proc.ExePath, err)
	}
	links, err := p.attachHooks(ex, slices.Concat(pl.server, pl.client)) // pl is shared: not appended to
	if err != nil {
		return exeInfo{}, nil, fmt.Errorf("gRPC uprobes in %s: %w", proc.ExePath, err)
	}
	if pl.noServer != nil {
		p.log.Info("gRPC server calls: spans only, no links", "pid", proc.PID, "grpc", pl.version, "reason", pl.noServer)
	}
	if pl.noClient != nil {
		p.log.Info("gRPC client calls: spans only, no links or propagation", "pid", proc.PID, "grpc", pl.version, "reason", pl.noClient)
	}
	p.log.Info("uprobes attached", "pid", proc.PID, "grpc", pl.version, "uprobes", len(links))
	cp := *proc
	cp.Exe = nil // closed after Track: hold no parsed binary
	return exeInfo{cfg: pl.cfg, server: pl.noServer, client: pl.noClient, grpc: pl.version,
		lazy: pl.lazy, path: proc.ExePath, proc: &cp}, links, nil
}

func (p *Probe) attachHooks(ex *link.Executable, hooks []hook) ([]link.Link, error) {
	progs := map[string]*ebpf.Program{
		"operate_headers": p.objs.OperateHeaders, "handle_stream": p.objs.HandleStream,
		"header_fields": p.objs.HeaderFields, "loopy_headers": p.objs.LoopyHeaders,
		"loopy_write_header": p.objs.LoopyWriteHeader,
	}
	var links []link.Link
	for _, h := range hooks {
		ls, err := p.uprobes.Attach(ex, h.fn, progs[h.prog], h.offsets...)
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			return nil, err
		}
		links = append(links, ls...)
	}
	return links, nil
}

// Untrack forgets the process and detaches when the last process of its
// executable goes: a uprobe traps in every process that maps the file.
func (p *Probe) Untrack(pid int) {
	p.set.Release(pid, func() { p.objs.GrpcProcs.Delete(uint32(pid)) })
	p.namesMu.Lock()
	delete(p.names, uint32(pid))
	p.namesMu.Unlock()
}

// WantNames has the probes send each stream's :path with its IDs, for a
// process whose HTTP/2 connections were open before tracing began: HPACK
// keeps a path that does not change in a table entry made then, which
// the parser never saw (http2.StreamNamer). Its streams cost a ring
// record more each from then on; a process the probe does not trace is
// ignored.
func (p *Probe) WantNames(pid uint32) {
	p.namesMu.Lock()
	defer p.namesMu.Unlock()
	if p.names[pid] || p.objs.GrpcProcs == nil {
		return
	}
	var c gogrpcGrpcCfg
	if err := p.objs.GrpcProcs.Lookup(pid, &c); err != nil {
		return // not a grpc-go process of ours (or gone)
	}
	p.names[pid] = true
	c.Names = 1
	if err := p.objs.GrpcProcs.Update(pid, c, ebpf.UpdateExist); err != nil {
		p.log.Warn("cannot have stream paths sent", "pid", pid, "err", err)
		return
	}
	p.log.Info("sending stream paths: HTTP/2 connections opened before tracing began hide them", "pid", pid)
}

func (p *Probe) wantsNames(pid uint32) bool {
	p.namesMu.Lock()
	defer p.namesMu.Unlock()
	return p.names[pid]
}

// Shutdown detaches every uprobe; safe twice and without Start.
func (p *Probe) Shutdown(context.Context) error {
	p.stopOnce.Do(func() { close(p.stop) })
	p.wg.Wait()
	p.set.Shutdown(p.objs.Close)
	return nil
}
