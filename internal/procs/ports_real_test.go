package procs

import (
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/weft-dev/weft/internal/testutil/kernel"
)

func listen(t *testing.T, addr string) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func netns(t *testing.T, pid int) string {
	t.Helper()
	ns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestListeningPortsReal(t *testing.T) {
	p4 := listen(t, "127.0.0.1:0")
	child, pc := startListener(t, 0) // dual-stack socket: a tcp6 entry
	sleeper := startSleep(t, sleepPath(t))

	got, err := ListeningPorts(DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	if self := got[os.Getpid()]; !slices.Contains(self, p4) {
		t.Errorf("own ports %v lack %d", self, p4)
	}
	if c := got[child.Process.Pid]; !slices.Equal(c, []uint16{pc}) {
		t.Errorf("child ports %v, want [%d]", c, pc)
	}
	if s, ok := got[sleeper.Process.Pid]; ok {
		t.Errorf("sleep listens on %v", s)
	}
}

func TestListeningPortsIPv6Real(t *testing.T) {
	p6 := listen(t, "[::1]:0")
	got, err := ListeningPorts(DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	if self := got[os.Getpid()]; !slices.Contains(self, p6) {
		t.Errorf("own ports %v lack %d", self, p6)
	}
}

func TestListeningPortsOtherNetnsReal(t *testing.T) {
	kernel.RequireRoot(t) // CLONE_NEWNET
	child, port := startListener(t, syscall.CLONE_NEWNET)
	if netns(t, child.Process.Pid) == netns(t, os.Getpid()) {
		t.Fatal("child is in our network namespace")
	}
	// The port is only in the child's namespace table, not in ours.
	got, err := ListeningPorts(DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	if c := got[child.Process.Pid]; !slices.Contains(c, port) {
		t.Errorf("child in its own netns: ports %v lack %d", c, port)
	}
}
