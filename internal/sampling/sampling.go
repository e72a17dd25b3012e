// Package sampling is weft's head sampler: the OTEL_TRACES_SAMPLER rules,
// applied the same way in the kernel (where span IDs and the sampled flag
// that travels to the next hop are made) and in user space (where spans are
// dropped before export). Both decide from the trace ID alone, as the
// OpenTelemetry SDK's TraceIDRatioBased does, so every agent and every SDK
// with the same ratio keeps or drops the same traces.
package sampling

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The environment variables the OpenTelemetry specification defines.
const (
	EnvSampler = "OTEL_TRACES_SAMPLER"
	EnvArg     = "OTEL_TRACES_SAMPLER_ARG"
)

// AllBound is the bound that keeps every trace ID: the decision compares
// the ID's low 63 bits with it.
const AllBound = uint64(1) << 63

// Sampler is a parsed OTEL_TRACES_SAMPLER. Its zero value drops every
// trace; use Default or Parse.
type Sampler struct {
	name        string  // the specification's name, for logs
	ratio       float64 // the fraction of root traces kept
	bound       uint64  // ratio * 2^63, as TraceIDRatioBased computes it
	parentBased bool    // a span with a parent follows the parent's flag
}

// Default is what an unset OTEL_TRACES_SAMPLER means: every trace is
// started sampled, and callers' decisions are honoured (the
// specification's default, and what weft did before it had a sampler).
func Default() Sampler { return newSampler("parentbased_always_on", 1, true) }

func newSampler(name string, ratio float64, parentBased bool) Sampler {
	return Sampler{name: name, ratio: ratio, bound: Bound(ratio), parentBased: parentBased}
}

// Bound is TraceIDRatioBased's upper bound for ratio: trace IDs whose low
// 63 bits are below it are sampled. Ratios at or above 1 keep everything
// (AllBound), at or below 0 nothing.
func Bound(ratio float64) uint64 {
	switch {
	case ratio >= 1:
		return AllBound
	case ratio <= 0 || math.IsNaN(ratio):
		return 0
	}
	return uint64(ratio * (1 << 63))
}

// samplers maps each specification name to whether it takes a ratio (the
// ARG), its fixed ratio otherwise, and whether it follows the parent.
var samplers = map[string]struct {
	takesArg    bool
	ratio       float64
	parentBased bool
}{
	"always_on":                {ratio: 1},
	"always_off":               {ratio: 0},
	"traceidratio":             {takesArg: true},
	"parentbased_always_on":    {ratio: 1, parentBased: true},
	"parentbased_always_off":   {ratio: 0, parentBased: true},
	"parentbased_traceidratio": {takesArg: true, parentBased: true},
}

// Parse reads the sampler from the environment. An unset sampler is
// Default; an unknown one, or a ratio sampler's argument that is not a
// number in [0, 1], is an error naming the variable and its value. The
// argument of samplers that take none is ignored, as the SDKs do.
func Parse(getenv func(string) string) (Sampler, error) {
	raw := getenv(EnvSampler)
	name := strings.ToLower(strings.TrimSpace(raw)) // the spec's enums are case-insensitive
	if name == "" {
		return Default(), nil
	}
	kind, ok := samplers[name]
	if !ok {
		return Sampler{}, fmt.Errorf("%s=%q: unknown sampler (want always_on, always_off, traceidratio, "+
			"parentbased_always_on, parentbased_always_off or parentbased_traceidratio)", EnvSampler, raw)
	}
	ratio := kind.ratio
	if kind.takesArg {
		r, err := parseRatio(getenv(EnvArg))
		if err != nil {
			return Sampler{}, fmt.Errorf("%s=%q (for %s=%s): %w", EnvArg, getenv(EnvArg), EnvSampler, name, err)
		}
		ratio = r
	}
	return newSampler(name, ratio, kind.parentBased), nil
}

// parseRatio reads a ratio argument; unset means 1, as the specification says.
func parseRatio(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 1, nil
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("reading the sampling ratio: %w", err)
	}
	if !(r >= 0 && r <= 1) { // also refuses NaN
		return 0, fmt.Errorf("sampling ratio %v is outside [0, 1]", r)
	}
	return r, nil
}

// Parent is what a span's sampling decision knows of its parent.
type Parent uint8

const (
	Root            Parent = iota // no parent: the span starts a trace here
	ParentSampled                 // the parent (local or remote) is sampled
	ParentUnsampled               // the parent decided not to sample
)

// Sampled decides a span of trace traceID with the given parent. It is the
// decision OpenTelemetry's SDK makes for the same sampler, trace ID and
// parent flag.
func (s Sampler) Sampled(traceID [16]byte, parent Parent) bool {
	if s.parentBased && parent != Root {
		return parent == ParentSampled
	}
	return RatioSampled(traceID, s.bound)
}

// RatioSampled is TraceIDRatioBased's rule: the trace ID's last 8 bytes,
// big-endian, shifted right once, below bound.
func RatioSampled(traceID [16]byte, bound uint64) bool {
	return binary.BigEndian.Uint64(traceID[8:16])>>1 < bound
}

// Bound is the value the kernel compares trace IDs with (ratio * 2^63;
// AllBound keeps all).
func (s Sampler) Bound() uint64 { return s.bound }

// ParentBased reports whether spans with a parent follow its flag (in the
// kernel too) instead of the ratio.
func (s Sampler) ParentBased() bool { return s.parentBased }

// Ratio is the fraction of traces started here that are kept.
func (s Sampler) Ratio() float64 { return s.ratio }

// String names the sampler as OTEL_TRACES_SAMPLER does, with its ratio
// when it takes one.
func (s Sampler) String() string {
	if samplers[s.name].takesArg {
		return fmt.Sprintf("%s(%g)", s.name, s.ratio)
	}
	return s.name
}
