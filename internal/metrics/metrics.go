// Package metrics counts what weft does and skips, and serves the counts in
// the Prometheus text format (version 0.0.4): every family has its # HELP
// and # TYPE lines, so Prometheus stores counters as counters and
// histograms as histograms. Every loss and every skip has a counter.
//
// weft keeps this small registry instead of prometheus/client_golang: the
// hot paths bump plain atomics, values kept in the kernel are read at
// scrape time, and the agent carries no second metrics stack.
package metrics

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds named counters and gauges; pass one to every component.
type Registry struct {
	mu         sync.Mutex
	counters   map[string]*counter
	gauges     map[string]*gauge
	help       map[string]string // by family name
	histograms map[string]bool   // family names made by Histogram
}

type counter struct {
	name   string
	labels []string
	v      *atomic.Uint64
}

type gauge struct {
	name   string
	labels []string
	f      func() float64
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{counters: map[string]*counter{}, gauges: map[string]*gauge{},
		help: map[string]string{}, histograms: map[string]bool{}}
}

// Counter returns the counter for name and labels (`k="v"` pairs, in order),
// creating it on first use.
func (r *Registry) Counter(name, help string, labels ...string) *atomic.Uint64 {
	key := series(name, labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.counters[key]
	if !ok {
		c = &counter{name: name, labels: append([]string(nil), labels...), v: new(atomic.Uint64)}
		r.counters[key] = c
		r.setHelp(name, help)
	}
	return c.v
}

// Gauge registers a value read at scrape time. A name ending in _total is
// a count kept elsewhere (per-CPU counters in a BPF map) and is typed
// counter; any other is a gauge.
func (r *Registry) Gauge(name, help string, f func() float64, labels ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gauges[series(name, labels)] = &gauge{name: name, labels: append([]string(nil), labels...), f: f}
	r.setHelp(name, help)
}

// setHelp keeps the first help text of a family. The caller holds r.mu.
func (r *Registry) setHelp(name, help string) {
	if _, ok := r.help[name]; !ok {
		r.help[name] = help
	}
}

// Value returns a counter's current value, 0 if it was never made.
func (r *Registry) Value(name string, labels ...string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.counters[series(name, labels)]; ok {
		return c.v.Load()
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

// sample is one line of the text format.
type sample struct {
	name   string
	labels []string // k, v pairs
	value  string
}

// family is the samples of one metric name (a histogram's _bucket, _sum
// and _count together) with its help and type.
type family struct {
	name, help, typ string
	samples         []sample
}

// WriteText writes every family in the Prometheus text format, families
// sorted by name, each with its # HELP and # TYPE lines.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	samples := make([]sample, 0, len(r.counters)+len(r.gauges))
	for _, c := range r.counters {
		samples = append(samples, sample{c.name, c.labels, strconv.FormatUint(c.v.Load(), 10)})
	}
	gauges := make([]*gauge, 0, len(r.gauges))
	for _, g := range r.gauges {
		gauges = append(gauges, g)
	}
	counterNames := map[string]bool{}
	for _, c := range r.counters {
		counterNames[c.name] = true
	}
	help := make(map[string]string, len(r.help))
	for k, v := range r.help {
		help[k] = v
	}
	histograms := make(map[string]bool, len(r.histograms))
	for k := range r.histograms {
		histograms[k] = true
	}
	r.mu.Unlock()
	// Gauge functions may take locks of their own: call them unlocked.
	for _, g := range gauges {
		samples = append(samples, sample{g.name, g.labels, formatFloat(g.f())})
	}
	for _, f := range families(samples, histograms, counterNames, help) {
		if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.typ); err != nil {
			return err
		}
		for _, s := range f.samples {
			if _, err := fmt.Fprintf(w, "%s%s %s\n", s.name, formatLabels(s.labels), s.value); err != nil {
				return err
			}
		}
	}
	return nil
}

// families groups samples into families, sorted by name, their samples in
// exposition order (see sampleLess).
func families(samples []sample, histograms, counters map[string]bool, help map[string]string) []family {
	byName := map[string]*family{}
	for _, s := range samples {
		name, _ := familyOf(s.name, histograms)
		f, ok := byName[name]
		if !ok {
			f = &family{name: name, help: help[name], typ: typeOf(name, histograms, counters)}
			byName[name] = f
		}
		f.samples = append(f.samples, s)
	}
	out := make([]family, 0, len(byName))
	for _, f := range byName {
		sort.Slice(f.samples, func(i, j int) bool { return sampleLess(f.samples[i], f.samples[j], histograms) })
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// familyOf names the family a sample belongs to: a histogram's for its
// _bucket, _sum and _count samples, the sample's own name otherwise. The
// suffix's rank (0 bucket, 1 sum, 2 count) orders a histogram's samples.
func familyOf(name string, histograms map[string]bool) (string, int) {
	for i, suf := range histogramSuffixes {
		if base, ok := strings.CutSuffix(name, suf); ok && histograms[base] {
			return base, i
		}
	}
	return name, 0
}

// typeOf is a family's # TYPE: histogram for Histogram's families,
// counter for Counter's and for values read at scrape time whose name ends
// in _total, gauge for the other values read at scrape time.
func typeOf(name string, histograms, counters map[string]bool) string {
	switch {
	case histograms[name]:
		return "histogram"
	case counters[name], strings.HasSuffix(name, "_total"):
		return "counter"
	}
	return "gauge"
}

// sampleLess orders a family's samples: by label set (le aside), then a
// histogram's buckets by bound, +Inf last, then _sum and _count.
func sampleLess(a, b sample, histograms map[string]bool) bool {
	ka, la := labelKey(a.labels)
	kb, lb := labelKey(b.labels)
	if ka != kb {
		return ka < kb
	}
	_, ra := familyOf(a.name, histograms)
	_, rb := familyOf(b.name, histograms)
	if ra != rb {
		return ra < rb
	}
	return la < lb
}

// labelKey is a label set without le, for grouping, and le's bound (+Inf
// when absent or unparsable, so a sample without le sorts last).
func labelKey(labels []string) (string, float64) {
	var b strings.Builder
	le := inf
	for i := 0; i+1 < len(labels); i += 2 {
		if labels[i] == "le" {
			if v, err := strconv.ParseFloat(labels[i+1], 64); err == nil {
				le = v
			}
			continue
		}
		b.WriteString(labels[i])
		b.WriteByte(0)
		b.WriteString(labels[i+1])
		b.WriteByte(0)
	}
	return b.String(), le
}

var inf, _ = strconv.ParseFloat("+Inf", 64)

func formatLabels(labels []string) string {
	if len(labels) < 2 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(labels[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// escapeLabel escapes a label value as the text format wants: backslash,
// double quote and line feed.
func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// escapeHelp escapes help text: backslash and line feed.
func escapeHelp(v string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(v)
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

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
func (b *ByLabel) Inc(value string) { b.Add(value, 1) }

// Add counts n events under value.
func (b *ByLabel) Add(value string, n int) {
	if c, ok := b.cache.Load(value); ok {
		c.(*atomic.Uint64).Add(uint64(n))
		return
	}
	labels := append(append([]string(nil), b.fixed...), b.label, value)
	c, _ := b.cache.LoadOrStore(value, b.reg.Counter(b.name, b.help, labels...))
	c.(*atomic.Uint64).Add(uint64(n))
}
