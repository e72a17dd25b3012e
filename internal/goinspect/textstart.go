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
	cands, err := mem.find(pclnAddr)
	if err != nil {
		return 0, err
	}
	words, err := mem.words(cands, mdFuncnametab, mdText, mdMinPC, mdMaxPC, mdEtext)
	if err != nil {
		return 0, err
	}
	var found []uint64
	for _, cand := range cands {
		w := func(off uint64) uint64 { return words[cand+off] }
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
// It reads the file as it is asked, through a small buffer, not whole:
// the segment sizes come from the file.
type dataImage struct {
	r      io.ReaderAt
	segs   []dataSeg
	relocs []*elf.Section // SHT_RELA, 24-byte entries
}

type dataSeg struct {
	addr, off, size uint64 // file-backed bytes only: the rest is zero
}

// loadedData checks the writable segments and relocation sections are in
// the file and within the scan limits.
func (b *Binary) loadedData() (*dataImage, error) {
	img := &dataImage{r: b.file}
	var segBytes, relocBytes uint64
	for _, p := range b.elf.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W == 0 || p.Filesz == 0 {
			continue
		}
		if !inFile(p.Off, p.Filesz, b.size) {
			return nil, fmt.Errorf("goinspect: %s: %w: data segment at %#x past the end of the file", b.Path, ErrMalformed, p.Off)
		}
		if segBytes += p.Filesz; segBytes > maxDataScan {
			return nil, fmt.Errorf("goinspect: %s: %w: writable segments over %d bytes", b.Path, ErrTooLarge, maxDataScan)
		}
		img.segs = append(img.segs, dataSeg{p.Vaddr, p.Off, p.Filesz})
	}
	for _, s := range b.elf.Sections {
		if s.Type != elf.SHT_RELA || s.Entsize != 24 {
			continue
		}
		if err := b.checkSection(s, maxRelocScan); err != nil {
			return nil, fmt.Errorf("goinspect: %s: %w", b.Path, err)
		}
		if relocBytes += s.Size; relocBytes > maxRelocScan {
			return nil, fmt.Errorf("goinspect: %s: %w: relocation sections over %d bytes", b.Path, ErrTooLarge, maxRelocScan)
		}
		img.relocs = append(img.relocs, s)
	}
	return img, nil
}

// eachRelative calls f with the address and addend of every
// R_X86_64_RELATIVE relocation.
func (m *dataImage) eachRelative(f func(addr, addend uint64) error) error {
	buf := make([]byte, scanChunk/24*24)
	for _, s := range m.relocs {
		r := io.LimitReader(s.Open(), int64(s.Size))
		for {
			n, err := io.ReadFull(r, buf)
			for i := 0; i+24 <= n; i += 24 {
				info := binary.LittleEndian.Uint64(buf[i+8:])
				if elf.R_X86_64(elf.R_TYPE64(info)) != elf.R_X86_64_RELATIVE {
					continue
				}
				if err := f(binary.LittleEndian.Uint64(buf[i:]), binary.LittleEndian.Uint64(buf[i+16:])); err != nil {
					return err
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", s.Name, err)
			}
		}
	}
	return nil
}

// find returns the aligned addresses whose word equals v, with room for
// moduledata's prefix after them. There are at most
// maxModuledataCandidates.
func (m *dataImage) find(v uint64) ([]uint64, error) {
	var out []uint64
	add := func(addr uint64) error {
		if len(out) == maxModuledataCandidates {
			return fmt.Errorf("%w: over %d words could be runtime.firstmoduledata", ErrMalformed, maxModuledataCandidates)
		}
		out = append(out, addr)
		return nil
	}
	err := m.eachRelative(func(addr, addend uint64) error {
		if addend == v {
			return add(addr)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	buf := make([]byte, scanChunk)
	for _, s := range m.segs {
		// [base, base+len(chunk)) is read at a time, base aligned so no
		// word straddles two reads.
		for base := (-s.addr) % ptrSize; base+mdPrefixSize <= s.size; {
			chunk := buf[:min(uint64(len(buf)), s.size-base)&^(ptrSize-1)]
			if _, err := m.r.ReadAt(chunk, int64(s.off+base)); err != nil {
				return nil, fmt.Errorf("reading data segment: %w", err)
			}
			for i := uint64(0); i+ptrSize <= uint64(len(chunk)) && base+i+mdPrefixSize <= s.size; i += ptrSize {
				if binary.LittleEndian.Uint64(chunk[i:]) == v {
					if err := add(s.addr + base + i); err != nil {
						return nil, err
					}
				}
			}
			base += uint64(len(chunk))
		}
	}
	return out, nil
}

// words returns the word at base+off for every base and off, as the
// program would see it: a relocation's addend if one applies there, else
// the file's contents, else 0.
func (m *dataImage) words(bases []uint64, offs ...uint64) (map[uint64]uint64, error) {
	out := make(map[uint64]uint64, len(bases)*len(offs))
	for _, base := range bases {
		for _, off := range offs {
			out[base+off] = m.fileWord(base + off)
		}
	}
	err := m.eachRelative(func(addr, addend uint64) error {
		if _, ok := out[addr]; ok {
			out[addr] = addend
		}
		return nil
	})
	return out, err
}

func (m *dataImage) fileWord(addr uint64) uint64 {
	for _, s := range m.segs {
		if addr >= s.addr && addr-s.addr < s.size && s.size-(addr-s.addr) >= ptrSize {
			var w [ptrSize]byte
			if _, err := m.r.ReadAt(w[:], int64(s.off+addr-s.addr)); err != nil {
				return 0
			}
			return binary.LittleEndian.Uint64(w[:])
		}
	}
	return 0
}
