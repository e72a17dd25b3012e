// Command offsetgen regenerates internal/goinspect/offsets.json, so weft can
// probe stripped binaries. It builds testdata/offsetprobe with each Go
// toolchain below (the go command fetches them through GOTOOLCHAIN) and
// records the standard library's struct field offsets its DWARF shows, keyed
// by Go version; and it builds testdata/offsetprobe-grpc against each grpc-go
// release below and records grpc's fields keyed by the grpc version and
// x/net's keyed by the x/net version that build linked.
//
//	go run ./cmd/offsetgen -out internal/goinspect/offsets.json
//	go run ./cmd/offsetgen -check internal/goinspect/offsets.json
//
// Each grpc build uses its own modfile, go.<build>.mod beside the probe's
// go.mod (and its go.sum twin), committed so builds are reproducible and
// work from the module cache alone. -out writes the ones missing, resolving
// the module graph as go mod tidy does for a program requiring only that
// grpc release (so x/net is what that release asks for); -check requires
// them all.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weft-dev/weft/internal/goinspect"
)

// toolchains are the Go releases measured: the newest patch of each
// supported minor release that the module proxy serves (check with
// GOTOOLCHAIN=go1.N.P go version). Minor releases are where layouts change.
var toolchains = []string{
	"go1.21.13",
	"go1.22.12",
	"go1.23.12",
	"go1.24.13",
	"go1.25.14",
	"go1.26.8",
}

// fields are the struct fields the eBPF programs read.
var fields = []string{
	"runtime.g.goid",       // goroutine id: the key for per-goroutine span state
	"runtime.g.parentGoid", // goroutine that started this one: context across "go" statements
	"runtime.g.m",          // the g's M, to reach runtime.m
	"runtime.m.curg",       // the user goroutine running on an M (g0 and gsignal are not it)
	// The Go client probe follows a persistConn to its socket descriptor.
	"net/http.persistConn.conn",     // net.Conn interface: (itab, *net.TCPConn)
	"net/http.persistConn.tlsState", // non-nil on TLS connections, which are skipped
	"net.conn.fd",                   // *netFD, in the conn TCPConn embeds
	"net.netFD.pfd",                 // internal/poll.FD
	"internal/poll.FD.Sysfd",        // the descriptor
	// ... and from the call's request to its context (a gRPC handler's
	// calls find their server stream through it).
	"net/http.transportRequest.Request",
	"net/http.Request.ctx",
	"net/http.http2clientStream.ID", // its HTTP/2 client's stream, with the request
	// The Go TLS source follows a *tls.Conn to its socket the same way.
	"crypto/tls.Conn.conn", // net.Conn interface: (itab, *net.TCPConn)
}

// moduleToolchain builds every module probe. A dependency's struct layouts
// follow its own source, not the toolchain building it (sizes of the
// standard library types inside them have not changed across the
// toolchains above: -module-toolchain go1.22.12 -grpc v1.50.0,...,v1.66.2
// and go1.25.14 with the releases from v1.70.0 give the same table), so one
// toolchain serves all; it must compile every release measured.
var moduleToolchain = "go1.26.8"

// grpcVersions are the grpc-go releases measured: the first and the newest
// patch of each minor release from v1.50, so every release between two
// measured ones is answered when they agree (layouts change at minor
// releases).
var grpcVersions = []string{
	"v1.50.0", "v1.50.1", "v1.51.0", "v1.52.0", "v1.52.3", "v1.53.0",
	"v1.54.0", "v1.54.1", "v1.55.0", "v1.55.1", "v1.56.0", "v1.56.3",
	"v1.57.0", "v1.57.2", "v1.58.0", "v1.58.3", "v1.59.0", "v1.60.0",
	"v1.60.1", "v1.61.0", "v1.61.1", "v1.62.0", "v1.62.1", "v1.63.0",
	"v1.63.2", "v1.64.0", "v1.64.1", "v1.65.0", "v1.65.1", "v1.66.0",
	"v1.66.2", "v1.67.0", "v1.67.3", "v1.68.0", "v1.68.1", "v1.69.0",
	"v1.69.4", "v1.70.0", "v1.71.0", "v1.71.1", "v1.72.0", "v1.72.2",
	"v1.73.0", "v1.74.2", "v1.74.3", "v1.75.0", "v1.75.1", "v1.76.0",
	"v1.77.0", "v1.78.0", "v1.79.0", "v1.79.3", "v1.80.0", "v1.81.0",
	"v1.81.1", "v1.82.0", "v1.82.1", "v1.83.0", "v1.83.2", "v1.84.0",
	"v1.85.0",
}

// xnetVersions are x/net releases newer than any grpc above asks for,
// each built with the newest grpc: programs' other dependencies often
// raise x/net past grpc's requirement, and the table answers nothing past
// its newest version.
var xnetVersions = []string{"v0.62.0"}

// grpcFields are the grpc and x/net fields internal/probes/gogrpc reads;
// "<struct>.<size>" (goinspect.SizeField) is a struct's size.
var grpcFields = []string{
	"google.golang.org/grpc/internal/transport.Stream.id",
	"google.golang.org/grpc/internal/transport.ServerStream.Stream",  // v1.70+
	"google.golang.org/grpc/internal/transport.headerFrame.streamID", // until v1.82
	"google.golang.org/grpc/internal/transport.headerFrame.hf",
	"google.golang.org/grpc/internal/transport.clientHeaders.streamID", // v1.83+
	"google.golang.org/grpc/internal/transport.clientHeaders.hf",
	// A call's context, from its header frame; the server stream's
	// transport (v1.77+, where handlers' calls follow contexts).
	"google.golang.org/grpc/internal/transport.headerFrame.wq",
	"google.golang.org/grpc/internal/transport.clientHeaders.wq",
	"google.golang.org/grpc/internal/transport.Stream.wq",
	"google.golang.org/grpc/internal/transport.Stream.ctx",
	"google.golang.org/grpc/internal/transport.ServerStream.st",
	"golang.org/x/net/http2.MetaHeadersFrame.HeadersFrame",
	"golang.org/x/net/http2.MetaHeadersFrame.Fields",
	"golang.org/x/net/http2.HeadersFrame.FrameHeader",
	"golang.org/x/net/http2.FrameHeader.StreamID",
	"golang.org/x/net/http2/hpack.HeaderField.Name",
	"golang.org/x/net/http2/hpack.HeaderField.Value",
	"golang.org/x/net/http2/hpack.HeaderField." + goinspect.SizeField,
}

const (
	grpcModule = "google.golang.org/grpc"
	xnetModule = "golang.org/x/net"
)

// grpcBuild is one build of the grpc probe.
type grpcBuild struct {
	grpc string
	xnet string // "": the version go mod tidy resolves
}

// name is the build's modfile stem: go.<name>.mod.
func (g grpcBuild) name() string {
	if g.xnet == "" {
		return g.grpc
	}
	return g.grpc + "-xnet-" + g.xnet
}

func grpcBuilds(grpcs, xnets []string) []grpcBuild {
	var out []grpcBuild
	for _, v := range grpcs {
		out = append(out, grpcBuild{grpc: v})
	}
	if len(grpcs) > 0 {
		for _, x := range xnets {
			out = append(out, grpcBuild{grpc: grpcs[len(grpcs)-1], xnet: x})
		}
	}
	return out
}

func main() {
	out := flag.String("out", "", "write the table to this file")
	check := flag.String("check", "", "exit 1 if this file differs from the regenerated table")
	probe := flag.String("probe", "testdata/offsetprobe", "directory of the probe module")
	grpcProbe := flag.String("grpc-probe", "testdata/offsetprobe-grpc", "directory of the grpc probe module")
	only := flag.String("versions", "", "comma-separated toolchains instead of the built-in list")
	onlyGRPC := flag.String("grpc", "", "comma-separated grpc versions instead of the built-in list (\"none\": none)")
	flag.StringVar(&moduleToolchain, "module-toolchain", moduleToolchain, "toolchain building the module probes")
	jobs := flag.Int("j", 2, "builds run at once")
	flag.Parse()
	if *out == "" && *check == "" {
		log.Fatal("offsetgen: need -out or -check")
	}
	list := toolchains
	if *only != "" {
		list = strings.Split(*only, ",")
	}
	builds := grpcBuilds(grpcVersions, xnetVersions)
	switch *onlyGRPC {
	case "":
	case "none":
		builds = nil
	default:
		builds = grpcBuilds(strings.Split(*onlyGRPC, ","), nil)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	start := time.Now()
	if err := modfiles(ctx, *grpcProbe, builds, *out != ""); err != nil {
		log.Fatalf("offsetgen: %v", err)
	}
	table, err := generate(ctx, *probe, list, *grpcProbe, builds, *jobs, *only != "" || *onlyGRPC != "")
	if err != nil {
		log.Fatalf("offsetgen: %v", err)
	}
	data, err := table.Marshal()
	if err != nil {
		log.Fatalf("offsetgen: %v", err)
	}
	if *check != "" {
		old, err := os.ReadFile(*check)
		if err != nil {
			log.Fatalf("offsetgen: %v", err)
		}
		if !bytes.Equal(old, data) {
			os.Stdout.Write(data)
			log.Fatalf("offsetgen: %s is stale; regenerate with -out (new table above)", *check)
		}
	}
	if *out != "" {
		if err := os.WriteFile(*out, data, 0o644); err != nil {
			log.Fatalf("offsetgen: %v", err)
		}
	}
	log.Printf("offsetgen: %d toolchains, %d std fields; %d grpc builds, %d grpc and x/net fields; in %v",
		len(list), len(fields), len(builds), len(grpcFields), time.Since(start).Round(time.Millisecond))
}

// measurement is one probe build: what to build, and what it showed.
type measurement struct {
	what  string // for errors
	build func(ctx context.Context) (map[string]goinspect.Measured, error)
	got   map[string]goinspect.Measured
}

// generate measures the toolchains in list and the grpc builds. partial
// says the lists are not the built-in ones.
func generate(ctx context.Context, probe string, list []string, grpcProbe string, builds []grpcBuild, jobs int, partial bool) (*goinspect.Table, error) {
	var ms []*measurement
	for _, tc := range list {
		ms = append(ms, &measurement{what: tc, build: func(ctx context.Context) (map[string]goinspect.Measured, error) {
			_, _, got, err := goinspect.Measure(ctx, probe, tc, nil, fields)
			if err != nil {
				return nil, err
			}
			for key, m := range got {
				if m.Module != goinspect.StdModule || m.Version != tc {
					return nil, fmt.Errorf("%s: %s is in %s %s, not the standard library", tc, key, m.Module, m.Version)
				}
				if m.NoStruct {
					return nil, fmt.Errorf("%s: %s: struct not in the probe's DWARF", tc, key)
				}
			}
			return got, nil
		}})
	}
	for _, g := range builds {
		ms = append(ms, &measurement{what: "grpc " + g.name(), build: func(ctx context.Context) (map[string]goinspect.Measured, error) {
			return measureGRPC(ctx, grpcProbe, g)
		}})
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, max(jobs, 1))
	)
	for _, m := range ms {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			got, err := m.build(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", m.what, err))
			}
			m.got = got
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("%d of %d builds failed; first: %w", len(errs), len(ms), errs[0])
	}

	// Fold the builds into one table per module. Builds linking the same
	// version of a module (x/net, shared by grpc releases) must agree.
	modules := map[string]*goinspect.ModuleTable{}
	type at struct{ key, version string }
	seen := map[at]goinspect.Measured{}
	for _, m := range ms {
		for key, got := range m.got {
			t := modules[got.Module]
			if t == nil {
				t = &goinspect.ModuleTable{Fields: map[string]map[string]uint64{}}
				modules[got.Module] = t
			}
			if !slices.Contains(t.Versions, got.Version) {
				t.Versions = append(t.Versions, got.Version)
			}
			if prev, ok := seen[at{key, got.Version}]; ok && (prev.Found != got.Found || prev.Offset != got.Offset) {
				return nil, fmt.Errorf("%s at %s %s: builds disagree (%s: %+v; another: %+v)", key, got.Module, got.Version, m.what, got, prev)
			}
			seen[at{key, got.Version}] = got
			if got.Found {
				if t.Fields[key] == nil {
					t.Fields[key] = map[string]uint64{}
				}
				t.Fields[key][got.Version] = got.Offset
			}
		}
	}
	var keys []string
	if len(list) > 0 {
		keys = append(keys, fields...)
	}
	if len(builds) > 0 {
		keys = append(keys, grpcFields...)
	}
	for _, key := range keys {
		found := false
		for _, t := range modules {
			found = found || t.Fields[key] != nil
		}
		switch {
		case found:
		case partial: // -versions or -grpc chose versions that lack it
			log.Printf("offsetgen: field %s found in no version", key)
		default: // a typo, or a field every version lacks
			return nil, fmt.Errorf("field %s found in no version", key)
		}
	}
	return &goinspect.Table{
		Comment: "Generated by go run ./cmd/offsetgen; do not edit. Byte offsets of struct fields per module version.",
		Modules: modules,
	}, nil
}

// measureGRPC builds the grpc probe with one modfile and checks the build
// linked the versions meant. A struct missing from its DWARF is accepted
// as absent only if that release's source does not declare it: else the
// probe does not use it, and the linker dropped it.
func measureGRPC(ctx context.Context, dir string, g grpcBuild) (map[string]goinspect.Measured, error) {
	modfile := "go." + g.name() + ".mod"
	_, mods, got, err := goinspect.Measure(ctx, dir, moduleToolchain, []string{"-modfile=" + modfile}, grpcFields)
	if err != nil {
		return nil, err
	}
	if v := mods[grpcModule]; v != g.grpc {
		return nil, fmt.Errorf("%s links %s %s", modfile, grpcModule, v)
	}
	if v := mods[xnetModule]; g.xnet != "" && v != g.xnet {
		return nil, fmt.Errorf("%s links %s %s", modfile, xnetModule, v)
	}
	for key, m := range got {
		if !m.NoStruct {
			continue
		}
		structName := key[:strings.LastIndex(key, ".")]
		declared, err := declaresStruct(ctx, dir, modfile, m.Module, structName)
		if err != nil {
			return nil, err
		}
		if declared {
			return nil, fmt.Errorf("%s %s declares %s but the probe's DWARF lacks it: make %s/main.go use it", m.Module, m.Version, structName, dir)
		}
	}
	return got, nil
}

// declaresStruct reports whether the source of module, as the build with
// modfile resolved it, declares the struct type structName
// ("<package path>.<type>").
func declaresStruct(ctx context.Context, dir, modfile, module, structName string) (bool, error) {
	i := strings.LastIndex(structName, ".")
	pkg, typ := structName[:i], structName[i+1:]
	rel, ok := strings.CutPrefix(pkg, module)
	if !ok {
		return false, fmt.Errorf("%s is not in module %s", structName, module)
	}
	modDir, err := goCmd(ctx, dir, "list", "-modfile="+modfile, "-m", "-f", "{{.Dir}}", module)
	if err != nil {
		return false, err
	}
	pkgDir := filepath.Join(strings.TrimSpace(modDir), filepath.FromSlash(rel))
	ents, err := os.ReadDir(pkgDir)
	if err != nil {
		return false, err
	}
	fset := token.NewFileSet()
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(pkgDir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return false, err
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				if _, isStruct := ts.Type.(*ast.StructType); isStruct && ts.Name.Name == typ {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// modfiles checks every build has its modfile and go.sum twin in dir; with
// write, it creates those missing (this needs the module proxy).
func modfiles(ctx context.Context, dir string, builds []grpcBuild, write bool) error {
	for _, g := range builds {
		modfile := "go." + g.name() + ".mod"
		path := filepath.Join(dir, modfile)
		if _, err := os.Stat(path); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if !write {
			return fmt.Errorf("no %s: create it with -out", path)
		}
		log.Printf("offsetgen: writing %s", path)
		if err := writeModfile(ctx, dir, modfile, g); err != nil {
			os.Remove(path)
			os.Remove(strings.TrimSuffix(path, ".mod") + ".sum")
			return err
		}
	}
	return nil
}

func writeModfile(ctx context.Context, dir, modfile string, g grpcBuild) error {
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return err
	}
	module, _, _ := strings.Cut(string(gomod), "\n") // "module example.com/..."
	if err := os.WriteFile(filepath.Join(dir, modfile), []byte(module+"\n\ngo 1.22\n"), 0o644); err != nil {
		return err
	}
	get := []string{"get", "-modfile=" + modfile, grpcModule + "@" + g.grpc}
	if g.xnet != "" {
		get = append(get, xnetModule+"@"+g.xnet)
	}
	if _, err := goCmd(ctx, dir, get...); err != nil {
		return err
	}
	_, err = goCmd(ctx, dir, "mod", "tidy", "-modfile="+modfile)
	return err
}

// goCmd runs the go command of moduleToolchain in dir.
func goCmd(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN="+moduleToolchain)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), dir, err, stderr.Bytes())
	}
	return string(out), nil
}
