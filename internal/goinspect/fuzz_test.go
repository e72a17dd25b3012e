package goinspect

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"testing"
)

// fuzzBases are the real executables FuzzOpen starts from: with DWARF and
// .symtab, stripped (-s -w, so the pclntab and the moduledata search are
// used), a stripped PIE (relocations), and with uncompressed DWARF.
var fuzzBases = []string{"default", "strip", "pie-strip", "rawdwarf"}

// openBytes opens an executable held in memory, as Open does a file.
func openBytes(data []byte) func() (*Binary, error) {
	return func() (*Binary, error) { return newBinary("fuzz", bytes.NewReader(data), int64(len(data))) }
}

// checkBounded opens data and makes weft's calls on it, failing if that
// allocates more than allocSlack beyond the input (a panic fails the test
// by itself).
func checkBounded(t *testing.T, data []byte) {
	var res results
	alloc := allocated(func() { res = exercise(openBytes(data)) })
	if limit := uint64(len(data)) + allocSlack; alloc > limit {
		t.Errorf("allocated %d MiB for a %d MiB input; want at most %d MiB (Open: %v; Func: %v; GoidOffset: %v)",
			alloc>>20, len(data)>>20, limit>>20, res.open, res.fn, res.field)
	}
}

// readBases reads the fuzz bases.
func readBases(f *testing.F) [][]byte {
	var out [][]byte
	for _, name := range fuzzBases {
		data, err := os.ReadFile(fixtures[current+"/"+name].path)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// FuzzOpen fuzzes what Open does (newBinary, on bytes in memory rather than
// a file) and the calls weft makes after it, with executables that are
// real ones (see fuzzBases) with a small patch applied: a
// sequence of records, each an anchor (which table: see anchorsOf), a
// 16-bit offset from it and up to 255 bytes to write there. The fuzzer's
// mutations thus land in headers and tables, and crashers are small enough
// to keep in testdata/fuzz. (Fuzzing the 6–9 MB executables as whole
// inputs made no progress: "go test -fuzz" ran 3 inputs in 2 minutes.)
func FuzzOpen(f *testing.F) {
	bases := readBases(f)
	var anchors [][]uint64
	for _, data := range bases {
		anchors = append(anchors, anchorsOf(f, data))
	}
	for i := range bases {
		f.Add(uint8(i), []byte{})
	}
	// Header words: phnum, a program header's size, a section's size,
	// the pclntab function count, a symbol's name offset.
	f.Add(uint8(1), []byte{0, 0x38, 0, 2, 0xff, 0xff})
	f.Add(uint8(1), []byte{0, 0x40 + 2*56 + 32, 0, 8, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add(uint8(0), []byte{1, 0x20, 0x02, 8, 0, 0, 0, 0x40, 0, 0, 0, 0}) // section 8's sh_size, at 8*64+32
	f.Add(uint8(1), []byte{2, 8, 0, 4, 0xff, 0xff, 0xff, 0x7f})
	f.Add(uint8(0), []byte{3, 48, 0, 4, 1, 0, 0, 0})
	f.Add(uint8(2), []byte{8, 8, 0, 8, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	// A DWARF unit's length; an abbreviation's code.
	f.Add(uint8(3), []byte{6, 0, 0, 4, 0xff, 0xff, 0xff, 0x7f})
	f.Add(uint8(3), []byte{10, 0, 0, 2, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, which uint8, patch []byte) {
		i := int(which) % len(bases)
		data := bytes.Clone(bases[i])
		applyPatch(data, anchors[i], patch)
		checkBounded(t, data)
	})
}

// applyPatch writes the records of patch into data.
func applyPatch(data []byte, anchors []uint64, patch []byte) {
	for len(patch) >= 4 {
		at := anchors[int(patch[0])%len(anchors)] + uint64(binary.LittleEndian.Uint16(patch[1:]))
		n := min(int(patch[3]), len(patch)-4)
		if at < uint64(len(data)) {
			copy(data[at:], patch[4:4+n])
		}
		patch = patch[4+n:]
	}
}

// anchorsOf returns the file offsets FuzzOpen's records count from:
// 0 the ELF header (program headers follow it), 1 the section headers,
// 2 .gopclntab, 3 .symtab, 4 .strtab, 5 .go.buildinfo, 6 .debug_info,
// 7 .shstrtab, 8 runtime.firstmoduledata, 9 .rela.dyn, 10 .debug_abbrev
// (0 where there is no such table).
func anchorsOf(f *testing.F, data []byte) []uint64 {
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		f.Fatal(err)
	}
	off := func(name string) uint64 {
		if s := ef.Section(name); s != nil {
			return s.Offset
		}
		return 0
	}
	var md uint64
	if b, err := openBytes(data)(); err == nil {
		if mem, err := b.loadedData(); err == nil {
			if cands, err := mem.find(ef.Section(".gopclntab").Addr); err == nil && len(cands) > 0 {
				for _, s := range mem.segs {
					if c := cands[0]; c >= s.addr && c-s.addr < s.size {
						md = c - s.addr + s.off
					}
				}
			}
		}
	}
	return []uint64{0, binary.LittleEndian.Uint64(data[0x28:]), off(".gopclntab"), off(".symtab"), off(".strtab"),
		off(".go.buildinfo"), off(".debug_info"), off(".shstrtab"), md, off(".rela.dyn"), off(".debug_abbrev")}
}
