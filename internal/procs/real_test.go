package procs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func sleepPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("no sleep binary (coreutils): %v", err)
	}
	if p, err = filepath.EvalSymlinks(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRead(t *testing.T, pid int) Info {
	t.Helper()
	info, err := Read(DefaultRoot, pid)
	if err != nil {
		t.Fatalf("Read(%d): %v", pid, err)
	}
	return info
}

// cgroupLines reads /proc/PID/cgroup independently of parseCgroup.
func cgroupLines(t *testing.T, pid int) (v2 string, v1 []string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			v2 = p
		} else {
			v1 = append(v1, l)
		}
	}
	return v2, v1
}

func TestReadReal(t *testing.T) {
	bin := sleepPath(t)
	a, b := startSleep(t, bin), startSleep(t, bin)
	ia, ib := mustRead(t, a.Process.Pid), mustRead(t, b.Process.Pid)
	self := mustRead(t, os.Getpid())

	if ia.ExeKey != ib.ExeKey || ia.ExeKey == (ExeKey{}) {
		t.Errorf("two sleeps: ExeKey %v vs %v", ia.ExeKey, ib.ExeKey)
	}
	if self.ExeKey == ia.ExeKey {
		t.Errorf("test binary shares ExeKey %v with sleep", self.ExeKey)
	}
	if ia.PID != a.Process.Pid || ia.Comm != "sleep" || ia.ExePath != bin || ia.Deleted ||
		!reflect.DeepEqual(ia.Cmdline, []string{bin, "30"}) {
		t.Errorf("sleep: %+v", ia)
	}
	if ia.StartTime == 0 || ia.StartTime < self.StartTime {
		t.Errorf("StartTime: sleep %d, self %d", ia.StartTime, self.StartTime)
	}
	if want := "/proc/" + strconv.Itoa(ia.PID) + "/exe"; ia.ExeOpenPath != want {
		t.Errorf("ExeOpenPath = %q, want %q", ia.ExeOpenPath, want)
	}
	if exe, _ := os.Executable(); self.ExePath != exe {
		t.Errorf("self ExePath = %q, want %q", self.ExePath, exe)
	}

	v2, v1 := cgroupLines(t, os.Getpid())
	if self.CgroupV2 != v2 || ia.CgroupV2 != v2 {
		t.Errorf("CgroupV2: self %q, sleep %q, want %q", self.CgroupV2, ia.CgroupV2, v2)
	}
	if len(v1) > 0 != (self.CgroupV1 != nil) {
		t.Errorf("CgroupV1 = %v for lines %q", self.CgroupV1, v1)
	}
	for _, l := range v1 { // "ID:ctrl,ctrl:path"
		parts := strings.SplitN(l, ":", 3)
		for _, c := range strings.Split(parts[1], ",") {
			if got := self.CgroupV1[c]; got != parts[2] {
				t.Errorf("CgroupV1[%q] = %q, want %q", c, got, parts[2])
			}
		}
	}
	t.Logf("cgroup v2 %q, v1 %v", self.CgroupV2, self.CgroupV1)
}

func TestReadKernelThread(t *testing.T) {
	kt, err := Read(DefaultRoot, 2) // kthreadd, unless in a PID namespace
	if err != nil || kt.Comm != "kthreadd" {
		t.Skipf("pid 2 is not kthreadd here: %+v, %v", kt, err)
	}
	if kt.ExePath != "" || kt.ExeKey != (ExeKey{}) || kt.Cmdline != nil {
		t.Errorf("kthreadd: %+v", kt)
	}
}

func TestReadGone(t *testing.T) {
	cmd := exec.Command(sleepPath(t), "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Kill()
	cmd.Wait()
	_, err := Read(DefaultRoot, pid)
	if !errors.Is(err, ErrGone) {
		t.Fatalf("Read of reaped pid %d: %v, want ErrGone", pid, err)
	}
}

func TestReadZombie(t *testing.T) {
	cmd := exec.Command(sleepPath(t), "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	cmd.Process.Kill()
	// Wait for the exit without reaping, so the process stays a zombie.
	var si unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &si, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(DefaultRoot, pid); !errors.Is(err, ErrGone) {
		t.Fatalf("Read of zombie %d: %v, want ErrGone", pid, err)
	}
}

func TestReadDeletedExe(t *testing.T) {
	copyPath := filepath.Join(t.TempDir(), "mysleep")
	data, err := os.ReadFile(sleepPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, data, 0o755); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(copyPath, &st); err != nil {
		t.Fatal(err)
	}
	cmd := startSleep(t, copyPath)
	if err := os.Remove(copyPath); err != nil {
		t.Fatal(err)
	}
	info := mustRead(t, cmd.Process.Pid)
	if !info.Deleted || info.ExePath != copyPath+" (deleted)" {
		t.Errorf("ExePath %q, Deleted %v", info.ExePath, info.Deleted)
	}
	if info.ExeKey != (ExeKey{Dev: uint64(st.Dev), Ino: st.Ino}) {
		t.Errorf("ExeKey %v, want dev %d ino %d", info.ExeKey, st.Dev, st.Ino)
	}
	f, err := os.Open(info.ExeOpenPath)
	if err != nil {
		t.Fatalf("open %s: %v", info.ExeOpenPath, err)
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := f.Read(head); err != nil || string(head) != "\x7fELF" {
		t.Errorf("deleted exe reads %q, %v", head, err)
	}
}

func TestListReal(t *testing.T) {
	pids, err := List(DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, os.Getpid()) || !slices.IsSorted(pids) {
		t.Fatalf("List has %d pids, self %d missing or unsorted", len(pids), os.Getpid())
	}
}
