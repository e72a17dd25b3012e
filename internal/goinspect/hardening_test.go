package goinspect

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// allocSlack is how much a crafted executable may make Open and the calls
// after it allocate beyond the file's real contents: far below what a
// size in a crafted header could claim.
const allocSlack = 64 << 20

// results is what exercise saw.
type results struct {
	open, fn, field error // from Open, Func("main.handler") and GoidOffset
}

// exercise opens an executable with open and makes the calls weft makes on
// one: build info and field offsets (internal/discovery), Func and
// ReturnOffsets (the gohttp and gogrpc probes), StructSize and
// ModuleAtLeast (gogrpc), and the pclntab lookup directly, which only
// stripped binaries otherwise reach.
func exercise(open func() (*Binary, error)) results {
	var res results
	b, err := open()
	if res.open = err; err != nil {
		return res
	}
	defer b.Close()
	_, res.fn = b.Func("main.handler")
	for _, name := range []string{"main.handler", "net/http.(*conn).serve", "runtime.main"} {
		if f, err := b.Func(name); err == nil {
			b.ReturnOffsets(f)
		}
		if f, err := b.pclnFunc(name); err == nil {
			b.ReturnOffsets(f)
		}
	}
	_, _, res.field = GoidOffset(b)
	b.FieldOffset("net/http.Request", "Method")
	b.FieldOffset("golang.org/x/net/http2/hpack.HeaderField", "Value")
	b.StructSize("runtime.g")
	b.StructSize("golang.org/x/net/http2/hpack.HeaderField")
	b.ModuleAtLeast("github.com/cespare/xxhash/v2", "v2.0.0")
	return res
}

// allocated returns the bytes f allocated (runtime.MemStats.TotalAlloc,
// which counts everything allocated whether or not it was freed since).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// crafted is a fixture being rewritten the way an attacker would.
type crafted struct {
	t    *testing.T
	data []byte
	ef   *elf.File // the original's layout
	size int64     // the file's final size: past len(data) it is a hole
}

func (c *crafted) le() binary.ByteOrder { return binary.LittleEndian }

// prog returns the offset of the first program header of type typ.
func (c *crafted) prog(typ elf.ProgType) int {
	phoff, phentsize := c.le().Uint64(c.data[0x20:]), c.le().Uint16(c.data[0x36:])
	for i, p := range c.ef.Progs {
		if p.Type == typ {
			return int(phoff) + i*int(phentsize)
		}
	}
	c.t.Fatalf("no %v program header", typ)
	return 0
}

// section returns the offset of the header of the section named name.
func (c *crafted) section(name string) int {
	shoff, shentsize := c.le().Uint64(c.data[0x28:]), c.le().Uint16(c.data[0x3a:])
	for i, s := range c.ef.Sections {
		if s.Name == name {
			return int(shoff) + i*int(shentsize)
		}
	}
	c.t.Fatalf("no %s section", name)
	return 0
}

// hole extends the file by n bytes of sparse zeros, page aligned, and
// returns their offset.
func (c *crafted) hole(n int64) uint64 {
	off := (int64(len(c.data)) + 0xfff) &^ 0xfff
	c.size = off + n
	return uint64(off)
}

// pcHeader returns the .gopclntab header words and the table's bytes.
func (c *crafted) pclntab() []byte {
	s := c.ef.Section(".gopclntab")
	return c.data[s.Offset : s.Offset+s.Size]
}

// putPT_LOAD turns the program header at ph into a writable PT_LOAD of
// filesz (and memsz) bytes at off, mapped far from everything else.
func (c *crafted) putPT_LOAD(ph int, off, filesz uint64) {
	c.le().PutUint32(c.data[ph:], uint32(elf.PT_LOAD))
	c.le().PutUint32(c.data[ph+4:], uint32(elf.PF_R|elf.PF_W))
	c.le().PutUint64(c.data[ph+8:], off)         // p_offset
	c.le().PutUint64(c.data[ph+16:], 0x7f00<<32) // p_vaddr
	c.le().PutUint64(c.data[ph+24:], 0x7f00<<32) // p_paddr
	c.le().PutUint64(c.data[ph+32:], filesz)     // p_filesz
	c.le().PutUint64(c.data[ph+40:], filesz)     // p_memsz
	c.le().PutUint64(c.data[ph+48:], 0x1000)     // p_align
}

// craft writes the current toolchain's fixture as rewritten by f; it
// returns the file's path and the fixture's bytes.
func craft(t *testing.T, fixture string, f func(c *crafted)) (string, []byte) {
	t.Helper()
	data, err := os.ReadFile(fixtures[current+"/"+fixture].path)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := &crafted{t: t, data: data, ef: ef, size: int64(len(data))}
	f(c)
	path := filepath.Join(t.TempDir(), "crafted")
	if err := os.WriteFile(path, c.data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, c.size); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// TestCraftedExecutables rewrites fixtures the way an attacker controlling
// a traced program's executable could, and checks weft refuses them with a
// reason, without panicking or allocating by the sizes they claim. Several
// killed the agent before these checks ("fatal error: out of memory").
func TestCraftedExecutables(t *testing.T) {
	const (
		tib = 1 << 40
		gib = 1 << 30
	)
	for _, tc := range []struct {
		name    string
		fixture string
		craft   func(c *crafted)
		// The errors expected of Open, Func("main.handler") and
		// GoidOffset (nil: success). Stripped binaries' field offsets
		// come from the embedded table, which needs nothing of the file.
		open, fn, field error
	}{
		{
			name: "PT_NOTE made a 1 TiB PT_LOAD", fixture: "strip",
			craft: func(c *crafted) { c.putPT_LOAD(c.prog(elf.PT_NOTE), 0, tib) },
			open:  ErrMalformed,
		},
		{
			name: "PT_NOTE made a 2 GiB PT_LOAD on a sparse tail", fixture: "strip",
			craft: func(c *crafted) { c.putPT_LOAD(c.prog(elf.PT_NOTE), c.hole(2*gib), 2*gib) },
			fn:    ErrTooLarge,
		},
		{
			name: "PT_NOTE made a 2 GiB PT_LOAD on a sparse tail", fixture: "pie-strip",
			craft: func(c *crafted) { c.putPT_LOAD(c.prog(elf.PT_NOTE), c.hole(2*gib), 2*gib) },
			fn:    ErrTooLarge,
		},
		{
			// .symtab still finds everything: the segment is never read.
			name: "PT_NOTE made a 2 GiB PT_LOAD on a sparse tail", fixture: "default",
			craft: func(c *crafted) { c.putPT_LOAD(c.prog(elf.PT_NOTE), c.hole(2*gib), 2*gib) },
		},
		{
			name: ".gopclntab of 1 TiB", fixture: "strip",
			craft: func(c *crafted) { c.le().PutUint64(c.data[c.section(".gopclntab")+32:], tib) },
			open:  ErrMalformed,
		},
		{
			name: ".gopclntab moved to a 2 GiB sparse tail", fixture: "strip",
			craft: func(c *crafted) {
				sh := c.section(".gopclntab")
				c.le().PutUint64(c.data[sh+24:], c.hole(2*gib))
				c.le().PutUint64(c.data[sh+32:], 2*gib)
			},
			fn: ErrTooLarge,
		},
		{
			name: ".gopclntab made SHT_NOBITS of 1 TiB", fixture: "strip",
			craft: func(c *crafted) {
				sh := c.section(".gopclntab")
				c.le().PutUint32(c.data[sh+4:], uint32(elf.SHT_NOBITS))
				c.le().PutUint64(c.data[sh+32:], tib)
			},
			fn: ErrMalformed,
		},
		{
			name: ".gopclntab claims 2^32-1 functions", fixture: "strip",
			craft: func(c *crafted) { c.le().PutUint64(c.pclntab()[8:], 1<<32-1) },
			fn:    ErrTooLarge,
		},
		{
			// Every function named by a different offset into one long
			// name: debug/gosym copies each, quadratic in the table.
			name: ".gopclntab function names overlap", fixture: "strip",
			craft: func(c *crafted) {
				pcln := c.pclntab()
				names, tab := c.le().Uint64(pcln[8+3*8:]), c.le().Uint64(pcln[8+7*8:])
				nfunc := c.le().Uint64(pcln[8:])
				for i := names; i < tab-1; i++ {
					pcln[i] = 'x'
				}
				for i := range nfunc {
					funcOff := c.le().Uint32(pcln[tab+i*8+4:])
					c.le().PutUint32(pcln[tab+uint64(funcOff)+4:], uint32(i))
				}
			},
			fn: ErrMalformed,
		},
		{
			name: ".symtab moved to a 2 GiB sparse tail", fixture: "default",
			craft: func(c *crafted) {
				sh := c.section(".symtab")
				c.le().PutUint64(c.data[sh+24:], c.hole(2*gib))
				c.le().PutUint64(c.data[sh+32:], 2*gib/24*24)
			},
			fn: ErrTooLarge,
		},
		{
			// Every function symbol named by a different offset into one
			// long name: debug/elf's Symbols copies each.
			name: ".symtab names overlap", fixture: "default",
			craft: func(c *crafted) {
				str, sym := c.ef.Section(".strtab"), c.ef.Section(".symtab")
				for i := str.Offset; i < str.Offset+str.Size-1; i++ {
					c.data[i] = 'x'
				}
				for i := sym.Offset + 24; i < sym.Offset+sym.Size; i += 24 {
					c.le().PutUint32(c.data[i:], uint32((i-sym.Offset)/24))
				}
			},
			fn: ErrMalformed,
		},
		{
			name: ".debug_info claims to inflate to 1 TiB", fixture: "default",
			craft: func(c *crafted) {
				s := c.ef.Section(".debug_info")
				if s.Flags&elf.SHF_COMPRESSED == 0 {
					c.t.Skip(".debug_info is not compressed")
				}
				c.le().PutUint64(c.data[s.Offset+8:], tib) // Chdr64.Size
			},
			field: ErrTooLarge,
		},
		{
			name: "2^32 sections by extended numbering", fixture: "default",
			craft: func(c *crafted) {
				c.le().PutUint16(c.data[0x3c:], 0) // e_shnum: see section 0
				shoff := c.le().Uint64(c.data[0x28:])
				c.le().PutUint64(c.data[shoff+32:], 1<<32)
			},
			open: ErrTooLarge,
		},
	} {
		t.Run(tc.fixture+"/"+tc.name, func(t *testing.T) {
			path, data := craft(t, tc.fixture, tc.craft)
			var res results
			alloc := allocated(func() { res = exercise(func() (*Binary, error) { return Open(path) }) })
			if limit := uint64(len(data)) + allocSlack; alloc > limit {
				t.Errorf("allocated %d MiB for a %d MiB executable; want at most %d MiB", alloc>>20, len(data)>>20, limit>>20)
			}
			check := func(what string, got, want error) {
				if want == nil && got != nil || want != nil && !errors.Is(got, want) {
					t.Errorf("%s: %v, want %v", what, got, want)
				}
			}
			check("Open", res.open, tc.open)
			if tc.open == nil {
				check("Func", res.fn, tc.fn)
				check("GoidOffset", res.field, tc.field)
			}
			t.Logf("allocated %d MiB; Open: %v; Func: %v; GoidOffset: %v", alloc>>20, res.open, res.fn, res.field)
		})
	}
}
