package sockio

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/weft-dev/weft/internal/goinspect"
	"github.com/weft-dev/weft/internal/probes"
)

// Go's crypto/tls, the tls source's second library. A Go program has no
// libssl: its TLS plaintext passes through (*crypto/tls.Conn).Write and
// Read. Write is read at its entry (the whole buffer goes out unless the
// connection fails): one trap per call. Read is probed where it copies
// its plaintext to the caller (goinspect.CopySite: a CALL runtime.memmove
// with the bytes and their count in registers, the *Conn in its argument
// slot): one trap per read that returns data, none for one that returns
// an error (net/http's server aborts a background read after each
// response). Where the toolchain laid Read out otherwise, it is probed at
// its entry, for the buffer and the socket, and at each of its RET
// instructions, for the count: two traps per call. Never a uretprobe,
// which crashes Go programs.
// The uprobes are per executable (Go code is not shared between
// processes); the programs skip processes that are not traced.

const (
	goTLSWrite = "crypto/tls.(*Conn).Write"
	goTLSRead  = "crypto/tls.(*Conn).Read"
	// OffTLSConnConn is the offset of the net.Conn a *tls.Conn wraps.
	OffTLSConnConn = "crypto/tls.Conn.conn"
)

// tcpConnClose is the first method of the itab (*net.TCPConn, net.Conn):
// a *tls.Conn's conn is followed to its socket only with that itab.
const tcpConnClose = "net.(*TCPConn).Close"

// goTLSExe is what is known of an executable: what its processes get in
// gotls_procs, and how its Read is probed (for the status).
type goTLSExe struct {
	cfg  sockioGotlsCfg
	read string
}

// attachGo attaches the Go TLS uprobes to proc's executable, once per
// executable, and gives proc its settings. Called with p.mu held.
func (t *tlsSource) attachGo(proc *probes.Process, procs, templates *ebpf.Map) (string, error) {
	if _, ok := proc.GoOffsets[OffTLSConnConn]; !ok {
		return "", fmt.Errorf("%s layout unknown (no DWARF, not in weft's table): %s", proc.GoVersion, OffTLSConnConn)
	}
	key, err := probes.ExeKeyOf(proc.ExePath)
	if err != nil {
		return "", err // the process is gone
	}
	cfg, known := t.goExes.Info(key)
	if !known {
		var ls []link.Link
		cfg, ls, err = t.attachGoExe(proc)
		if err != nil {
			return "", err
		}
		t.goExes.Attached(key, ls, cfg)
	}
	if err := procs.Put(uint32(proc.PID), &cfg.cfg); err != nil {
		return "", fmt.Errorf("configuring Go TLS for pid %d: %w", proc.PID, err)
	}
	t.goExes.Use(proc.PID, key)
	if proc.Exec != nil {
		if err := probes.Template(templates, proc, &cfg.cfg); err == nil {
			t.goExes.Linger(key)
		}
	}
	return fmt.Sprintf("Go crypto/tls: %s at its entry (1 hit per call), %s %s", goTLSWrite, goTLSRead, cfg.read), nil
}

// attachGoExe finds the functions in proc's executable and attaches.
func (t *tlsSource) attachGoExe(proc *probes.Process) (goTLSExe, []link.Link, error) {
	b, release, err := proc.Inspect()
	if err != nil {
		return goTLSExe{}, nil, err
	}
	defer release()
	w, err := b.Func(goTLSWrite)
	if err != nil {
		return goTLSExe{}, nil, err
	}
	r, err := b.Func(goTLSRead)
	if err != nil {
		return goTLSExe{}, nil, err
	}
	c, err := b.Func(tcpConnClose)
	if err != nil {
		// Not wrapped: ErrNoFunc would read as "no crypto/tls".
		return goTLSExe{}, nil, fmt.Errorf("cannot check the connections' type: %v", err)
	}
	// Modulo 2^64, as the kernel subtracts.
	cfg := sockioGotlsCfg{WriteCloseDelta: w.Entry - c.Entry, ReadCloseDelta: r.Entry - c.Entry}
	type at struct {
		fn, prog string
		at       []uint64
	}
	probe := []at{{goTLSWrite, "gotls_write", []uint64{w.Offset}}}
	var how string
	site, err := copySite(b, r)
	if err == nil {
		cfg.CopyCloseDelta, cfg.CopyRecvSp = site.Addr-c.Entry, site.RecvSP
		probe = append(probe, at{goTLSRead, "gotls_read_copy", []uint64{site.Offset}})
		how = fmt.Sprintf("where it copies its plaintext (+%#x: 1 hit per read with data)", site.Addr-r.Entry)
	} else {
		why := err
		rets, err := b.ReturnOffsets(r)
		if err != nil {
			return goTLSExe{}, nil, err
		}
		if len(rets) == 0 {
			return goTLSExe{}, nil, fmt.Errorf("%s has no RET instruction to read its result at", goTLSRead)
		}
		probe = append(probe, at{goTLSRead, "gotls_read", []uint64{r.Offset}}, at{goTLSRead, "gotls_read_ret", rets})
		how = fmt.Sprintf("at its entry and %d RET sites (2 hits per call; %v)", len(rets), why)
	}
	ex, err := link.OpenExecutable(proc.ExePath)
	if err != nil {
		return goTLSExe{}, nil, fmt.Errorf("opening %s for uprobes: %w", proc.ExePath, err)
	}
	var links []link.Link
	for _, a := range probe {
		ls, err := t.uprobes.Attach(ex, a.fn, t.coll.Programs[a.prog], a.at...)
		if err != nil {
			closeAll(links)
			return goTLSExe{}, nil, fmt.Errorf("attaching to %s in %s: %w", a.fn, proc.ExePath, err)
		}
		links = append(links, ls...)
	}
	return goTLSExe{cfg: cfg, read: how}, links, nil
}

// copySite finds Read's copy site: bytes.Reader's Read, inlined, copying
// c.input's plaintext out.
func copySite(b *goinspect.Binary, r goinspect.Func) (goinspect.CopySite, error) {
	mm, err := b.Func("runtime.memmove")
	if err != nil {
		return goinspect.CopySite{}, err
	}
	return b.CopySite(r, mm, "bytes/reader.go")
}

func closeAll(ls []link.Link) {
	for _, l := range ls {
		l.Close()
	}
}

// errNoGoTLS: the Go program has no crypto/tls.
var errNoGoTLS = goinspect.ErrNoFunc

// isNoGoTLS says whether err means the executable has no crypto/tls.
func isNoGoTLS(err error) bool { return errors.Is(err, errNoGoTLS) }
