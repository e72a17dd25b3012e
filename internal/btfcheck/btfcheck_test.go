package btfcheck

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

func specWith(t *testing.T) *ebpf.CollectionSpec {
	u32 := &btf.Int{Name: "u32", Size: 4}
	u64 := &btf.Int{Name: "u64", Size: 8}
	st := &btf.Struct{Name: "pair", Size: 16, Members: []btf.Member{
		{Name: "a_b", Type: u32, Offset: 0}, {Name: "c", Type: u64, Offset: 64},
	}}
	b, err := btf.NewBuilder([]btf.Type{st}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := btf.LoadSpecFromReader(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return &ebpf.CollectionSpec{Types: s}
}

func TestLayout(t *testing.T) {
	spec := specWith(t)
	type good struct {
		AB uint32
		_  [4]byte
		C  uint64
	}
	if err := Layout(spec, "pair", good{}); err != nil {
		t.Fatalf("matching layout rejected: %v", err)
	}
	type shifted struct {
		AB uint64
		X  uint32
		C  uint64
	}
	if err := Layout(spec, "pair", shifted{}); err == nil || !strings.Contains(err.Error(), "member c") {
		t.Fatalf("shifted layout: %v", err)
	}
	type short struct{ AB uint32 }
	if err := Layout(spec, "pair", short{}); err == nil {
		t.Fatal("short layout accepted")
	}
}
