// Package goinspect reads what weft needs from a Go executable it did not
// build: toolchain and module versions, function addresses and the file
// offsets of their entry and RET instructions (for uprobes), and struct field
// offsets (from DWARF, or from an embedded table when the binary is stripped).
//
// Only linux/amd64 ELF executables built by Go 1.21 or newer are supported.
package goinspect

import (
	"debug/buildinfo"
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// ErrNotGo reports that a file is not a Go executable.
var ErrNotGo = errors.New("not a Go executable")

// Binary is an opened Go executable. Its methods are safe for concurrent use.
type Binary struct {
	Path      string
	GoVersion string            // e.g. "go1.24.13", from the build info
	Main      string            // main module path
	Modules   map[string]string // dependency module path -> version, from the build info

	// BuildID is the Go build ID (.note.go.buildid), "" when absent.
	BuildID string

	HasDWARF  bool // .debug_info is present (not built with -ldflags=-w)
	HasSymtab bool // .symtab is present (not built with -ldflags=-s)
	PIE       bool // ELF type ET_DYN: addresses are relative to a load base
	Cgo       bool // runtime/cgo is linked in
	// CCalls names a package outside the standard library's own cgo users
	// (net's resolver, os/user) that calls C: a C library then shares the
	// program's sockets. "" when there is none, or it cannot be told.
	CCalls string

	// layouts names, by module path (StdModule for the standard library),
	// the source a struct of that module was built from: LayoutKey.
	layouts map[string]string
	learnt  *Layouts // UseLayouts; nil: each field read from this binary

	file   io.ReaderAt
	size   int64 // of file: every offset and size read from it is checked against it
	closer io.Closer
	elf    *elf.File

	// Loaded on first use; several are expensive on large binaries.
	symtab func() (map[string]Func, error)
	pcln   func() (*pclnIndex, error)
	dwarf  func() (*dwarfIndex, error)
}

// Open opens the Go executable at path. path may be /proc/PID/exe, which
// stays readable after the executable was deleted or replaced on disk, or a
// path under /proc/PID/root/ for a binary inside another mount namespace.
//
// A file weft cannot safely read, because its headers are inconsistent
// or its tables exceed the limits in limits.go, is refused with an error
// wrapping ErrMalformed or ErrTooLarge.
func Open(path string) (*Binary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("goinspect: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("goinspect: %w", err)
	}
	b, err := newBinary(path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	b.closer = f
	return b, nil
}

// newBinary reads the executable r of size bytes.
func newBinary(path string, r io.ReaderAt, size int64) (b *Binary, err error) {
	defer func() {
		if p := recover(); p != nil {
			b, err = nil, fmt.Errorf("goinspect: %s: %w: %v", path, ErrMalformed, p)
		}
	}()
	if err := checkELF(r, size); err != nil {
		return nil, fmt.Errorf("goinspect: %s: %w", path, err)
	}
	ef, elfErr := elf.NewFile(r)
	info, biErr := buildinfo.Read(&budgetReader{r: r, budget: maxBuildInfoRead})
	if elfErr != nil {
		if biErr == nil {
			// A Go binary in another format (Mach-O, PE, ...).
			return nil, fmt.Errorf("goinspect: %s: not an ELF file (%v); only linux ELF is supported", path, elfErr)
		}
		return nil, fmt.Errorf("goinspect: %s: %w (not ELF: %v)", path, ErrNotGo, elfErr)
	}
	if biErr != nil {
		// Go linkers have written build info since 1.13, so a file with Go
		// sections but unreadable build info is Go we cannot read.
		if pclntabSection(ef) == nil && ef.Section(".go.buildinfo") == nil {
			return nil, fmt.Errorf("goinspect: %s: %w", path, ErrNotGo)
		}
		return nil, fmt.Errorf("goinspect: %s: reading Go build info: %w", path, biErr)
	}
	if ef.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("goinspect: %s: unsupported architecture %v (only amd64)", path, ef.Machine)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Data != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("goinspect: %s: unsupported ELF class %v, %v (only 64-bit little-endian)", path, ef.Class, ef.Data)
	}
	b = &Binary{
		Path:      path,
		GoVersion: goVersion(info.GoVersion),
		Main:      info.Main.Path,
		HasDWARF:  ef.Section(".debug_info") != nil || ef.Section(".zdebug_info") != nil,
		HasSymtab: ef.Section(".symtab") != nil,
		PIE:       ef.Type == elf.ET_DYN,
		file:      r,
		size:      size,
		elf:       ef,
	}
	b.Modules, b.layouts = moduleVersions(info)
	b.BuildID = goBuildID(ef)
	b.symtab = sync.OnceValues(guard(path, b.loadSymtab))
	b.pcln = sync.OnceValues(guard(path, b.loadPcln))
	b.dwarf = sync.OnceValues(guard(path, b.loadDWARF))
	b.Cgo = b.linksCgo(info)
	if b.Cgo {
		b.CCalls = b.cCaller()
	}
	return b, nil
}

// ContentKey names the executable's content for caches shared by copies
// of it: its build ID and size. Only an ID as cmd/go writes it names the
// content (four hashes, the last the binary's own); other linkers' (Bazel's
// "redacted", say) do not, and give "".
func (b *Binary) ContentKey() string {
	parts := strings.Split(b.BuildID, "/")
	if len(parts) != 4 {
		return ""
	}
	for _, p := range parts {
		if len(p) < 16 || strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return ""
		}
	}
	return fmt.Sprintf("%s/%d", b.BuildID, b.size)
}

// goBuildID reads the Go build ID note: namesz, descsz, type 4, "Go\x00\x00",
// then the ID. Anything else (no note, another layout, over maxBuildID)
// is no ID.
func goBuildID(ef *elf.File) string {
	const maxBuildID = 256
	s := ef.Section(".note.go.buildid")
	if s == nil || s.Size > 16+maxBuildID || s.Flags&elf.SHF_COMPRESSED != 0 {
		return ""
	}
	d, err := s.Data()
	if err != nil || len(d) < 16 {
		return ""
	}
	le := ef.ByteOrder
	namesz, descsz, typ := le.Uint32(d), le.Uint32(d[4:]), le.Uint32(d[8:])
	if namesz != 4 || typ != 4 || string(d[12:16]) != "Go\x00\x00" || uint64(descsz) > uint64(len(d)-16) {
		return ""
	}
	return string(d[16 : 16+descsz])
}

// moduleVersions reads the build info's dependencies: each module's
// version, and the layout keys (LayoutKey) of the modules' structs.
func moduleVersions(info *buildinfo.BuildInfo) (modules, layouts map[string]string) {
	modules = make(map[string]string, len(info.Deps))
	// A struct's layout can change with the toolchain (a dependency's files
	// may be for some Go versions only, and its fields may be standard
	// types), with build tags, cgo or the race detector (files chosen by
	// constraints) and with GOEXPERIMENT: all are in every key.
	env := buildEnv(info)
	layouts = map[string]string{StdModule: StdModule + " | " + env}
	vendored := false
	for _, s := range info.Settings {
		vendored = vendored || s.Key == "-mod" && s.Value == "vendor"
	}
	for _, d := range info.Deps {
		v := d.Version
		// A module replaced by another module version runs that version's
		// code, so its layout is what matters; a directory replacement has
		// no version and keeps the required one.
		if d.Replace != nil && d.Replace.Version != "" {
			v = d.Replace.Version
		}
		modules[d.Path] = v
		// A directory's code, or a vendor directory's (which may have been
		// patched), is whatever it held at build time: it names no
		// source, and gets no key.
		switch {
		case vendored || v == "" || v == "(devel)" || d.Replace != nil && d.Replace.Version == "":
		case d.Replace != nil:
			layouts[d.Path] = d.Replace.Path + "@" + v + " for " + d.Path + " | " + env
		default:
			layouts[d.Path] = d.Path + "@" + v + " | " + env
		}
	}
	return modules, layouts
}

// layoutSettings are the build settings that choose which files, and so
// which struct definitions, a build compiles.
var layoutSettings = []string{"-tags", "-race", "-msan", "-asan", "CGO_ENABLED", "GOOS", "GOARCH", "GOEXPERIMENT"}

// buildEnv names the toolchain and the settings of a build that choose
// its structs: the whole version (experiments included) and
// layoutSettings.
func buildEnv(info *buildinfo.BuildInfo) string {
	var b strings.Builder
	b.WriteString(info.GoVersion)
	for _, k := range layoutSettings {
		for _, s := range info.Settings {
			if s.Key == k {
				fmt.Fprintf(&b, " %s=%s", k, s.Value)
			}
		}
	}
	return b.String()
}

// goVersion drops suffixes such as " X:boringcrypto" from a build info
// version so it can be compared and looked up in the offsets table. Go
// 1.26's linker joins a release's experiments with "-X:" (go.dev/issue/75953).
func goVersion(v string) string {
	v, _, _ = strings.Cut(v, " ")
	v, _, _ = strings.Cut(v, "-X:")
	return v
}

// linksCgo reports whether runtime/cgo is in the binary. The build setting
// CGO_ENABLED=1 only says cgo was allowed, not that any package used it, so
// it is the answer only when neither function table can be read.
func (b *Binary) linksCgo(info *buildinfo.BuildInfo) bool {
	const pkg = "runtime/cgo."
	if syms, err := b.symtab(); err == nil && b.HasSymtab {
		for name := range syms {
			if strings.HasPrefix(name, pkg) {
				return true
			}
		}
		return false
	}
	if p, err := b.pcln(); err == nil {
		for i := range p.table.Funcs {
			if strings.HasPrefix(p.table.Funcs[i].Name, pkg) {
				return true
			}
		}
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "1"
		}
	}
	return false
}

// stdCgo are the standard library packages that call C in a cgo build;
// they never read a socket's pending byte count.
var stdCgo = map[string]bool{"net": true, "os/user": true, "runtime/cgo": true, "runtime/race": true, "plugin": true, "crypto/x509": true}

// cCaller returns the first package outside stdCgo with a cgo call stub
// (pkg._Cfunc_name or pkg._C2func_name), from .symtab or .gopclntab.
func (b *Binary) cCaller() string {
	check := func(name string) string {
		i := strings.Index(name, "._Cfunc_")
		if i < 0 {
			i = strings.Index(name, "._C2func_")
		}
		if i <= 0 || stdCgo[name[:i]] {
			return ""
		}
		return name[:i]
	}
	if syms, err := b.symtab(); err == nil && b.HasSymtab {
		for name := range syms {
			if pkg := check(name); pkg != "" {
				return pkg
			}
		}
		return ""
	}
	if p, err := b.pcln(); err == nil {
		for i := range p.table.Funcs {
			if pkg := check(p.table.Funcs[i].Name); pkg != "" {
				return pkg
			}
		}
	}
	return ""
}

// Close releases the open file.
func (b *Binary) Close() error {
	if b.closer == nil {
		return nil
	}
	return b.closer.Close()
}

// fileOffset converts a virtual address inside an executable PT_LOAD segment
// to the offset in the file, which is what uprobes are attached by.
func (b *Binary) fileOffset(addr uint64) (uint64, error) {
	for _, p := range b.elf.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 {
			continue
		}
		if addr >= p.Vaddr && addr-p.Vaddr < p.Filesz {
			return addr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("goinspect: %s: address %#x is not in an executable segment", b.Path, addr)
}

func (b *Binary) loadDWARF() (*dwarfIndex, error) {
	if !b.HasDWARF {
		return nil, nil
	}
	if err := b.checkDWARF(); err != nil {
		return nil, fmt.Errorf("goinspect: %s: reading DWARF: %w", b.Path, err)
	}
	d, err := b.typeDWARF()
	if err != nil {
		return nil, fmt.Errorf("goinspect: %s: reading DWARF: %w", b.Path, err)
	}
	return newDWARFIndex(d)
}

// typeDWARF reads the DWARF sections that struct types are read from:
// .debug_info and .debug_abbrev, with the string, string-offset and
// address tables their attributes may point into. elf.File.DWARF also
// decompresses the line, frame, location and range tables, which here go
// unused and made up half of a first scan's time reading executables.
// The old .zdebug_ form (Go before 1.11) goes through elf.File.DWARF.
func (b *Binary) typeDWARF() (*dwarf.Data, error) {
	if b.elf.Section(".zdebug_info") != nil {
		return b.elf.DWARF()
	}
	read := func(name string) ([]byte, error) {
		s := b.elf.Section(".debug_" + name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			return nil, nil
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("section .debug_%s: %w", name, err)
		}
		return data, nil
	}
	var sec [3][]byte
	for i, name := range []string{"abbrev", "info", "str"} {
		var err error
		if sec[i], err = read(name); err != nil {
			return nil, err
		}
	}
	d, err := dwarf.New(sec[0], nil, nil, sec[1], nil, nil, nil, sec[2])
	if err != nil {
		return nil, err
	}
	// rnglists: DW_FORM_rnglistx (clang's DWARF 5 ranges, in a cgo
	// program's C units) is resolved while an entry is parsed.
	for _, name := range []string{"addr", "line_str", "str_offsets", "rnglists"} {
		data, err := read(name)
		if err != nil {
			return nil, err
		}
		if data != nil {
			if err := d.AddSection(".debug_"+name, data); err != nil {
				return nil, fmt.Errorf("section .debug_%s: %w", name, err)
			}
		}
	}
	return d, nil
}
