// Package metrics counts what weft does and skips, and serves the counts in
// the Prometheus text format. Every loss and every skip has a counter.
package metrics

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds named counters and gauges; pass one to every component.
type Registry struct {
	mu       sync.Mutex
	counters map[string]*atomic.Uint64
	help     map[string]string
	gauges   map[string]func() float64
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{counters: map[string]*atomic.Uint64{}, help: map[string]string{}, gauges: map[string]func() float64{}}
}

// Counter returns the counter for name and labels (`k="v"` pairs, in order),
// creating it on first use.
func (r *Registry) Counter(name, help string, labels ...string) *atomic.Uint64 {
	key := series(name, labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.counters[key]
	if !ok {
		c = new(atomic.Uint64)
		r.counters[key] = c
		r.help[name] = help
	}
	return c
}

// Gauge registers a value read at scrape time.
func (r *Registry) Gauge(name, help string, f func() float64, labels ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gauges[series(name, labels)] = f
	r.help[name] = help
}

// Value returns a counter's current value, 0 if it was never made.
func (r *Registry) Value(name string, labels ...string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.counters[series(name, labels)]; ok {
		return c.Load()
	}
	return 0
}

func series(name string, labels []string) string {
	if len(labels) == 0 {
		return name
	}
	parts := make([]string, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		parts = append(parts, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// WriteText writes every series in the Prometheus text format, sorted.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	lines := make([]string, 0, len(r.counters)+len(r.gauges))
	for k, c := range r.counters {
		lines = append(lines, fmt.Sprintf("%s %d", k, c.Load()))
	}
	gauges := make(map[string]func() float64, len(r.gauges))
	for k, f := range r.gauges {
		gauges[k] = f
	}
	help := make(map[string]string, len(r.help))
	for k, v := range r.help {
		help[k] = v
	}
	r.mu.Unlock()
	for k, f := range gauges {
		lines = append(lines, fmt.Sprintf("%s %g", k, f()))
	}
	sort.Strings(lines)
	seen := map[string]bool{}
	for _, l := range lines {
		name := l[:strings.IndexAny(l, "{ ")]
		if !seen[name] {
			seen[name] = true
			if _, err := fmt.Fprintf(w, "# HELP %s %s\n", name, help[name]); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}

// ByLabel is one counter family with one varying label (a reason, a kind),
// its series made on first use and cached, so hot paths do not format
// series names. Safe for concurrent use.
type ByLabel struct {
	reg        *Registry
	name, help string
	label      string
	fixed      []string
	cache      sync.Map // value → *atomic.Uint64
}

// ByLabel returns the family name{fixed..., label=value}.
func (r *Registry) ByLabel(name, help, label string, fixed ...string) *ByLabel {
	return &ByLabel{reg: r, name: name, help: help, label: label, fixed: fixed}
}

// Inc counts one event under value.
func (b *ByLabel) Inc(value string) {
	if c, ok := b.cache.Load(value); ok {
		c.(*atomic.Uint64).Add(1)
		return
	}
	labels := append(append([]string(nil), b.fixed...), b.label, value)
	c, _ := b.cache.LoadOrStore(value, b.reg.Counter(b.name, b.help, labels...))
	c.(*atomic.Uint64).Add(1)
}
