package sockio

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Finding the libssl a process will load before it has mapped one. A
// process seen at its exec has only its executable and the dynamic loader
// mapped; its uprobes go on the file now (filtered to its PID) and take
// effect when it maps it. Guessing the system's libssl is wrong for a
// program that loads another: an OpenSSL 1.1 program on a system that also
// has OpenSSL 3, or one with its own copy under an RPATH (vendored
// runtimes, /opt installs). So the executable's dependencies are read as
// the dynamic loader reads them first.

// Bounds on the work for one executable: libssl is a direct dependency or
// one or two hops away (curl → libcurl → libssl), and a crafted executable
// (thousands of DT_NEEDED names, a huge RPATH) must not keep the agent
// busy: at most neededMax objects read, neededNames names taken from each,
// searchDirs directories from each path list, statMax lookups in all.
const (
	neededMax   = 32
	neededNames = 64
	searchDirs  = 16
	statMax     = 512
	// elfMaxSize: a larger file is not read (a sparse crafted one could
	// claim sections of any size).
	elfMaxSize = 1 << 30
)

// soLibssl gives OpenSSL's major version for a libssl soname.
func soLibssl(soname string) (version string, ok bool) {
	switch soname {
	case "libssl.so.3":
		return "3", true
	case "libssl.so.1.1":
		return "1.1", true
	}
	return "", false
}

// loadSpec is what the dynamic loader's search needs of a process.
type loadSpec struct {
	root    string   // the process's root: /proc/PID/root, or "/" in tests
	exe     string   // the executable, as the process names it ($ORIGIN)
	exeFile string   // where to read it (the agent's open file); "" for root+exe
	ldPath  []string // LD_LIBRARY_PATH
	stats   *int     // lookups left (statMax)
}

// elfObject is one ELF file's part in the loader's search.
type elfObject struct {
	path    string   // as the process names it
	needed  []string // DT_NEEDED
	rpath   string   // DT_RPATH
	runpath string   // DT_RUNPATH
}

func (s loadSpec) read(p string) (elfObject, error) {
	file := filepath.Join(s.root, p)
	if p == s.exe && s.exeFile != "" {
		file = s.exeFile
	}
	return readObject(file, p)
}

// readObject reads one ELF file's dynamic section, refusing anything but
// a regular file of sane size (a FIFO put in its place must not block the
// agent) and recovering from a parser panic on crafted input.
func readObject(file, p string) (o elfObject, err error) {
	o.path = p
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading %s: %v", p, r)
		}
	}()
	fd, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return o, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return o, err
	}
	if !st.Mode().IsRegular() || st.Size() > elfMaxSize {
		return o, fmt.Errorf("%s: not a regular file of at most %d bytes", p, elfMaxSize)
	}
	f, err := elf.NewFile(fd)
	if err != nil {
		return o, err
	}
	o.needed, _ = f.DynString(elf.DT_NEEDED)
	if len(o.needed) > neededNames {
		o.needed = o.needed[:neededNames]
	}
	if v, _ := f.DynString(elf.DT_RPATH); len(v) > 0 {
		o.rpath = v[0]
	}
	if v, _ := f.DynString(elf.DT_RUNPATH); len(v) > 0 {
		o.runpath = v[0]
	}
	return o, nil
}

// libsslNeeded finds the libssl the executable's DT_NEEDED chain loads,
// breadth-first, each library resolved as glibc's loader does: the
// needing object's DT_RPATH (when it has no DT_RUNPATH) and the
// executable's, LD_LIBRARY_PATH, the object's DT_RUNPATH, then the
// default directories ($ORIGIN expanded; ld.so.cache is not read, its
// entries are in the default directories on the distributions weft
// meets). It returns "" when no libssl is in the chain (a program that
// dlopens it, as Python's _ssl module is), and an error only when the
// executable itself cannot be read.
func libsslNeeded(s loadSpec) (libPath, version string, err error) {
	if s.stats == nil {
		n := statMax
		s.stats = &n
	}
	if len(s.ldPath) > searchDirs {
		s.ldPath = s.ldPath[:searchDirs]
	}
	exe, err := s.read(s.exe)
	if err != nil {
		return "", "", fmt.Errorf("reading the executable's dependencies: %w", err)
	}
	type want struct {
		soname string
		by     elfObject
	}
	var queue []want
	for _, n := range exe.needed {
		queue = append(queue, want{n, exe})
	}
	seen := map[string]bool{}
	for reads := 0; len(queue) > 0 && reads < neededMax; {
		w := queue[0]
		queue = queue[1:]
		if seen[w.soname] {
			continue
		}
		seen[w.soname] = true
		p := s.find(w.soname, w.by, exe)
		if v, ok := soLibssl(w.soname); ok {
			if p == "" {
				return "", "", nil // needed but not found: the loader fails too
			}
			return p, v, nil
		}
		if p == "" {
			continue
		}
		reads++
		o, err := s.read(p)
		if err != nil {
			continue
		}
		for _, n := range o.needed {
			queue = append(queue, want{n, o})
		}
	}
	return "", "", nil
}

// find resolves a soname needed by an object as glibc's loader does, and
// returns its path in the process's namespace, or "".
func (s loadSpec) find(soname string, by, exe elfObject) string {
	if strings.Contains(soname, "/") {
		if s.exists(soname) {
			return soname
		}
		return ""
	}
	var dirs []string
	if by.runpath == "" {
		dirs = append(dirs, expandPath(by.rpath, by.path)...)
		if by.path != exe.path && exe.runpath == "" {
			dirs = append(dirs, expandPath(exe.rpath, exe.path)...)
		}
	}
	dirs = append(dirs, s.ldPath...)
	dirs = append(dirs, expandPath(by.runpath, by.path)...)
	for _, d := range libsslDirs {
		dirs = append(dirs, "/"+d)
	}
	for _, d := range dirs {
		if !path.IsAbs(d) {
			continue // relative entries depend on the process's cwd: not followed
		}
		if p := path.Join(d, soname); s.exists(p) {
			return p
		}
	}
	return ""
}

func (s loadSpec) exists(p string) bool {
	if *s.stats <= 0 {
		return false
	}
	*s.stats--
	st, err := os.Stat(filepath.Join(s.root, p))
	return err == nil && st.Mode().IsRegular()
}

// expandPath splits a DT_RPATH/DT_RUNPATH list and expands $ORIGIN (the
// directory of the object that carries it); $LIB and $PLATFORM entries are
// dropped.
func expandPath(list, object string) []string {
	if list == "" {
		return nil
	}
	origin := path.Dir(object)
	var out []string
	parts := strings.SplitN(list, ":", searchDirs+1)
	for _, d := range parts[:min(len(parts), searchDirs)] {
		d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
		if d == "" || strings.Contains(d, "$") {
			continue
		}
		out = append(out, d)
	}
	return out
}

// ldLibraryPath reads LD_LIBRARY_PATH from a process's environment.
func ldLibraryPath(pid int) []string {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil
	}
	for _, kv := range bytes.Split(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("LD_LIBRARY_PATH=")); ok {
			var out []string
			for _, d := range strings.Split(string(v), ":") {
				if d != "" {
					out = append(out, d)
				}
			}
			return out
		}
	}
	return nil
}
