// Package sockio is the socket-layer capture family: a capture Source (the
// sock_recv_length and sock_send_length tracepoints) hands over the bytes
// traced processes move on TCP sockets through one ring buffer; the ring
// loop decodes them and feeds the connection table (internal/conntrack),
// whose protocol parsers make the spans. No uprobes: these hooks cost
// ~0.1 µs a hit here, a uprobe ~20 µs. Its kernel maps (Maps) are what the
// Go probe families and the injector share with it.
package sockio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/ringpoll"
	"github.com/weft-dev/weft/internal/status"
	"github.com/weft-dev/weft/internal/statusserver"
	"github.com/weft-dev/weft/internal/tick"
)

// Name is the family's name in the registry, logs and metrics.
const Name = "sockio"

// Probe loads sockio.bpf.c, attaches a capture source and feeds the
// connection table from its ring buffer.
type Probe struct {
	deps   probes.Deps
	log    *slog.Logger
	source Source
	maps   sockioMaps
	coll   *ebpf.Collection // the source's programs (the maps are in maps)
	links  []link.Link
	rd     *ringbuf.Reader
	gate   *ringpoll.Gate  // rd's Pending and Close
	waker  *ringpoll.Waker // nil: the loop wakes on its timer only
	done   chan struct{}
	stop   chan struct{}           // closed by Shutdown: the loop returns
	beat   *statusserver.Heartbeat // the event loop's, for /healthz

	mu    sync.Mutex // guards table and gone; Track/Untrack race the event loop
	table *conntrack.Table
	// gone are processes untracked since the ring buffer was last found
	// empty: their last events may still be in it (a short-lived client's
	// call), so the table forgets them only once it has been drained.
	gone map[uint32]time.Time

	loaded   bool // the capture source's programs (p.coll)
	mapsMade bool // p.maps
	stopOnce sync.Once
	// ids are the HTTP/2 streams' IDs that came through the ring; the
	// event loop's, guarded by mu. idsVia counts where spans found theirs.
	ids    *h2IDs
	idsVia struct{ ring, kernelMap *atomic.Uint64 }
	// lookupThenDelete: the kernel has no lookup-and-delete for hash maps
	// (before 5.14); set by the event loop, which alone uses it.
	lookupThenDelete bool
	// presendPIDs are the tracked processes that need the pre-send hook
	// (linked by thread, or Go with h2c options from it); while there is
	// one, presend (a lazyPreSend source's program) is attached. Guarded
	// by mu.
	presendPIDs map[int]bool
	presend     link.Link
	// tls is the tls capture source (OpenSSL uprobes), beside the socket
	// source; nil before Start.
	tls *tlsSource
	// connect makes spans of connects that fail before a byte is sent;
	// nil where the kernel lacks what it needs.
	connect *connectSource
	// muxed are the processes the kernel found multiplexing requests on
	// a thread (thread_mux), already said on the status board; the event
	// loop's own.
	muxed map[uint32]bool
	// observe, when set (tests only), sees each decoded event before the
	// table does; under mu.
	observe func(*conntrack.Event)
}

// New makes an unstarted probe whose connections speak protocols.
func New(d probes.Deps, protocols conntrack.Protocols) *Probe {
	d = d.WithDefaults()
	p := &Probe{deps: d, log: d.Log.With("probe", Name), done: make(chan struct{}), stop: make(chan struct{}),
		ids: newH2IDs(time.Now())}
	const idsHelp = "HTTP/2 streams that took the IDs a Go probe filed, by where they were found (ring: sent with the events; map: the kernel's map, when the ring's copy was lost or aged out)"
	p.idsVia.ring = d.Metrics.Counter("weft_sockio_h2_ids_total", idsHelp, "via", "ring")
	p.idsVia.kernelMap = d.Metrics.Counter("weft_sockio_h2_ids_total", idsHelp, "via", "map")
	p.table = conntrack.New(conntrack.Config{Protocols: protocols, Metrics: d.Metrics, StreamIDs: p.streamIDs,
		MaxConns: d.Config.MaxConns, MaxBytes: d.Config.MaxConnBytes})
	return p
}

// Maps are the kernel maps sockio shares with the families that work with
// it in the kernel (loaded into theirs with MapReplacements).
type Maps struct {
	Procs      *ebpf.Map // pid → proc_cfg: traced processes and their Go offsets
	Goctx      *ebpf.Map // goroutine → the server span it serves
	Gospawn    *ebpf.Map // goroutine → the request it was started for (gospawn)
	GoRoots    *ebpf.Map // tgid → Go calls no goroutine link reached while serving
	ClientCtxs *ebpf.Map // socket → a Go client call's span IDs (gohttp)
	H2IDs      *ebpf.Map // HTTP/2 stream → its span IDs (gogrpc, gohttp)
	Events     *ebpf.Map // the ring buffer (gogrpc and gohttp send stream IDs through it)
	TCPOptTx   *ebpf.Map // socket cookie → a request's IDs for a TCP option (gohttp → tcpopt)
	TCPOptRx   *ebpf.Map // socket cookie → the context a TCP option carried (tcpopt → sockio)
	ExecSel    *ebpf.Map // executable (and cgroup) → selected at exec (bpf/execsel.h; discovery fills it)
	TLSOptsG   *ebpf.Map // goroutine → the TCP option its TLS read began at (sockio → gogrpc)
	H2Readers  *ebpf.Map // HTTP/2 server connection's starting goroutine → its frame reader (sockio → gohttp)
	// gogrpc's, read by gohttp too: a gRPC handler's HTTP calls find their
	// server span through their context.
	GRPCProcs   *ebpf.Map // pid → grpc_cfg: where its grpc-go keeps things
	GRPCStreams *ebpf.Map // (transport, stream) → a gRPC server stream's span IDs
}

// ErrNotStarted: the maps exist only once the family has started; start
// sockio before the families that use them.
var ErrNotStarted = errors.New("sockio not started")

// Maps returns the shared maps.
func (p *Probe) Maps() (Maps, error) {
	if !p.loaded {
		return Maps{}, ErrNotStarted
	}
	return Maps{Procs: p.maps.Procs, Goctx: p.maps.Goctx, Gospawn: p.maps.Gospawn, GoRoots: p.maps.GoRoots, ClientCtxs: p.maps.ClientCtxs, H2IDs: p.maps.H2Ids, Events: p.maps.Events,
		TCPOptTx: p.maps.TcpoptTxs, TCPOptRx: p.maps.TcpoptRxs, ExecSel: p.maps.ExecSel,
		TLSOptsG: p.maps.TlsOptsG, H2Readers: p.maps.H2Readers, GRPCProcs: p.maps.GrpcProcs, GRPCStreams: p.maps.GrpcStreams}, nil
}

// streamIDs hands the HTTP/2 parser the IDs the gRPC probe made for a
// stream, keyed as the goroutine that moved its frames saw it.
func (p *Probe) streamIDs(pid, stream uint32, goid uint64) (conntrack.IDs, bool) {
	k := sockioH2Key{Tgid: pid, StreamId: stream, Goid: goid}
	ids, filer, ok := p.streamIDsOf(k)
	if ok {
		k.Goid = filer
		if n, named := p.ids.takeName(k); named {
			ids.Path, ids.GRPC = n.path, n.grpc
		}
	}
	return ids, ok
}

// streamIDsOf finds the IDs filed under k: in the ring's store, else in
// the kernel's map; filer is the goroutine of the probe that filed them
// (k's, unless k's is an alias: see h2IDs.put).
func (p *Probe) streamIDsOf(k sockioH2Key) (ids conntrack.IDs, filer uint64, ok bool) {
	pid := k.Tgid
	v, filer, ok := p.ids.take(k)
	if ok {
		p.idsVia.ring.Add(1)
		return streamIDsOf(v), filer, true
	}
	if !p.ids.filed(pid) {
		return conntrack.IDs{}, 0, false // no Go probe files this process's streams
	}
	if !p.lookupThenDelete {
		err := p.maps.H2Ids.LookupAndDelete(&k, &v)
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return conntrack.IDs{}, 0, false
		case err != nil:
			// Hash maps take lookup-and-delete from 5.14 on; before,
			// the kernel refuses it (5.10), and a lookup then a delete
			// does the same here (only this loop removes entries).
			p.lookupThenDelete = true
			p.log.Info("h2_ids: no lookup-and-delete on this kernel's hash maps; using lookup, then delete", "err", err)
		}
	}
	if p.lookupThenDelete {
		if p.maps.H2Ids.Lookup(&k, &v) != nil {
			return conntrack.IDs{}, 0, false
		}
		_ = p.maps.H2Ids.Delete(&k)
	}
	p.idsVia.kernelMap.Add(1)
	return streamIDsOf(v), k.Goid, true
}

func streamIDsOf(v sockioH2Span) conntrack.IDs {
	return conntrack.IDs{Trace: v.TraceId, Span: v.SpanId, Parent: v.ParentId,
		Linked: v.Flags&ctxLinked != 0, Sampled: v.Flags&ctxSampled != 0, Option: v.Flags&h2Option != 0, Made: true}
}

// Name implements probes.Probe.
func (p *Probe) Name() string { return Name }

// Start loads the programs, attaches the capture source and starts the
// event loop. A program that does not attach fails Start: without all of
// them, exchanges would be silently incomplete.
func (p *Probe) Start(ctx context.Context) error {
	spec, err := loadSockio()
	if err != nil {
		return fmt.Errorf("reading sockio BPF object: %w", err)
	}
	if err := p.prepare(spec); err != nil {
		return err
	}
	if err := p.createMaps(spec); err != nil {
		return err
	}
	// The capture source's programs, the TLS uprobes' and on_connect load
	// side by side, into the maps made above: the kernel verifies each
	// load on the CPU that asked, and on_recv alone takes over half a
	// second. Each sets fields of its own.
	var wg sync.WaitGroup
	wg.Go(func() { p.loadTLS(spec) })
	wg.Go(func() { p.loadConnect(spec) })
	err = p.load(spec)
	wg.Wait()
	if err != nil {
		p.closeAll()
		return err
	}
	p.rd, err = ringbuf.NewReader(p.maps.Events)
	if err != nil {
		p.closeAll()
		return fmt.Errorf("opening sockio ring buffer: %w", err)
	}
	p.gate = ringpoll.NewGate(p.rd)
	if p.waker, err = ringpoll.NewWaker(p.maps.Events); err != nil {
		p.log.Warn("events are read every "+pollEvery.String()+" only", "err", err)
	}
	p.registerGauges()
	// The loop wakes at least every pollIdle, so a silence this long
	// means it is stuck.
	p.beat = p.deps.Live.Register(Name, 5*time.Second)
	go p.loop()
	p.log.Info("attached", "source", p.source.Name(), "programs", len(p.links), "bodies_left_out", leavesBodiesOut(p.source))
	return nil
}

// prepare sets the loader's constants in spec.
func (p *Probe) prepare(spec *ebpf.CollectionSpec) error {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("counting possible CPUs: %w", err)
	}
	spec.Maps["scratch"].MaxEntries = uint32(cpus)
	if err := p.deps.Config.SetSampling(spec); err != nil {
		return fmt.Errorf("preparing sockio BPF object: %w", err)
	}
	if p.deps.Config.TCPOption {
		if err := spec.Variables["tcpopt_on"].Set(uint8(1)); err != nil {
			return fmt.Errorf("setting sockio's tcpopt_on: %w", err)
		}
	}
	if n := p.deps.Config.InjectHTTP1Bytes; n != 0 {
		if err := spec.Variables["inject_added"].Set(n); err != nil {
			return fmt.Errorf("setting sockio's inject_added: %w", err)
		}
	}
	if n := p.deps.Config.InjectHTTP1MergedBytes; n != 0 {
		if err := spec.Variables["inject_merged"].Set(n); err != nil {
			return fmt.Errorf("setting sockio's inject_merged: %w", err)
		}
	}
	return nil
}

// load picks the capture source and loads it with the maps: the one
// -capture names, or else the first (cheapest) one this kernel both has
// (Available) and loads. A source that is skipped or refused is logged
// with why; the choice is a feature on the status board.
func (p *Probe) load(spec *ebpf.CollectionSpec) error {
	want := p.deps.Config.Capture
	var why []string
	var errs []error
	for _, src := range sources() {
		if want != "" && want != SourceAuto && want != src.Name() {
			continue
		}
		if err := src.Available(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src.Name(), err))
			why = append(why, fmt.Sprintf("%s: %v", src.Name(), err))
			p.log.Info("capture source unavailable", "source", src.Name(), "why", err)
			continue
		}
		err := p.loadSource(spec, src)
		if err == nil {
			reason := src.Name()
			if len(why) > 0 {
				reason += " (" + strings.Join(why, "; ") + ")"
			} else if want == src.Name() {
				reason += " (forced by -capture)"
			}
			p.deps.Status.Feature("capture", true, reason)
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", src.Name(), err))
		why = append(why, fmt.Sprintf("%s: %v", src.Name(), err))
		p.log.Warn("capture source failed to load", "source", src.Name(), "err", err)
	}
	if len(why) == 0 {
		return fmt.Errorf("unknown capture source %q (want %s, %s or %s)", want, SourceAuto, SourceSockTracepoints, SourceSyscalls)
	}
	p.deps.Status.Feature("capture", false, strings.Join(why, "; "))
	return fmt.Errorf("no capture source runs on this kernel: %w", errors.Join(errs...))
}

// createMaps makes the maps every sockio program shares (p.maps); the
// programs are loaded with them as replacements.
func (p *Probe) createMaps(spec *ebpf.CollectionSpec) error {
	spec = spec.Copy()
	clear(spec.Programs)
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return fmt.Errorf("creating sockio BPF maps: %w", err)
	}
	defer coll.Close() // what Assign did not take: the data sections, which each load makes its own
	if err := coll.Assign(&p.maps); err != nil {
		return fmt.Errorf("creating sockio BPF maps: %w", err)
	}
	p.mapsMade = true
	return nil
}

// loadSource loads src's programs (only those: another source's may not
// load on this kernel) into the shared maps and attaches them.
func (p *Probe) loadSource(spec *ebpf.CollectionSpec, src Source) error {
	spec = spec.Copy()
	if src.PreSend() != "" {
		if err := spec.Variables["presend_on"].Set(uint8(1)); err != nil {
			return fmt.Errorf("setting sockio's presend_on: %w", err)
		}
	}
	keep := map[string]bool{execProgram: true}
	for _, name := range src.Programs() {
		keep[name] = true
	}
	for name := range spec.Programs {
		if !keep[name] {
			delete(spec.Programs, name)
		}
	}
	repl, err := mapsByName(&p.maps)
	if err != nil {
		return err
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl, Cache: p.deps.BTF.Cache()})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			p.log.Error("verifier rejected sockio", "source", src.Name(), "log", strings.Join(ve.Log[max(0, len(ve.Log)-20):], "\n"))
		}
		return fmt.Errorf("loading sockio BPF programs: %w", err)
	}
	links, err := src.Attach(coll)
	if err != nil {
		coll.Close()
		return fmt.Errorf("capture source %s: %w", src.Name(), err)
	}
	p.coll, p.source, p.links, p.loaded = coll, src, links, true
	if l, err := probes.AttachExec(coll.Programs[execProgram]); err != nil {
		p.log.Warn("processes selected at exec wait for user space", "err", err)
	} else {
		p.links = append(p.links, l)
	}
	return nil
}

// execProgram copies proc_cfg templates at exec (bpf/execsel.h).
const execProgram = "sockio_exec"

// Source is the capture source in use ("" before Start).
func (p *Probe) Source() string {
	if p.source == nil {
		return ""
	}
	return p.source.Name()
}

// PreSend names the capture source's hook that sees a send before its
// bytes leave, or "" (see Source.PreSend).
func (p *Probe) PreSend() string {
	if p.source == nil {
		return ""
	}
	return p.source.PreSend()
}

// Track puts a process in the BPF filter map: from now on its TCP sockets
// are captured.
func (p *Probe) Track(proc *probes.Process) error {
	p.mu.Lock()
	// Untracked and tracked again (an exec): the deferred untrack must not
	// remove the new tracking when the ring buffer drains.
	p.flushGone(uint32(proc.PID))
	p.table.Track(proc)
	p.mu.Unlock()
	// A Go program no header reaches (its sockets stay out of the
	// injector's sockhash when it calls C, or headers are off) gets its
	// h2c streams' TCP option from the pre-send hook.
	h2Presend := p.deps.Config.TCPOption && proc.GoVersion != "" && (proc.CCalls != "" || !p.deps.Config.Headers)
	cfg := procConfig(proc, h2Presend)
	if err := p.maps.Procs.Put(uint32(proc.PID), &cfg); err != nil {
		p.deps.Status.Set(proc.PID, status.Spans, false, err.Error())
		return fmt.Errorf("adding pid %d to the sockio filter: %w", proc.PID, err)
	}
	if err := probes.Template(p.maps.ProcTemplates, proc, &cfg); err != nil {
		p.log.Warn("next processes of this executable wait for user space", "pid", proc.PID, "err", err)
	}
	p.deps.Status.Set(proc.PID, status.Spans, true, "HTTP/1.x and h2c read at the socket layer (TLS is not visible)")
	if h2Presend {
		if err := p.presendAdd(proc.PID, "a Go program's h2c streams carry a TCP option and no header"); err != nil {
			p.log.Warn("attaching the pre-send hook: its h2c streams carry no option", "pid", proc.PID, "err", err)
		}
		if p.source.PreSend() == "" {
			// Said in the log, the process's status (tcpopt's) and a
			// metric: these calls' traces end at this process.
			p.log.Info("h2c streams of this Go program carry no context: no header reaches them, and their TCP option needs "+
				sendmsgTracepoint+" (Linux 6.16+) or -capture syscalls", "pid", proc.PID)
			p.deps.Metrics.Counter("weft_propagation_gaps_total",
				"traced processes some of whose outgoing calls carry no context, by reason",
				"reason", "h2c_no_header_no_presend").Add(1)
		}
	}
	if cfg.Flags&procThreads != 0 {
		if err := p.presendAdd(proc.PID, "a process is linked by thread"); err != nil {
			// Calls are still linked; they carry no option.
			p.log.Warn("attaching the pre-send hook", "err", err)
		}
		why := "an HTTP/1 call made on the thread serving a request is its child (thread-per-request servers)"
		if p.source.PreSend() == "" {
			why += "; its TCP option needs " + sendmsgTracepoint + " (Linux 6.16+) or -capture syscalls"
		}
		p.deps.Status.Set(proc.PID, status.ThreadLinks, true, why)
	}
	p.trackTLS(proc)
	return nil
}

// TrackExited implements probes.ExitedTracker: the events parked for a
// process selected at exec that exited before Track become its spans.
func (p *Probe) TrackExited(proc *probes.Process) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushGone(uint32(proc.PID))
	p.table.Track(proc)
}

// flushGone untracks now a process whose untrack waits for the ring
// buffer to drain, when its PID is tracked again (an exec, a reused PID):
// its connections' spans name it, not the next. Called with p.mu held.
func (p *Probe) flushGone(pid uint32) {
	if _, pending := p.gone[pid]; pending {
		p.table.Untrack(pid, conntrack.MonotonicNow())
		delete(p.gone, pid)
	}
}

// Offsets the Go client probe needs, by the name goinspect knows them.
const (
	OffParentGoid  = "runtime.g.parentGoid"
	OffPconnConn   = "net/http.persistConn.conn"
	OffPconnTLS    = "net/http.persistConn.tlsState"
	OffConnFD      = "net.conn.fd"
	OffNetFDPfd    = "net.netFD.pfd"
	OffPollFDSysfd = "internal/poll.FD.Sysfd"
)

// ClientFields are the struct fields the Go client probe needs: all or
// none are given to the programs.
var ClientFields = []string{OffParentGoid, OffPconnConn, OffPconnTLS, OffConnFD, OffNetFDPfd, OffPollFDSysfd}

// GoFields lists the struct fields procConfig reads from Process.GoOffsets:
// the client's, and the *tls.Conn's for Go TLS.
var GoFields = append(append([]string{}, ClientFields...), OffTLSConnConn)

// procConfig is the BPF-side view of a process. The client offsets are all
// set or all zero: a partial set would make the client probe read garbage.
func procConfig(p *probes.Process, h2Presend bool) sockioProcCfg {
	cfg := sockioProcCfg{GoidOffset: p.GoidOffset, ParentGoidOffset: p.GoOffsets[OffParentGoid]}
	if p.GoVersion == "" {
		cfg.Flags |= procThreads
	}
	if h2Presend {
		cfg.Flags |= procH2Presend
	}
	o := p.GoOffsets
	conn, ok1 := o[OffPconnConn]
	tls, ok2 := o[OffPconnTLS]
	fd, ok3 := o[OffConnFD]
	pfd, ok4 := o[OffNetFDPfd]
	sysfd, ok5 := o[OffPollFDSysfd]
	if ok1 && ok2 && ok3 && ok4 && ok5 && p.GoidOffset != 0 {
		cfg.PconnConn, cfg.PconnTls = uint16(conn), uint16(tls)
		cfg.ConnFd, cfg.NetfdSysfd = uint16(fd), uint16(pfd+sysfd)
		if c, ok := o[OffTLSConnConn]; ok {
			// 0 is its real offset (the first field) and means unknown
			// to the programs: they read it only with its mark.
			cfg.TlsconnConn = uint16(c)
			cfg.Flags |= procGoTLS
		}
	}
	return cfg
}

// Untrack removes a process: its map entries go, and exchanges still open
// are flushed as incomplete.
func (p *Probe) Untrack(pid int) {
	if !p.loaded {
		return
	}
	if err := p.maps.Procs.Delete(uint32(pid)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		p.log.Warn("removing pid from the sockio filter", "pid", pid, "err", err)
	}
	p.deleteConns(uint32(pid))
	p.presendRemove(pid)
	p.untrackTLS(pid)
	if err := p.maps.ThreadMux.Delete(uint32(pid)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		p.log.Warn("removing pid from thread_mux", "pid", pid, "err", err)
	}
	p.mu.Lock()
	if p.gone == nil {
		p.gone = map[uint32]time.Time{}
	}
	p.gone[uint32(pid)] = time.Now()
	p.mu.Unlock()
}

// forgetGone untracks the processes that went before the ring buffer was
// found empty (drained true), or more than a second ago under load that
// never lets it empty. Called with p.mu held.
func (p *Probe) forgetGone(drained bool) {
	p.table.ExpireParked(conntrack.MonotonicNow(), false)
	for pid, at := range p.gone {
		if drained || time.Since(at) > time.Second {
			p.table.Untrack(pid, conntrack.MonotonicNow())
			p.ids.drop(uint32(pid))
			delete(p.gone, pid)
		}
	}
}

// deleteConns drops the kernel-side socket state of a process.
func (p *Probe) deleteConns(pid uint32) {
	var key uint64
	var val sockioConn
	var stale []uint64
	it := p.maps.Conns.Iterate()
	for it.Next(&key, &val) {
		if val.Tgid == pid { // keys are struct sock addresses
			stale = append(stale, key)
		}
	}
	for _, k := range stale {
		_ = p.maps.Conns.Delete(k)
	}
}

// pollEvery bounds how long an event waits in the ring buffer: BPF wakes
// the reader only when much data is waiting (WAKEUP_BYTES).
const pollEvery = 100 * time.Millisecond

// pollIdle is how long the loop sleeps once drains keep finding nothing:
// the bound on a lone event's wait after a quiet spell.
const pollIdle = time.Second

// idleWaits are the loop's waits while drains find nothing, from pollEvery
// to pollIdle: periods that divide a second, so that on the timer grid
// (tick) each wake is one the agent's other periodic work shares.
var idleWaits = [...]time.Duration{pollEvery, 250 * time.Millisecond, 500 * time.Millisecond, pollIdle}

// longerWait is the idle wait after wait.
func longerWait(wait time.Duration) time.Duration {
	for _, w := range idleWaits {
		if w > wait {
			return w
		}
	}
	return pollIdle
}

// loop drains the ring buffer every pollEvery (backing off to pollIdle
// while drains find nothing), or at once when BPF forces a wakeup, and
// never waits inside the reader (see ringpoll.Waker).
func (p *Probe) loop() {
	defer close(p.done)
	var rec ringbuf.Record
	var ev conntrack.Event
	malformed := p.deps.Metrics.Counter("weft_sockio_events_total", "sockio ring-buffer events by kind", "kind", "malformed")
	wait := pollEvery
	timer := tick.NewTimer(wait)
	defer timer.Stop()
	p.rd.SetDeadline(ringpoll.Past)
	sweep := time.Now()
	for {
		p.beat.Beat()
		read, open := p.drain(&rec, &ev, malformed)
		if !open {
			return
		}
		// Nothing came: wait longer, up to pollIdle (every wake is one
		// of the whole runtime); anything: back to pollEvery. Waits end
		// on the timer grid.
		if read || p.waker == nil {
			// (Without a waker nothing but this timer reads the ring.)
			wait = pollEvery
		} else {
			wait = longerWait(wait)
		}
		p.mu.Lock()
		p.forgetGone(true)
		// (idle waits end on the grid's seconds: a strict second would
		// miss every other one by the timer's jitter)
		swept := time.Since(sweep) > time.Second-pollEvery/2
		if swept {
			sweep = time.Now()
			p.forgetGone(false)
			p.table.Sweep(conntrack.MonotonicNow())
			p.ids.age(sweep)
		}
		p.mu.Unlock()
		if swept {
			p.checkMux()
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-p.waker.C():
		case <-p.stop:
			return
		}
	}
}

// drain hands every event in the ring buffer to the table: whether it read
// any, and false once the reader is closed.
//
// It stops when the ring's positions say it is empty (Gate.Pending), not
// when the reader says so: a reader that reaches the end forgets it had
// data and asks epoll on its next read, a system call at the start of
// every drain, and a system call wakes the runtime's sysmon into 20 µs
// ticks for as long as the drain runs. Stopping first keeps the reader
// from ever waiting again after its first read. (At 2,000 req/s on a
// 2-vCPU VM sysmon is a fifth of the agent's CPU; this removed one of its
// wakes per drain, not a measurable share: the others come from export
// writes and GC.)
func (p *Probe) drain(rec *ringbuf.Record, ev *conntrack.Event, malformed *atomic.Uint64) (read, open bool) {
	for n := 1; ; n++ {
		if !p.gate.Pending() {
			return read, !p.gate.Closed()
		}
		read = true
		if n%256 == 0 { // a beat reads the clock: not on every event
			p.beat.Beat()
		}
		err := p.rd.ReadInto(rec)
		switch {
		case errors.Is(err, ringbuf.ErrClosed):
			return true, false
		case errors.Is(err, os.ErrDeadlineExceeded):
			return true, true
		case err != nil:
			p.log.Warn("reading sockio ring buffer", "err", err)
			return true, true
		default:
			if len(rec.RawSample) > 0 && (rec.RawSample[0] == evH2IDs || rec.RawSample[0] == evH2Name) {
				p.mu.Lock()
				var ok bool
				if rec.RawSample[0] == evH2IDs {
					ok = p.ids.put(rec.RawSample)
				} else {
					ok = p.ids.putName(rec.RawSample)
				}
				p.mu.Unlock()
				if !ok {
					malformed.Add(1)
				}
				continue
			}
			if !decode(rec.RawSample, ev) {
				malformed.Add(1)
				continue
			}
			p.mu.Lock()
			if p.observe != nil {
				p.observe(ev)
			}
			p.table.Handle(ev)
			p.mu.Unlock()
		}
	}
}

// Shutdown detaches every program and flushes open exchanges; safe twice.
func (p *Probe) Shutdown(ctx context.Context) error {
	p.stopOnce.Do(func() {
		p.beat.Stop()
		for _, l := range p.links {
			l.Close()
		}
		p.links = nil
		close(p.stop)
		if p.rd != nil {
			p.gate.Close()
			p.waker.Close()
			select {
			case <-p.done:
			case <-ctx.Done():
			}
		}
		p.mu.Lock()
		p.table.FlushAll(conntrack.MonotonicNow())
		p.mu.Unlock()
		p.closeAll()
	})
	return nil
}

// presendAdd notes a process that needs the source's lazy pre-send
// program (one linked by thread, or a Go program whose h2c streams take a
// TCP option there), attaching it for the first.
func (p *Probe) presendAdd(pid int, why string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.presendPIDs == nil {
		p.presendPIDs = map[int]bool{}
	}
	p.presendPIDs[pid] = true
	lazy, ok := p.source.(lazyPreSend)
	if !ok || lazy.PreSendProgram() == "" || p.presend != nil {
		return nil
	}
	prog := p.coll.Programs[lazy.PreSendProgram()]
	if prog == nil {
		return fmt.Errorf("program %s not loaded", lazy.PreSendProgram())
	}
	l, err := attachTracing(lazy.PreSendProgram(), prog)
	if err != nil {
		return fmt.Errorf("attaching %s: %w", lazy.PreSendProgram(), err)
	}
	p.presend = l
	p.log.Info("pre-send hook attached: "+why, "program", lazy.PreSendProgram(), "pid", pid)
	return nil
}

// presendRemove forgets a process; the last one takes the lazy pre-send
// program's link with it.
func (p *Probe) presendRemove(pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.presendPIDs, pid)
	if len(p.presendPIDs) == 0 && p.presend != nil {
		p.presend.Close()
		p.presend = nil
	}
}

// checkMux says on the status board, once per process, when the kernel
// found it serving two requests on one thread (thread_mux): an event loop,
// whose calls are no longer linked by thread.
func (p *Probe) checkMux() {
	var pid uint32
	var n uint64
	it := p.maps.ThreadMux.Iterate()
	for it.Next(&pid, &n) {
		if p.muxed[pid] {
			continue
		}
		if p.muxed == nil {
			p.muxed = map[uint32]bool{}
		}
		p.muxed[pid] = true
		p.deps.Status.Set(int(pid), status.ThreadLinks, false,
			"event loop: a thread read a request while one it had read was unanswered; its calls are not linked by thread (roots, never guessed)")
		p.log.Info("process serves requests from an event loop: calls not linked by thread", "pid", pid)
	}
	for pid := range p.muxed {
		var v uint64
		if p.maps.ThreadMux.Lookup(pid, &v) != nil {
			delete(p.muxed, pid) // untracked
		}
	}
}

func (p *Probe) closeAll() {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
	p.mu.Lock()
	if p.presend != nil {
		p.presend.Close()
		p.presend = nil
	}
	if p.tls != nil {
		p.tls.close()
	}
	if p.connect != nil {
		p.connect.close()
		p.connect = nil
	}
	p.mu.Unlock()
	if p.loaded {
		p.coll.Close()
		p.loaded = false
	}
	if p.mapsMade {
		p.maps.Close()
		p.mapsMade = false
	}
}

// registerGauges exposes the kernel-side counters.
func (p *Probe) registerGauges() {
	probes.KernelCounters(p.deps.Metrics, "weft_sockio_kernel_total", "sockio BPF-side counters by name", p.maps.Stats,
		map[uint32]string{0: "ringbuf_full", 1: "data_events", 2: "capture_fault", 3: "unknown_syscall", 4: "regs_unknown",
			5: "option_matched", 6: "option_unmatched", 7: "option_header_wins",
			8: "thread_linked", 9: "thread_root", 10: "thread_mux", 11: "tls_conns", 12: "tls_no_sock", 13: "gotls_not_tcpconn",
			14: "h2_option", 15: "h2_option_shared", 16: "tls_sock_by_read",
			17: "h2_call", 18: "h2_call_shared", 19: "h2_option_matched", 20: "h2_option_unmatched", 21: "h2_option_same_seq",
			22: "body_skipped", 23: "body_cut", 24: "h2_option_after_frames", 25: "tls_option_after_records",
			26: "base_settled"})
}

// kernelStat sums one per-CPU counter.
func (p *Probe) kernelStat(idx uint32) uint64 { return probes.SumPerCPU(p.maps.Stats, idx) }

// KernelStats returns the BPF-side counters (for tests and benchmarks).
func (p *Probe) KernelStats() (ringbufFull, dataEvents uint64) {
	return p.kernelStat(0), p.kernelStat(1)
}
