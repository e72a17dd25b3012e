package goinspect

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// olderToolchain is a second Go release the fixture is built with, fetched
// by the go command through GOTOOLCHAIN, so tests cover more than the
// toolchain running them.
const olderToolchain = "go1.22.12"

// current is the toolchain running the tests (without " X:..." suffixes).
var current = goVersion(runtime.Version())

// variant is one way of building testdata/hello.
type variant struct {
	name     string
	flags    []string
	env      []string
	stripped bool
	pie      bool
	cgo      bool
	// currentOnly skips the older toolchain: with a cold build cache each
	// configuration costs a standard library compile (~50 s).
	currentOnly bool
	// sharesWith names the variant whose compiled packages this one reuses
	// (only the link differs); it is built after that one, not alongside,
	// since concurrent builds would compile the same packages twice.
	sharesWith string
}

var variants = []variant{
	{name: "default", cgo: true},
	{name: "strip", flags: []string{"-ldflags=-s -w"}, stripped: true, cgo: true, sharesWith: "default"},
	{name: "pie", flags: []string{"-buildmode=pie"}, pie: true, cgo: true},
	{name: "pie-strip", flags: []string{"-buildmode=pie", "-ldflags=-s -w"}, stripped: true, pie: true, cgo: true, sharesWith: "pie"},
	{name: "trimpath", flags: []string{"-trimpath"}, cgo: true},
	// External linking puts C start-up code before runtime.text, so the
	// stripped twin is where the pclntab's text base is easy to get wrong.
	{name: "ext", flags: []string{"-ldflags=-linkmode=external"}, cgo: true, sharesWith: "default"},
	{name: "ext-strip", flags: []string{"-ldflags=-linkmode=external -s -w"}, stripped: true, cgo: true, sharesWith: "default"},
	{name: "nocgo", env: []string{"CGO_ENABLED=0"}, currentOnly: true},
	// Uncompressed DWARF, which FuzzOpen can corrupt in ways zlib's
	// checksum would otherwise catch before debug/dwarf sees them.
	{name: "rawdwarf", flags: []string{"-ldflags=-compressdwarf=false"}, cgo: true, currentOnly: true, sharesWith: "default"},
}

// twins pairs each unstripped variant with its -s -w build: the linker lays
// out text identically, so functions must be found at the same addresses.
var twins = [][2]string{{"default", "strip"}, {"pie", "pie-strip"}, {"ext", "ext-strip"}}

type fixture struct {
	toolchain string
	variant
	path string
}

// fixtures maps "toolchain/variant" to a built binary.
var fixtures = map[string]fixture{}

func toolchains() []string { return []string{current, olderToolchain} }

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

// fixturesEnv names the fixture directory to the fuzz worker processes
// "go test -fuzz" starts (with the coordinator's environment), which would
// otherwise build every fixture again each time one starts.
const fixturesEnv = "GOINSPECT_TEST_FIXTURES"

func run(m *testing.M) int {
	if dir := os.Getenv(fixturesEnv); dir != "" && flag.Lookup("test.fuzzworker").Value.String() == "true" {
		listFixtures(dir) // built, and kept while it runs, by the coordinator
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "goinspect-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	if err := buildFixtures(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if testing.Verbose() {
		fmt.Printf("built %d fixtures in %v\n", len(fixtures), time.Since(start).Round(time.Millisecond))
	}
	os.Setenv(fixturesEnv, dir)
	return m.Run()
}

// listFixtures fills fixtures with the binaries in dir and returns the
// order to build them in: first those that share no compiled packages.
func listFixtures(dir string) (first, then []fixture) {
	for _, tc := range toolchains() {
		for _, v := range variants {
			if v.currentOnly && tc != current {
				continue
			}
			fx := fixture{tc, v, filepath.Join(dir, tc+"-"+v.name)}
			fixtures[tc+"/"+v.name] = fx
			if v.sharesWith == "" {
				first = append(first, fx)
			} else {
				then = append(then, fx)
			}
		}
	}
	return first, then
}

func buildFixtures(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	first, then := listFixtures(dir)
	for _, batch := range [][]fixture{first, then} {
		if err := buildAll(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// buildAll builds fixtures NumCPU at a time and returns the first error.
func buildAll(ctx context.Context, fxs []fixture) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, runtime.NumCPU())
	)
	for _, fx := range fxs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := buildGo(ctx, "testdata/hello", fx.toolchain, fx.path, fx.flags, fx.env); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// open opens a fixture and closes it when the test ends.
func open(t *testing.T, key string) *Binary {
	t.Helper()
	fx, ok := fixtures[key]
	if !ok {
		t.Fatalf("no fixture %s", key)
	}
	b, err := Open(fx.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
