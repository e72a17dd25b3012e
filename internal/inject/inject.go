// Package inject inserts a W3C traceparent header into the HTTP/1.x
// requests traced processes send, at the socket layer: under lockdown
// nothing may write into a traced process, so the header is added to the
// bytes after the application handed them to the kernel.
//
// A sockops program puts the TCP sockets traced processes connect into a
// sockhash (an iterator adds the ones they had before being tracked). It
// reads the connecting process itself where the kernel lets sockops call
// bpf_get_current_pid_tgid; elsewhere (Linux 6.1, 5.10) cgroup/connect4
// and connect6 programs record it (Hook). The
// sk_msg program on that sockhash inserts the header into the message that
// starts a request, when the client probe left the request's IDs in the
// inject_ctx map (CtxMap) under the socket's cookie.
package inject

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// ErrUnsupported is wrapped by Start's error when the kernel lacks what
// injection needs (sockops, sk_msg, sockhash, socket storage, cgroup v2).
// The agent keeps running without injection.
var ErrUnsupported = fmt.Errorf("socket-layer header injection: %w", errors.ErrUnsupported)

// DefaultCgroup is where the sockops (and connect) programs are attached:
// the cgroup v2 hierarchy found there (or in its "unified" folder on a
// hybrid host); every process below it is covered.
const DefaultCgroup = "/sys/fs/cgroup"

// Injector owns the injection programs and their maps.
type Injector struct {
	log        *slog.Logger
	cgroupPath string
	kernelBTF  func() *btf.Cache // SetKernelBTF; nil: each load decodes its own

	mu        sync.Mutex // serialises Start, Track, Untrack and Shutdown
	hook      Hook       // wanted; after Start, the one running
	hookWhy   string     // what the running hook rests on
	objs      coreObjects
	loaded    bool
	msgAttach bool
	hookProgs []*ebpf.Program // the hook's: sockops (and connect4, connect6)
	links     []link.Link     // their cgroup attachments
	iterProg  *ebpf.Program   // nil when iter/tcp does not load
	iter      *link.Iter
	stopped   bool
	shared    map[string]*ebpf.Map // other families' maps the programs use
	state     traceState           // tracestate member added after traceparent
	sockets   *Sockets             // Track's view of a process's connections

	// prepare, set by tests only, edits the spec before it is loaded
	// (e.g. its fault knob).
	prepare func(*ebpf.CollectionSpec) error
}

// coreObjects is what injection cannot do without: the sk_msg program
// and the maps. The hook's programs are loaded apart, only the chosen
// ones (a kernel may refuse the others), and so is the iterator, so that
// a kernel refusing it costs only existing sockets.
type coreObjects struct {
	InjectMsg *ebpf.Program `ebpf:"inject_msg"`
	injectMaps
}

// byName lists the maps for MapReplacements, so that the programs loaded
// after the core share them.
func (m *injectMaps) byName() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{
		injectMapH2Ids: m.H2Ids, injectMapInjectCtx: m.InjectCtx, injectMapInjectInodes: m.InjectInodes,
		injectMapInjectProcs: m.InjectProcs, injectMapInjectSocks: m.InjectSocks,
		injectMapInjectState: m.InjectState, injectMapInjectStats: m.InjectStats, injectMapProcs: m.Procs,
		injectMapExecSel: m.ExecSel, injectMapInjectTemplates: m.InjectTemplates,
	}
}

// New makes an unstarted injector. cgroupPath "" means DefaultCgroup.
func New(log *slog.Logger, cgroupPath string) *Injector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cgroupPath == "" {
		cgroupPath = DefaultCgroup
	}
	return &Injector{log: log.With("probe", "inject"), cgroupPath: cgroupPath, sockets: NewSockets()}
}

// SetKernelBTF gives the loads a source of the kernel's decoded BTF
// (ebpf.CollectionOptions.Cache); it may answer nil. Call before Start.
func (i *Injector) SetKernelBTF(cache func() *btf.Cache) { i.kernelBTF = cache }

func (i *Injector) btfCache() *btf.Cache {
	if i.kernelBTF == nil {
		return nil
	}
	return i.kernelBTF()
}

// SetTraceState makes the injector add the tracestate member key=value
// (e.g. weft=<cluster name>) after each traceparent it inserts, so that the
// next hop learns where the call came from. Call before Start; an empty
// value adds nothing; a value the W3C grammar refuses is an error.
func (i *Injector) SetTraceState(key, value string) error {
	ts, err := encodeTraceState(key, value)
	if err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.state = ts
	return nil
}

// SetHook chooses how connecting processes are learnt (call before Start);
// HookAuto, the default, lets the kernel decide. Tests force HookConnect
// to run, on a kernel that would pick sockops, the path of kernels that
// cannot.
func (i *Injector) SetHook(h Hook) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.hook = h
}

// Hook says how the running injector learns connecting processes, and
// why that way (HookAuto and "" when not started).
func (i *Injector) Hook() (Hook, string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.loaded {
		return HookAuto, ""
	}
	return i.hook, i.hookWhy
}

// UseMaps hands the injector maps other probe families own, by name, to
// load its programs with (call before Start): sockio's "procs" (goroutine
// offsets) and "h2_ids" (the IDs of each HTTP/2 stream a Go client opens).
// Without them the injector has private, empty ones and adds no HTTP/2
// headers.
func (i *Injector) UseMaps(m map[string]*ebpf.Map) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.shared = m
}

// Start probes the kernel, loads the programs and attaches them: sk_msg to
// the sockhash first (sockets take the map's programs when they enter it),
// then sockops to the cgroup, then (HookConnect) connect4 and connect6,
// so that every socket they mark meets a sockops program once
// established. An unsupported kernel is logged once and reported as an
// error wrapping ErrUnsupported.
func (i *Injector) Start(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.loaded || i.stopped {
		return errors.New("inject: Start called twice or after Shutdown")
	}
	err := i.start()
	if err != nil {
		i.closeAll()
		if errors.Is(err, ebpf.ErrNotSupported) && !errors.Is(err, ErrUnsupported) {
			err = fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		if errors.Is(err, ErrUnsupported) {
			i.log.Warn("traceparent injection disabled", "err", err)
		}
	}
	return err
}

func (i *Injector) start() error {
	want := i.hook
	hook, err := probeKernel(liveKernel(), want)
	if err != nil {
		return err
	}
	cg, err := Cgroup2Root(i.cgroupPath)
	if err != nil {
		return err
	}
	i.cgroupPath = cg
	spec, err := loadInject()
	if err != nil {
		return fmt.Errorf("reading inject BPF object: %w", err)
	}
	if err := setState(spec, i.state); err != nil {
		return err
	}
	if i.prepare != nil {
		if err := i.prepare(spec); err != nil {
			return err
		}
	}
	if err := spec.LoadAndAssign(&i.objs, &ebpf.CollectionOptions{MapReplacements: i.shared, Cache: i.btfCache()}); err != nil {
		return fmt.Errorf("loading inject BPF programs: %w", verifierTail(err, i.log))
	}
	i.loaded = true
	why := hookWhy(hook, want)
	err = i.loadHook(spec, hook)
	if err != nil && want == HookAuto && hook == HookSockops {
		// The probe said sockops may read the process, the real load says
		// no: the connect programs, if this kernel has them, do it.
		if _, cerr := probeKernel(liveKernel(), HookConnect); cerr == nil {
			i.log.Warn("the sockops program that reads the connecting process did not load: cgroup/connect4 and connect6 record it instead", "err", err)
			hook, why = HookConnect, "cgroup/connect4 and connect6 record the connecting process: this kernel refused the sockops program that reads it"
			err = i.loadHook(spec, hook)
		}
	}
	if err != nil {
		return err
	}
	i.hook, i.hookWhy = hook, why
	err = link.RawAttachProgram(link.RawAttachProgramOptions{
		Target: i.objs.InjectSocks.FD(), Program: i.objs.InjectMsg, Attach: ebpf.AttachSkMsgVerdict,
	})
	if err != nil {
		return fmt.Errorf("attaching sk_msg to the sockhash: %w", err)
	}
	i.msgAttach = true
	attach := []ebpf.AttachType{ebpf.AttachCGroupSockOps, ebpf.AttachCGroupInet4Connect, ebpf.AttachCGroupInet6Connect}
	for n, prog := range i.hookProgs {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: i.cgroupPath, Attach: attach[n], Program: prog})
		if err != nil {
			return fmt.Errorf("attaching %v to %s: %w", attach[n], i.cgroupPath, err)
		}
		i.links = append(i.links, l)
	}
	if err := i.loadIter(spec); err != nil {
		// New connections still get headers; Track reports the gap.
		i.log.Warn("iter/tcp unavailable: connections made before Track get no header", "err", err)
	}
	if err := i.loadExec(spec); err != nil {
		// Processes selected at exec join at Track, as before.
		i.log.Warn("exec program unavailable: processes selected at exec wait for user space", "err", err)
	}
	i.log.Info("attached", "cgroup", i.cgroupPath, "hook", hook, "why", why, "iterator", i.iter != nil)
	return nil
}

// loadExec loads and attaches the exec program, which puts a selected
// process of an executable with a template in inject_procs before it runs
// (bpf/execsel.h).
func (i *Injector) loadExec(spec *ebpf.CollectionSpec) error {
	var objs struct {
		InjectExec *ebpf.Program `ebpf:"inject_exec"`
	}
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: i.objs.byName(), Cache: i.btfCache()}); err != nil {
		return verifierTail(err, i.log)
	}
	defer objs.InjectExec.Close() // the link holds it
	l, err := link.Tracepoint("sched", "sched_process_exec", objs.InjectExec, nil)
	if err != nil {
		return err
	}
	i.links = append(i.links, l)
	return nil
}

// Template makes the next selected processes of an executable (key: its
// struct exe_key, bpf/execsel.h) join inject_procs at exec, as Track does
// for one process.
func (i *Injector) Template(key any) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.loaded {
		return errNotStarted
	}
	if err := i.objs.InjectTemplates.Put(key, uint8(1)); err != nil {
		return fmt.Errorf("filing the exec template: %w", err)
	}
	return nil
}

// hookWhy says what a hook rests on, chosen for want.
func hookWhy(h, want Hook) string {
	switch {
	case h == HookSockops:
		return "the sockops program reads the connecting process (bpf_get_current_pid_tgid at TCP_CONNECT_CB)"
	case want == HookConnect:
		return "cgroup/connect4 and connect6 record the connecting process (chosen by configuration)"
	}
	return "cgroup/connect4 and connect6 record the connecting process: this kernel's sockops programs cannot call bpf_get_current_pid_tgid"
}

// loadHook loads the hook's programs into i.hookProgs, in the order start
// attaches them: sockops, then connect4 and connect6. Only these are
// loaded: the kernel may refuse the other hook's.
func (i *Injector) loadHook(spec *ebpf.CollectionSpec, h Hook) error {
	opts := &ebpf.CollectionOptions{MapReplacements: i.objs.byName(), Cache: i.btfCache()}
	var progs []*ebpf.Program
	var err error
	switch h {
	case HookSockops:
		var objs struct {
			Sockops *ebpf.Program `ebpf:"inject_sockops"`
		}
		err = spec.LoadAndAssign(&objs, opts)
		progs = []*ebpf.Program{objs.Sockops}
	case HookConnect:
		var objs struct {
			Sockops  *ebpf.Program `ebpf:"inject_sockops_est"`
			Connect4 *ebpf.Program `ebpf:"inject_connect4"`
			Connect6 *ebpf.Program `ebpf:"inject_connect6"`
		}
		err = spec.LoadAndAssign(&objs, opts)
		progs = []*ebpf.Program{objs.Sockops, objs.Connect4, objs.Connect6}
	default:
		return fmt.Errorf("inject: no programs for hook %v", h)
	}
	if err != nil {
		return fmt.Errorf("loading the inject %v programs: %w", h, verifierTail(err, i.log))
	}
	i.hookProgs = progs
	return nil
}

func (i *Injector) loadIter(spec *ebpf.CollectionSpec) error {
	var objs struct {
		InjectIter *ebpf.Program `ebpf:"inject_iter"`
	}
	err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: i.objs.byName(), Cache: i.btfCache()})
	if err != nil {
		return verifierTail(err, i.log)
	}
	it, err := link.AttachIter(link.IterOptions{Program: objs.InjectIter})
	if err != nil {
		objs.InjectIter.Close()
		return err
	}
	i.iterProg, i.iter = objs.InjectIter, it
	return nil
}

// verifierTail logs the end of a verifier log, where the reason is.
func verifierTail(err error, log *slog.Logger) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		log.Error("verifier rejected inject", "log", strings.Join(ve.Log[max(0, len(ve.Log)-20):], "\n"))
	}
	return err
}

// CtxMap is the inject_ctx map (socket cookie → struct inject_ctx) the
// client probe writes; pass it as MapReplacements{"inject_ctx": m} when
// loading that probe. Nil before Start.
func (i *Injector) CtxMap() *ebpf.Map {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.loaded {
		return nil
	}
	return i.objs.InjectCtx
}

// Forwarded reports whether the injector rewrote the parent-id of a
// traceparent the app forwarded (copied from the request it serves) to
// the client span with this ID, and forgets it: each span asks once. Such
// a span keeps the kernel's IDs; the header user space captured is the
// app's, from before the rewrite.
func (i *Injector) Forwarded(span [8]byte) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.loaded {
		return false
	}
	m := i.objs.InjectForwarded
	key := binary.NativeEndian.Uint64(span[:]) // the kernel's memcpy of the ID
	var v uint8
	err := m.LookupAndDelete(&key, &v)
	if err == nil {
		return true
	}
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return false
	}
	// Before 5.14 hash maps have no lookup-and-delete.
	if m.Lookup(&key, &v) != nil {
		return false
	}
	_ = m.Delete(&key)
	return true
}

// Shutdown detaches everything and closes the maps; the kernel takes the
// sockets out of the sockhash and restores their protocol operations.
// Safe twice and without Start.
func (i *Injector) Shutdown(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.stopped = true
	return i.closeAll()
}

func (i *Injector) closeAll() error {
	var errs []error
	for _, l := range i.links {
		errs = append(errs, l.Close())
	}
	i.links = nil
	if i.iter != nil {
		errs = append(errs, i.iter.Close(), i.iterProg.Close())
		i.iter, i.iterProg = nil, nil
	}
	if i.msgAttach {
		errs = append(errs, link.RawDetachProgram(link.RawDetachProgramOptions{
			Target: i.objs.InjectSocks.FD(), Program: i.objs.InjectMsg, Attach: ebpf.AttachSkMsgVerdict,
		}))
		i.msgAttach = false
	}
	for _, p := range i.hookProgs {
		errs = append(errs, p.Close())
	}
	i.hookProgs = nil
	if i.loaded {
		errs = append(errs, i.objs.InjectMsg.Close(), i.objs.injectMaps.Close())
		i.loaded = false
	}
	return errors.Join(errs...)
}

// setState writes the tracestate member into the programs' read-only data.
func setState(spec *ebpf.CollectionSpec, ts traceState) error {
	var line, field, member [stateMax]byte
	copy(line[:], ts.line)
	copy(field[:], ts.field)
	copy(member[:], ts.member)
	for name, v := range map[string]any{
		"state_line": line, "state_line_len": uint32(len(ts.line)),
		"state_field": field, "state_field_len": uint32(len(ts.field)),
		"state_member": member, "state_member_len": uint32(len(ts.member)),
		"state_key_len": uint32(ts.keyLen),
	} {
		sv, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("inject BPF object has no variable %s", name)
		}
		if err := sv.Set(v); err != nil {
			return fmt.Errorf("setting inject variable %s: %w", name, err)
		}
	}
	return nil
}
