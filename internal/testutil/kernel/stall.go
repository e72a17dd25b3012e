package kernel

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// StallSends holds every send of the given processes for about loops × a
// few ns after its bytes have gone (on loopback the peer has them) and
// before the sock_send_length programs attached after it, and any
// syscall-exit program, run: the window in which an answer can be read
// before the send is recorded, made wide. The program loops in bpf_loop
// (5.17+) on tp_btf/sock_send_length (6.3+); a kernel without either fails
// the test. Detached at the test's end.
func StallSends(tb testing.TB, loops int32, pids ...int) {
	tb.Helper()
	long := &btf.Int{Name: "long", Size: 8, Encoding: btf.Signed}
	u64 := &btf.Int{Name: "u64", Size: 8}
	ptr := &btf.Pointer{Target: &btf.Void{}}
	fn := func(name string, params ...btf.FuncParam) *btf.Func {
		return &btf.Func{Name: name, Linkage: btf.StaticFunc, Type: &btf.FuncProto{Return: long, Params: params}}
	}
	// r0 = the caller's tgid; a send of one of pids runs the loop.
	insns := asm.Instructions{
		btf.WithFuncMetadata(asm.FnGetCurrentPidTgid.Call(), fn("stall_sends", btf.FuncParam{Name: "ctx", Type: ptr})),
		asm.RSh.Imm(asm.R0, 32),
	}
	for _, pid := range pids {
		insns = append(insns, asm.JEq.Imm(asm.R0, int32(pid), "stall"))
	}
	insns = append(insns,
		asm.Ja.Label("out"),
		asm.Mov.Imm(asm.R1, loops).WithSymbol("stall"),
		asm.Instruction{OpCode: asm.LoadImmOp(asm.DWord), Dst: asm.R2, Src: asm.PseudoFunc, Constant: -1}.WithReference("stall_step"),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnLoop.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
		btf.WithFuncMetadata(asm.Mov.Imm(asm.R0, 0).WithSymbol("stall_step"),
			fn("stall_step", btf.FuncParam{Name: "i", Type: u64}, btf.FuncParam{Name: "ctx", Type: ptr})),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "stall_sends",
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     "sock_send_length",
		License:      "GPL",
		Instructions: insns,
	})
	if err != nil {
		tb.Fatalf("loading the send staller (bpf_loop: 5.17+, sock_send_length: 6.3+): %v", err)
	}
	tb.Cleanup(func() { prog.Close() })
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		tb.Fatalf("attaching the send staller: %v", err)
	}
	tb.Cleanup(func() { l.Close() })
}
