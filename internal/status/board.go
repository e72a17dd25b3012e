// Package status keeps, for every traced process, what weft does for it and
// why not: the capabilities each probe family could or could not give it.
// The agent serves it on /status (JSON, or a table with ?format=text),
// `weft-agent status` prints it, each process's capabilities are logged
// once tracked, and weft_process_capabilities counts them.
package status

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/weft-dev/weft/internal/metrics"
)

// Capabilities, by name. A family sets the ones it provides.
const (
	Spans            = "spans"              // SERVER and CLIENT spans from the socket layer (HTTP/1.x, h2c)
	HTTPClientLinks  = "http_client_links"  // Go net/http client calls linked to the server span they serve
	GRPCServerLinks  = "grpc_server_links"  // a gRPC handler's calls linked to its server span
	HTTP2ServerLinks = "http2_server_links" // a Go net/http HTTP/2 handler's calls linked to its server span
	GRPCClientLinks  = "grpc_client_links"  // grpc-go client calls linked and given IDs for propagation
	Injection        = "injection"          // traceparent added to outgoing requests at the socket layer
	TCPOption        = "tcp_option"         // trace context in a TCP header option on outgoing requests
	ThreadLinks      = "thread_links"       // a non-Go thread's calls linked to the request it serves
	TLS              = "tls"                // TLS plaintext read from the TLS library (uprobes)
	GoroutineTree    = "goroutine_tree"     // Go calls linked through any depth of goroutines (gospawn)
)

// Capability is one thing weft does, or does not do, for a process.
type Capability struct {
	On  bool   `json:"on"`
	Why string `json:"why,omitempty"` // what it rests on, or why it is off
}

// Process is one traced process's entry.
type Process struct {
	PID          int                   `json:"pid"`
	Exe          string                `json:"exe"`
	GoVersion    string                `json:"go_version,omitempty"`
	Libraries    map[string]string     `json:"libraries,omitempty"` // module path → version, for what weft probes
	Since        time.Time             `json:"since"`
	Capabilities map[string]Capability `json:"capabilities"`
	Skipped      string                `json:"skipped,omitempty"` // why weft does not trace it at all
}

// Feature is one kernel-dependent part of the agent (the capture source,
// injection, how uprobes attach…): whether this node's kernel lets it run,
// and what it uses or why it is off.
type Feature struct {
	Name string `json:"name"`
	On   bool   `json:"on"`
	Why  string `json:"why"`
}

// Report is what /status serves: the node's kernel, the agent's features
// on it, and every traced process.
type Report struct {
	Kernel    string    `json:"kernel,omitempty"`
	Features  []Feature `json:"features"`
	Processes []Process `json:"processes"`
}

// Board is the set of traced processes and the agent's kernel features.
// Safe for concurrent use.
type Board struct {
	mu       sync.Mutex
	procs    map[int]*Process
	kernel   string
	features map[string]Feature
	met      *metrics.Registry
}

// New makes an empty board and registers its gauges with met (may be nil).
func New(met *metrics.Registry) *Board {
	b := &Board{procs: map[int]*Process{}, features: map[string]Feature{}, met: met}
	if met != nil {
		for _, c := range []string{Spans, HTTPClientLinks, HTTP2ServerLinks, GRPCServerLinks, GRPCClientLinks, Injection} {
			for _, on := range []bool{true, false} {
				state := map[bool]string{true: "on", false: "off"}[on]
				met.Gauge("weft_process_capabilities", "traced processes by capability and whether weft gives it them",
					func() float64 { return float64(b.count(c, on)) }, "capability", c, "state", state)
			}
		}
	}
	return b
}

// SetKernel records the node's kernel release, shown with the features.
func (b *Board) SetKernel(release string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.kernel = release
}

// Feature records whether a kernel-dependent feature runs on this node and
// why (what it uses, or what the kernel lacks); weft_kernel_feature shows
// it as a gauge, 1 when on. Set again, it replaces the earlier state.
func (b *Board) Feature(name string, on bool, why string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	_, known := b.features[name]
	b.features[name] = Feature{Name: name, On: on, Why: why}
	b.mu.Unlock()
	if !known && b.met != nil {
		b.met.Gauge("weft_kernel_feature", "1 when a kernel-dependent feature runs on this node, 0 when the kernel (or configuration) has it off; /status says why",
			func() float64 {
				b.mu.Lock()
				defer b.mu.Unlock()
				if b.features[name].On {
					return 1
				}
				return 0
			}, "feature", name)
	}
}

// Features returns the recorded features by name.
func (b *Board) Features() []Feature {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Feature, 0, len(b.features))
	for _, n := range slices.Sorted(maps.Keys(b.features)) {
		out = append(out, b.features[n])
	}
	return out
}

// Report returns the whole status: kernel, features and processes.
func (b *Board) Report() Report {
	r := Report{Features: b.Features(), Processes: b.Snapshot()}
	b.mu.Lock()
	r.Kernel = b.kernel
	b.mu.Unlock()
	return r
}

// Add records a newly traced process; capabilities come with Set.
func (b *Board) Add(pid int, exe, goVersion string, libraries map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.procs[pid] = &Process{PID: pid, Exe: exe, GoVersion: goVersion, Libraries: maps.Clone(libraries),
		Since: time.Now(), Capabilities: map[string]Capability{}}
}

// Skip records a selected process weft does not trace, and why: every
// capability is off for it.
func (b *Board) Skip(pid int, exe string, why error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.procs[pid] = &Process{PID: pid, Exe: exe, Since: time.Now(), Skipped: why.Error(),
		Capabilities: map[string]Capability{Spans: {On: false, Why: "not traced: " + why.Error()}}}
}

// Set records one capability of a process; unknown processes are ignored.
func (b *Board) Set(pid int, capability string, on bool, why string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.procs[pid]; ok {
		p.Capabilities[capability] = Capability{On: on, Why: why}
	}
}

// Remove forgets a process that is no longer traced.
func (b *Board) Remove(pid int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.procs, pid)
}

// Get returns a copy of one process's entry.
func (b *Board) Get(pid int) (Process, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.procs[pid]
	if !ok {
		return Process{}, false
	}
	return copyOf(p), true
}

// Snapshot returns copies of every entry, by PID.
func (b *Board) Snapshot() []Process {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Process, 0, len(b.procs))
	for _, p := range b.procs {
		out = append(out, copyOf(p))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

func copyOf(p *Process) Process {
	c := *p
	c.Libraries = maps.Clone(p.Libraries)
	c.Capabilities = maps.Clone(p.Capabilities)
	return c
}

func (b *Board) count(capability string, on bool) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, p := range b.procs {
		if c, ok := p.Capabilities[capability]; ok && c.On == on {
			n++
		}
	}
	return n
}

// Summary is a process's capabilities on one line, for the log: the ones
// on, then the ones off with their reasons.
func (p Process) Summary() (on, off string) {
	var ons, offs []string
	for _, name := range slices.Sorted(maps.Keys(p.Capabilities)) {
		c := p.Capabilities[name]
		if c.On {
			ons = append(ons, name)
		} else {
			offs = append(offs, fmt.Sprintf("%s (%s)", name, c.Why))
		}
	}
	return strings.Join(ons, ","), strings.Join(offs, "; ")
}

// ServeHTTP answers GET /status: JSON by default, a table with
// ?format=text.
func (b *Board) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := b.Report()
	if r.URL.Query().Get("format") == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		WriteReport(w, rep)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rep)
}

// WriteReport prints the kernel and its features, then the processes.
func WriteReport(w io.Writer, r Report) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "KERNEL %s\n", orDash(r.Kernel))
	for _, f := range r.Features {
		state := "off"
		if f.On {
			state = "on"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Name, state, f.Why)
	}
	tw.Flush()
	if len(r.Processes) == 0 {
		fmt.Fprintln(w, "no process traced")
		return
	}
	WriteTable(w, r.Processes)
}

// WriteTable prints processes one per block: identity, then each
// capability with its state and reason.
func WriteTable(w io.Writer, procs []Process) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, p := range procs {
		libs := make([]string, 0, len(p.Libraries))
		for _, m := range slices.Sorted(maps.Keys(p.Libraries)) {
			libs = append(libs, m+"@"+p.Libraries[m])
		}
		fmt.Fprintf(tw, "PID %d\t%s\tgo %s\t%s\n", p.PID, p.Exe, orDash(p.GoVersion), strings.Join(libs, " "))
		if p.Skipped != "" {
			fmt.Fprintf(tw, "  NOT TRACED\t\t%s\n", p.Skipped)
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(p.Capabilities)) {
			c := p.Capabilities[name]
			state := "off"
			if c.On {
				state = "on"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, state, c.Why)
		}
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
