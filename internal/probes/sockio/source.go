package sockio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// Source is one way to capture the bytes traced processes move on TCP
// sockets: programs of sockio's BPF object that write struct event records
// (bpf/sockio.h) into its ring buffer. The ring loop, the decode and the
// connection table do not know which source ran. Only the chosen source's
// programs are loaded: the others may not load on this kernel.
type Source interface {
	Name() string
	// Available probes whether this kernel can run the source (a kernel
	// feature check, never an attach attempt's error text).
	Available() error
	// Programs names the source's programs in sockio's object.
	Programs() []string
	// Attach attaches the source's programs, loaded in coll.
	Attach(coll *ebpf.Collection) ([]link.Link, error)
	// PreSend names the hook that sees a send before its bytes leave
	// (where a non-Go thread's call gets its IDs in time for the TCP
	// option), or "" when the source has none.
	PreSend() string
}

// ErrSourceUnavailable wraps why a source cannot run on this kernel.
var ErrSourceUnavailable = errors.New("capture source unavailable on this kernel")

// Source names, for -capture.
const (
	SourceAuto            = "auto"
	SourceSockTracepoints = "sock_tracepoints"
	SourceSyscalls        = "syscalls"
)

// sources are the capture sources in order of preference: the cheapest
// first.
func sources() []Source {
	return []Source{sockTracepoints{sendmsg: hasBTFTracepoints(sendmsgTracepoint) == nil}, syscallTracepoints{}}
}

// sendmsgTracepoint fires in tcp_sendmsg_locked before a send's bytes are
// queued (Linux 6.16+).
const sendmsgTracepoint = "tcp_sendmsg_locked"

// stateProgram ends connections (inet_sock_set_state, tp_btf: Linux 5.5+);
// every source uses it.
const stateProgram = "on_state"

// hasBTFTracepoints checks that the kernel's BTF has the tp_btf targets.
func hasBTFTracepoints(names ...string) error {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("%w: reading kernel BTF: %w", ErrSourceUnavailable, err)
	}
	for _, tp := range names {
		var typ *btf.Typedef
		if err := spec.TypeByName("btf_trace_"+tp, &typ); err != nil {
			return fmt.Errorf("%w: no tracepoint %s: %w", ErrSourceUnavailable, tp, err)
		}
	}
	return nil
}

func attachAll(coll *ebpf.Collection, names []string, attach func(name string, prog *ebpf.Program) (link.Link, error)) ([]link.Link, error) {
	var links []link.Link
	for _, name := range names {
		prog := coll.Programs[name]
		if prog == nil {
			closeLinks(links)
			return nil, fmt.Errorf("program %s not loaded", name)
		}
		l, err := attach(name, prog)
		if err != nil {
			closeLinks(links)
			return nil, fmt.Errorf("attaching %s: %w", name, err)
		}
		links = append(links, l)
	}
	return links, nil
}

func closeLinks(links []link.Link) {
	for _, l := range links {
		l.Close()
	}
}

func attachTracing(_ string, prog *ebpf.Program) (link.Link, error) {
	return link.AttachTracing(link.TracingOptions{Program: prog})
}

// sockTracepoints reads the sock_recv_length and sock_send_length
// tracepoints (Linux 6.3+), which fire once per socket read and write with
// the socket at hand: ~0.1 µs a hit, no file-descriptor walk. With
// sendmsg, tcp_sendmsg_locked (6.16+) is its pre-send hook.
type sockTracepoints struct{ sendmsg bool }

func (sockTracepoints) Name() string { return SourceSockTracepoints }

func (sockTracepoints) Available() error {
	return hasBTFTracepoints("sock_recv_length", "sock_send_length", "inet_sock_set_state")
}

func (s sockTracepoints) Programs() []string {
	if s.sendmsg {
		return []string{"on_recv", "on_send", sendmsgProgram, stateProgram}
	}
	return []string{"on_recv", "on_send", stateProgram}
}

// sendmsgProgram is sockTracepoints' pre-send program.
const sendmsgProgram = "on_sendmsg"

// lazyPreSend is a source whose pre-send program Attach leaves out: it
// fires for every TCP send on the node, and only processes linked by
// thread need it, so the probe attaches it while one is traced.
type lazyPreSend interface {
	PreSendProgram() string // "" when the source has none
}

func (s sockTracepoints) PreSendProgram() string {
	if s.sendmsg {
		return sendmsgProgram
	}
	return ""
}

func (s sockTracepoints) PreSend() string {
	if s.sendmsg {
		return sendmsgTracepoint
	}
	return ""
}

func (s sockTracepoints) Attach(coll *ebpf.Collection) ([]link.Link, error) {
	return attachAll(coll, []string{"on_recv", "on_send", stateProgram}, attachTracing)
}

// syscallTracepoints reads the enter and exit tracepoints of the socket
// I/O system calls (every kernel weft supports): they fire for every read
// and write of every process, files and pipes too, so each hit first looks
// the process up; the socket is found from the fd.
type syscallTracepoints struct{}

// leavesBodiesOut says whether a source leaves HTTP/1 Content-Length
// bodies out of the ring buffer: the sock tracepoints (bpf_loop). The
// syscall exits copy them: with that search as well, the verifier passes
// a million instructions there.
func leavesBodiesOut(s Source) bool {
	_, ok := s.(sockTracepoints)
	return ok
}

// syscalls whose buffers the capture reads (bpf/sockio.bpf.c,
// SYSCALL_SOURCE).
var syscalls = []string{"read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg"}

func (syscallTracepoints) Name() string { return SourceSyscalls }

// tracefsRoots are where the kernel's tracing events may be mounted.
var tracefsRoots = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

func (syscallTracepoints) Available() error {
	if err := hasBTFTracepoints("inet_sock_set_state"); err != nil {
		return err
	}
	for _, root := range tracefsRoots {
		missing := ""
		for _, sc := range syscalls {
			for _, ev := range []string{"sys_enter_" + sc, "sys_exit_" + sc} {
				if _, err := os.Stat(filepath.Join(root, "events", "syscalls", ev, "id")); err != nil && missing == "" {
					missing = ev
				}
			}
		}
		if missing == "" {
			return nil
		}
		if _, err := os.Stat(filepath.Join(root, "events")); err == nil {
			return fmt.Errorf("%w: no syscall tracepoint %s in %s (CONFIG_FTRACE_SYSCALLS)", ErrSourceUnavailable, missing, root)
		}
	}
	return fmt.Errorf("%w: tracefs is not mounted at %v", ErrSourceUnavailable, tracefsRoots)
}

func (syscallTracepoints) PreSend() string { return "sys_enter" }

func (syscallTracepoints) Programs() []string {
	names := []string{stateProgram}
	for _, sc := range syscalls {
		names = append(names, "enter_"+sc, "exit_"+sc)
	}
	return names
}

func (s syscallTracepoints) Attach(coll *ebpf.Collection) ([]link.Link, error) {
	return attachAll(coll, s.Programs(), func(name string, prog *ebpf.Program) (link.Link, error) {
		if name == stateProgram {
			return attachTracing(name, prog)
		}
		return link.Tracepoint("syscalls", "sys_"+name, prog, nil) // enter_read: sys_enter_read
	})
}
