package discovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/weft-dev/weft/internal/goinspect"
	"github.com/weft-dev/weft/internal/probes"
	"github.com/weft-dev/weft/internal/procs"
)

// ResourceConfig sets the resource attributes weft gives every span.
type ResourceConfig struct {
	ServiceName string // overrides the executable name; OTEL_SERVICE_NAME wins over both
	HostName    string
	Version     string // weft's own version, for telemetry.distro.version
	// Extra adds attributes of a process from elsewhere (its pod's), after
	// weft's own; a service.name there wins over the executable's name, not
	// over ServiceName. Nil adds none.
	Extra func(pid int) []attribute.KeyValue
}

// exeFacts is what the executable says, shared by every process running it.
type exeFacts struct {
	goVersion  string
	cgo        string // a package calling C libraries
	goidOffset uint64
	offsets    map[string]uint64
	modules    map[string]string
	err        error
}

// probedModules are the dependencies whose versions probes and the status
// report care about.
var probedModules = []string{"google.golang.org/grpc", "golang.org/x/net"}

// inspector reads each executable once, however many processes run it.
type inspector struct {
	cfg    ResourceConfig
	fields []string // struct fields probes need, "pkg.Type.field"
	mu     sync.Mutex
	cache  map[procs.ExeKey]exeFacts
	// byContent: the same facts by content (goinspect's ContentKey), for
	// copies of an executable on other inodes: each container of an
	// image runs its own overlay's file, and its DWARF need not be read
	// again.
	byContent map[string]exeFacts
	read      int // executables whose facts were read, not found by content
	// layouts: struct layouts learnt from executables' DWARF, for other
	// builds from the same source (goinspect.Layouts); the families'
	// readings of an executable share them (Process.Layouts).
	layouts *goinspect.Layouts
	// reading: executables being read now; their other processes wait
	// for that one read (exec events are handled side by side) rather
	// than read the same DWARF again, all at once.
	reading map[procs.ExeKey]chan struct{}
	// files keeps each selected executable open, so that a family can
	// still open it (to read symbols, to attach uprobes) once the process
	// it was selected through has exited: short-lived processes are gone
	// before the families get to them. Bounded; past the bound, the
	// process's own /proc path is used.
	files map[procs.ExeKey]*os.File
}

// maxFiles bounds the executables the inspector keeps open.
const maxFiles = 4096

func newInspector(cfg ResourceConfig, fields []string) *inspector {
	if cfg.HostName == "" {
		cfg.HostName, _ = os.Hostname()
	}
	return &inspector{cfg: cfg, fields: fields, cache: map[procs.ExeKey]exeFacts{}, byContent: map[string]exeFacts{}, layouts: goinspect.NewLayouts(), reading: map[procs.ExeKey]chan struct{}{},
		files: map[procs.ExeKey]*os.File{}}
}

// facts returns what the executable holds, read once. The first time it
// also returns the open executable, for the families to share while they
// track this process (the caller closes it); later, nil.
func (in *inspector) facts(info procs.Info) (exeFacts, *goinspect.Binary) {
	in.mu.Lock()
	for {
		if f, ok := in.cache[info.ExeKey]; ok {
			in.mu.Unlock()
			return f, nil
		}
		wait, busy := in.reading[info.ExeKey]
		if !busy {
			break
		}
		in.mu.Unlock()
		<-wait
		in.mu.Lock()
	}
	done := make(chan struct{})
	in.reading[info.ExeKey] = done
	in.mu.Unlock()
	f, b := in.readFacts(info.ExeOpenPath)
	in.mu.Lock()
	in.cache[info.ExeKey] = f
	delete(in.reading, info.ExeKey)
	in.mu.Unlock()
	close(done)
	return f, b
}

func (in *inspector) readFacts(path string) (exeFacts, *goinspect.Binary) {
	b, err := goinspect.Open(path)
	if err == nil {
		b.UseLayouts(in.layouts)
	}
	if errors.Is(err, goinspect.ErrNotGo) {
		return exeFacts{}, nil // any language's HTTP/1 server is traced from the socket layer
	}
	if err != nil {
		return exeFacts{err: fmt.Errorf("inspecting executable %s: %w", path, err)}, nil
	}
	key := b.ContentKey()
	if key != "" {
		in.mu.Lock()
		f, ok := in.byContent[key]
		in.mu.Unlock()
		if ok {
			return f, b
		}
	}
	f := exeFacts{goVersion: b.GoVersion, cgo: b.CCalls, modules: map[string]string{}}
	for _, m := range probedModules {
		if v, ok := b.Modules[m]; ok {
			f.modules[m] = v
		}
	}
	// Without the goroutine id offset spans still come; only the goroutine
	// attribute (and later in-process links) are missing.
	if off, _, err := goinspect.GoidOffset(b); err == nil {
		f.goidOffset = off
	}
	f.offsets = map[string]uint64{}
	for _, name := range in.fields {
		i := strings.LastIndexByte(name, '.')
		if off, _, err := b.FieldOffset(name[:i], name[i+1:]); err == nil {
			f.offsets[name] = off
		}
	}
	in.mu.Lock()
	in.read++
	if key != "" {
		in.byContent[key] = f
	}
	in.mu.Unlock()
	return f, b
}

// process builds what probes need to know of a selected process. Its Exe,
// when set, is open until done is called.
func (in *inspector) process(info procs.Info) (p *probes.Process, done func(), err error) {
	f, b := in.facts(info)
	done = func() {
		if b != nil {
			b.Close()
		}
	}
	if f.err != nil {
		return nil, done, f.err
	}
	res, err := in.resource(info, f)
	if err != nil {
		return nil, done, err
	}
	return &probes.Process{
		PID:        info.PID,
		StartTime:  info.StartTime,
		ExePath:    in.openPath(info),
		GoVersion:  f.goVersion,
		CCalls:     f.cgo,
		GoidOffset: f.goidOffset,
		GoOffsets:  f.offsets,
		Modules:    f.modules,
		Resource:   res,
		Exe:        b,
		Layouts:    in.layouts,
	}, done, nil
}

// openPath is a path that opens the process's executable for as long as
// the agent runs: its open file's, else the process's own.
func (in *inspector) openPath(info procs.Info) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	f, ok := in.files[info.ExeKey]
	if !ok {
		if len(in.files) >= maxFiles {
			return info.ExeOpenPath
		}
		var err error
		if f, err = os.Open(info.ExeOpenPath); err != nil {
			return info.ExeOpenPath
		}
		in.files[info.ExeKey] = f
	}
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd())
}

// close closes the executables kept open.
func (in *inspector) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for k, f := range in.files {
		f.Close()
		delete(in.files, k)
	}
}

func (in *inspector) resource(info procs.Info, f exeFacts) (*resource.Resource, error) {
	exe := strings.TrimSuffix(info.ExePath, " (deleted)")
	name := filepath.Base(exe)
	service := in.cfg.ServiceName
	if service == "" {
		service = name
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", service),
		attribute.Int("process.pid", info.PID),
		attribute.String("process.executable.name", name),
		attribute.String("process.executable.path", exe),
		attribute.String("host.name", in.cfg.HostName),
		attribute.String("telemetry.distro.name", "weft"),
	}
	if in.cfg.Version != "" {
		attrs = append(attrs, attribute.String("telemetry.distro.version", in.cfg.Version))
	}
	if f.goVersion != "" {
		attrs = append(attrs, attribute.String("process.runtime.name", "go"),
			attribute.String("process.runtime.version", strings.TrimPrefix(f.goVersion, "go")))
	}
	if in.cfg.Extra != nil {
		attrs = append(attrs, in.cfg.Extra(info.PID)...)
		if in.cfg.ServiceName != "" {
			attrs = append(attrs, attribute.String("service.name", in.cfg.ServiceName))
		}
	}
	// What the program itself was told (its OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES) beats what weft found; unreadable: skipped.
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", info.PID)); err == nil {
		attrs = append(attrs, envAttributes(env)...)
	}
	// Detectors later in the list win: the agent's own OTEL_SERVICE_NAME
	// and OTEL_RESOURCE_ATTRIBUTES override what weft found.
	res, err := resource.New(context.Background(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("building resource for pid %d: %w", info.PID, err)
	}
	return res, nil
}
