package discovery

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weft-dev/weft/internal/goinspect"
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

// TestFactsByLayout: another build from the same source versions (the
// hello test server linked twice with other -ldflags: other build IDs)
// takes its struct offsets from the first build's DWARF without reading
// its own; they are those its own DWARF gives.
func TestFactsByLayout(t *testing.T) {
	fields := []string{"runtime.g.parentGoid", "net/http.Request.ctx", "internal/poll.FD.Sysfd"}
	var builds []string
	for _, v := range []string{"1", "2"} {
		out := filepath.Join(t.TempDir(), "hello")
		cmd := exec.Command("go", "build", "-ldflags", "-X main.weftScaleBuild="+v, "-o", out, ".")
		cmd.Dir = "../../testdata/httpserver"
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building the hello server: %v\n%s", err, msg)
		}
		builds = append(builds, out)
	}
	own, err := goinspect.Open(builds[1])
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if own.ContentKey() == "" {
		t.Fatal("no content key")
	}
	want := map[string]uint64{}
	for _, name := range append([]string{"runtime.g.goid"}, fields...) {
		i := strings.LastIndexByte(name, '.')
		off, from, err := own.FieldOffset(name[:i], name[i+1:])
		if err != nil || from != goinspect.FromDWARF {
			t.Fatalf("%s: %d from %v, %v: the test needs it in DWARF", name, off, from, err)
		}
		if _, ok := own.LayoutKey(name[:i]); !ok {
			t.Fatalf("%s: no layout key", name)
		}
		want[name] = off
	}

	in := newInspector(ResourceConfig{HostName: "h"}, fields)
	for i, path := range builds {
		f, b := in.facts(procs.Info{ExeKey: procs.ExeKey{Dev: 1, Ino: uint64(i + 1)}, ExeOpenPath: path})
		if b != nil {
			b.Close()
		}
		if f.err != nil || f.goidOffset != want["runtime.g.goid"] {
			t.Fatalf("%s: facts %+v, want goid offset %d", path, f, want["runtime.g.goid"])
		}
		for _, name := range fields {
			if got, ok := f.offsets[name]; !ok || got != want[name] {
				t.Errorf("%s: %s at %d (%v), want %d", path, name, got, ok, want[name])
			}
		}
	}
	// The second build's four offsets came from the first one's DWARF.
	if in.read != 2 || in.layouts.Hits() != 4 {
		t.Errorf("two builds of one source: %d read, %d offsets from the other's DWARF; want 2 and 4", in.read, in.layouts.Hits())
	}
}
