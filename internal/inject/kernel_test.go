package inject

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCgroup2Root finds this host's cgroup v2 hierarchy from the cgroup
// mount point (hybrid: its "unified" folder), from the v2 mount itself, and
// says clearly when a folder holds none.
func TestCgroup2Root(t *testing.T) {
	var want string
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			want = p
			break
		}
	}
	if want == "" {
		t.Fatal("this host has no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	}
	for _, in := range []string{"/sys/fs/cgroup", want} {
		got, err := Cgroup2Root(in)
		if err != nil || got != want {
			t.Errorf("Cgroup2Root(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	empty := t.TempDir()
	os.Mkdir(filepath.Join(empty, "unified"), 0o755)
	if _, err := Cgroup2Root(empty); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Cgroup2Root(plain folder) = %v, want ErrUnsupported", err)
	}
}
