package gogrpc

import (
	"errors"
	"fmt"
	"slices"

	"github.com/weft-dev/weft/internal/goinspect"
)

const (
	grpcModule = "google.golang.org/grpc"
	transport  = "google.golang.org/grpc/internal/transport"
	http2Pkg   = "golang.org/x/net/http2"
	hpackPkg   = "golang.org/x/net/http2/hpack"

	fnOperateHeaders = transport + ".(*http2Server).operateHeaders"
	fnHandleStream   = grpcModule + ".(*Server).handleStream"
	fnHeaderFields   = transport + ".(*http2Client).createHeaderFields"
	fnClientHeaders  = transport + ".(*loopyWriter).clientHeaderHandler"
	fnOriginate      = transport + ".(*loopyWriter).originateStream"
	fnWriteHeader    = transport + ".(*loopyWriter).writeHeader"
)

// Go's register ABI: the integer argument registers, in order.
const (
	regRAX = iota
	regRBX
	regRCX
	regRDI
)

// hook is one uprobe: a program at a function's entry, or at its RETs.
type hook struct {
	fn      string
	prog    string // BPF program name
	atRets  bool
	offsets []uint64 // file offsets to attach at
}

// plan is what to attach to one executable and the per-process settings
// its programs need. Either half may be missing: the linker drops the
// server or the client of programs that use only the other.
type plan struct {
	version string
	server  []hook
	client  []hook
	cfg     gogrpcGrpcCfg
	// why each half is missing, for the log and the status
	noServer, noClient error
	// lazy are the hooks that link calls by goroutine where contexts
	// link them instead (handleStream): attached only once a process's
	// calls need them (Probe.poll).
	lazy []hook
}

var errNotGRPC = errors.New("no google.golang.org/grpc in the build info")

// planFor reads where grpc-go's functions and fields are in a binary.
// Function addresses come from the symbol table or pclntab (stripped
// binaries too); struct offsets from DWARF, then weft's table.
func planFor(b *goinspect.Binary) (*plan, error) {
	v, ok := b.Modules[grpcModule]
	if !ok {
		return nil, errNotGRPC
	}
	p := &plan{version: v}
	p.noServer = p.planServer(b)
	p.noClient = p.planClient(b)
	if p.noServer != nil && p.noClient != nil {
		return p, fmt.Errorf("grpc %s: server: %w; client: %w", v, p.noServer, p.noClient)
	}
	p.planContexts(b)
	return p, nil
}

// planContexts decides whether a handler's calls find their server span
// through their context.Context (grpcctx.h) rather than through a hook on
// the goroutine that runs the handler: one uprobe hit per server call
// instead of two. It needs the server stream's transport, and the loopy
// hook must reach a call's Stream from its header frame: from grpc 1.77
// the frame's write quota is a field of the Stream (&s.wq). A program
// without gRPC client calls needs only the former (its handlers' HTTP
// calls follow contexts in gohttp).
func (p *plan) planContexts(b *goinspect.Binary) {
	if p.noServer != nil || !at(b, "v1.77.0") {
		return
	}
	c := &p.cfg
	st, _, err := b.FieldOffset(transport+".ServerStream", "st")
	if err != nil {
		return
	}
	if p.noClient == nil {
		frame := transport + ".headerFrame"
		if c.HdrArg == regRBX {
			frame = transport + ".clientHeaders"
		}
		wq, _, e1 := b.FieldOffset(frame, "wq")
		swq, _, e2 := b.FieldOffset(transport+".Stream", "wq")
		sctx, _, e3 := b.FieldOffset(transport+".Stream", "ctx")
		if c.HdrArg == 0 || errors.Join(e1, e2, e3) != nil {
			return
		}
		c.HdrWq, c.StreamWq, c.StreamCtx = uint16(wq), uint16(swq), uint16(sctx)
	}
	c.SsSt, c.CtxWalk = uint16(st), 1
	// operateHeaders alone: handleStream's goroutine is needed only by
	// handlers that call out without their context.
	p.deferHook(&p.server, "handle_stream")
}

// deferHook moves the hook of prog from hooks to the lazy ones.
func (p *plan) deferHook(hooks *[]hook, prog string) {
	for _, h := range *hooks {
		if h.prog == prog {
			p.lazy = append(p.lazy, h)
		}
	}
	*hooks = slices.DeleteFunc(*hooks, func(h hook) bool { return h.prog == prog })
}

// at reports whether grpc is at least version min (false if unknown).
func at(b *goinspect.Binary, min string) bool {
	ok, _ := b.ModuleAtLeast(grpcModule, min)
	return ok
}

func entryHook(b *goinspect.Binary, fn, prog string) (hook, error) {
	f, err := b.Func(fn)
	if err != nil {
		return hook{}, err
	}
	return hook{fn: fn, prog: prog, offsets: []uint64{f.Offset}}, nil
}

func (p *plan) planServer(b *goinspect.Binary) error {
	c := &p.cfg
	// operateHeaders(frame, ...) until v1.60, then (ctx, frame, ...).
	c.FrameArg = regRBX
	if at(b, "v1.60.0") {
		c.FrameArg = regRDI
	}
	// handleStream(t ServerTransport, stream, ...): t is an interface.
	c.StreamArg = regRDI
	var err error
	field := func(structName, name string) uint16 {
		if err != nil {
			return 0
		}
		var off uint64
		off, _, err = b.FieldOffset(structName, name)
		return uint16(off)
	}
	// The stream: *Stream until v1.69; then *ServerStream, embedding
	// *Stream until v1.77 and Stream after.
	if at(b, "v1.69.0") {
		c.SsStream = field(transport+".ServerStream", "Stream")
		if !at(b, "v1.77.0") {
			c.StreamDeref = 1
		}
	}
	c.StreamId = field(transport+".Stream", "id")
	c.MhfHeaders = field(http2Pkg+".MetaHeadersFrame", "HeadersFrame")
	c.MhfFields = field(http2Pkg+".MetaHeadersFrame", "Fields")
	c.FrameStream = field(http2Pkg+".HeadersFrame", "FrameHeader") + field(http2Pkg+".FrameHeader", "StreamID")
	if e := p.planFields(b); e != nil && err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("server layout: %w", err)
	}
	oh, err := entryHook(b, fnOperateHeaders, "operate_headers")
	if err != nil {
		return err
	}
	hs, err := entryHook(b, fnHandleStream, "handle_stream")
	if err != nil {
		return err
	}
	p.server = []hook{oh, hs}
	return nil
}

// planFields finds hpack.HeaderField's layout, which both halves read.
func (p *plan) planFields(b *goinspect.Binary) error {
	if p.cfg.FieldSize != 0 {
		return nil
	}
	name, _, err := b.FieldOffset(hpackPkg+".HeaderField", "Name")
	if err != nil {
		return err
	}
	value, _, err := b.FieldOffset(hpackPkg+".HeaderField", "Value")
	if err != nil {
		return err
	}
	size, err := b.StructSize(hpackPkg + ".HeaderField")
	if err != nil {
		return err
	}
	p.cfg.FieldName, p.cfg.FieldValue, p.cfg.FieldSize = uint16(name), uint16(value), uint16(size)
	return nil
}

func (p *plan) planClient(b *goinspect.Binary) error {
	if err := p.planFields(b); err != nil {
		return fmt.Errorf("client layout: %w", err)
	}
	f, err := b.Func(fnHeaderFields)
	if err != nil {
		return err
	}
	rets, err := b.ReturnOffsets(f)
	if err != nil {
		return err
	}
	if len(rets) == 0 {
		return fmt.Errorf("%s: no RET instruction found", fnHeaderFields)
	}
	hf := hook{fn: fnHeaderFields, prog: "header_fields", atRets: true, offsets: rets}

	// The loopy writer's hook: where it takes a client stream's header
	// list with its stream ID.
	var loopy hook
	var frame string
	switch {
	case hasFunc(b, fnClientHeaders): // clientHeaderHandler(hdr *clientHeaders)
		loopy, err = entryHook(b, fnClientHeaders, "loopy_headers")
		p.cfg.HdrArg, frame = regRBX, transport+".clientHeaders"
	case at(b, "v1.53.0"): // originateStream(str *outStream, hdr *headerFrame)
		loopy, err = entryHook(b, fnOriginate, "loopy_headers")
		p.cfg.HdrArg, frame = regRCX, transport+".headerFrame"
	default: // writeHeader(streamID, endStream, hf, onWrite)
		loopy, err = entryHook(b, fnWriteHeader, "loopy_write_header")
	}
	if err != nil {
		return err
	}
	if frame != "" {
		sid, _, err := b.FieldOffset(frame, "streamID")
		if err != nil {
			return fmt.Errorf("client layout: %w", err)
		}
		hfOff, _, err := b.FieldOffset(frame, "hf")
		if err != nil {
			return fmt.Errorf("client layout: %w", err)
		}
		p.cfg.HdrStream, p.cfg.HdrHf = uint16(sid), uint16(hfOff)
	}
	p.client = []hook{hf, loopy}
	return nil
}

func hasFunc(b *goinspect.Binary, name string) bool {
	_, err := b.Func(name)
	return err == nil
}
