package goinspect

import (
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Layouts remembers what executables' DWARF said of struct layouts, by the
// source each struct was compiled from (LayoutKey): another build from the
// same toolchain and dependency versions (each service of a fleet, each
// release of one) is answered without reading its own DWARF, which takes
// a tenth of a second an executable. Only DWARF's answers are learnt: the
// table answers every build anyway, and a struct one build's linker left
// out may be in the next. Safe for concurrent use; bounded by maxLayouts
// (hashicorp/golang-lru: the least recently used answers go first).
type Layouts struct {
	m    *lru.Cache[string, uint64]
	hits atomic.Int64
}

// maxLayouts bounds the answers a Layouts keeps: a few dozen fields for
// each toolchain and dependency version seen. Past it the answers used
// least recently go: a node that runs through many builds over weeks
// keeps learning those it runs now (before, it stopped learning).
const maxLayouts = 8192

// NewLayouts returns an empty Layouts.
func NewLayouts() *Layouts {
	c, err := lru.New[string, uint64](maxLayouts)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return &Layouts{m: c}
}

// Hits counts the answers given from what another executable's DWARF said.
func (l *Layouts) Hits() int { return int(l.hits.Load()) }

// Len is how many answers l keeps.
func (l *Layouts) Len() int { return l.m.Len() }

func (l *Layouts) get(key string) (uint64, bool) {
	v, ok := l.m.Get(key)
	if ok {
		l.hits.Add(1)
	}
	return v, ok
}

func (l *Layouts) put(key string, v uint64) { l.m.Add(key, v) }

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
