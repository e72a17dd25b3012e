package goinspect

import "sync"

// Layouts remembers what executables' DWARF said of struct layouts, by the
// source each struct was compiled from (LayoutKey): another build from the
// same toolchain and dependency versions (each service of a fleet, each
// release of one) is answered without reading its own DWARF, which takes
// a tenth of a second an executable. Only DWARF's answers are learnt: the
// table answers every build anyway, and a struct one build's linker left
// out may be in the next. Safe for concurrent use; bounded by maxLayouts.
type Layouts struct {
	mu   sync.Mutex
	m    map[string]uint64
	hits int
}

// maxLayouts bounds the answers a Layouts keeps: a few dozen fields for
// each toolchain and dependency version seen.
const maxLayouts = 8192

// NewLayouts returns an empty Layouts.
func NewLayouts() *Layouts { return &Layouts{m: map[string]uint64{}} }

// Hits counts the answers given from what another executable's DWARF said.
func (l *Layouts) Hits() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hits
}

func (l *Layouts) get(key string) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.m[key]
	if ok {
		l.hits++
	}
	return v, ok
}

func (l *Layouts) put(key string, v uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) < maxLayouts {
		l.m[key] = v
	}
}

// UseLayouts makes b answer from l what another build from the same source
// told it, and tell l what its own DWARF says. Call it before sharing b.
func (b *Binary) UseLayouts(l *Layouts) { b.learnt = l }

// learntKey is the key of a struct's answer in b.learnt, "" when b has no
// Layouts or the struct's source has no name.
func (b *Binary) learntKey(structName, what string) string {
	if b.learnt == nil {
		return ""
	}
	source, ok := b.LayoutKey(structName)
	if !ok {
		return ""
	}
	return source + " " + structName + "." + what
}
