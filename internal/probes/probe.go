// Package probes defines what a probe family is and keeps the families the
// agent runs. Each family lives in its own sub-package with its BPF object,
// its loader and a pure event-to-span converter.
package probes

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/weft-dev/weft/internal/metrics"
	"github.com/weft-dev/weft/internal/spans"
)

// Process is a selected process as probes see it.
type Process struct {
	PID        int
	StartTime  uint64 // with PID, identifies this process instance
	ExePath    string // path to open the executable (/proc/PID/exe)
	GoVersion  string // "" when not a Go program
	GoidOffset uint64 // offset of goid in runtime.g; 0 when unknown
	Resource   *resource.Resource
}

// Probe is one probe family. Start loads and attaches its programs; Track and
// Untrack switch a process on and off; Shutdown detaches everything and is
// safe to call twice or without Start.
type Probe interface {
	Name() string
	Start(ctx context.Context) error
	Track(p *Process) error
	Untrack(pid int)
	Shutdown(ctx context.Context) error
}

// Deps is what every probe family is given.
type Deps struct {
	Log     *slog.Logger
	Sink    spans.Sink
	Metrics *metrics.Registry
	Config  Config
}

// Config holds the settings probes share.
type Config struct {
	MaxHeaderBytes int // HTTP heads longer than this are skipped and counted
}

// Factory builds a probe family.
type Factory func(Deps) (Probe, error)

// Registry maps family names to factories.
type Registry struct{ factories map[string]Factory }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// Register adds a family; a name registered twice is a programming error.
func (r *Registry) Register(name string, f Factory) {
	if _, dup := r.factories[name]; dup {
		panic(fmt.Sprintf("probe family %q registered twice", name))
	}
	r.factories[name] = f
}

// Names lists the registered families, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.factories))
	for n := range r.factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Build makes every registered family, in name order.
func (r *Registry) Build(d Deps) ([]Probe, error) {
	var out []Probe
	for _, n := range r.Names() {
		p, err := r.factories[n](d)
		if err != nil {
			return nil, fmt.Errorf("building probe family %s: %w", n, err)
		}
		out = append(out, p)
	}
	return out, nil
}
