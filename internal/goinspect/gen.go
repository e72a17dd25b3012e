package goinspect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// MeasureStd builds the probe program in probeDir with the Go toolchain
// named (e.g. "go1.22.12", fetched by the go command through GOTOOLCHAIN)
// and reads the offsets of fields ("runtime.g.goid") from its DWARF.
// Fields the toolchain's runtime lacks are left out of the result.
// cmd/offsetgen runs it for every table version; a test runs it for one.
func MeasureStd(ctx context.Context, probeDir, toolchain string, fields []string) (map[string]uint64, error) {
	tmp, err := os.MkdirTemp("", "offsetprobe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	exe := filepath.Join(tmp, "probe")
	if err := buildGo(ctx, probeDir, toolchain, exe, nil, []string{"CGO_ENABLED=0"}); err != nil {
		return nil, err
	}
	b, err := Open(exe)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if b.GoVersion != toolchain {
		return nil, fmt.Errorf("probe built with GOTOOLCHAIN=%s reports %s", toolchain, b.GoVersion)
	}
	if !b.HasDWARF {
		return nil, fmt.Errorf("probe built by %s has no DWARF", toolchain)
	}
	out := map[string]uint64{}
	for _, key := range fields {
		i := strings.LastIndex(key, ".")
		if i < 0 {
			return nil, fmt.Errorf("field %q is not <struct>.<field>", key)
		}
		off, ok, err := b.dwarfFieldOffset(key[:i], key[i+1:])
		if err == nil && !ok {
			err = fmt.Errorf("struct %s not in the probe's DWARF", key[:i])
		}
		if errors.Is(err, errNoField) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", toolchain, err)
		}
		out[key] = off
	}
	return out, nil
}

// buildGo runs "go build [flags] -o out ." in dir with GOTOOLCHAIN=toolchain
// (empty: the go command's choice) and extra environment entries.
func buildGo(ctx context.Context, dir, toolchain, out string, flags, env []string) error {
	args := append([]string{"build", "-buildvcs=false", "-o", out}, flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if toolchain != "" {
		cmd.Env = append(cmd.Env, "GOTOOLCHAIN="+toolchain)
	}
	cmd.Env = append(cmd.Env, env...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("GOTOOLCHAIN=%s go %s . in %s: %w\n%s", toolchain, strings.Join(args, " "), dir, err, msg)
	}
	return nil
}
