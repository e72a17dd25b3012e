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

// Measured is what a probe build's DWARF shows of one table key
// ("runtime.g.goid", or "<struct>.<size>" for a struct's size).
type Measured struct {
	// Module and Version name the module defining the struct as the table
	// keys it: StdModule and the Go version, or the dependency's path and
	// version from the probe's build info.
	Module, Version string
	Offset          uint64
	// Found is false when the DWARF lacks the field; NoStruct then says
	// it lacks the whole struct, which is either a type this version does
	// not have or one the probe does not use (so the linker dropped it):
	// the caller must tell which.
	Found, NoStruct bool
}

// Measure builds the probe program in probeDir with the Go toolchain named
// (e.g. "go1.22.12", fetched by the go command through GOTOOLCHAIN; empty:
// the go command's choice) and extra go build flags (e.g. "-modfile=..."),
// and reads keys from its DWARF. It returns the probe's Go version and
// module versions (from its build info) and what it found for each key.
func Measure(ctx context.Context, probeDir, toolchain string, flags, keys []string) (goVersion string, modules map[string]string, got map[string]Measured, err error) {
	tmp, err := os.MkdirTemp("", "offsetprobe-")
	if err != nil {
		return "", nil, nil, err
	}
	defer os.RemoveAll(tmp)
	exe := filepath.Join(tmp, "probe")
	if err := buildGo(ctx, probeDir, toolchain, exe, flags, []string{"CGO_ENABLED=0"}); err != nil {
		return "", nil, nil, err
	}
	b, err := Open(exe)
	if err != nil {
		return "", nil, nil, err
	}
	defer b.Close()
	if toolchain != "" && b.GoVersion != toolchain {
		return "", nil, nil, fmt.Errorf("probe built with GOTOOLCHAIN=%s reports %s", toolchain, b.GoVersion)
	}
	if !b.HasDWARF {
		return "", nil, nil, fmt.Errorf("probe built by %s has no DWARF", b.GoVersion)
	}
	got = map[string]Measured{}
	for _, key := range keys {
		i := strings.LastIndex(key, ".")
		if i < 0 {
			return "", nil, nil, fmt.Errorf("field %q is not <struct>.<field>", key)
		}
		structName, field := key[:i], key[i+1:]
		var m Measured
		if m.Module, m.Version, err = b.moduleOf(structName); err != nil {
			return "", nil, nil, err
		}
		var ok bool
		if field == SizeField {
			m.Offset, ok, err = b.dwarfStructSize(structName)
		} else {
			m.Offset, ok, err = b.dwarfFieldOffset(structName, field)
		}
		switch {
		case errors.Is(err, errNoField):
		case err != nil:
			return "", nil, nil, fmt.Errorf("%s: %w", b.GoVersion, err)
		case ok:
			m.Found = true
		default:
			m.NoStruct = true
		}
		got[key] = m
	}
	return b.GoVersion, b.Modules, got, nil
}

// MeasureStd builds the probe program in probeDir with the Go toolchain
// named and reads the offsets of standard library fields ("runtime.g.goid")
// from its DWARF. Fields the toolchain's library lacks are left out of the
// result; a struct missing from the DWARF is an error (the probe must use
// it). cmd/offsetgen runs it for every table version; a test runs it for one.
func MeasureStd(ctx context.Context, probeDir, toolchain string, fields []string) (map[string]uint64, error) {
	_, _, got, err := Measure(ctx, probeDir, toolchain, nil, fields)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for key, m := range got {
		if m.Module != StdModule {
			return nil, fmt.Errorf("%s is not in the standard library", key)
		}
		if m.NoStruct {
			return nil, fmt.Errorf("%s: struct %s not in the probe's DWARF", toolchain, key[:strings.LastIndex(key, ".")])
		}
		if m.Found {
			out[key] = m.Offset
		}
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
