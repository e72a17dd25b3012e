package goinspect

import (
	"fmt"
	"testing"
)

// TestLayoutsAcrossBuilds: builds with DWARF of one source and toolchain
// (other link flags: other files and build IDs) sharing a Layouts read
// their struct layouts from the first one's DWARF; each answer equals what
// the build's own DWARF says, and another toolchain's build is not
// answered from them.
func TestLayoutsAcrossBuilds(t *testing.T) {
	fields := [][2]string{{"runtime.g", "goid"}, {"runtime.g", "parentGoid"}, {"net/http.Request", "ctx"}, {"internal/poll.FD", "Sysfd"}}
	sizes := []string{"net/http.Request"}
	l := NewLayouts()
	check := func(name string, want Source) {
		t.Helper()
		fx, ok := fixtures[name]
		if !ok {
			t.Fatalf("no fixture %s", name)
		}
		own, err := Open(fx.path)
		if err != nil {
			t.Fatal(err)
		}
		defer own.Close()
		b, err := Open(fx.path)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		b.UseLayouts(l)
		for _, f := range fields {
			wantOff, src, err := own.FieldOffset(f[0], f[1])
			if err != nil || src != FromDWARF {
				t.Fatalf("%s: %s.%s from its own DWARF: %d, %v, %v", name, f[0], f[1], wantOff, src, err)
			}
			off, src, err := b.FieldOffset(f[0], f[1])
			if err != nil || off != wantOff || src != want {
				t.Errorf("%s: %s.%s = %d from %v (%v); want %d from %v", name, f[0], f[1], off, src, err, wantOff, want)
			}
		}
		for _, s := range sizes {
			wantSize, err := own.StructSize(s)
			if err != nil {
				t.Fatal(err)
			}
			if size, err := b.StructSize(s); err != nil || size != wantSize {
				t.Errorf("%s: size of %s %d (%v), want %d", name, s, size, err, wantSize)
			}
		}
	}
	check(current+"/default", FromDWARF)
	hits := l.Hits()
	for _, v := range []string{"pie", "trimpath", "ext", "rawdwarf"} {
		check(current+"/"+v, FromBuild)
	}
	if got, want := l.Hits()-hits, 4*(len(fields)+len(sizes)); got != want {
		t.Errorf("%d answers from the first build's DWARF, want %d", got, want)
	}
	check(olderToolchain+"/default", FromDWARF)
}

// TestLayoutsBounded: past maxLayouts answers, the least recently used go
// and new ones are still learnt.
func TestLayoutsBounded(t *testing.T) {
	l := NewLayouts()
	key := func(i int) string { return fmt.Sprintf("go1.%d example.com/m@v1 T.f", i) }
	for i := range maxLayouts {
		l.put(key(i), uint64(i))
	}
	if _, ok := l.get(key(0)); !ok { // used: kept
		t.Fatal("answer 0 not kept")
	}
	for i := maxLayouts; i < maxLayouts+100; i++ {
		l.put(key(i), uint64(i))
	}
	if l.Len() != maxLayouts {
		t.Errorf("%d answers kept, bound %d", l.Len(), maxLayouts)
	}
	if v, ok := l.get(key(maxLayouts + 99)); !ok || v != maxLayouts+99 {
		t.Errorf("the newest answer: %d, %v", v, ok)
	}
	if _, ok := l.get(key(0)); !ok {
		t.Error("the recently used answer went")
	}
	if _, ok := l.get(key(1)); ok {
		t.Error("the least recently used answer stayed")
	}
}
