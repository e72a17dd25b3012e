package probes

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/weft-dev/weft/internal/goinspect"

	"github.com/weft-dev/weft/internal/testutil/kernel"
)

// TestUprobes attaches a program to this test binary in both modes the
// kernel may offer: a uprobe_multi link (this kernel has them; they need
// no CAP_SYS_ADMIN) and a perf-event uprobe (the fallback).
func TestUprobes(t *testing.T) {
	kernel.Require(t)
	u, err := NewUprobes()
	if err != nil {
		t.Fatal(err)
	}
	if !u.Multi() {
		t.Fatal("this kernel (>= 6.6) has uprobe_multi links, but the probe says no")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := goinspect.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	f, err := b.Func("testing.(*T).Run")
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	ex, err := link.OpenExecutable(exe)
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []Uprobes{u, {}} {
		spec := &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{"p": {
			Type: ebpf.Kprobe, License: "GPL", Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		}}}
		if err := mode.Prepare(spec, "p"); err != nil {
			t.Fatal(err)
		}
		prog, err := ebpf.NewProgram(spec.Programs["p"])
		if err != nil {
			t.Fatal(err)
		}
		links, err := mode.Attach(ex, "testing.(*T).Run", prog, f.Offset)
		if err != nil {
			t.Fatalf("multi=%v: %v", mode.Multi(), err)
		}
		if len(links) != 1 {
			t.Errorf("multi=%v: %d links for one point", mode.Multi(), len(links))
		}
		for _, l := range links {
			l.Close()
		}
		prog.Close()
	}
	if err := u.Prepare(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{}}, "missing"); err == nil {
		t.Error("Prepare of a missing program: no error")
	}
}
