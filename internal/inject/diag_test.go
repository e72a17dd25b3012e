package inject

import (
	"net"
	"os"
	"strconv"
	"testing"
)

// sock_diag lists what /proc/net/tcp lists, one request for both
// families, and Connections sorts a real client's socket as outgoing.
func TestDiagMatchesProcNet(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	defer ln6.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	want := map[uint64]uint8{}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range parseProcTCP(string(b)) {
			if s.state == tcpEstablished || s.state == tcpListen {
				want[s.inode] = s.state
			}
		}
	}
	for _, state := range []uint8{tcpEstablished, tcpListen} {
		got, err := diagDump(1 << state)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[uint64]bool{}
		for _, s := range got {
			seen[s.inode] = true
		}
		for ino, st := range want {
			// Sockets come and go on a shared machine: only ours must match.
			if st == state && !seen[ino] && ours(t, ino) {
				t.Errorf("state %d: inode %d in /proc/net/tcp, not in sock_diag", state, ino)
			}
		}
	}
	out, in, err := Connections(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || len(in) != 1 {
		t.Fatalf("outgoing %v, accepted %v: want one each", out, in)
	}
}

func ours(t *testing.T, ino uint64) bool {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l == "socket:["+itoa(ino)+"]" {
			return true
		}
	}
	return false
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// What Sockets remembers of listeners hides no connection made after.
func TestSocketsRemembersOnlyListeners(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := NewSockets()
	for range 2 { // the second answer comes from what the first learnt
		out, in, err := s.Connections(os.Getpid())
		if err != nil || len(out)+len(in) != 0 {
			t.Fatalf("listener only: outgoing %v, accepted %v, %v", out, in, err)
		}
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	out, in, err := s.Connections(os.Getpid())
	if err != nil || len(out) != 1 || len(in) != 1 {
		t.Fatalf("after a connection: outgoing %v, accepted %v, %v: want one each", out, in, err)
	}
}
