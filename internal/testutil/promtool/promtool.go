// Package promtool gives tests a real promtool (Prometheus's own checker of
// rules, configs and exposition text), built from the Go module proxy once
// per machine and cached in $WEFT_CACHE (default ~/.cache/weft) as
// promtool-<version>/promtool. The cold build takes several minutes.
package promtool

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// Version is the Go module version of github.com/prometheus/prometheus
// (v0.316.0 is Prometheus 3.x's promtool).
const Version = "0.316.0"

var build = sync.OnceValues(buildCached)

// Binary returns the path of promtool, building it on first use; a build
// failure fails the test.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := build()
	if err != nil {
		t.Fatalf("promtool: %v", err)
	}
	return bin
}

// Run runs promtool with args and stdin, and returns what it printed
// (stdout and stderr together).
func Run(t testing.TB, stdin []byte, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(Binary(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func cacheDir() (string, error) {
	if c := os.Getenv("WEFT_CACHE"); c != "" {
		return c, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "weft"), nil
}

func buildCached() (string, error) {
	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "promtool-"+Version)
	bin := filepath.Join(dir, "promtool")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// One build at a time across test processes; the loser finds it cached.
	lock, err := os.Create(dir + ".lock")
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	// Install into a temp dir inside the cache, then rename: a reader sees
	// either no binary or a complete one.
	tmp, err := os.MkdirTemp(dir, ".build")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", "-trimpath", "-ldflags=-s -w",
		"github.com/prometheus/prometheus/cmd/promtool@v"+Version)
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building promtool v%s: %w\n%s", Version, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "promtool"), bin); err != nil {
		return "", err
	}
	return bin, nil
}
