package goinspect

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Functions looked up in every fixture: one of ours, one from the standard
// library with a pointer receiver (the name form uprobes will use).
var funcNames = []string{"main.handler", "net/http.(*conn).serve"}

func TestOpen(t *testing.T) {
	for key, fx := range fixtures {
		t.Run(key, func(t *testing.T) {
			b := open(t, key)
			if b.GoVersion != fx.toolchain {
				t.Errorf("GoVersion = %q, want %q", b.GoVersion, fx.toolchain)
			}
			if b.Main != "example.com/hello" {
				t.Errorf("Main = %q", b.Main)
			}
			if v := b.Modules["github.com/cespare/xxhash/v2"]; v != "v2.3.0" {
				t.Errorf("Modules = %v, want xxhash v2.3.0", b.Modules)
			}
			if b.HasDWARF == fx.stripped || b.HasSymtab == fx.stripped {
				t.Errorf("HasDWARF=%v HasSymtab=%v, stripped=%v", b.HasDWARF, b.HasSymtab, fx.stripped)
			}
			if b.PIE != fx.pie || b.Cgo != fx.cgo {
				t.Errorf("PIE=%v Cgo=%v, want %v %v", b.PIE, b.Cgo, fx.pie, fx.cgo)
			}
			// cgo through net's resolver only: no C library of its own.
			if b.CCalls != "" {
				t.Errorf("CCalls = %q, want none", b.CCalls)
			}
		})
	}
}

func TestNotGo(t *testing.T) {
	for _, path := range []string{"/bin/true", "testdata/hello/main.go"} {
		if _, err := Open(path); !errors.Is(err, ErrNotGo) {
			t.Errorf("Open(%s) = %v, want ErrNotGo", path, err)
		}
	}
	_, err := Open("testdata/no-such-file")
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNotGo) {
		t.Errorf("missing file: %v", err)
	}
}

// TestOtherArch checks a Go binary for another architecture is refused as
// such, not as "not Go".
func TestOtherArch(t *testing.T) {
	// A minimal program: cross-compiling all of hello's imports cold is slow.
	dir := t.TempDir()
	for name, text := range map[string]string{
		"go.mod":  "module example.com/arm\n\ngo 1.21\n",
		"main.go": "package main\n\nfunc main() {}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "arm")
	err := buildGo(context.Background(), dir, "", exe, nil, []string{"GOARCH=arm64", "CGO_ENABLED=0"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(exe)
	if err == nil || errors.Is(err, ErrNotGo) || !strings.Contains(err.Error(), "architecture") {
		t.Errorf("arm64 binary: %v", err)
	}
}

// TestFuncTwins checks the pclntab path (stripped build) against .symtab
// (the same build unstripped), and both tables against each other in the
// unstripped binary, including the runtime.text base found without symbols.
func TestFuncTwins(t *testing.T) {
	for _, tc := range toolchains() {
		for _, pair := range twins {
			t.Run(tc+"/"+pair[0], func(t *testing.T) {
				full, stripped := open(t, tc+"/"+pair[0]), open(t, tc+"/"+pair[1])
				for _, name := range funcNames {
					sym, err := full.Func(name)
					if err != nil {
						t.Fatal(err)
					}
					pcln, err := full.pclnFunc(name)
					if err != nil {
						t.Fatal(err)
					}
					twin, err := stripped.Func(name)
					if err != nil {
						t.Fatal(err)
					}
					if sym.Entry != pcln.Entry || sym.Entry != twin.Entry ||
						sym.Offset != pcln.Offset || sym.Offset != twin.Offset {
						t.Errorf("%s: symtab %+v, pclntab %+v, stripped %+v", name, sym, pcln, twin)
					}
					// .symtab sizes exclude the padding before the next function.
					if sym.End > pcln.End || pcln.End != twin.End {
						t.Errorf("%s: End symtab %#x, pclntab %#x, stripped %#x", name, sym.End, pcln.End, twin.End)
					}
					// Same code, same RETs, though the stripped End has padding.
					r1, err1 := full.ReturnOffsets(sym)
					r2, err2 := stripped.ReturnOffsets(twin)
					if err1 != nil || err2 != nil || !slices.Equal(r1, r2) {
						t.Errorf("%s: RETs %#x (%v) vs stripped %#x (%v)", name, r1, err1, r2, err2)
					}
				}
				syms, err := full.symtab()
				if err != nil {
					t.Fatal(err)
				}
				text := syms["runtime.text"]
				p, err := stripped.pcln()
				if err != nil {
					t.Fatal(err)
				}
				if p.textStart != text.Entry {
					t.Errorf("stripped text start %#x, runtime.text %#x", p.textStart, text.Entry)
				}
			})
		}
	}
}

func TestFuncMissing(t *testing.T) {
	for _, key := range []string{current + "/default", current + "/strip"} {
		_, err := open(t, key).Func("main.noSuchFunc")
		if !errors.Is(err, ErrNoFunc) {
			t.Errorf("%s: %v, want ErrNoFunc", key, err)
		}
	}
}

func TestReturnOffsets(t *testing.T) {
	for key := range fixtures {
		t.Run(key, func(t *testing.T) {
			b := open(t, key)
			f, err := b.Func("main.handler")
			if err != nil {
				t.Fatal(err)
			}
			rets, err := b.ReturnOffsets(f)
			if err != nil {
				t.Fatal(err)
			}
			// handler has three return paths; the compiler may merge
			// epilogues but never down to one here.
			if len(rets) < 2 {
				t.Errorf("RET offsets %#x: want at least 2", rets)
			}
			checkRETs(t, b.Path, f, rets)
		})
	}
}

// checkRETs reads each offset from the file and expects a RET opcode.
func checkRETs(t *testing.T, path string, f Func, rets []uint64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(rets) {
		t.Errorf("offsets not sorted: %#x", rets)
	}
	for _, off := range rets {
		if off < f.Offset || off >= f.Offset+(f.End-f.Entry) {
			t.Errorf("offset %#x outside %s at %#x", off, f.Name, f.Offset)
		} else if data[off] != 0xC3 {
			t.Errorf("byte at %#x is %#x, not RET", off, data[off])
		}
	}
}

// TestReturnOffsetsUndecodable feeds a function whose bytes x86asm cannot
// decode (0x06 is invalid in 64-bit mode) and expects an error, not a guess.
func TestReturnOffsetsUndecodable(t *testing.T) {
	dir := t.TempDir()
	b := open(t, current+"/default")
	f, err := b.Func("main.handler")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(b.Path)
	if err != nil {
		t.Fatal(err)
	}
	data[f.Offset] = 0x06
	path := filepath.Join(dir, "corrupt")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rets, err := c.ReturnOffsets(f); err == nil {
		t.Errorf("got %#x, want an error", rets)
	}
}

func TestFieldOffset(t *testing.T) {
	table := EmbeddedTable().Modules[StdModule]
	for key, fx := range fixtures {
		t.Run(key, func(t *testing.T) {
			b := open(t, key)
			for field, byVersion := range table.Fields {
				want, ok := byVersion[fx.toolchain]
				if !ok {
					continue
				}
				s, f := splitField(field)
				got, src, err := b.FieldOffset(s, f)
				wantSrc := FromDWARF
				if fx.stripped {
					wantSrc = FromTable
				}
				// The linker drops types a program does not use (this
				// fixture has no HTTP client): the table answers then.
				if !fx.stripped && !strings.HasPrefix(field, "runtime.") && src == FromTable {
					wantSrc = FromTable
				}
				if err != nil || got != want || src != wantSrc {
					t.Errorf("%s = %d, %v, %v; want %d, %v", field, got, src, err, want, wantSrc)
				}
			}
			if _, src, err := GoidOffset(b); err != nil || src == 0 {
				t.Errorf("GoidOffset: %v %v", src, err)
			}
		})
	}
}

func TestFieldOffsetErrors(t *testing.T) {
	full, stripped := open(t, current+"/default"), open(t, current+"/strip")
	if _, _, err := full.FieldOffset("runtime.g", "noSuchField"); !errors.Is(err, ErrUnknownLayout) {
		t.Errorf("DWARF, missing field: %v", err)
	}
	if _, _, err := stripped.FieldOffset("runtime.g", "noSuchField"); !errors.Is(err, ErrUnknownLayout) {
		t.Errorf("table, missing field: %v", err)
	}
	if _, _, err := stripped.FieldOffset("example.com/nowhere.T", "f"); !errors.Is(err, ErrUnknownLayout) {
		t.Errorf("type outside any module: %v", err)
	}
}

// TestProcExe opens a running fixture through /proc/PID/exe after deleting
// it on disk, as weft sees processes whose binary was replaced by a deploy.
func TestProcExe(t *testing.T) {
	src := fixtures[current+"/strip"].path
	exe := filepath.Join(t.TempDir(), "hello")
	copyFile(t, src, exe)
	cmd := exec.Command(exe, "-serve")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	proc := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid))
	// The process may still be exec'ing; wait for its exe link to be ours.
	deadline := time.Now().Add(5 * time.Second)
	for {
		target, _ := os.Readlink(proc + "/exe")
		if target == exe+" (deleted)" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/exe -> %q", proc, target)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, path := range []string{proc + "/exe", proc + "/root" + src} {
		b, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		f, err := b.Func("main.handler")
		if err != nil {
			t.Fatal(err)
		}
		rets, err := b.ReturnOffsets(f)
		if err != nil {
			t.Fatal(err)
		}
		if b.GoVersion != current || len(rets) == 0 {
			t.Errorf("%s: %s, %#x", path, b.GoVersion, rets)
		}
		checkRETs(t, src, f, rets)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// splitField splits "runtime.g.goid" into "runtime.g" and "goid".
func splitField(key string) (string, string) {
	i := strings.LastIndex(key, ".")
	return key[:i], key[i+1:]
}

// TestBuildID: the Go build ID note is read as the toolchain writes it
// (go tool buildid agrees), and a note that lies about its length is no ID.
func TestBuildID(t *testing.T) {
	for key, fx := range fixtures {
		out, err := exec.Command("go", "tool", "buildid", fx.path).Output()
		if err != nil {
			t.Fatalf("go tool buildid %s: %v", fx.path, err)
		}
		b := open(t, key)
		if got, want := b.BuildID, strings.TrimSpace(string(out)); got != want || got == "" {
			t.Errorf("%s: BuildID %q, want %q", key, got, want)
		}
		if b.ContentKey() == "" {
			t.Errorf("%s: no ContentKey for cmd/go's build ID %q", key, b.BuildID)
		}
	}
	path, _ := craft(t, "default", func(c *crafted) {
		sh := c.section(".note.go.buildid")
		off := c.le().Uint64(c.data[sh+24:])    // sh_offset
		c.le().PutUint32(c.data[off+4:], 1<<20) // descsz past the section
	})
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.BuildID != "" || b.ContentKey() != "" {
		t.Errorf("a note longer than its section: BuildID %q, ContentKey %q; want none", b.BuildID, b.ContentKey())
	}
	// An ID that is not cmd/go's names no content.
	for _, id := range []string{"redacted", "a/b/c/d", "", strings.Repeat("x", 20) + "/" + strings.Repeat("y", 20)} {
		if k := (&Binary{BuildID: id, size: 1}).ContentKey(); k != "" {
			t.Errorf("build ID %q: ContentKey %q, want none", id, k)
		}
	}
}

// TestLayoutKey: a struct's layout key names the source it was built
// from (the module version or the replacement's, the standard library's
// with the toolchain) and the toolchain and settings that choose its
// files; there is none for the main module's types, a directory's or a
// vendor directory's, an unknown module's, or a generic type's.
func TestLayoutKey(t *testing.T) {
	settings := []debug.BuildSetting{{Key: "-tags", Value: "netgo"}, {Key: "CGO_ENABLED", Value: "0"}, {Key: "GOARCH", Value: "amd64"},
		{Key: "GOOS", Value: "linux"}, {Key: "-trimpath", Value: "true"}}
	deps := []*debug.Module{
		{Path: "google.golang.org/grpc", Version: "v1.77.0"},
		{Path: "golang.org/x/net", Version: "v0.40.0", Replace: &debug.Module{Path: "example.com/fork/net", Version: "v0.40.1"}},
		{Path: "example.com/local", Version: "v1.0.0", Replace: &debug.Module{Path: "../local"}},
		{Path: "example.com/dev", Version: "(devel)"},
		{Path: "example.com/app/lib", Version: "v1.2.0"}, // a dependency the main module's path covers
		{Path: "mylib", Version: "v0.1.0"},               // a dotless module path
	}
	const env = " | go1.26.8-X:boringcrypto -tags=netgo CGO_ENABLED=0 GOOS=linux GOARCH=amd64"
	info := &buildinfo.BuildInfo{GoVersion: "go1.26.8-X:boringcrypto", Main: debug.Module{Path: "example.com/app", Version: "(devel)"},
		Deps: deps, Settings: settings}
	b := &Binary{Path: "x", GoVersion: goVersion(info.GoVersion), Main: info.Main.Path}
	b.Modules, b.layouts = moduleVersions(info)
	for _, tc := range []struct {
		typ, want string
		ok        bool
	}{
		{"runtime.g", "std" + env, true},
		{"net/http.Request", "std" + env, true},
		{"vendor/golang.org/x/net/http2/hpack.HeaderField", "std" + env, true},
		{"google.golang.org/grpc/internal/transport.http2Server", "google.golang.org/grpc@v1.77.0" + env, true},
		{"golang.org/x/net/http2.Framer", "example.com/fork/net@v0.40.1 for golang.org/x/net" + env, true},
		{"mylib/pkg.T", "mylib@v0.1.0" + env, true},
		{"example.com/local/pkg.T", "", false},
		{"example.com/dev.T", "", false},
		{"example.com/app.T", "", false},             // the main module's
		{"example.com/app/internal.T", "", false},    // the main module's
		{"example.com/app/lib.T", "", false},         // the main module's path: its own
		{"example.com/unknown.T", "", false},         // in no dependency
		{"google.golang.org/grpc.S[int]", "", false}, // generic
	} {
		got, ok := b.LayoutKey(tc.typ)
		if got != tc.want || ok != tc.ok {
			t.Errorf("LayoutKey(%s) = %q, %v; want %q, %v", tc.typ, got, ok, tc.want, tc.ok)
		}
	}
	if b.Modules["golang.org/x/net"] != "v0.40.1" || b.Modules["example.com/local"] != "v1.0.0" {
		t.Errorf("module versions %v", b.Modules)
	}
	// Another toolchain, other tags, or a vendor build: other keys, or none.
	for _, other := range []*buildinfo.BuildInfo{
		{GoVersion: "go1.27.0", Main: info.Main, Deps: deps, Settings: settings},
		{GoVersion: info.GoVersion, Main: info.Main, Deps: deps, Settings: append([]debug.BuildSetting{{Key: "-race", Value: "true"}}, settings...)},
	} {
		ob := &Binary{Path: "y", GoVersion: goVersion(other.GoVersion), Main: other.Main.Path}
		ob.Modules, ob.layouts = moduleVersions(other)
		for _, typ := range []string{"runtime.g", "google.golang.org/grpc/internal/transport.http2Server"} {
			k1, _ := b.LayoutKey(typ)
			if k2, ok := ob.LayoutKey(typ); !ok || k1 == k2 {
				t.Errorf("%s under %s %v: key %q (%v), the same as under %s", typ, other.GoVersion, other.Settings, k2, ok, info.GoVersion)
			}
		}
	}
	vb := &Binary{Path: "v", GoVersion: b.GoVersion, Main: info.Main.Path}
	vb.Modules, vb.layouts = moduleVersions(&buildinfo.BuildInfo{GoVersion: info.GoVersion, Main: info.Main, Deps: deps,
		Settings: append([]debug.BuildSetting{{Key: "-mod", Value: "vendor"}}, settings...)})
	if k, ok := vb.LayoutKey("google.golang.org/grpc/internal/transport.http2Server"); ok {
		t.Errorf("a vendor build's dependency: key %q", k)
	}
	if _, ok := vb.LayoutKey("runtime.g"); !ok {
		t.Error("a vendor build's standard library: no key")
	}
}

// TestGoVersion: the release, without the experiments either way the
// linker writes them.
func TestGoVersion(t *testing.T) {
	for in, want := range map[string]string{
		"go1.26.8":                          "go1.26.8",
		"go1.26.8-X:boringcrypto":           "go1.26.8",
		"go1.22.0 X:loopvar":                "go1.22.0",
		"devel go1.27-abcdef X:greenteagc":  "devel",
		"go1.27rc1-X:nosynchashtriemap,foo": "go1.27rc1",
	} {
		if got := goVersion(in); got != want {
			t.Errorf("goVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCopySite: crypto/tls.(*Conn).Read copies its plaintext with one
// memmove call and keeps its receiver in its argument slot, in every
// fixture (both toolchains, PIE or not, stripped or not). The offset is a
// CALL (0xE8) whose target is runtime.memmove.
func TestCopySite(t *testing.T) {
	for key := range fixtures {
		t.Run(key, func(t *testing.T) {
			b := open(t, key)
			f, err := b.Func("crypto/tls.(*Conn).Read")
			if err != nil {
				t.Fatal(err)
			}
			mm, err := b.Func("runtime.memmove")
			if err != nil {
				t.Fatal(err)
			}
			s, err := b.CopySite(f, mm, "bytes/reader.go")
			if err != nil {
				t.Fatal(err)
			}
			// The line table says where the call came from.
			if _, err := b.CopySite(f, mm, "bytes/buffer.go"); !errors.Is(err, ErrNoCopySite) {
				t.Errorf("from bytes/buffer.go: %v, want ErrNoCopySite", err)
			}
			data, err := os.ReadFile(b.Path)
			if err != nil {
				t.Fatal(err)
			}
			if s.Offset < f.Offset || s.Offset >= f.Offset+(f.End-f.Entry) || s.Addr-f.Entry != s.Offset-f.Offset {
				t.Fatalf("site %+v outside %s at %#x", s, f.Name, f.Offset)
			}
			if data[s.Offset] != 0xE8 {
				t.Fatalf("byte at %#x is %#x, not CALL rel32", s.Offset, data[s.Offset])
			}
			rel := int32(binary.LittleEndian.Uint32(data[s.Offset+1:]))
			if to := s.Addr + 5 + uint64(int64(rel)); to != mm.Entry {
				t.Errorf("CALL at %#x goes to %#x, not runtime.memmove at %#x", s.Addr, to, mm.Entry)
			}
			if s.RecvSP < 16 || s.RecvSP%8 != 0 {
				t.Errorf("receiver slot %#x", s.RecvSP)
			}
			// Read never calls main.handler: no site for it.
			h, err := b.Func("main.handler")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.CopySite(f, h, ""); !errors.Is(err, ErrNoCopySite) {
				t.Errorf("calls to main.handler: %v, want ErrNoCopySite", err)
			}
		})
	}
}

// TestCopySiteFrames: hand-assembled functions written over main.handler
// in a copy of a fixture. Go's prologue and its 128-byte form (ADDQ $-128,
// SP, given back by SUBQ $-128, SP) give the receiver's slot; a receiver
// stored anywhere but just above the return address, or stored again,
// gives no site.
func TestCopySiteFrames(t *testing.T) {
	b := open(t, current+"/default")
	f, err := b.Func("main.handler")
	if err != nil {
		t.Fatal(err)
	}
	mm := Func{Name: "runtime.memmove", Entry: f.Entry + 0x1000}
	call := func(at int) []byte { // CALL rel32 to mm, at offset at
		rel := uint32(int64(mm.Entry) - int64(f.Entry) - int64(at) - 5)
		return []byte{0xe8, byte(rel), byte(rel >> 8), byte(rel >> 16), byte(rel >> 24)}
	}
	movAX := func(disp uint32) []byte { // MOVQ AX, disp(SP)
		return []byte{0x48, 0x89, 0x84, 0x24, byte(disp), byte(disp >> 8), byte(disp >> 16), byte(disp >> 24)}
	}
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	push, movBP, pop, ret := []byte{0x55}, []byte{0x48, 0x89, 0xe5}, []byte{0x5d}, []byte{0xc3}
	sub58, add58 := []byte{0x48, 0x83, 0xec, 0x58}, []byte{0x48, 0x83, 0xc4, 0x58}
	add80, sub80 := []byte{0x48, 0x83, 0xc4, 0x80}, []byte{0x48, 0x83, 0xec, 0x80}
	for _, c := range []struct {
		name string
		code []byte
		recv uint64 // 0: no site
	}{
		{"frame 0x58", cat(push, movBP, sub58, movAX(0x68), call(16), add58, pop, ret), 0x68},
		{"frame 128", cat(push, movBP, add80, movAX(0x90), call(16), sub80, pop, ret), 0x90},
		{"receiver in the frame", cat(push, movBP, sub58, movAX(0x60), call(16), add58, pop, ret), 0},
		{"receiver stored again", cat(push, movBP, sub58, movAX(0x68), call(16), movAX(0x68), add58, pop, ret), 0},
		{"no frame", cat(movAX(0x8), call(8), ret), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if uint64(len(c.code)) > f.End-f.Entry {
				t.Fatalf("main.handler is %d bytes, the code %d", f.End-f.Entry, len(c.code))
			}
			data, err := os.ReadFile(b.Path)
			if err != nil {
				t.Fatal(err)
			}
			copy(data[f.Offset:], c.code)
			path := filepath.Join(t.TempDir(), "asm")
			if err := os.WriteFile(path, data, 0o755); err != nil {
				t.Fatal(err)
			}
			x, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			g := f
			g.End = f.Entry + uint64(len(c.code))
			s, err := x.CopySite(g, mm, "")
			switch {
			case c.recv == 0 && !errors.Is(err, ErrNoCopySite):
				t.Errorf("got %+v, %v; want ErrNoCopySite", s, err)
			case c.recv != 0 && err != nil:
				t.Errorf("got %v", err)
			case c.recv != 0 && (s.RecvSP != c.recv || s.Offset != f.Offset+uint64(bytes.Index(c.code, []byte{0xe8}))):
				t.Errorf("got %+v, want the receiver at %#x", s, c.recv)
			}
		})
	}
}
