package sockio

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cc builds a C file into out with extra flags (the C compiler is a test
// dependency: make deps installs it).
func cc(t *testing.T, out, src string, flags ...string) {
	t.Helper()
	c := filepath.Join(t.TempDir(), "x.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-o", out, c, "-Wl,--no-as-needed"}, flags...) // the libraries are not used: keep them needed
	if b, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
		t.Fatalf("cc %v: %v\n%s", args, err, b)
	}
}

// TestLibsslNeeded: the libssl an executable will load is found from its
// dependencies before it is mapped, as the loader would find it: through
// RPATH ($ORIGIN), RUNPATH, LD_LIBRARY_PATH and a library that needs it,
// ahead of the system's libssl.so.3.
func TestLibsslNeeded(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"bin", "lib", "other", "env"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lib := func(d, soname string, flags ...string) {
		cc(t, filepath.Join(dir, d, soname), "int f_"+d+"(void) { return 1; }\n",
			append([]string{"-shared", "-fPIC", "-Wl,-soname," + soname}, flags...)...)
	}
	lib("lib", "libssl.so.1.1")
	lib("env", "libssl.so.1.1")
	lib("other", "libcurlish.so.4", "-L"+filepath.Join(dir, "lib"), "-l:libssl.so.1.1")
	prog := "int main(void) { return 0; }\n"
	exe := func(name string, flags ...string) string {
		p := filepath.Join(dir, "bin", name)
		cc(t, p, prog, flags...)
		return p
	}
	l11 := filepath.Join(dir, "lib", "libssl.so.1.1")
	cases := []struct {
		name   string
		exe    string
		ldPath []string
		want   string
		ver    string
	}{
		{"rpath $ORIGIN", exe("rpath", "-L"+filepath.Join(dir, "lib"), "-l:libssl.so.1.1", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib"), nil, l11, "1.1"},
		{"runpath", exe("runpath", "-L"+filepath.Join(dir, "lib"), "-l:libssl.so.1.1", "-Wl,--enable-new-dtags,-rpath,"+filepath.Join(dir, "lib")), nil, l11, "1.1"},
		{"LD_LIBRARY_PATH before RUNPATH", exe("runpath2", "-L"+filepath.Join(dir, "lib"), "-l:libssl.so.1.1", "-Wl,--enable-new-dtags,-rpath,"+filepath.Join(dir, "lib")),
			[]string{filepath.Join(dir, "env")}, filepath.Join(dir, "env", "libssl.so.1.1"), "1.1"},
		{"RPATH before LD_LIBRARY_PATH", exe("rpath2", "-L"+filepath.Join(dir, "lib"), "-l:libssl.so.1.1", "-Wl,--disable-new-dtags,-rpath,"+filepath.Join(dir, "lib")),
			[]string{filepath.Join(dir, "env")}, l11, "1.1"},
		{"through a library (the exe's RPATH serves it)", exe("transitive", "-L"+filepath.Join(dir, "other"), "-L"+filepath.Join(dir, "lib"), "-l:libcurlish.so.4",
			"-Wl,--disable-new-dtags,-rpath,"+filepath.Join(dir, "other")+":"+filepath.Join(dir, "lib")), nil, l11, "1.1"},
		{"not found: the loader would fail too", exe("missing", "-L"+filepath.Join(dir, "lib"), "-l:libssl.so.1.1"), nil, "", ""},
		{"no libssl needed", exe("plain"), nil, "", ""},
	}
	if _, err := os.Stat("/usr/bin/curl"); err == nil {
		if p, _, _ := libsslNeeded(loadSpec{root: "/", exe: "/usr/bin/curl"}); p == "" {
			t.Errorf("/usr/bin/curl (libcurl needs libssl.so.3): no libssl found")
		} else {
			t.Logf("/usr/bin/curl loads %s", p)
		}
	}
	for _, c := range cases {
		p, v, err := libsslNeeded(loadSpec{root: "/", exe: c.exe, ldPath: c.ldPath})
		if err != nil || p != c.want || v != c.ver {
			t.Errorf("%s: got %q %q %v, want %q %q", c.name, p, v, err, c.want, c.ver)
		}
	}
	if _, _, err := libsslNeeded(loadSpec{root: "/", exe: filepath.Join(dir, "nope")}); err == nil {
		t.Error("a missing executable: no error")
	}
}

// FuzzLibsslNeeded: a crafted executable gives an answer or an error,
// never a panic or a walk past neededMax.
func FuzzLibsslNeeded(f *testing.F) {
	if b, err := os.ReadFile("/usr/bin/true"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "exe")
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		libsslNeeded(loadSpec{root: "/", exe: p})
	})
}

func TestExpandPath(t *testing.T) {
	got := expandPath("$ORIGIN/../lib:${ORIGIN}/x::/opt/$LIB/y:/usr/lib", "/app/bin/prog")
	want := []string{"/app/bin/../lib", "/app/bin/x", "/usr/lib"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// TestLibsslNeededBounded: an executable that names thousands of missing
// libraries under a long RPATH costs at most statMax lookups, and a FIFO
// in the executable's place is refused without blocking.
func TestLibsslNeededBounded(t *testing.T) {
	dir := t.TempDir()
	var flags []string
	rpath := ""
	for i := range 200 {
		rpath += filepath.Join(dir, fmt.Sprintf("d%d", i)) + ":"
	}
	src := "int main(void) { return 0; }\n"
	var libs []string
	for i := range 100 {
		name := fmt.Sprintf("libx%d.so", i)
		cc(t, filepath.Join(dir, name), "int f(void) { return 1; }\n", "-shared", "-fPIC", "-Wl,-soname,"+name)
		libs = append(libs, "-l:"+name)
	}
	flags = append(flags, "-L"+dir)
	flags = append(flags, libs...)
	flags = append(flags, "-Wl,--disable-new-dtags,-rpath,"+rpath)
	exe := filepath.Join(dir, "many")
	cc(t, exe, src, flags...)
	for i := range 100 { // the loader would find none of them now
		os.Remove(filepath.Join(dir, fmt.Sprintf("libx%d.so", i)))
	}
	left := statMax
	p, _, err := libsslNeeded(loadSpec{root: "/", exe: exe, stats: &left})
	if err != nil || p != "" {
		t.Errorf("got %q %v", p, err)
	}
	if left < 0 || left > 0 && statMax-left < searchDirs {
		t.Errorf("%d of %d lookups left", left, statMax)
	}
	t.Logf("%d lookups made", statMax-left)

	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, _, err := libsslNeeded(loadSpec{root: "/", exe: fifo}); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a FIFO read as an executable")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}
}
