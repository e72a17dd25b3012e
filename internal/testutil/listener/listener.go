// Package listener runs the test servers of weft's tests: programs that
// print "LISTEN <port>" once they accept connections on 127.0.0.1.
package listener

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Server is a running test server.
type Server struct {
	Cmd  *exec.Cmd
	PID  int
	Port string
	Addr string // 127.0.0.1:Port
}

// Start runs argv, waits for its LISTEN line and kills it when the test
// ends. Its stderr goes to the test's.
func Start(tb testing.TB, argv ...string) *Server {
	tb.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", argv[0], err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		tb.Fatalf("%s printed no LISTEN line: %v", argv[0], err)
	}
	port := strings.TrimSpace(strings.TrimPrefix(line, "LISTEN "))
	return &Server{Cmd: cmd, PID: cmd.Process.Pid, Port: port, Addr: "127.0.0.1:" + port}
}
