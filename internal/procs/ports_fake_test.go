package procs

import (
	"reflect"
	"testing"
)

func tcpLine(addr, port, state, inode string) string {
	return "   0: " + addr + ":" + port + " 00000000:0000 " + state +
		" 00000000:00000000 00:00000000 00000000     0        0 " + inode + " 1 0000000000000000 100 0 0 10 0\n"
}

const (
	any4 = "00000000"
	any6 = "00000000000000000000000000000000"
)

func TestListeningPortsFake(t *testing.T) {
	root := fakeTree(t, map[string]string{
		// namespace 1, read through pid 10
		"10/ns/net": "->net:[1]",
		"10/net/tcp": tcpHeader + tcpLine(any4, "1F90", "0A", "100") +
			tcpLine("0100007F", "0050", "01", "102") + "   1: garbage\n",
		"10/net/tcp6": tcpHeader + tcpLine(any6, "1F90", "0A", "101"),
		"10/fd/0":     "->/dev/null", "10/fd/3": "->socket:[100]", "10/fd/4": "->socket:[101]",
		"10/fd/5": "->pipe:[7]", "10/fd/6": "->socket:[102]",
		// same namespace: its table must not be read again, so socket 110
		// (which only this copy lists) is not found
		"11/ns/net": "->net:[1]", "11/fd/3": "->socket:[100]", "11/fd/4": "->socket:[110]",
		"11/net/tcp": tcpHeader + tcpLine(any4, "0457", "0A", "110"),
		// namespace 2; also holds a socket of namespace 1
		"12/ns/net": "->net:[2]", "12/net/tcp": tcpHeader,
		"12/net/tcp6": tcpHeader + tcpLine(any6, "2382", "0A", "200") + tcpLine(any6, "2383", "01", "202"),
		"12/fd/7":     "->socket:[200]", "12/fd/8": "->socket:[100]", "12/fd/9": "->socket:[202]",
		// namespace 3 without IPv6 (no tcp6; the process is alive)
		"13/ns/net": "->net:[3]", "13/stat": fakeStat("13", "v4only", "0"),
		"13/net/tcp": tcpHeader + tcpLine("0100007F", "0016", "0A", "300"), "13/fd/3": "->socket:[300]",
		// no sockets at all, and a pid with nothing readable
		"14/ns/net": "->net:[1]", "14/fd/": "/",
		"15/": "/",
		// exited leader: empty fd table, but a live thread holds the socket
		"16/ns/net": "->net:[1]", "16/fd/": "/", "16/task/16/fd/": "/", "16/task/17/fd/9": "->socket:[100]",
	})
	got, err := ListeningPorts(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]uint16{10: {8080}, 11: {8080}, 12: {8080, 9090}, 13: {22}, 16: {8080}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestListeningPortsFakeErrors(t *testing.T) {
	if _, err := ListeningPorts(t.TempDir() + "/missing"); err == nil {
		t.Error("missing root gave no error")
	}
	// tcp is a directory: unreadable for a reason other than a vanished process.
	root := fakeTree(t, map[string]string{"5/ns/net": "->net:[1]", "5/net/tcp/": "/", "5/fd/3": "->socket:[1]"})
	if _, err := ListeningPorts(root); err == nil {
		t.Error("unreadable tcp table gave no error")
	}
	// Only vanished processes: no error, nothing found.
	root = fakeTree(t, map[string]string{"6/ns/net": "->net:[1]", "6/fd/3": "->socket:[1]"})
	if got, err := ListeningPorts(root); err != nil || len(got) != 0 {
		t.Errorf("got %v, %v", got, err)
	}
}
