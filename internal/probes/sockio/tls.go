package sockio

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"

	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/status"
)

// The tls capture source: OpenSSL's plaintext. The socket sources see a
// TLS connection's ciphertext and mark it (conn.tls in bpf/sockio.bpf.c);
// uprobes on the libssl a traced process has mapped hand its plaintext to
// the same path, as that socket's. They attach per process (a PID filter:
// a process that is not traced never traps) and cost a trap at the entry
// and one at the return of each SSL_read/SSL_write.

// tlsProbe is one program at one libssl function.
type tlsProbe struct {
	symbol, program string
	ret             bool // at the return (uretprobe: fine on C code)
	optional        bool // absent before OpenSSL 1.1.1
}

var tlsProbes = []tlsProbe{
	{"SSL_set_fd", "ssl_set_fd", false, false},
	{"SSL_write", "ssl_write", false, false},
	{"SSL_write", "ssl_write_ret", true, false},
	{"SSL_read", "ssl_read", false, false},
	{"SSL_read", "ssl_read_ret", true, false},
	{"SSL_write_ex", "ssl_write_ex", false, true},
	{"SSL_write_ex", "ssl_write_ret", true, true},
	{"SSL_read_ex", "ssl_read_ex", false, true},
	{"SSL_read_ex", "ssl_read_ret", true, true},
	{"SSL_do_handshake", "ssl_do_handshake", false, true},
	{"SSL_free", "ssl_free", false, true},
	{"SSL_shutdown", "ssl_shutdown", false, true},
}

// tlsSource holds the loaded uprobe programs and each process's links.
type tlsSource struct {
	uprobes probes.Uprobes
	coll    *ebpf.Collection
	why     string                 // why it is off, when coll is nil
	links   map[int][]link.Link    // by pid; guarded by Probe.mu
	goExes  *probes.Exes[goTLSExe] // Go executables' uprobes; guarded by Probe.mu
	static  map[probes.ExeKey]bool // executables with OpenSSL linked in; guarded by Probe.mu
}

// loadTLS loads the tls source's programs over the maps the capture
// source loaded (spec is sockio's, prepared). Failing only turns TLS off.
func (p *Probe) loadTLS(spec *ebpf.CollectionSpec) {
	p.tls = &tlsSource{links: map[int][]link.Link{}, goExes: probes.NewExes[goTLSExe](), static: map[probes.ExeKey]bool{}}
	if err := p.tls.load(spec, &p.maps, p.deps.BTF.Cache()); err != nil {
		p.tls.why = err.Error()
		p.log.Info("TLS plaintext unavailable", "why", err)
		p.deps.Status.Feature(status.TLS, false, p.tls.why)
		return
	}
	p.deps.Status.Feature(status.TLS, true, "OpenSSL (libssl) SSL_read/SSL_write uprobes per traced process; Go crypto/tls uprobes per executable; "+p.tls.uprobes.Describe())
}

func (t *tlsSource) load(spec *ebpf.CollectionSpec, maps *sockioMaps, kernel *btf.Cache) error {
	// The plaintext goes through the request-head search, which needs
	// bpf_loop in uprobes.
	if err := features.HaveProgramHelper(ebpf.Kprobe, asm.FnLoop); err != nil {
		return fmt.Errorf("uprobes here have no bpf_loop (Linux 5.17+): %w", err)
	}
	u, err := probes.NewUprobes()
	if err != nil {
		return err
	}
	t.uprobes = u
	spec = spec.Copy()
	keep := map[string]bool{}
	for _, tp := range tlsProbes {
		keep[tp.program] = true
	}
	for _, name := range []string{"gotls_write", "gotls_read", "gotls_read_ret", "gotls_read_copy"} {
		keep[name] = true
	}
	for name := range spec.Programs {
		if !keep[name] {
			delete(spec.Programs, name)
		}
	}
	names := make([]string, 0, len(keep))
	for name := range keep {
		names = append(names, name)
	}
	if err := u.Prepare(spec, names...); err != nil {
		return err
	}
	repl, err := mapsByName(maps)
	if err != nil {
		return err
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl, Cache: kernel})
	if err != nil {
		return fmt.Errorf("loading the tls source's programs: %w", err)
	}
	t.coll = coll
	return nil
}

// mapsByName lists a bpf2go maps struct's maps by their BPF names.
func mapsByName(m any) (map[string]*ebpf.Map, error) {
	out := map[string]*ebpf.Map{}
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("ebpf")
		mp, ok := v.Field(i).Interface().(*ebpf.Map)
		if name == "" || !ok || mp == nil {
			return nil, fmt.Errorf("sockio map field %s not loaded", v.Type().Field(i).Name)
		}
		out[name] = mp
	}
	return out, nil
}

// libsslRe matches OpenSSL's libssl by file name.
var libsslRe = regexp.MustCompile(`/libssl\.so\.(1\.1|3)$`)

// libssl finds the libssl pid has mapped: its path in pid's mount
// namespace and OpenSSL's major version from the soname.
func libssl(pid int) (path, version string, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		if m := libsslRe.FindStringSubmatch(fields[5]); m != nil {
			return fields[5], m[1], nil
		}
	}
	return "", "", sc.Err()
}

// isJVM says whether pid is a Java VM: libjvm.so mapped, or, seen at its
// exec before the launcher loads it, an executable that needs the Java
// launcher's libjli.so.
func isJVM(pid int, exe string) bool {
	if f, err := elf.Open(exe); err == nil {
		needed, _ := f.DynString(elf.DT_NEEDED)
		f.Close()
		if slices.Contains(needed, "libjli.so") {
			return true
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasSuffix(sc.Text(), "/libjvm.so") {
			return true
		}
	}
	return false
}

// errNoLibssl: the process has no libssl mapped, nor one where the
// dynamic loader looks.
var errNoLibssl = errors.New("no libssl mapped")

// libsslDirs are where dynamic loaders find libssl, in a process's root.
var libsslDirs = []string{"usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib64", "lib64", "usr/lib", "lib"}

// libsslOnDisk finds the libssl pid would load if it has none mapped yet:
// a process seen at its exec has only the executable and the loader
// mapped, and a uprobe on the file (filtered to pid) is installed when
// the process maps it. The one its executable's dependencies name comes
// first (libsslNeeded); a program that loads libssl at run time (dlopen)
// gets the system's, OpenSSL 3 before 1.1.
func libsslOnDisk(pid int, exeFile string) (path, version string) {
	root := fmt.Sprintf("/proc/%d/root", pid)
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		if p, v, err := libsslNeeded(loadSpec{root: root, exe: exe, exeFile: exeFile, ldPath: ldLibraryPath(pid)}); err == nil && p != "" {
			return p, v
		}
	}
	for _, dir := range libsslDirs {
		for _, v := range []string{"3", "1.1"} {
			p := "/" + dir + "/libssl.so." + v
			if _, err := os.Stat(filepath.Join(fmt.Sprintf("/proc/%d/root", pid), p)); err == nil {
				return p, v
			}
		}
	}
	return "", ""
}

// attach attaches the uprobes to the libssl pid maps (or would load), for
// pid only.
func (t *tlsSource) attach(pid int, exe string, goProgram bool) (string, error) {
	if static, err := t.staticSSL(exe); err != nil {
		return "", err
	} else if static {
		return t.attachFile(pid, exe, exe, "linked into the executable", "")
	}
	path, version, err := libssl(pid)
	if err != nil {
		return "", fmt.Errorf("reading pid %d's mappings: %w", pid, err)
	}
	note := ""
	if path == "" && !goProgram {
		path, version = libsslOnDisk(pid, exe)
		note = " (not mapped yet)"
	}
	if path == "" {
		return "", errNoLibssl
	}
	return t.attachFile(pid, filepath.Join(fmt.Sprintf("/proc/%d/root", pid), path), path, version, note)
}

// staticSSL reports whether an executable defines SSL_write itself: OpenSSL
// (or BoringSSL) linked in with its symbols, as Node.js and vendored C and
// C++ programs carry it. Read once per executable.
func (t *tlsSource) staticSSL(exe string) (bool, error) {
	key, err := probes.ExeKeyOf(exe)
	if err != nil {
		return false, fmt.Errorf("the executable is gone: %w", err)
	}
	if v, ok := t.static[key]; ok {
		return v, nil
	}
	v, err := definesSSLWrite(exe)
	if err != nil {
		return false, err
	}
	if len(t.static) >= 4096 {
		clear(t.static)
	}
	t.static[key] = v
	return v, nil
}

// definesSSLWrite reads an ELF file's symbols for a defined SSL_write.
// A program that imports it from libssl.so has it undefined.
func definesSSLWrite(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("reading the executable's symbols: %w", err)
	}
	defer f.Close()
	for _, syms := range []func() ([]elf.Symbol, error){f.DynamicSymbols, f.Symbols} {
		list, err := syms()
		if err != nil {
			continue // no such table
		}
		for _, s := range list {
			if s.Name == "SSL_write" && s.Section != elf.SHN_UNDEF && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
				return true, nil
			}
		}
	}
	return false, nil
}

// attachFile attaches the OpenSSL uprobes to file (libssl, or an
// executable with OpenSSL in it; path is how pid names it), for pid only.
func (t *tlsSource) attachFile(pid int, file, path, version, note string) (string, error) {
	ex, err := link.OpenExecutable(file)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", path, err)
	}
	var links []link.Link
	fail := func(err error) (string, error) {
		for _, l := range links {
			l.Close()
		}
		return "", err
	}
	for _, tp := range tlsProbes {
		prog := t.coll.Programs[tp.program]
		var l link.Link
		var err error
		switch {
		case t.uprobes.Multi() && tp.ret:
			l, err = ex.UretprobeMulti([]string{tp.symbol}, prog, &link.UprobeMultiOptions{PID: uint32(pid)})
		case t.uprobes.Multi():
			l, err = ex.UprobeMulti([]string{tp.symbol}, prog, &link.UprobeMultiOptions{PID: uint32(pid)})
		case tp.ret:
			l, err = ex.Uretprobe(tp.symbol, prog, &link.UprobeOptions{PID: pid})
		default:
			l, err = ex.Uprobe(tp.symbol, prog, &link.UprobeOptions{PID: pid})
		}
		if err != nil {
			if tp.optional && errors.Is(err, link.ErrNoSymbol) {
				continue
			}
			return fail(fmt.Errorf("%s in %s: %w", tp.symbol, path, err))
		}
		links = append(links, l)
	}
	t.links[pid] = links
	if version == "" { // linked in: the version is not in a file name
		return fmt.Sprintf("OpenSSL (%s%s): SSL_read/SSL_write plaintext, two uprobe hits per call", path, note), nil
	}
	return fmt.Sprintf("OpenSSL %s (%s%s): SSL_read/SSL_write plaintext, two uprobe hits per call", version, path, note), nil
}

// detach closes pid's links.
func (t *tlsSource) detach(pid int) {
	for _, l := range t.links[pid] {
		l.Close()
	}
	delete(t.links, pid)
}

func (t *tlsSource) close() {
	for pid := range t.links {
		t.detach(pid)
	}
	t.goExes.CloseAll()
	if t.coll != nil {
		t.coll.Close()
		t.coll = nil
	}
}

// trackTLS attaches the tls source to a process with libssl and says so
// on the status board.
func (p *Probe) trackTLS(proc *probes.Process) {
	if p.tls == nil {
		return
	}
	if p.tls.coll == nil {
		p.deps.Status.Set(proc.PID, status.TLS, false, p.tls.why)
		return
	}
	if proc.GoVersion != "" {
		p.mu.Lock()
		why, err := p.tls.attachGo(proc, p.maps.GotlsProcs, p.maps.GotlsTemplates)
		p.mu.Unlock()
		switch {
		case isNoGoTLS(err):
			p.deps.Status.Set(proc.PID, status.TLS, false, "no crypto/tls in the executable")
		case err != nil:
			p.deps.Metrics.Counter("weft_uprobe_attach_failures_total", "uprobes that did not attach, by family", "family", "gotls").Add(1)
			p.deps.Status.Set(proc.PID, status.TLS, false, err.Error())
			p.log.Warn("Go TLS uprobes not attached", "pid", proc.PID, "err", err)
		default:
			p.deps.Status.Set(proc.PID, status.TLS, true, why)
		}
		return
	}
	p.mu.Lock()
	why, err := p.tls.attach(proc.PID, proc.ExePath, false)
	p.mu.Unlock()
	switch {
	case errors.Is(err, errNoLibssl) && isJVM(proc.PID, proc.ExePath):
		p.deps.Status.Set(proc.PID, status.TLS, false, "a Java VM: its TLS is Java's own (JSSE), not OpenSSL, and is not covered; its plaintext HTTP is")
	case errors.Is(err, errNoLibssl):
		p.deps.Status.Set(proc.PID, status.TLS, false, "no libssl mapped and no SSL_write in the executable (BoringSSL or OpenSSL linked in without symbols, as in Envoy, is not covered; or no TLS)")
	case err != nil:
		p.deps.Status.Set(proc.PID, status.TLS, false, err.Error())
		p.log.Warn("TLS uprobes not attached", "pid", proc.PID, "err", err)
	case strings.Contains(why, "not mapped yet") && isJVM(proc.PID, proc.ExePath):
		// JSSE is the JVM's own; the uprobes stay for a native library
		// that loads OpenSSL later (netty-tcnative, Tomcat Native).
		p.deps.Status.Set(proc.PID, status.TLS, false, "a Java VM: its TLS is Java's own (JSSE), not OpenSSL, and is not covered; its plaintext HTTP is. Waiting for a native library to load OpenSSL: "+why)
	default:
		p.deps.Status.Set(proc.PID, status.TLS, true, why)
	}
}

// untrackTLS detaches a process's TLS uprobes.
func (p *Probe) untrackTLS(pid int) {
	if p.tls == nil {
		return
	}
	p.mu.Lock()
	p.tls.detach(pid)
	p.tls.goExes.Release(pid)
	if p.tls.coll != nil { // also for a process never counted: the exec program may have filed it
		if err := p.maps.GotlsProcs.Delete(uint32(pid)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			p.log.Warn("removing pid from gotls_procs", "pid", pid, "err", err)
		}
	}
	p.mu.Unlock()
}
