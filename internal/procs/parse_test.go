package procs

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	line := "42 (my (odd) prog) S 1 42 42 0 -1 4194560 97 0 0 0 0 0 0 0 20 0 1 0 987654 3133440 410 18446744073709551615 0 0\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.comm != "my (odd) prog" || st.startTime != 987654 || st.kthread() {
		t.Fatalf("got %+v", st)
	}
	kt := "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 20 0 0"
	if st, err := parseStat([]byte(kt)); err != nil || !st.kthread() || st.startTime != 20 {
		t.Fatalf("kthread: %+v, %v", st, err)
	}
	for _, bad := range []string{"", "42 prog S 1", "42 (prog) S 1 2 3", "42 (prog", "42 (p) S 1 42 42 0 -1 x 0 0 0 0 0 0 0 0 20 0 1 0 5 1 1"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) gave no error", bad)
		}
	}
}

func TestSplitCmdline(t *testing.T) {
	tests := map[string][]string{
		"":                 nil,
		"\x00":             nil,
		"sleep\x0030\x00":  {"sleep", "30"},
		"a\x00\x00b\x00":   {"a", "", "b"},
		"nginx: worker ps": {"nginx: worker ps"},
	}
	for in, want := range tests {
		if got := splitCmdline([]byte(in)); !reflect.DeepEqual(got, want) {
			t.Errorf("splitCmdline(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCgroup(t *testing.T) {
	hybrid := `12:name=systemd:/system.slice/app.service
11:cpu,cpuacct:/kubepods/pod1:odd
4:memory:/process_api/7af6
garbage line
3::
0::/system.slice/app.service
`
	v2, v1 := parseCgroup([]byte(hybrid))
	if v2 != "/system.slice/app.service" {
		t.Errorf("v2 = %q", v2)
	}
	want := map[string]string{
		"name=systemd": "/system.slice/app.service",
		"cpu":          "/kubepods/pod1:odd",
		"cpuacct":      "/kubepods/pod1:odd",
		"memory":       "/process_api/7af6",
	}
	if !reflect.DeepEqual(v1, want) {
		t.Errorf("v1 = %v, want %v", v1, want)
	}
	if v2, v1 := parseCgroup([]byte("0::/\n")); v2 != "/" || v1 != nil {
		t.Errorf("v2-only: %q %v", v2, v1)
	}
	if v2, v1 := parseCgroup([]byte("1:cpu:/a\n")); v2 != "" || len(v1) != 1 {
		t.Errorf("v1-only: %q %v", v2, v1)
	}
}

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func TestParseTCP(t *testing.T) {
	v4 := tcpHeader +
		"   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0000000000000000 100 0 0 10 0\n" +
		"   1: 0100007F:0016 00000000:0000 0a 00000000:00000000 00:00000000 00000000     0        0 300 1 0000000000000000 100 0 0 10 0\n" +
		"   2: 020200C0:9BB4 507100CB:01BB 01 00000000:00000000 03:0000101A 00000000     0        0 102 3 0000000000000000\n" +
		"   3: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000\n" +
		"   4: 00000000 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 400\n" +
		"   5: 0000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 401\n" +
		"   6: 0000000G:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 402\n" +
		"   7: 00000000:ZZZZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 403\n" +
		"   8: 00000000:0000 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 404\n" +
		"   9: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 -1\n" +
		"  10: 00000000:0050 00000000:0000 0A\n" +
		"0A 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 405\n" +
		"\n" + strings.Repeat("x", 5000) + "\n" +
		"  11: 00000000:0050 00000000:0000 XX 00000000:00000000 00:00000000 00000000 0 0 406\n"
	v6 := tcpHeader +
		"   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 101 1 0000000000000000 100 0 0 10 0\n" +
		"   1: 0000000000000000FFFF00000100007F:1538 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 201 1 0000000000000000 100 0 0 10 0\n" +
		"   2: 00000000000000000000000001000000:2382 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 200 1 0000000000000000 100 0 0 10 0\n" +
		"   3: 00000000000000000000000001000000:2383 00000000000000000000000001000000:A000 01 00000000:00000000 00:00000000 00000000     0        0 202 1 0000000000000000 100 0 0 10 0\n" +
		"   4: 000000000000000000000000010000:2384 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 203\n"
	got := map[uint64]uint16{}
	if err := parseTCP(strings.NewReader(v4), got); err != nil {
		t.Fatal(err)
	}
	if err := parseTCP(strings.NewReader(v6), got); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]uint16{100: 8080, 300: 22, 101: 8080, 201: 5432, 200: 9090}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestSocketInode(t *testing.T) {
	tests := map[string]uint64{"socket:[12345]": 12345, "socket:[]": 0, "pipe:[5]": 0, "/dev/null": 0, "socket:[9": 0, "socket:[-1]": 0}
	for in, want := range tests {
		got, ok := socketInode(in)
		if got != want || ok != (want != 0) {
			t.Errorf("socketInode(%q) = %d, %v", in, got, ok)
		}
	}
}
