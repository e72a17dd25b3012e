package goinspect

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// CopySite is where a method copies its result into the caller's buffer
// with runtime.memmove, and where its receiver waits meanwhile: a probe
// there sees the bytes (the call's source in RBX, their count in RCX,
// ABIInternal) once, only when there are some, and the receiver in its
// spill slot. crypto/tls.(*Conn).Read copies its plaintext so (bytes.Reader's
// Read, inlined): one trap per read that returns data, where a probe at
// the entry and another at the RETs take two per call, data or not.
type CopySite struct {
	Offset uint64 // file offset of the CALL instruction: what a uprobe is attached by
	Addr   uint64 // its virtual address
	// RecvSP is where the receiver (the first argument, RAX at the entry)
	// is, relative to RSP at the call: the slot the prologue spilled it to.
	RecvSP uint64
}

// ErrNoCopySite: f has no single runtime.memmove call with its receiver
// spilled where a probe can find it (another toolchain inlined or laid it
// out otherwise). The caller then probes f's entry and RETs instead.
var ErrNoCopySite = errors.New("no single copy site")

// CopySite finds f's only call to memmove (a Func of runtime.memmove) and
// the stack slot its prologue spilled the receiver to. from names the
// source file the call must come from, as the pclntab's line table tells
// (the innermost inlined position; "bytes/reader.go" for the copy of
// bytes.Reader's Read), so that another lone memmove of another layout is
// never taken for it; "" checks nothing. It requires a frame
// the prologue sets up as Go's compiler does (PUSHQ BP; MOVQ SP, BP; SUBQ
// $n, SP), nothing else that moves RSP before the call, and the receiver
// stored from RAX to an RSP-relative slot before the first CALL and never
// stored to again.
func (b *Binary) CopySite(f, memmove Func, from string) (_ CopySite, err error) {
	defer recovered(b.Path, &err)
	if f.End <= f.Entry || f.End-f.Entry > maxFuncSize {
		return CopySite{}, fmt.Errorf("goinspect: %s: bad bounds [%#x, %#x)", f.Name, f.Entry, f.End)
	}
	if !inFile(f.Offset, f.End-f.Entry, b.size) {
		return CopySite{}, fmt.Errorf("goinspect: %s: %w: %s at %#x runs past the end of the file", b.Path, ErrMalformed, f.Name, f.Offset)
	}
	code := make([]byte, f.End-f.Entry)
	if _, err := io.ReadFull(io.NewSectionReader(b.file, int64(f.Offset), int64(len(code))), code); err != nil {
		return CopySite{}, fmt.Errorf("goinspect: %s: reading %s: %w", b.Path, f.Name, err)
	}
	var (
		site             = -1
		sites            int
		called, framed   bool
		pushed, frame    int64       // bytes the prologue put below the return address
		recv             = int64(-1) // receiver slot, from RSP after the prologue
		recvStoredAgain  bool
		spMovedElsewhere bool
	)
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil || inst.Len == 0 {
			return CopySite{}, fmt.Errorf("goinspect: %s: %s: undecodable byte at %#x: copy site uncertain", b.Path, f.Name, f.Entry+uint64(pc))
		}
		switch {
		case inst.Op == x86asm.CALL:
			if rel, ok := inst.Args[0].(x86asm.Rel); ok && f.Entry+uint64(pc+inst.Len)+uint64(int64(rel)) == memmove.Entry {
				sites++
				site = pc
			}
			called = true
		case !framed && inst.Op == x86asm.PUSH && inst.Args[0] == x86asm.RBP:
			pushed += 8
		case !framed && (inst.Op == x86asm.SUB || inst.Op == x86asm.ADD) && inst.Args[0] == x86asm.RSP:
			// SUBQ $n, SP; or ADDQ $-128, SP, the assembler's shorter
			// encoding of a 128-byte frame (its epilogue is then SUBQ
			// $-128, SP).
			imm, ok := inst.Args[1].(x86asm.Imm)
			if !ok {
				return CopySite{}, fmt.Errorf("%w: %s's frame size is not a constant", ErrNoCopySite, f.Name)
			}
			frame, framed = int64(imm), true
			if inst.Op == x86asm.ADD {
				frame = -frame
			}
			if frame <= 0 {
				return CopySite{}, fmt.Errorf("%w: %s's frame size %d", ErrNoCopySite, f.Name, frame)
			}
		case framed && writesRSP(inst) && !epilogue(inst, frame):
			// RSP moves only in the prologue and the epilogues; anything
			// else and the slot's distance is not known at the call.
			spMovedElsewhere = true
		}
		if m, ok := rspStore(inst); ok && framed {
			switch {
			case !called && recv < 0 && m.src == x86asm.RAX:
				recv = m.disp
			case recv >= 0 && m.disp == recv:
				recvStoredAgain = true
			}
		}
		pc += inst.Len
	}
	switch {
	case sites != 1:
		return CopySite{}, fmt.Errorf("%w: %s calls runtime.memmove %d times", ErrNoCopySite, f.Name, sites)
	case !framed || pushed != 8:
		return CopySite{}, fmt.Errorf("%w: %s has no frame as Go's compiler makes it", ErrNoCopySite, f.Name)
	case recv != frame+pushed+8:
		// The receiver's ABI spill slot is just above the return address;
		// a slot in the frame may be reused for anything.
		return CopySite{}, fmt.Errorf("%w: %s's receiver is not spilled to its argument slot", ErrNoCopySite, f.Name)
	case recvStoredAgain || spMovedElsewhere:
		return CopySite{}, fmt.Errorf("%w: %s's receiver slot or stack pointer moves", ErrNoCopySite, f.Name)
	}
	addr := f.Entry + uint64(site)
	if from != "" {
		p, err := b.pcln()
		if err != nil {
			return CopySite{}, err
		}
		if file, _, _ := p.table.PCToLine(addr); file != from && !strings.HasSuffix(file, "/"+from) {
			return CopySite{}, fmt.Errorf("%w: %s's memmove call is from %q, not %s", ErrNoCopySite, f.Name, file, from)
		}
	}
	return CopySite{Offset: f.Offset + uint64(site), Addr: addr, RecvSP: uint64(recv)}, nil
}

// epilogue says whether inst gives back a frame of that size: ADDQ
// $frame, SP, or SUBQ $-128, SP for a 128-byte one.
func epilogue(inst x86asm.Inst, frame int64) bool {
	imm, ok := inst.Args[1].(x86asm.Imm)
	return ok && (inst.Op == x86asm.ADD && int64(imm) == frame || inst.Op == x86asm.SUB && int64(imm) == -frame)
}

// writesRSP says whether inst's destination is RSP itself.
func writesRSP(inst x86asm.Inst) bool {
	switch inst.Op {
	case x86asm.PUSH, x86asm.POP, x86asm.CALL, x86asm.RET, x86asm.CMP, x86asm.TEST:
		return false // balanced, the function's end, or no write
	}
	return inst.Args[0] == x86asm.RSP
}

type spStore struct {
	src  x86asm.Reg
	disp int64
}

// rspStore matches MOVQ reg, disp(SP) (a 64-bit store of a register to an
// RSP-relative slot without an index).
func rspStore(inst x86asm.Inst) (spStore, bool) {
	if inst.Op != x86asm.MOV || inst.DataSize != 64 {
		return spStore{}, false
	}
	m, ok := inst.Args[0].(x86asm.Mem)
	if !ok || m.Base != x86asm.RSP || m.Index != 0 || m.Segment != 0 {
		return spStore{}, false
	}
	r, ok := inst.Args[1].(x86asm.Reg)
	if !ok {
		return spStore{}, false
	}
	return spStore{src: r, disp: m.Disp}, true
}
