package procs

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// helperEnv makes the test binary act as a small TCP listener: it listens
// on all addresses (a dual-stack tcp6 socket), prints the port and waits
// for stdin to close.
const helperEnv = "WEFT_PROCS_TEST_LISTENER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// start runs cmd and stops it when the test ends.
func start(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func startSleep(t *testing.T, bin string) *exec.Cmd {
	return start(t, exec.Command(bin, "30"))
}

// startListener runs the test binary as a listener (see helperEnv) with the
// given clone flags and returns it with its port.
func startListener(t *testing.T, cloneflags uintptr) (*exec.Cmd, uint16) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	start(t, cmd)
	t.Cleanup(func() { stdin.Close() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("listener helper: %v", err)
	}
	port, err := strconv.ParseUint(strings.TrimSpace(line), 10, 16)
	if err != nil {
		t.Fatalf("listener helper printed %q", line)
	}
	return cmd, uint16(port)
}
