package kernel

import (
	"errors"
	"strings"
	"testing"
)

func TestMissing(t *testing.T) {
	ok := func() error { return nil }
	denied := func() error { return errors.New("operation not permitted") }
	for _, tc := range []struct {
		name  string
		euid  int
		bpf   bool
		probe func() error
		want  string // substring; "" for nothing missing
	}{
		{"root with BPF", 0, true, ok, ""},
		{"root, no BPF needed", 0, false, denied, ""},
		{"not root", 1000, false, ok, "needs root, but euid is 1000"},
		{"not root, BPF", 1000, true, ok, "needs root, but euid is 1000"},
		{"root without BPF", 0, true, denied, "needs BPF, but this root process cannot use it: operation not permitted"},
	} {
		got := missing(tc.euid, tc.bpf, tc.probe)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if got != "" && !strings.Contains(got, "-short") {
			t.Errorf("%s: %q does not say how to leave kernel tests out", tc.name, got)
		}
	}
}

// TestShortSkips: under -short both helpers skip; without it, this test
// is itself a kernel test and must pass as root.
func TestShortSkips(t *testing.T) {
	for name, require := range map[string]func(testing.TB){"Require": Require, "RequireRoot": RequireRoot} {
		var sub *testing.T
		t.Run(name, func(t *testing.T) {
			sub = t
			require(t)
		})
		if sub.Skipped() != testing.Short() {
			t.Errorf("%s: skipped %v under -short=%v", name, sub.Skipped(), testing.Short())
		}
	}
}
