package goinspect

import (
	"debug/elf"
	"debug/gosym"
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

// loadSymtab indexes the function symbols of .symtab by name.
func (b *Binary) loadSymtab() (map[string]Func, error) {
	if !b.HasSymtab {
		return nil, nil
	}
	syms, err := b.elf.Symbols()
	if err != nil {
		return nil, fmt.Errorf("goinspect: %s: reading .symtab: %w", b.Path, err)
	}
	m := make(map[string]Func, len(syms))
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 {
			continue
		}
		if _, dup := m[s.Name]; !dup { // C statics may repeat; Go names are unique
			m[s.Name] = Func{Name: s.Name, Entry: s.Value, End: s.Value + s.Size}
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
	data, err := sect.Data()
	if err != nil {
		return nil, fmt.Errorf("goinspect: %s: reading .gopclntab: %w", b.Path, err)
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

// pclntabSection finds the Go function table; PIE builds by Go 1.25 and
// older keep it among the relocated read-only data.
func pclntabSection(f *elf.File) *elf.Section {
	if s := f.Section(".gopclntab"); s != nil {
		return s
	}
	return f.Section(".data.rel.ro.gopclntab")
}
