package goinspect

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
)

// Layout facts for linux/amd64, stable from Go 1.18 through 1.26.
const (
	ptrSize = 8

	// pcHeader (runtime/symtab.go): magic, pads, minLC, ptrSize, then words
	// nfunc, nfiles, textStart, funcnameOffset, ...
	hdrTextStart      = 8 + 2*ptrSize
	hdrFuncnameOffset = 8 + 3*ptrSize

	// moduledata (runtime/symtab.go) begins: pcHeader, six slices
	// (funcnametab, cutab, filetab, pctab, pclntable, ftab), findfunctab,
	// minpc, maxpc, text, etext.
	mdFuncnametab = 1 * ptrSize
	mdMinPC       = 20 * ptrSize
	mdMaxPC       = 21 * ptrSize
	mdText        = 22 * ptrSize
	mdEtext       = 23 * ptrSize
	mdPrefixSize  = 24 * ptrSize
)

// textStart finds runtime.text, the base of the pclntab's function offsets.
// The .text section start is not it when linking was external: the C
// linker puts crt code first. Go 1.21 wrote it into the pclntab header, but
// newer linkers leave that word 0, so without .symtab the only record left is
// the runtime's own: the text field of runtime.firstmoduledata.
func (b *Binary) textStart(pclnAddr uint64, pcln []byte) (uint64, error) {
	if syms, err := b.symtab(); err == nil {
		if f, ok := syms["runtime.text"]; ok {
			return f.Entry, nil
		}
	}
	if len(pcln) < hdrFuncnameOffset+ptrSize {
		return 0, fmt.Errorf("goinspect: %s: .gopclntab too short", b.Path)
	}
	text, mdErr := b.moduledataText(pclnAddr, binary.LittleEndian.Uint64(pcln[hdrFuncnameOffset:]))
	if mdErr == nil {
		return text, nil
	}
	// Go 1.21 only; in a PIE the word may be left for the dynamic loader.
	if t := binary.LittleEndian.Uint64(pcln[hdrTextStart:]); t != 0 {
		return t, nil
	}
	return 0, fmt.Errorf("goinspect: %s: cannot find runtime.text for the stripped pclntab: %w", b.Path, mdErr)
}

// moduledataText locates runtime.firstmoduledata by its first word, a
// pointer to the pclntab header, checks the following words agree with the
// header, and returns its text field.
func (b *Binary) moduledataText(pclnAddr, funcnameOff uint64) (uint64, error) {
	mem, err := b.loadedData()
	if err != nil {
		return 0, err
	}
	var found []uint64
	for _, cand := range mem.find(pclnAddr) {
		w := func(off uint64) uint64 { return mem.word(cand + off) }
		text, minpc, maxpc, etext := w(mdText), w(mdMinPC), w(mdMaxPC), w(mdEtext)
		if w(mdFuncnametab) != pclnAddr+funcnameOff ||
			text == 0 || text > minpc || minpc >= maxpc || etext < text {
			continue
		}
		if _, err := b.fileOffset(text); err != nil {
			continue
		}
		found = append(found, text)
	}
	if len(found) == 0 {
		return 0, fmt.Errorf("runtime.firstmoduledata not found")
	}
	for _, t := range found[1:] {
		if t != found[0] {
			return 0, fmt.Errorf("ambiguous runtime.firstmoduledata: text %#x or %#x", found[0], t)
		}
	}
	return found[0], nil
}

// dataImage is the binary's writable loaded data as the program would see
// it before it starts: file contents, with R_X86_64_RELATIVE relocations of
// a PIE applied (at load base 0), since those words may be 0 in the file.
type dataImage struct {
	segs   []dataSeg
	relocs map[uint64]uint64 // address -> addend
}

type dataSeg struct {
	addr uint64
	data []byte
}

func (b *Binary) loadedData() (*dataImage, error) {
	img := &dataImage{relocs: map[uint64]uint64{}}
	for _, p := range b.elf.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W == 0 {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := io.ReadFull(p.Open(), data); err != nil {
			return nil, fmt.Errorf("goinspect: %s: reading data segment: %w", b.Path, err)
		}
		img.segs = append(img.segs, dataSeg{p.Vaddr, data})
	}
	for _, s := range b.elf.Sections {
		if s.Type != elf.SHT_RELA || s.Entsize != 24 {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("goinspect: %s: reading %s: %w", b.Path, s.Name, err)
		}
		for i := 0; i+24 <= len(data); i += 24 {
			off := binary.LittleEndian.Uint64(data[i:])
			info := binary.LittleEndian.Uint64(data[i+8:])
			if elf.R_X86_64(elf.R_TYPE64(info)) == elf.R_X86_64_RELATIVE {
				img.relocs[off] = binary.LittleEndian.Uint64(data[i+16:])
			}
		}
	}
	return img, nil
}

func (m *dataImage) word(addr uint64) uint64 {
	if v, ok := m.relocs[addr]; ok {
		return v
	}
	for _, s := range m.segs {
		if addr >= s.addr && addr+ptrSize <= s.addr+uint64(len(s.data)) {
			return binary.LittleEndian.Uint64(s.data[addr-s.addr:])
		}
	}
	return 0
}

// find returns the aligned addresses whose word equals v.
func (m *dataImage) find(v uint64) []uint64 {
	var out []uint64
	for addr, addend := range m.relocs {
		if addend == v {
			out = append(out, addr)
		}
	}
	for _, s := range m.segs {
		for i := (-s.addr) % ptrSize; i+mdPrefixSize <= uint64(len(s.data)); i += ptrSize {
			if binary.LittleEndian.Uint64(s.data[i:]) == v {
				out = append(out, s.addr+i)
			}
		}
	}
	return out
}
