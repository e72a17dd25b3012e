package goinspect

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
)

// weft opens the executables of every process it selects, and their
// owners, not weft, decide what is in them. Every size or count read from
// one is checked against the file's real size and against the caps below
// before anything is allocated or read by it, so that a crafted file costs
// an error, never a crash or a heap the size of a number in a header.
// debug/elf, debug/gosym and debug/buildinfo trust such numbers (they
// allocate what a header says, or copy one string per symbol), so the
// headers are checked first and those packages are only given input that
// passed.
//
// The caps are far above what real Go programs need: the largest common
// Go binaries (Kubernetes' kubelet, ~130 MB) have a 40 MB .gopclntab, 5 MB
// .symtab and a few hundred KB of data a table scan touches.
const (
	// maxTableSection caps .gopclntab, .symtab and .strtab, each read into
	// memory whole.
	maxTableSection = 256 << 20

	// maxDWARFSection caps one DWARF section's uncompressed size, and
	// maxDWARF all of them together: debug/elf reads every .debug_*
	// section whole, and debug/dwarf keeps them while the Binary is open.
	maxDWARFSection = 256 << 20
	maxDWARF        = 512 << 20

	// maxCompressionRatio bounds what a compressed section may claim to
	// inflate to, as a multiple of its compressed size (plus
	// compressionSlack). zlib can reach ~1000:1 on crafted input; Go's
	// DWARF compresses about 3:1.
	maxCompressionRatio = 64
	compressionSlack    = 1 << 20

	// maxDataScan caps the bytes of writable PT_LOAD segments, and
	// maxRelocScan of SHT_RELA sections, that the search for
	// runtime.firstmoduledata reads. Both are streamed through a small
	// buffer, so these bound time, not memory.
	maxDataScan  = 256 << 20
	maxRelocScan = 256 << 20
	// scanChunk is that buffer's size.
	scanChunk = 1 << 20
	// maxModuledataCandidates caps the words found that could be
	// runtime.firstmoduledata (a real binary has one or two).
	maxModuledataCandidates = 64

	// maxHeaderTable caps the program and section header tables and
	// maxSections the section count (executables have under 100;
	// extended numbering can claim 2^64). maxSectionNames caps the
	// section name table and maxSectionNameBytes the section names
	// debug/elf copies out of it, one string per section.
	maxHeaderTable      = 4 << 20
	maxSections         = 1 << 16
	maxSectionNames     = 1 << 20
	maxSectionNameBytes = 4 << 20

	// maxBuildInfoRead caps the bytes debug/buildinfo may read, headers
	// included: it follows lengths and addresses in the build info blob.
	// A real blob is a few hundred KB at most.
	maxBuildInfoRead = 32 << 20

	// maxPclnFuncs and maxPclnFiles cap the function and file counts of a
	// .gopclntab header; debug/gosym allocates ~200 bytes per function and
	// a map entry per file. Real programs have up to a few hundred
	// thousand functions and tens of thousands of files.
	maxPclnFuncs = 2 << 20
	maxPclnFiles = 256 << 10

	// maxFuncSize caps a function ReturnOffsets reads and decodes.
	maxFuncSize = 64 << 20
)

// ErrMalformed reports an executable whose headers or tables are
// inconsistent: sizes past the end of the file, offsets out of range,
// overlapping names. weft does not trace such a program.
var ErrMalformed = errors.New("malformed executable")

// ErrTooLarge reports an executable with a table larger than weft will
// read into memory (see the max* constants).
var ErrTooLarge = errors.New("executable table too large")

// inFile reports whether [off, off+n) lies inside a file of size bytes.
func inFile(off, n uint64, size int64) bool {
	return off <= uint64(size) && n <= uint64(size)-off
}

// checkELF checks the headers debug/elf and debug/buildinfo parse, before
// either does: the program and section header tables and every segment
// and section are inside the file, counts and the section name table are
// bounded. It returns nil for a file that is not ELF or that debug/elf
// will refuse anyway (unknown class or byte order).
func checkELF(r io.ReaderAt, size int64) error {
	var ident [elf.EI_NIDENT]byte
	if _, err := r.ReadAt(ident[:], 0); err != nil || string(ident[:4]) != elf.ELFMAG {
		return nil
	}
	var bo binary.ByteOrder
	switch elf.Data(ident[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return nil
	}
	var h elfLayout
	switch elf.Class(ident[elf.EI_CLASS]) {
	case elf.ELFCLASS64:
		var hdr elf.Header64
		if err := readStruct(r, 0, bo, &hdr); err != nil {
			return nil
		}
		h = elfLayout{
			phoff: hdr.Phoff, phentsize: uint64(hdr.Phentsize), phnum: uint64(hdr.Phnum),
			shoff: hdr.Shoff, shentsize: uint64(hdr.Shentsize), shnum: uint64(hdr.Shnum), shstrndx: uint64(hdr.Shstrndx),
			prog: prog64, section: section64,
			phsize: uint64(binary.Size(elf.Prog64{})), shsize: uint64(binary.Size(elf.Section64{})),
		}
	case elf.ELFCLASS32:
		var hdr elf.Header32
		if err := readStruct(r, 0, bo, &hdr); err != nil {
			return nil
		}
		h = elfLayout{
			phoff: uint64(hdr.Phoff), phentsize: uint64(hdr.Phentsize), phnum: uint64(hdr.Phnum),
			shoff: uint64(hdr.Shoff), shentsize: uint64(hdr.Shentsize), shnum: uint64(hdr.Shnum), shstrndx: uint64(hdr.Shstrndx),
			prog: prog32, section: section32,
			phsize: uint64(binary.Size(elf.Prog32{})), shsize: uint64(binary.Size(elf.Section32{})),
		}
	default:
		return nil
	}
	if err := h.checkProgs(r, bo, size); err != nil {
		return err
	}
	return h.checkSections(r, bo, size)
}

// elfLayout is what checkELF needs of an ELF header, either class.
type elfLayout struct {
	phoff, phentsize, phnum           uint64
	shoff, shentsize, shnum, shstrndx uint64
	phsize, shsize                    uint64 // the standard entry sizes
	prog                              func(io.ReaderAt, int64, binary.ByteOrder) (elf.ProgHeader, error)
	section                           func(io.ReaderAt, int64, binary.ByteOrder) (sh elf.SectionHeader, name uint32, err error)
}

func (h *elfLayout) checkProgs(r io.ReaderAt, bo binary.ByteOrder, size int64) error {
	if h.phnum == 0 {
		return nil
	}
	if h.phentsize < h.phsize {
		return nil // debug/elf refuses it
	}
	if h.phnum*h.phentsize > maxHeaderTable {
		return fmt.Errorf("%w: program header table of %d×%d bytes", ErrTooLarge, h.phnum, h.phentsize)
	}
	if !inFile(h.phoff, h.phnum*h.phentsize, size) {
		return fmt.Errorf("%w: program header table at %#x is past the end of the file", ErrMalformed, h.phoff)
	}
	for i := range h.phnum {
		p, err := h.prog(r, int64(h.phoff+i*h.phentsize), bo)
		if err != nil {
			return fmt.Errorf("%w: program header %d: %v", ErrMalformed, i, err)
		}
		if p.Filesz > 0 && !inFile(p.Off, p.Filesz, size) {
			return fmt.Errorf("%w: program header %d (%v): %#x bytes at %#x, past the end of the %d-byte file",
				ErrMalformed, i, p.Type, p.Filesz, p.Off, size)
		}
	}
	return nil
}

func (h *elfLayout) checkSections(r io.ReaderAt, bo binary.ByteOrder, size int64) error {
	if h.shoff == 0 {
		return nil
	}
	if h.shentsize < h.shsize {
		return nil // debug/elf refuses it
	}
	shnum, shstrndx := h.shnum, h.shstrndx
	if shnum == 0 {
		// Extended numbering, as debug/elf reads it: the real values are
		// in section 0.
		if !inFile(h.shoff, h.shentsize, size) {
			return fmt.Errorf("%w: section header table at %#x is past the end of the file", ErrMalformed, h.shoff)
		}
		s0, _, err := h.section(r, int64(h.shoff), bo)
		if err != nil {
			return fmt.Errorf("%w: section header 0: %v", ErrMalformed, err)
		}
		shnum = s0.FileSize
		if shstrndx == uint64(elf.SHN_XINDEX) {
			shstrndx = uint64(s0.Link)
		}
	}
	if shnum > maxSections {
		return fmt.Errorf("%w: %d sections", ErrTooLarge, shnum)
	}
	if shnum*h.shentsize > maxHeaderTable {
		return fmt.Errorf("%w: section header table of %d×%d bytes", ErrTooLarge, shnum, h.shentsize)
	}
	if !inFile(h.shoff, shnum*h.shentsize, size) {
		return fmt.Errorf("%w: section header table at %#x is past the end of the file", ErrMalformed, h.shoff)
	}
	names := make([]uint32, shnum)
	var strtab elf.SectionHeader
	for i := range shnum {
		s, name, err := h.section(r, int64(h.shoff+i*h.shentsize), bo)
		if err != nil {
			return fmt.Errorf("%w: section header %d: %v", ErrMalformed, i, err)
		}
		if s.Type != elf.SHT_NOBITS && s.FileSize > 0 && !inFile(s.Offset, s.FileSize, size) {
			return fmt.Errorf("%w: section %d: %#x bytes at %#x, past the end of the %d-byte file",
				ErrMalformed, i, s.FileSize, s.Offset, size)
		}
		names[i] = name
		if i == shstrndx {
			strtab = s
		}
	}
	if shstrndx == 0 || shstrndx >= shnum || strtab.Type != elf.SHT_STRTAB {
		return nil // no names, or debug/elf refuses them
	}
	if strtab.Flags&elf.SHF_COMPRESSED != 0 {
		return fmt.Errorf("%w: compressed section name table", ErrMalformed)
	}
	if strtab.FileSize > maxSectionNames {
		return fmt.Errorf("%w: section name table of %d bytes", ErrTooLarge, strtab.FileSize)
	}
	tab := make([]byte, strtab.FileSize)
	if _, err := r.ReadAt(tab, int64(strtab.Offset)); err != nil {
		return fmt.Errorf("%w: reading section names: %v", ErrMalformed, err)
	}
	// debug/elf copies each section's name out of the table: bound the
	// total, which overlapping names could make shnum × the table size.
	var total uint64
	for _, off := range names {
		if uint64(off) >= uint64(len(tab)) {
			continue // debug/elf refuses it
		}
		n := bytes.IndexByte(tab[off:], 0)
		if n < 0 {
			n = len(tab) - int(off)
		}
		if total += uint64(n); total > maxSectionNameBytes {
			return fmt.Errorf("%w: section names overlap (over %d bytes)", ErrMalformed, maxSectionNameBytes)
		}
	}
	return nil
}

func readStruct(r io.ReaderAt, off int64, bo binary.ByteOrder, v any) error {
	return binary.Read(io.NewSectionReader(r, off, int64(binary.Size(v))), bo, v)
}

func prog64(r io.ReaderAt, off int64, bo binary.ByteOrder) (elf.ProgHeader, error) {
	var p elf.Prog64
	err := readStruct(r, off, bo, &p)
	return elf.ProgHeader{Type: elf.ProgType(p.Type), Off: p.Off, Filesz: p.Filesz}, err
}

func prog32(r io.ReaderAt, off int64, bo binary.ByteOrder) (elf.ProgHeader, error) {
	var p elf.Prog32
	err := readStruct(r, off, bo, &p)
	return elf.ProgHeader{Type: elf.ProgType(p.Type), Off: uint64(p.Off), Filesz: uint64(p.Filesz)}, err
}

func section64(r io.ReaderAt, off int64, bo binary.ByteOrder) (elf.SectionHeader, uint32, error) {
	var s elf.Section64
	err := readStruct(r, off, bo, &s)
	return elf.SectionHeader{Type: elf.SectionType(s.Type), Flags: elf.SectionFlag(s.Flags),
		Offset: s.Off, FileSize: s.Size, Link: s.Link}, s.Name, err
}

func section32(r io.ReaderAt, off int64, bo binary.ByteOrder) (elf.SectionHeader, uint32, error) {
	var s elf.Section32
	err := readStruct(r, off, bo, &s)
	return elf.SectionHeader{Type: elf.SectionType(s.Type), Flags: elf.SectionFlag(s.Flags),
		Offset: uint64(s.Off), FileSize: uint64(s.Size), Link: s.Link}, s.Name, err
}

// uncompressedSize returns the size s reads to: Section.Size, except for a
// GNU ".zdebug_" section, whose size debug/elf takes from its own header
// when it reads it.
func (b *Binary) uncompressedSize(s *elf.Section) uint64 {
	if s.Flags&elf.SHF_COMPRESSED == 0 && strings.HasPrefix(s.Name, ".zdebug_") {
		var hdr [12]byte
		if n, _ := b.file.ReadAt(hdr[:], int64(s.Offset)); n == len(hdr) && string(hdr[:4]) == "ZLIB" && s.FileSize >= 12 {
			return binary.BigEndian.Uint64(hdr[4:])
		}
	}
	return s.Size
}

// checkSection checks s can be read whole: it has bytes in the file
// (not SHT_NOBITS), they are inside the file, and it reads to at most max
// bytes, and not implausibly many for its compressed size.
func (b *Binary) checkSection(s *elf.Section, max uint64) error {
	if s.Type == elf.SHT_NOBITS {
		return fmt.Errorf("%w: section %s has no contents in the file (SHT_NOBITS)", ErrMalformed, s.Name)
	}
	if !inFile(s.Offset, s.FileSize, b.size) {
		return fmt.Errorf("%w: section %s: %#x bytes at %#x, past the end of the %d-byte file", ErrMalformed, s.Name, s.FileSize, s.Offset, b.size)
	}
	n := b.uncompressedSize(s)
	if n > max {
		return fmt.Errorf("%w: section %s is %d bytes; weft reads at most %d", ErrTooLarge, s.Name, n, max)
	}
	if n != s.FileSize && n > s.FileSize*maxCompressionRatio+compressionSlack {
		return fmt.Errorf("%w: section %s claims to inflate from %d to %d bytes", ErrMalformed, s.Name, s.FileSize, n)
	}
	return nil
}

// readSection reads s whole (inflated, if it is compressed) after
// checkSection.
func (b *Binary) readSection(s *elf.Section, max uint64) ([]byte, error) {
	if err := b.checkSection(s, max); err != nil {
		return nil, err
	}
	data := make([]byte, b.uncompressedSize(s))
	if _, err := io.ReadFull(s.Open(), data); err != nil {
		return nil, fmt.Errorf("reading %s: %w", s.Name, err)
	}
	return data, nil
}

// checkDWARF bounds what File.DWARF reads: every .debug_* and .zdebug_*
// section, whole.
func (b *Binary) checkDWARF() error {
	var total uint64
	for _, s := range b.elf.Sections {
		if !isDWARF(s.Name) {
			continue
		}
		if err := b.checkSection(s, maxDWARFSection); err != nil {
			return err
		}
		if total += b.uncompressedSize(s); total > maxDWARF {
			return fmt.Errorf("%w: DWARF sections total over %d bytes", ErrTooLarge, maxDWARF)
		}
	}
	return nil
}

func isDWARF(name string) bool {
	return strings.HasPrefix(name, ".debug_") || strings.HasPrefix(name, ".zdebug_")
}

// budgetReader fails reads once it has returned budget bytes in all.
type budgetReader struct {
	r      io.ReaderAt
	budget int64
	used   atomic.Int64
}

func (br *budgetReader) ReadAt(p []byte, off int64) (int, error) {
	left := br.budget - br.used.Load()
	if left <= 0 {
		return 0, fmt.Errorf("%w: read more than %d bytes", ErrTooLarge, br.budget)
	}
	short := int64(len(p)) > left
	if short {
		p = p[:left]
	}
	n, err := br.r.ReadAt(p, off)
	br.used.Add(int64(n))
	if err == nil && short {
		err = fmt.Errorf("%w: read more than %d bytes", ErrTooLarge, br.budget)
	}
	return n, err
}

// recovered turns a panic into an ErrMalformed error in *err. The checks
// above keep the debug/* packages' allocations bounded; this is the last
// line for index errors they may still hit on input that passed.
func recovered(path string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("goinspect: %s: %w: %v", path, ErrMalformed, p)
	}
}

// guard wraps a loader so a panic in it is returned as an error.
func guard[T any](path string, load func() (T, error)) func() (T, error) {
	return func() (v T, err error) {
		defer recovered(path, &err)
		return load()
	}
}
