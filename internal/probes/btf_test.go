package probes

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// TestKernelBTF: loads share one cache until Release, then get none (a
// cache of their own); nil and a second Release are safe. The shared
// kernel types serve a load (the families' loads with the share are
// tested in tcpopt's and inject's loaded tests).
func TestKernelBTF(t *testing.T) {
	var none *KernelBTF
	none.Release()
	if none.Cache() != nil {
		t.Error("nil share gave a cache")
	}
	k := NewKernelBTF()
	c := k.Cache()
	if c == nil || k.Cache() != c {
		t.Fatal("loads before Release do not share one cache")
	}
	spec, err := c.Kernel()
	if err != nil {
		t.Fatalf("kernel BTF: %v", err)
	}
	if again, _ := k.Cache().Kernel(); again != spec {
		t.Error("kernel BTF decoded twice through one share")
	}
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	}, ebpf.ProgramOptions{KernelTypes: spec})
	if err != nil {
		t.Fatalf("loading with the shared kernel types: %v", err)
	}
	prog.Close()
	k.Release()
	k.Release()
	if k.Cache() != nil {
		t.Error("a cache after Release")
	}
}
