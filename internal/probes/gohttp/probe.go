// Package gohttp is the Go net/http client probe family: one uprobe per
// outgoing request, on net/http.(*persistConn).roundTrip, in the goroutine
// that made the call. It links the call to the server request that
// goroutine (or its parent) is serving, which the socket layer cannot know,
// and hands the client span's IDs to sockio and the injector by socket.
package gohttp

import (
	"context"
	"errors"
	"fmt"
	goversion "go/version"
	"log/slog"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/weft-dev/weft/internal/goinspect"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/probes/sockio"
	"github.com/weft-dev/weft/internal/status"
)

// Name is the family's name.
const Name = "gohttp"

// roundTrip is the one function probed: every Transport-based client
// (http.Get, http.Client, reverse proxies) sends HTTP/1 requests through it.
const roundTrip = "net/http.(*persistConn).roundTrip"

// h2WriteHeaders are the HTTP/2 clients' functions that write a request's
// HEADERS in the goroutine making it: net/http's bundled copy and x/net's.
// Probed when present; their calls' CLIENT spans are linked, not injected.
var h2WriteHeaders = []string{
	"net/http.(*http2ClientConn).writeHeaders",
	"golang.org/x/net/http2.(*ClientConn).writeHeaders",
}

// h2EncodeHeaders replaces net/http's writeHeaders where the stream's
// layout is known: it has the request too (h2_encode_headers).
const h2EncodeHeaders = "net/http.(*http2clientStream).encodeAndWriteHeaders"

// off16 is a field offset as the BPF configs keep it.
func off16(off uint64) uint16 { return uint16(off) }

// h2ServerHeaders and h2ServerHandler are net/http's HTTP/2 server
// functions (its bundled copy, then x/net's) that see a new stream's
// headers in the connection's serve goroutine and start its handler in the
// handler's goroutine: probed when present, they give the stream's SERVER
// span its parent from a TCP option and the handler's calls their parent.
var (
	h2ServerHeaders = []string{
		"net/http.(*http2serverConn).processHeaders",
		"golang.org/x/net/http2.(*serverConn).processHeaders",
	}
	h2ServerHandler = []string{
		"net/http.(*http2serverConn).runHandler",
		"golang.org/x/net/http2.(*serverConn).runHandler",
	}
)

// h2ServerLayout is where the HTTP/2 server probes read what they need
// (gohttp.bpf.c's h2s_* constants): the same in net/http's bundled copy and
// x/net's, and unchanged from Go 1.21 to 1.26 (checked in their sources);
// h2ServerGo bounds the versions it is known for.
var h2ServerLayout = map[string]uint64{
	"h2s_mhf_fields":   8,  // http2MetaHeadersFrame.Fields (after *http2HeadersFrame)
	"h2s_frame_stream": 8,  // http2FrameHeader.StreamID (valid, Type, Flags, Length before it)
	"h2s_field_size":   40, // hpack.HeaderField: Name, Value string; Sensitive bool
	"h2s_field_name":   0,
	"h2s_field_value":  16,
	"h2s_rw_rws":       0, // http2responseWriter.rws
	"h2s_rws_stream":   0, // http2responseWriterState.stream
	"h2s_stream_id":    8, // http2stream.id (after sc *http2serverConn)
}

// h2ServerGo are the Go versions h2ServerLayout is known for.
const h2ServerGoMin, h2ServerGoMax = "go1.21", "go1.26"

// h2ServerKnown reports whether the HTTP/2 server probes may read an
// executable of this Go version, and why not.
func h2ServerKnown(proc *probes.Process) (bool, string) {
	if goversion.Compare(goversion.Lang(proc.GoVersion), h2ServerGoMin) < 0 ||
		goversion.Compare(goversion.Lang(proc.GoVersion), h2ServerGoMax) > 0 {
		return false, fmt.Sprintf("HTTP/2 server layout not known for %s (known: %s to %s)", proc.GoVersion, h2ServerGoMin, h2ServerGoMax)
	}
	if proc.GoOffsets[sockio.OffParentGoid] == 0 {
		return false, sockio.OffParentGoid + " unknown: a stream's reader cannot be found"
	}
	return true, ""
}

// httpCfgH2Server is http_cfg's HTTP_CFG_H2_SERVER.
const httpCfgH2Server = 1

// tlsConnClose is the first method of the itab (*tls.Conn, net.Conn):
// an HTTPS persistConn's conn is followed through it to the TCP socket.
const tlsConnClose = "crypto/tls.(*Conn).Close"

// tcpConnClose is the first method of the itab (*net.TCPConn, net.Conn):
// the probe reads the socket through persistConn.conn only when that
// interface's itab starts with it (a DialContext may return any net.Conn).
const tcpConnClose = "net.(*TCPConn).Close"

// statNames name the kernel counters (enum gohttp_stat) in
// weft_gohttp_kernel_total{name}.
var statNames = map[gohttpGohttpStat]string{
	gohttpGohttpStatGS_CALLS:           "calls",
	gohttpGohttpStatGS_LINKED:          "linked",
	gohttpGohttpStatGS_TLS:             "tls",
	gohttpGohttpStatGS_NO_SOCK:         "no_socket",
	gohttpGohttpStatGS_NO_COOKIE:       "no_cookie",
	gohttpGohttpStatGS_NOT_TCPCONN:     "not_tcpconn",
	gohttpGohttpStatGS_H2CALLS:         "h2_calls",
	gohttpGohttpStatGS_H2LINKED:        "h2_linked",
	gohttpGohttpStatGS_H2SRV_STREAMS:   "h2_server_streams",
	gohttpGohttpStatGS_H2SRV_NO_READER: "h2_server_no_reader",
	gohttpGohttpStatGS_H2SRV_HEADER:    "h2_server_header_parent",
	gohttpGohttpStatGS_H2SRV_OPTION:    "h2_server_option_parent",
	gohttpGohttpStatGS_H2SRV_HANDLERS:  "h2_server_handlers",
	gohttpGohttpStatGS_H2SRV_LINKED:    "h2_server_linked",
	gohttpGohttpStatGS_H2SRV_B3:        "h2_server_b3_parent",
	gohttpGohttpStatGS_CTX_LINKED:      "grpc_context_linked",
}

// CtxMap is the injector's map of client-span IDs by socket, which this
// probe fills; nil when injection is off.
type CtxMap interface{ CtxMap() *ebpf.Map }

// Probe attaches the round-trip uprobe to the executables of traced Go
// processes that contain an HTTP client.
type Probe struct {
	deps probes.Deps
	log  *slog.Logger
	sock *sockio.Probe
	inj  CtxMap
	objs gohttpObjects

	uprobes probes.Uprobes
	set     *probes.UprobeSet[gohttpHttpCfg] // per executable: what its processes get in http_procs
}

// New makes an unstarted probe that works with sockio's maps and, when inj
// is not nil, the injector's: start it after both.
func New(d probes.Deps, sock *sockio.Probe, inj CtxMap) *Probe {
	d = d.WithDefaults()
	return &Probe{deps: d, log: d.Log.With("probe", Name), sock: sock, inj: inj, set: probes.NewUprobeSet[gohttpHttpCfg]()}
}

// Name implements probes.Probe.
func (p *Probe) Name() string { return Name }

// After implements probes.Dependent: the hooks use sockio's maps and the
// injector's (CtxMap), which exists once the injector has started.
func (p *Probe) After() []probes.Probe {
	after := []probes.Probe{p.sock}
	if inj, ok := p.inj.(probes.Probe); ok {
		after = append(after, inj)
	}
	return after
}

// Start loads the program with sockio's maps (and the injector's, when it
// runs) in place of its own.
func (p *Probe) Start(ctx context.Context) error {
	spec, err := loadGohttp()
	if err != nil {
		return fmt.Errorf("reading gohttp BPF object: %w", err)
	}
	if err := p.deps.Config.SetSampling(spec); err != nil {
		return fmt.Errorf("preparing gohttp BPF object: %w", err)
	}
	if p.uprobes, err = probes.NewUprobes(); err != nil {
		return err
	}
	p.deps.Status.Feature("uprobes", true, p.uprobes.Describe())
	if err := p.uprobes.Prepare(spec, "round_trip", "h2_write_headers", "h2_encode_headers", "h2_server_headers", "h2_server_handler"); err != nil {
		return err
	}
	maps, err := p.sock.Maps()
	if err != nil {
		return fmt.Errorf("gohttp uses sockio's maps: %w", err)
	}
	repl := map[string]*ebpf.Map{"procs": maps.Procs, "goctx": maps.Goctx, "gospawn": maps.Gospawn, "go_roots": maps.GoRoots, "client_ctxs": maps.ClientCtxs, "h2_ids": maps.H2IDs, "events": maps.Events,
		"grpc_procs": maps.GRPCProcs, "grpc_streams": maps.GRPCStreams,
		"tcpopt_txs": maps.TCPOptTx, "exec_sel": maps.ExecSel, "h2_readers": maps.H2Readers, "tls_opts_g": maps.TLSOptsG}
	for name, v := range h2ServerLayout {
		if err := spec.Variables[name].Set(v); err != nil {
			return fmt.Errorf("setting gohttp's %s: %w", name, err)
		}
	}
	if p.deps.Config.TCPOption {
		if err := spec.Variables["tcpopt_on"].Set(uint8(1)); err != nil {
			return fmt.Errorf("setting gohttp's tcpopt_on: %w", err)
		}
	}
	injecting := false
	if p.inj != nil {
		if m := p.inj.CtxMap(); m != nil {
			repl["inject_ctx"] = m
			injecting = true
		}
	}
	if err := spec.LoadAndAssign(&p.objs, &ebpf.CollectionOptions{MapReplacements: repl, Cache: p.deps.BTF.Cache()}); err != nil {
		return fmt.Errorf("loading gohttp BPF program: %w", err)
	}
	p.set.SetLoaded()
	if err := p.set.AttachExec(p.objs.GohttpExec); err != nil {
		p.log.Warn("processes selected at exec wait for user space", "err", err)
	}
	names := make(map[uint32]string, len(statNames))
	for idx, name := range statNames {
		names[uint32(idx)] = name
	}
	probes.KernelCounters(p.deps.Metrics, "weft_gohttp_kernel_total", "Go client probe counters by name", p.objs.GohttpStats, names)
	if !injecting {
		// Every linked call still gets its span; none reaches the next hop.
		p.deps.Metrics.Gauge("weft_requests_unpropagated_total", "client requests sent without a traceparent by weft, by reason",
			func() float64 { return float64(p.stat(uint32(gohttpGohttpStatGS_CALLS))) }, "reason", "injection_off")
	}
	p.set.LinksGauge(p.deps.Metrics, Name)
	return nil
}

func (p *Probe) stat(idx uint32) uint64 { return probes.SumPerCPU(p.objs.GohttpStats, idx) }

// Track attaches the uprobes to the process's executable, once per
// executable: net/http's HTTP/1 client, its HTTP/2 client and its HTTP/2
// server, whichever it has. Programs with none are left alone.
func (p *Probe) Track(proc *probes.Process) error {
	if proc.GoVersion == "" {
		return nil
	}
	if proc.GoidOffset == 0 {
		p.deps.Status.Set(proc.PID, status.HTTPClientLinks, false,
			fmt.Sprintf("%s layout unknown (no DWARF, not in weft's table): runtime.g.goid", proc.GoVersion))
		return nil
	}
	key, err := probes.ExeKeyOf(proc.ExePath)
	if err != nil {
		return nil // the process is gone; discovery will untrack it
	}
	p.set.Locked(func(exes *probes.Exes[gohttpHttpCfg], loaded bool) {
		if loaded {
			err = p.track(exes, proc, key)
		}
	})
	return err
}

// track attaches to a new executable or counts a process of a known one,
// and gives the process its executable's settings (without them the probe
// ignores its calls); called under the set's lock.
func (p *Probe) track(exes *probes.Exes[gohttpHttpCfg], proc *probes.Process, key probes.ExeKey) error {
	cfg, known := exes.Info(key)
	var ls []link.Link
	if !known {
		var err error
		cfg, ls, err = p.attach(proc)
		if errors.Is(err, goinspect.ErrNoFunc) {
			p.log.Debug("no net/http client in executable", "pid", proc.PID)
			p.deps.Status.Set(proc.PID, status.HTTPClientLinks, false, "no net/http client in the executable")
			return nil
		}
		if err != nil {
			// Server spans still come from the socket layer; only this process's
			// calls lose their parent. Say so, and carry on.
			p.deps.Metrics.Counter("weft_uprobe_attach_failures_total", "uprobes that did not attach, by family", "family", Name).Add(1)
			p.log.Warn("client calls of this process will not be linked", "pid", proc.PID, "err", err)
			p.deps.Status.Set(proc.PID, status.HTTPClientLinks, false, err.Error())
			return nil
		}
	}
	if err := p.objs.HttpProcs.Put(uint32(proc.PID), &cfg); err != nil {
		for _, l := range ls { // a new executable's: no process uses them
			l.Close()
		}
		p.deps.Status.Set(proc.PID, status.HTTPClientLinks, false, err.Error())
		return fmt.Errorf("configuring the Go client probe for pid %d: %w", proc.PID, err)
	}
	if !known {
		exes.Attached(key, ls, cfg)
		p.log.Info("uprobes attached", "pid", proc.PID, "links", len(ls), "http1_client", cfg.CloseDelta != 0,
			"http2_server", cfg.Flags&httpCfgH2Server != 0)
	}
	exes.Use(proc.PID, key)
	if proc.Exec != nil {
		if err := probes.Template(p.objs.HttpTemplates, proc, &cfg); err != nil {
			p.log.Warn("next processes of this executable wait for user space", "pid", proc.PID, "err", err)
		} else {
			exes.Linger(key)
		}
	}
	switch missing := missingOffsets(proc); {
	case cfg.CloseDelta != 0:
		p.deps.Status.Set(proc.PID, status.HTTPClientLinks, true, "uprobe on "+roundTrip)
	case missing != "":
		p.deps.Status.Set(proc.PID, status.HTTPClientLinks, false,
			fmt.Sprintf("%s layout unknown (no DWARF, not in weft's table): %s", proc.GoVersion, missing))
	default:
		p.deps.Status.Set(proc.PID, status.HTTPClientLinks, false, "no net/http HTTP/1 client in the executable")
	}
	switch known, why := h2ServerKnown(proc); {
	case cfg.Flags&httpCfgH2Server != 0:
		p.deps.Status.Set(proc.PID, status.HTTP2ServerLinks, true, "uprobes on the HTTP/2 server's processHeaders and runHandler")
	case !known:
		p.deps.Status.Set(proc.PID, status.HTTP2ServerLinks, false, why)
	default:
		p.deps.Status.Set(proc.PID, status.HTTP2ServerLinks, false, "no net/http HTTP/2 server in the executable")
	}
	return nil
}

// The struct fields attach reads from Process.GoOffsets (discovery looks
// them up once per executable's content: copies of one on other inodes
// do not read its DWARF again).
const (
	offReqCtx  = "net/http.Request.ctx"
	offTreqReq = "net/http.transportRequest.Request"
	offCsID    = "net/http.http2clientStream.ID"
)

// GoFields lists them, for discovery.Config.GoFields.
var GoFields = []string{offReqCtx, offTreqReq, offCsID}

// attach finds roundTrip and *net.TCPConn's Close in the executable and
// attaches the uprobe. The two functions' link-time distance is what the
// probe needs to know Close's run-time address from roundTrip's, which a
// uprobe hit gives: PIE or not, with .symtab or only the pclntab. The
// HTTP/2 client's and server's functions are attached when present; an
// executable with none of them gets goinspect.ErrNoFunc.
func (p *Probe) attach(proc *probes.Process) (gohttpHttpCfg, []link.Link, error) {
	exe := proc.ExePath
	b, release, err := proc.Inspect()
	if err != nil {
		return gohttpHttpCfg{}, nil, err
	}
	defer release()
	var cfg gohttpHttpCfg
	type target struct {
		fn   string
		prog *ebpf.Program
		off  uint64
	}
	var targets []target
	// The request's context: in a gRPC server, the way from a handler's
	// call to its stream (grpcctx.h). Without its offset, calls are
	// linked by goroutine only.
	if off, ok := proc.GoOffsets[offReqCtx]; ok {
		cfg.ReqCtx = uint16(off)
	}
	// roundTrip reads the client's structures: only with their layout (an
	// executable with DWARF but no HTTP/1 client has none).
	missing := missingOffsets(proc)
	if f, err := b.Func(roundTrip); err == nil && missing == "" {
		c, err := b.Func(tcpConnClose)
		if err != nil {
			// Every net/http client has it (net.Dialer returns *net.TCPConn
			// as a net.Conn); without it no call could be checked.
			return gohttpHttpCfg{}, nil, fmt.Errorf("cannot check the connections' type: %v", err)
		}
		cfg.CloseDelta = f.Entry - c.Entry // modulo 2^64, as the kernel subtracts
		if tc, err := b.Func(tlsConnClose); err == nil {
			cfg.TlsCloseDelta = f.Entry - tc.Entry
		} // else HTTPS calls are not linked (counted as not_tcpconn)
		targets = append(targets, target{roundTrip, p.objs.RoundTrip, f.Offset})
		if off, ok := proc.GoOffsets[offTreqReq]; ok {
			cfg.TreqReq = off16(off)
		} else {
			cfg.ReqCtx = 0
		}
	}
	// net/http's own HTTP/2 client: where its stream's layout is known,
	// encodeAndWriteHeaders (which has the request, so its context) in
	// place of writeHeaders.
	h2 := h2WriteHeaders
	if off, ok := proc.GoOffsets[offCsID]; ok && cfg.ReqCtx != 0 {
		if h, err := b.Func(h2EncodeHeaders); err == nil {
			cfg.CsId = off16(off)
			targets = append(targets, target{h2EncodeHeaders, p.objs.H2EncodeHeaders, h.Offset})
			h2 = h2[1:]
		}
	}
	for _, fn := range h2 {
		if h, err := b.Func(fn); err == nil {
			targets = append(targets, target{fn, p.objs.H2WriteHeaders, h.Offset})
		}
	}
	// The server's two functions go together: a stream's IDs filed by the
	// first are taken by the second.
	for i, fn := range h2ServerHeaders {
		if ok, _ := h2ServerKnown(proc); !ok {
			break
		}
		h, err1 := b.Func(fn)
		r, err2 := b.Func(h2ServerHandler[i])
		if err1 == nil && err2 == nil {
			targets = append(targets, target{fn, p.objs.H2ServerHeaders, h.Offset},
				target{h2ServerHandler[i], p.objs.H2ServerHandler, r.Offset})
			cfg.Flags |= httpCfgH2Server
		}
	}
	if len(targets) == 0 {
		return gohttpHttpCfg{}, nil, fmt.Errorf("%s: %w", roundTrip, goinspect.ErrNoFunc)
	}
	ex, err := link.OpenExecutable(exe)
	if err != nil {
		return gohttpHttpCfg{}, nil, fmt.Errorf("opening %s for uprobes: %w", exe, err)
	}
	var ls []link.Link
	for _, t := range targets {
		l, err := p.uprobes.Attach(ex, t.fn, t.prog, t.off)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return gohttpHttpCfg{}, nil, fmt.Errorf("attaching to %s in %s: %w", t.fn, exe, err)
		}
		ls = append(ls, l...)
	}
	return cfg, ls, nil
}

// Untrack forgets the process and detaches the uprobe when the last
// process of its executable goes: a uprobe traps in every process that
// maps the file, traced or not.
func (p *Probe) Untrack(pid int) {
	p.set.Release(pid, func() { p.objs.HttpProcs.Delete(uint32(pid)) })
}

// Shutdown detaches every uprobe; safe twice and without Start.
func (p *Probe) Shutdown(context.Context) error {
	p.set.Shutdown(p.objs.Close)
	return nil
}

// missingOffsets names the offsets the probe needs that the process lacks
// (the BPF side reads them from sockio's per-process settings).
func missingOffsets(proc *probes.Process) string {
	var missing []string
	if proc.GoidOffset == 0 {
		missing = append(missing, "runtime.g.goid")
	}
	for _, f := range sockio.ClientFields {
		if _, ok := proc.GoOffsets[f]; !ok {
			missing = append(missing, f)
		}
	}
	return strings.Join(missing, ", ")
}
