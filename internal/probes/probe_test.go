package probes

import (
	"context"
	"slices"
	"testing"
)

type nop struct{ name string }

func (n nop) Name() string                 { return n.name }
func (nop) Start(context.Context) error    { return nil }
func (nop) Track(*Process) error           { return nil }
func (nop) Untrack(int)                    {}
func (nop) Shutdown(context.Context) error { return nil }

func TestRegistryKeepsOrder(t *testing.T) {
	r := NewRegistry()
	for _, n := range []string{"sockio", "gohttp", "alpha"} {
		r.Register(n, func(Deps) (Probe, error) { return nop{n}, nil })
	}
	ps, err := r.Build(Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Name())
	}
	if want := []string{"sockio", "gohttp", "alpha"}; !slices.Equal(got, want) || !slices.Equal(r.Names(), want) {
		t.Fatalf("order %v / %v, want %v", got, r.Names(), want)
	}
	defer func() {
		if recover() == nil {
			t.Error("duplicate registration did not panic")
		}
	}()
	r.Register("sockio", nil)
}

func TestSharedMaps(t *testing.T) {
	var s SharedMaps
	if _, ok := s.Map("procs"); ok {
		t.Fatal("empty registry has a map")
	}
	s.Publish("procs", nil)
	if _, ok := s.Map("procs"); !ok {
		t.Fatal("published map not found")
	}
}
