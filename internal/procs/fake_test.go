package procs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// fakeTree builds files and symlinks below a temp dir: a value starting with
// "->" is a symlink target, a value of "/" is an empty directory.
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, v := range files {
		p := filepath.Join(root, name)
		dirOf := filepath.Dir(p)
		if v == "/" {
			dirOf = p
		}
		if err := os.MkdirAll(dirOf, 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case v == "/":
		case strings.HasPrefix(v, "->"):
			err = os.Symlink(strings.TrimPrefix(v, "->"), p)
		default:
			err = os.WriteFile(p, []byte(v), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func fakeStat(pid, comm string, flags string) string {
	return pid + " (" + comm + ") S 1 1 1 0 -1 " + flags + " 0 0 0 0 0 0 0 0 20 0 1 0 5555 1 1 0\n"
}

func TestListFake(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"1/stat": "x", "20/stat": "x", "3/stat": "x", "0123/stat": "x", "+5/stat": "x",
		"net/tcp": "", "self": "->20", "sys/": "/",
	})
	got, err := List(root)
	if err != nil || !reflect.DeepEqual(got, []int{1, 3, 20}) {
		t.Fatalf("List = %v, %v", got, err)
	}
	if _, err := List(filepath.Join(root, "missing")); err == nil {
		t.Fatal("List of a missing root gave no error")
	}
}

func TestReadFake(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	root := fakeTree(t, map[string]string{
		"20/stat":    fakeStat("20", "my app) x", "4194560"),
		"20/exe":     "->" + bin,
		"20/cmdline": "app\x00--flag=a b\x00",
		"20/cgroup":  "4:memory:/m\n2:cpu,cpuacct:/c\n0::/user.slice/x\n",
		// kernel thread: no exe, empty cmdline
		"21/stat": fakeStat("21", "kworker/0:1", "69238880"), "21/cmdline": "", "21/cgroup": "0::/\n",
		// zombie: no exe link and no other thread
		"22/stat": fakeStat("22", "dead", "4194564"), "22/task/22/": "/", "22/cmdline": "", "22/cgroup": "0::/\n",
		// exited leader whose other thread still runs
		"23/stat": fakeStat("23", "lead", "4194564"), "23/task/23/": "/", "23/task/24/exe": "->" + bin,
		"23/task/24/cmdline": "lead\x00-t\x00", "23/cmdline": "", "23/cgroup": "0::/\n",
		// broken stat
		"24/stat": "24 (x) S 1",
	})

	info, err := Read(root, 20)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(bin, &st); err != nil {
		t.Fatal(err)
	}
	want := Info{
		PID: 20, StartTime: 5555, Comm: "my app) x", ExePath: bin,
		ExeOpenPath: filepath.Join(root, "20", "exe"),
		ExeKey:      ExeKey{Dev: uint64(st.Dev), Ino: st.Ino},
		Cmdline:     []string{"app", "--flag=a b"},
		CgroupV2:    "/user.slice/x",
		CgroupV1:    map[string]string{"memory": "/m", "cpu": "/c", "cpuacct": "/c"},
	}
	if !reflect.DeepEqual(info, want) {
		t.Fatalf("Read =\n%+v\nwant\n%+v", info, want)
	}

	kt, err := Read(root, 21)
	if err != nil || kt.ExePath != "" || kt.ExeOpenPath != "" || kt.ExeKey != (ExeKey{}) || kt.Cmdline != nil {
		t.Fatalf("kernel thread: %+v, %v", kt, err)
	}
	if _, err := Read(root, 22); !errors.Is(err, ErrGone) {
		t.Fatalf("zombie: err = %v, want ErrGone", err)
	}
	lead, err := Read(root, 23)
	if err != nil || lead.ExePath != bin || lead.ExeOpenPath != filepath.Join(root, "23/task/24/exe") || lead.ExeKey != want.ExeKey ||
		!reflect.DeepEqual(lead.Cmdline, []string{"lead", "-t"}) {
		t.Fatalf("exited leader: %+v, %v", lead, err)
	}
	if _, err := Read(root, 24); err == nil || errors.Is(err, ErrGone) {
		t.Fatalf("broken stat: err = %v, want a parse error", err)
	}
	if _, err := Read(root, 99); !errors.Is(err, ErrGone) {
		t.Fatalf("missing pid: err = %v, want ErrGone", err)
	}
}
