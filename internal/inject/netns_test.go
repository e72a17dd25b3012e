package inject

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestExistingConnectionInAnotherNetns: a server and a client in their
// own network namespace (as in a pod); the client connected before Track.
// The tcp iterator walks the namespace of the thread that opens it, so
// Track enters the client's namespace to run it.
func TestExistingConnectionInAnotherNetns(t *testing.T) {
	eachHook(t, testExistingConnectionInAnotherNetns)
}

func testExistingConnectionInAnotherNetns(t *testing.T, h Hook) {
	inj := startInjector(t, h)
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("needs %s (util-linux, iproute2; scripts/deps.sh installs them): %v", tool, err)
		}
	}
	srv := exec.Command("unshare", "--net", "sh", "-c", "ip link set lo up && exec "+echoBin)
	out, _ := srv.StdoutPipe()
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("server in a new netns: %v", err)
	}
	port := strings.TrimSpace(strings.TrimPrefix(line, "LISTEN "))
	// unshare execs sh, which execs the server: same pid throughout.
	ns := fmt.Sprintf("/proc/%d/ns/net", srv.Process.Pid)
	if same, err := sameNetns(srv.Process.Pid); err != nil || same {
		t.Fatalf("server not in its own netns (%v)", err)
	}
	cl := startClientIn(t, ns, "127.0.0.1:"+port)
	cl.get(t, "warm")
	if err := inj.Track(cl.pid, nil); err != nil {
		t.Fatal(err)
	}
	if !inj.SockhashHas(cl.cookie) {
		t.Fatal("the client's socket is not in the sockhash after Track")
	}
	x := newIDs()
	setCtx(t, inj, cl.cookie, x)
	if e := cl.get(t, "netns"); len(e.Traceparent) != 1 || e.Traceparent[0] != x.header() {
		t.Errorf("server saw %q, want %s", e.Traceparent, x.header())
	}
	if same, _ := sameNetns(os.Getpid()); !same {
		t.Error("the test's thread was left in another netns")
	}
}

// startClientIn starts an echoserver -client inside the network
// namespace at nsPath.
func startClientIn(t *testing.T, nsPath, addr string) *client {
	t.Helper()
	return startClientCmd(t, exec.Command("nsenter", "--net="+nsPath, echoBin, "-client", addr))
}
