package inject

import (
	"fmt"
	"slices"
	"testing"
)

func TestParseProcTCP(t *testing.T) {
	text := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 20 4 30 10 -1
   3: garbage
`
	got := parseProcTCP(text)
	want := []tcpSock{{0x1f90, tcpListen, 1001}, {0x9c40, tcpEstablished, 1002}, {0x1f90, tcpEstablished, 1003}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestTrackedServerKeepsAcceptedSockets: tracking a server adds none of
// its accepted connections to the sockhash (sockops adds only connects).
func TestTrackedServerKeepsAcceptedSockets(t *testing.T) {
	eachHook(t, testTrackedServerKeepsAcceptedSockets)
}

func testTrackedServerKeepsAcceptedSockets(t *testing.T, h Hook) {
	inj := startInjector(t, h)
	addr, pid := startServerProc(t)
	c := dial(t, addr)
	c.roundTrip(t, head("GET", "/accepted"))
	inodes, err := SocketInodes(pid)
	if err != nil || len(inodes) != 0 {
		t.Errorf("outgoing connections of the server: %v %v", inodes, err)
	}
	if err := inj.Track(pid, nil); err != nil {
		t.Fatal(err)
	}
	if n := inj.SockhashLen(); n != 0 {
		t.Errorf("%d sockets in the sockhash", n)
	}
	c.roundTrip(t, head("GET", "/again"))
	if got := fmt.Sprint(inj.Counters()["iter_add"]); got != "0" {
		t.Errorf("iter_add %s", got)
	}
}
