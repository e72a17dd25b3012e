package sockio

import (
	"net/netip"
	"unsafe"

	"github.com/weft-dev/weft/internal/conntrack"
	"github.com/weft-dev/weft/internal/wire"
)

// Values of struct event's kind, dir, origin and ctx_flags (bpf/sockio.h).
const (
	evData        = 1
	evClose       = 3
	evConnectFail = 4

	dirWrite = 2

	originNew = 1

	ctxLinked  = 1  // CTX_LINKED
	ctxSampled = 2  // CTX_SAMPLED
	ctxTCPOpt  = 4  // CTX_TCPOPT
	ctxAtStart = 8  // CTX_H2_AT_START
	h2Option   = 64 // H2_OPTION, in h2_span.flags

	afInet6 = 10

	procThreads = 1 // PROC_THREADS
	procGoTLS   = 2 // PROC_GOTLS
	// procH2Presend: PROC_H2_PRESEND, a Go program whose h2c streams get
	// their TCP option from the pre-send hook.
	procH2Presend = 8
)

const eventSize = int(unsafe.Sizeof(sockioEvent{}))

// decode turns a ring-buffer record (the generated mirror of struct event
// and the captured bytes after it) into the form every source produces.
// ok is false for a short record. ev.Chunk.Data aliases raw.
func decode(raw []byte, ev *conntrack.Event) (ok bool) {
	if len(raw) < eventSize {
		return false
	}
	e := (*sockioEvent)(unsafe.Pointer(&raw[0]))
	end := eventSize + int(e.Captured)
	if end > len(raw) {
		return false
	}
	switch e.Kind {
	case evData:
		ev.Kind = conntrack.KindData
	case evClose:
		ev.Kind = conntrack.KindClose
	case evConnectFail:
		ev.Kind = conntrack.KindConnectFailed
		ev.Start, ev.Errno = e.StartNs, int(e.Len)
	default:
		ev.Kind = 0 // not for the table
	}
	ev.PID, ev.Conn, ev.MidStream, ev.TLS = e.Tgid, e.ConnId, e.Origin != originNew, e.Tls != 0
	ev.Local = addrPort(e.Ep.Family, e.Ep.Laddr, e.Ep.Lport)
	ev.Remote = addrPort(e.Ep.Family, e.Ep.Raddr, e.Ep.Rport)
	ev.Chunk = wire.Chunk{Dir: wire.DirRead, Time: e.TsNs, Len: int(e.Len), Data: raw[eventSize:end], Goid: e.Goid}
	if e.Dir == dirWrite {
		ev.Chunk.Dir = wire.DirWrite
	}
	ev.Sent, ev.Stamped = e.Sent, e.Kind == evData && e.Stamped != 0
	ev.IDs = conntrack.IDs{}
	if e.NewRequest != 0 || e.CtxFlags != 0 || e.Kind == evConnectFail {
		ev.IDs = conntrack.IDs{Trace: e.TraceId, Span: e.SpanId, Parent: e.ParentId,
			Linked: e.CtxFlags&ctxLinked != 0, Sampled: e.CtxFlags&ctxSampled != 0, Made: true,
			Option: e.CtxFlags&ctxTCPOpt != 0, AtStart: e.CtxFlags&ctxAtStart != 0}
	}
	return true
}

func addrPort(family uint16, addr [16]uint8, port uint16) netip.AddrPort {
	if family == afInet6 {
		a := netip.AddrFrom16(addr).Unmap()
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[:4])), port)
}
