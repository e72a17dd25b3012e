// Package btfcheck compares a C struct, as the compiler laid it out in a BPF
// object's BTF, with its Go mirror: size and every field's offset. Tests
// call it so that C and Go can never drift apart silently.
package btfcheck

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Layout returns an error describing every difference between the C struct
// cName in spec and the Go struct type of goValue. Go fields match C members
// by name, ignoring underscores and case (bpf2go's naming).
func Layout(spec *ebpf.CollectionSpec, cName string, goValue any) error {
	var st *btf.Struct
	if err := spec.Types.TypeByName(cName, &st); err != nil {
		return fmt.Errorf("finding struct %s in BTF: %w", cName, err)
	}
	gt := reflect.TypeOf(goValue)
	var diffs []string
	if uint64(st.Size) != uint64(gt.Size()) {
		diffs = append(diffs, fmt.Sprintf("size: C %d, Go %d", st.Size, gt.Size()))
	}
	goFields := map[string]reflect.StructField{}
	for i := range gt.NumField() {
		f := gt.Field(i)
		goFields[norm(f.Name)] = f
	}
	for _, m := range st.Members {
		f, ok := goFields[norm(m.Name)]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("member %s: no Go field", m.Name))
			continue
		}
		if off := uint64(m.Offset.Bytes()); off != uint64(f.Offset) {
			diffs = append(diffs, fmt.Sprintf("member %s: C offset %d, Go offset %d", m.Name, off, f.Offset))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("struct %s differs from %s: %s", cName, gt, strings.Join(diffs, "; "))
	}
	return nil
}

func norm(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
