package goinspect

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrNoFunc reports that a function is not in the binary (or was inlined
// everywhere, leaving no symbol to probe).
var ErrNoFunc = errors.New("function not found")

// Func is a function's location in a Binary.
type Func struct {
	Name   string
	Entry  uint64 // virtual address of the first instruction
	End    uint64 // virtual address just past the function (with .symtab: Entry+size; from the pclntab: the next function's entry, so it may include padding)
	Offset uint64 // file offset of Entry: what a uprobe is attached by
}

// Func finds a function by its full Go symbol name, such as
// "net/http.serverHandler.ServeHTTP" or "net/http.(*conn).serve". It reads
// .symtab when present and the Go pclntab (which -s -w keeps) otherwise.
func (b *Binary) Func(name string) (Func, error) {
	if b.HasSymtab {
		return b.symtabFunc(name)
	}
	return b.pclnFunc(name)
}

func (b *Binary) symtabFunc(name string) (Func, error) {
	syms, err := b.symtab()
	if err != nil {
		return Func{}, err
	}
	f, ok := syms[name]
	if !ok {
		return Func{}, fmt.Errorf("goinspect: %s: %q in .symtab: %w", b.Path, name, ErrNoFunc)
	}
	return b.withOffset(f)
}

func (b *Binary) pclnFunc(name string) (Func, error) {
	p, err := b.pcln()
	if err != nil {
		return Func{}, err
	}
	fn := p.table.LookupFunc(name)
	if fn == nil {
		return Func{}, fmt.Errorf("goinspect: %s: %q in .gopclntab: %w", b.Path, name, ErrNoFunc)
	}
	return b.withOffset(Func{Name: name, Entry: fn.Entry, End: fn.End})
}

func (b *Binary) withOffset(f Func) (Func, error) {
	off, err := b.fileOffset(f.Entry)
	if err != nil {
		return Func{}, fmt.Errorf("goinspect: %s: %w", f.Name, err)
	}
	end, err := b.fileOffset(f.End - 1)
	if f.End <= f.Entry || err != nil || end-off != f.End-1-f.Entry {
		return Func{}, fmt.Errorf("goinspect: %s: %s [%#x, %#x) is not inside one executable segment", b.Path, f.Name, f.Entry, f.End)
	}
	f.Offset = off
	return f, nil
}

// loadSymtab indexes the function symbols of .symtab by name. It parses
// the table itself rather than through elf.File.Symbols, which copies a
// name for every symbol: names that overlap in .strtab would make that
// symbols × the table's size.
func (b *Binary) loadSymtab() (map[string]Func, error) {
	if !b.HasSymtab {
		return nil, nil
	}
	fail := func(err error) (map[string]Func, error) {
		return nil, fmt.Errorf("goinspect: %s: reading .symtab: %w", b.Path, err)
	}
	sect := b.elf.Section(".symtab")
	if sect.Type != elf.SHT_SYMTAB {
		return fail(fmt.Errorf("%w: type %v", ErrMalformed, sect.Type))
	}
	if int(sect.Link) <= 0 || int(sect.Link) >= len(b.elf.Sections) || b.elf.Sections[sect.Link].Type != elf.SHT_STRTAB {
		return fail(fmt.Errorf("%w: bad string table link %d", ErrMalformed, sect.Link))
	}
	data, err := b.readSection(sect, maxTableSection)
	if err != nil {
		return fail(err)
	}
	if len(data)%elf.Sym64Size != 0 {
		return fail(fmt.Errorf("%w: size %d is not a multiple of %d", ErrMalformed, len(data), elf.Sym64Size))
	}
	strs, err := b.readSection(b.elf.Sections[sect.Link], maxTableSection)
	if err != nil {
		return fail(err)
	}
	// Names are read in place and copied once each; what is scanned for
	// them is bounded by the table (twice, for linkers that share a
	// name's tail between symbols).
	budget := 2*len(strs) + 1<<20
	m := map[string]Func{}
	for i := elf.Sym64Size; i+elf.Sym64Size <= len(data); i += elf.Sym64Size { // entry 0 is null
		s := data[i : i+elf.Sym64Size]
		nameOff := uint64(binary.LittleEndian.Uint32(s[0:]))
		info := s[4]
		value := binary.LittleEndian.Uint64(s[8:])
		size := binary.LittleEndian.Uint64(s[16:])
		if elf.ST_TYPE(info) != elf.STT_FUNC || value == 0 || nameOff >= uint64(len(strs)) {
			continue
		}
		n := bytes.IndexByte(strs[nameOff:], 0)
		if n < 0 {
			continue // unterminated
		}
		if budget -= n + 1; budget < 0 {
			return fail(fmt.Errorf("%w: symbol names overlap", ErrMalformed))
		}
		name := strs[nameOff : nameOff+uint64(n)]
		if _, dup := m[string(name)]; !dup { // C statics may repeat; Go names are unique
			m[string(name)] = Func{Name: string(name), Entry: value, End: value + size}
		}
	}
	return m, nil
}

// pclnIndex is the binary's Go function table, decoded by debug/gosym.
type pclnIndex struct {
	textStart uint64
	table     *gosym.Table
}

// loadPcln decodes .gopclntab. Since Go 1.18 its function entries are
// offsets from runtime.text, which gosym must be told; see textStart.
func (b *Binary) loadPcln() (*pclnIndex, error) {
	sect := pclntabSection(b.elf)
	if sect == nil {
		return nil, fmt.Errorf("goinspect: %s: no .gopclntab section", b.Path)
	}
	data, err := b.readSection(sect, maxTableSection)
	if err != nil {
		return nil, fmt.Errorf("goinspect: %s: reading .gopclntab: %w", b.Path, err)
	}
	if err := checkPclntab(data); err != nil {
		return nil, fmt.Errorf("goinspect: %s: .gopclntab: %w", b.Path, err)
	}
	text, err := b.textStart(sect.Addr, data)
	if err != nil {
		return nil, err
	}
	table, err := gosym.NewTable(nil, gosym.NewLineTable(data, text))
	if err != nil {
		return nil, fmt.Errorf("goinspect: %s: decoding .gopclntab: %w", b.Path, err)
	}
	return &pclnIndex{textStart: text, table: table}, nil
}

// .gopclntab layout for Go 1.18 and later (runtime/symtab.go's pcHeader,
// then the tables it points into).
const (
	pclnMagic118  = 0xfffffff0
	pclnMagic120  = 0xfffffff1
	pclnHeaderLen = 8 + 8*ptrSize
	// words of the header after its first 8 bytes
	pclnNfunc, pclnNfiles, pclnFuncnameOffset, pclnFiletabOffset, pclnPclnOffset = 0, 1, 3, 5, 7
	// minFuncLen is the smallest _func record (Go 1.18: entryOff through
	// nfuncdata, 40 bytes; Go 1.20 added startLine). functabEntryLen is one
	// functab entry (entryoff, funcoff).
	minFuncLen      = 40
	functabEntryLen = 8
)

// checkPclntab checks the counts and offsets in a .gopclntab header before
// debug/gosym allocates by them (one Func and Sym per function, a map
// entry per file) and copies each function's name out of the table. gosym
// trusts them: a function count of 2^32 is a 400 GB allocation, and names
// overlapping in the name table make a copy each.
func checkPclntab(data []byte) error {
	if len(data) < pclnHeaderLen {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(data))
	}
	magic := binary.LittleEndian.Uint32(data)
	if magic != pclnMagic118 && magic != pclnMagic120 || data[4] != 0 || data[5] != 0 || data[6] != 1 || data[7] != ptrSize {
		return fmt.Errorf("%w: unsupported header % x (want Go 1.18+, amd64)", ErrMalformed, data[:8])
	}
	word := func(i int) uint64 { return binary.LittleEndian.Uint64(data[8+i*ptrSize:]) }
	size := uint64(len(data))
	nfunc, nfiles := word(pclnNfunc), word(pclnNfiles)
	names, files, pcln := word(pclnFuncnameOffset), word(pclnFiletabOffset), word(pclnPclnOffset)
	for _, off := range []uint64{names, files, pcln, word(4), word(6)} {
		if off < pclnHeaderLen || off > size {
			return fmt.Errorf("%w: table offset %#x outside %d bytes", ErrMalformed, off, size)
		}
	}
	if nfunc > maxPclnFuncs || nfiles > maxPclnFiles {
		return fmt.Errorf("%w: %d functions, %d files", ErrTooLarge, nfunc, nfiles)
	}
	if nfunc*(functabEntryLen+minFuncLen)+4 > size-pcln || nfiles > size-files {
		return fmt.Errorf("%w: %d functions, %d files do not fit in %d bytes", ErrMalformed, nfunc, nfiles, size)
	}
	functab, nameTab := data[pcln:], data[names:]
	budget := len(nameTab)
	for i := range nfunc {
		funcOff := uint64(binary.LittleEndian.Uint32(functab[i*functabEntryLen+4:]))
		if funcOff+minFuncLen > uint64(len(functab)) {
			return fmt.Errorf("%w: function %d: record at %#x outside the table", ErrMalformed, i, funcOff)
		}
		nameOff := uint64(binary.LittleEndian.Uint32(functab[funcOff+4:]))
		if nameOff >= uint64(len(nameTab)) {
			return fmt.Errorf("%w: function %d: name at %#x outside the table", ErrMalformed, i, nameOff)
		}
		n := bytes.IndexByte(nameTab[nameOff:], 0)
		if n < 0 {
			return fmt.Errorf("%w: function %d: unterminated name", ErrMalformed, i)
		}
		if budget -= n + 1; budget < 0 {
			return fmt.Errorf("%w: function names overlap", ErrMalformed)
		}
	}
	return nil
}

// pclntabSection finds the Go function table; PIE builds by Go 1.25 and
// older keep it among the relocated read-only data.
func pclntabSection(f *elf.File) *elf.Section {
	if s := f.Section(".gopclntab"); s != nil {
		return s
	}
	return f.Section(".data.rel.ro.gopclntab")
}
