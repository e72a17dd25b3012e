package collector

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// promtoolVersion is the Go module version of github.com/prometheus/prometheus
// (v0.316.0 is Prometheus 3.x's promtool).
const promtoolVersion = "0.316.0"

// promtool returns a promtool binary, built from the module proxy once per
// machine and cached in $WEFT_CACHE (default ~/.cache/weft) as
// promtool-<version>/promtool. The cold build takes several minutes.
func promtool(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("WEFT_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "weft")
	}
	dir := filepath.Join(cache, "promtool-"+promtoolVersion)
	bin := filepath.Join(dir, "promtool")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// One build at a time across test processes; the loser finds it cached.
	lock, err := os.Create(dir + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	// Install into a temp dir inside the cache, then rename: a reader sees
	// either no binary or a complete one.
	tmp, err := os.MkdirTemp(dir, ".build")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	t.Logf("building promtool v%s (several minutes the first time)", promtoolVersion)
	cmd := exec.Command("go", "install", "-trimpath", "-ldflags=-s -w",
		"github.com/prometheus/prometheus/cmd/promtool@v"+promtoolVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building promtool: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "promtool"), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestAlertRules checks deploy/prometheus/alerts.yaml with promtool: the
// rules parse and their expressions are valid PromQL (check rules), and on
// synthetic series each alert fires for the case it is written for and not
// for the healthy neighbour (test rules, testdata/alerts_test.yaml).
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	rules := filepath.Join(repoRoot(t), "deploy", "prometheus", "alerts.yaml")

	var out bytes.Buffer
	check := exec.Command(bin, "check", "rules", "--lint=all", "--lint-fatal", rules)
	check.Stdout, check.Stderr = &out, &out
	if err := check.Run(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "SUCCESS") {
		t.Fatalf("promtool check rules did not report SUCCESS:\n%s", out.String())
	}
	t.Logf("promtool check rules: %s", strings.TrimSpace(out.String()))

	// promtool resolves rule_files relative to the test file: put both in
	// one directory.
	dir := t.TempDir()
	for src, dst := range map[string]string{
		rules: "alerts.yaml",
		filepath.Join("testdata", "alerts_test.yaml"): "alerts_test.yaml",
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	unit := exec.Command(bin, "test", "rules", filepath.Join(dir, "alerts_test.yaml"))
	unit.Stdout, unit.Stderr = &out, &out
	if err := unit.Run(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out.String())
	}
}
