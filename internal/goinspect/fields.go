package goinspect

import (
	"debug/dwarf"
	"errors"
	"fmt"
	"strings"
)

// Source says where a field offset came from.
type Source int

const (
	FromDWARF   Source = iota + 1 // the binary's own debug info
	FromTable                     // the embedded table, for the binary's exact version
	FromNearest                   // the embedded table, for versions on both sides that agree
	FromBuild                     // another build's DWARF, from the same source (Layouts)
)

func (s Source) String() string {
	switch s {
	case FromDWARF:
		return "dwarf"
	case FromTable:
		return "table"
	case FromNearest:
		return "nearest"
	case FromBuild:
		return "build"
	}
	return fmt.Sprintf("Source(%d)", int(s))
}

// ErrUnknownLayout reports that neither DWARF nor the table gives an offset.
var ErrUnknownLayout = errors.New("unknown struct layout")

// errNoField marks DWARF that has the struct but not the field.
var errNoField = errors.New("no such field")

// FieldOffset returns the byte offset of field in the struct named
// structName (a DWARF type name such as "runtime.g"). DWARF is preferred:
// another build's from the same source when b uses Layouts that know it,
// else b's own. Without it, or when the linker dropped the type as unused,
// the embedded table is consulted for the version of the module defining
// the struct: the Go version for the standard library, else the
// dependency's version.
func (b *Binary) FieldOffset(structName, field string) (_ uint64, _ Source, err error) {
	defer recovered(b.Path, &err)
	key := b.learntKey(structName, field)
	if key != "" {
		if off, ok := b.learnt.get(key); ok {
			return off, FromBuild, nil
		}
	}
	off, ok, err := b.dwarfFieldOffset(structName, field)
	if err != nil {
		return 0, 0, err
	}
	if ok {
		if key != "" {
			b.learnt.put(key, off)
		}
		return off, FromDWARF, nil
	}
	module, version, err := b.moduleOf(structName)
	if err != nil {
		return 0, 0, err
	}
	return embeddedTable().Lookup(module, version, structName+"."+field)
}

// GoidOffset is the offset of the goroutine id in runtime.g, which weft
// reads to tell goroutines apart.
func GoidOffset(b *Binary) (uint64, Source, error) {
	return b.FieldOffset("runtime.g", "goid")
}

// LayoutKey names the source the struct named structName was compiled
// from in this binary: its module at the version built (the standard
// library's with the toolchain), with the toolchain's whole version
// (experiments included) and the build settings that choose files (tags,
// cgo, race, GOOS, GOARCH). Two binaries giving one key have the same
// layout for that struct, so a field offset read from one's DWARF holds
// for the other. ok is false when no source can be named: the type is the
// main module's or in no dependency, its module was replaced by a
// directory or built from a vendor directory, or it is generic (its type
// arguments come from elsewhere).
func (b *Binary) LayoutKey(structName string) (key string, ok bool) {
	if strings.Contains(structName, "[") {
		return "", false
	}
	pkg := packageOf(structName)
	if b.Main != "" && (pkg == b.Main || strings.HasPrefix(pkg, b.Main+"/")) {
		return "", false
	}
	module := ""
	for path := range b.Modules {
		if (pkg == path || strings.HasPrefix(pkg, path+"/")) && len(path) > len(module) {
			module = path
		}
	}
	if module == "" {
		// Standard library paths (including std's vendor/...) have no
		// dot in their first element.
		if first, _, _ := strings.Cut(pkg, "/"); strings.Contains(first, ".") {
			return "", false
		}
		module = StdModule
	}
	key, ok = b.layouts[module]
	return key, ok
}

// packageOf is the import path of a type name ("net/http.Request").
func packageOf(typeName string) string {
	pkg, _, _ := strings.Cut(typeName, "[") // type arguments hold other paths
	if i := strings.LastIndex(pkg, "/"); i >= 0 {
		if j := strings.Index(pkg[i:], "."); j >= 0 {
			pkg = pkg[:i+j]
		}
	} else {
		pkg, _, _ = strings.Cut(pkg, ".")
	}
	return pkg
}

// moduleOf maps a type name to the module that defines it and its version.
func (b *Binary) moduleOf(typeName string) (module, version string, err error) {
	pkg := packageOf(typeName)
	// Standard library paths (including std's vendor/...) have no dot in
	// their first element.
	if first, _, _ := strings.Cut(pkg, "/"); !strings.Contains(first, ".") {
		return StdModule, b.GoVersion, nil
	}
	for path, v := range b.Modules {
		if (pkg == path || strings.HasPrefix(pkg, path+"/")) && len(path) > len(module) {
			module, version = path, v
		}
	}
	if module == "" {
		return "", "", fmt.Errorf("goinspect: %s: %w: %s is not in a dependency module", b.Path, ErrUnknownLayout, typeName)
	}
	return module, version, nil
}

// dwarfFieldOffset reports ok=false when the binary has no DWARF or no such
// struct, and an error when the struct exists without the field.
func (b *Binary) dwarfFieldOffset(structName, field string) (uint64, bool, error) {
	d, err := b.dwarf()
	if err != nil || d == nil {
		return 0, false, err
	}
	at, ok := d.structs[structName]
	if !ok {
		return 0, false, nil
	}
	r := d.data.Reader()
	r.Seek(at)
	if _, err := r.Next(); err != nil {
		return 0, false, err
	}
	for {
		e, err := r.Next()
		if err != nil {
			return 0, false, fmt.Errorf("goinspect: %s: DWARF for %s: %w", b.Path, structName, err)
		}
		if e == nil || e.Tag == 0 {
			return 0, false, fmt.Errorf("goinspect: %s: %w: DWARF struct %s: %w %s", b.Path, ErrUnknownLayout, structName, errNoField, field)
		}
		if e.Tag != dwarf.TagMember || e.Val(dwarf.AttrName) != field {
			r.SkipChildren()
			continue
		}
		off, ok := e.Val(dwarf.AttrDataMemberLoc).(int64)
		if !ok || off < 0 {
			return 0, false, fmt.Errorf("goinspect: %s: DWARF %s.%s: unsupported member location %v", b.Path, structName, field, e.Val(dwarf.AttrDataMemberLoc))
		}
		return uint64(off), true, nil
	}
}

// dwarfIndex maps struct type names to their DWARF entries, built in one
// pass so each FieldOffset reads only its struct's members.
type dwarfIndex struct {
	data    *dwarf.Data
	structs map[string]dwarf.Offset
}

func newDWARFIndex(d *dwarf.Data) (*dwarfIndex, error) {
	idx := &dwarfIndex{data: d, structs: map[string]dwarf.Offset{}}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("goinspect: reading DWARF: %w", err)
		}
		if e == nil {
			return idx, nil
		}
		if e.Tag == dwarf.TagStructType {
			if name, ok := e.Val(dwarf.AttrName).(string); ok {
				if _, dup := idx.structs[name]; !dup {
					idx.structs[name] = e.Offset
				}
			}
		}
		// Types are children of compile units; nothing below a unit's
		// direct children is needed, and skipping function bodies is most
		// of the speed.
		if e.Tag != dwarf.TagCompileUnit {
			r.SkipChildren()
		}
	}
}

// ModuleAtLeast reports whether the binary links module path at version
// min or later. ok is false when the module is not linked or its version
// does not parse (a "(devel)" or replaced module).
func (b *Binary) ModuleAtLeast(path, min string) (atLeast, ok bool) {
	v, linked := b.Modules[path]
	if !linked {
		return false, false
	}
	c, ok := compareVersions(path, v, min)
	return c >= 0, ok
}

// SizeField is the pseudo-field under which the offsets table records a
// struct's size: the key "golang.org/x/net/http2/hpack.HeaderField.<size>"
// holds the size of hpack.HeaderField. No Go identifier contains '<', so it
// cannot clash with a real field, and the size is versioned, measured and
// looked up (including the nearest-version rule) like any offset.
const SizeField = "<size>"

// StructSize returns a struct's size in bytes (the stride of a slice of
// it): from DWARF (another build's, from Layouts, or the binary's own),
// else from the embedded table like FieldOffset.
func (b *Binary) StructSize(structName string) (_ uint64, err error) {
	defer recovered(b.Path, &err)
	key := b.learntKey(structName, SizeField)
	if key != "" {
		if size, ok := b.learnt.get(key); ok {
			return size, nil
		}
	}
	size, ok, err := b.dwarfStructSize(structName)
	if err != nil {
		return 0, err
	}
	if ok {
		if key != "" {
			b.learnt.put(key, size)
		}
		return size, nil
	}
	module, version, err := b.moduleOf(structName)
	if err != nil {
		return 0, err
	}
	size, _, err = embeddedTable().Lookup(module, version, structName+"."+SizeField)
	return size, err
}

// dwarfStructSize reports ok=false when the binary has no DWARF or no such
// struct.
func (b *Binary) dwarfStructSize(structName string) (uint64, bool, error) {
	d, err := b.dwarf()
	if err != nil || d == nil {
		return 0, false, err
	}
	at, ok := d.structs[structName]
	if !ok {
		return 0, false, nil
	}
	r := d.data.Reader()
	r.Seek(at)
	e, err := r.Next()
	if err != nil || e == nil {
		return 0, false, fmt.Errorf("goinspect: %s: DWARF for %s: %v", b.Path, structName, err)
	}
	size, ok := e.Val(dwarf.AttrByteSize).(int64)
	if !ok || size <= 0 {
		return 0, false, fmt.Errorf("goinspect: %s: DWARF %s has no byte size", b.Path, structName)
	}
	return uint64(size), true, nil
}
