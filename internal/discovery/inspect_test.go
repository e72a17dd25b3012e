package discovery

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/weft-dev/weft/internal/procs"
)

// TestFactsByContent: byte-identical copies of a Go executable on other
// inodes (each container of an image has its own) are read once; another
// build is read again.
func TestFactsByContent(t *testing.T) {
	self, err := os.Executable() // a Go test binary, with DWARF
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cp := func(name string, extra []byte) string {
		t.Helper()
		src, err := os.Open(self)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		path := filepath.Join(dir, name)
		dst, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.Write(extra); err != nil { // the size: part of the key
			t.Fatal(err)
		}
		return path
	}
	in := newInspector(ResourceConfig{HostName: "h"}, []string{"runtime.g.goid"})
	facts := func(path string, ino uint64) exeFacts {
		t.Helper()
		f, b := in.facts(procs.Info{ExeKey: procs.ExeKey{Dev: 1, Ino: ino}, ExeOpenPath: path})
		if b != nil {
			b.Close()
		}
		if f.err != nil || f.goVersion == "" || f.goidOffset == 0 {
			t.Fatalf("%s: facts %+v", path, f)
		}
		return f
	}
	a := facts(cp("a", nil), 1)
	b := facts(cp("b", nil), 2)
	if in.read != 1 {
		t.Errorf("two copies of one executable: read %d times, want 1", in.read)
	}
	if a.goidOffset != b.goidOffset || a.offsets["runtime.g.goid"] != b.offsets["runtime.g.goid"] {
		t.Errorf("copies' facts differ: %+v, %+v", a, b)
	}
	facts(cp("c", []byte{0}), 3) // another file (size) with the same build ID
	if in.read != 2 {
		t.Errorf("another size: read %d times in all, want 2", in.read)
	}
}
