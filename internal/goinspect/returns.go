package goinspect

import (
	"fmt"
	"io"

	"golang.org/x/arch/x86/x86asm"
)

// ReturnOffsets returns the file offsets of every RET instruction in f, in
// address order. It may be empty: a function that never returns, or leaves
// only by a tail jump, has none. weft attaches uprobes there instead of using uretprobes,
// which corrupt Go stacks: the kernel rewrites the return address, and the
// Go runtime walks and moves stacks.
//
// The function is decoded linearly from its entry; Go's compiler puts no
// data in amd64 text, so this finds every instruction boundary. If any byte
// does not decode, the boundaries after it are guesses, so rather than
// return possibly wrong or missing sites it decodes past it (to report how
// many failed) and returns an error.
func (b *Binary) ReturnOffsets(f Func) (_ []uint64, err error) {
	defer recovered(b.Path, &err)
	if f.End <= f.Entry || f.End-f.Entry > maxFuncSize {
		return nil, fmt.Errorf("goinspect: %s: bad bounds [%#x, %#x)", f.Name, f.Entry, f.End)
	}
	if !inFile(f.Offset, f.End-f.Entry, b.size) {
		return nil, fmt.Errorf("goinspect: %s: %w: %s at %#x runs past the end of the file", b.Path, ErrMalformed, f.Name, f.Offset)
	}
	code := make([]byte, f.End-f.Entry)
	if _, err := io.ReadFull(io.NewSectionReader(b.file, int64(f.Offset), int64(len(code))), code); err != nil {
		return nil, fmt.Errorf("goinspect: %s: reading %s: %w", b.Path, f.Name, err)
	}
	var (
		rets     []uint64
		bad      int
		firstBad int
	)
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil || inst.Len == 0 {
			if bad == 0 {
				firstBad = pc
			}
			bad++
			pc++
			continue
		}
		if inst.Op == x86asm.RET {
			rets = append(rets, f.Offset+uint64(pc))
		}
		pc += inst.Len
	}
	if bad > 0 {
		return nil, fmt.Errorf("goinspect: %s: %s: %d undecodable byte(s), first at %#x: RET sites uncertain",
			b.Path, f.Name, bad, f.Entry+uint64(firstBad))
	}
	return rets, nil
}
