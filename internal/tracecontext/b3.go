package tracecontext

import (
	"errors"
	"strings"
)

// B3 propagation (Zipkin's, as Istio/Envoy and Linkerd send it), read as
// incoming context only: https://github.com/openzipkin/b3-propagation.
//
// Single header:
//
//	b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]
//
// with a 32 or 16 lowercase hex digit trace ID (a 16-digit one is the low
// half of a 128-bit ID: left-padded with zeros), a 16-digit span ID and a
// sampling state of "1", "0" or "d" (debug, so sampled); "b3: 0", "1" or
// "d" alone carries no context. Multi headers: X-B3-TraceId, X-B3-SpanId,
// X-B3-Sampled ("1", "0", "true", "false") and X-B3-Flags ("1": debug).
// Without a sampling state the decision was deferred: the context is taken
// as sampled. bpf/tracectx.h applies the same rules in the kernel.

// B3 holds a request's B3 header values, "" when absent (the first of
// each, trimmed).
type B3 struct {
	Single                          string // b3
	TraceID, SpanID, Sampled, Flags string // X-B3-TraceId, X-B3-SpanId, X-B3-Sampled, X-B3-Flags
}

// Present reports whether any B3 header was there.
func (b B3) Present() bool { return b != B3{} }

// Reasons B3 headers are rejected, for use with errors.Is. Each rejection
// yields exactly one of them.
var (
	ErrB3Length  = errors.New("b3: bad length")
	ErrB3Hex     = errors.New("b3: not lowercase hex")
	ErrB3ZeroID  = errors.New("b3: all-zero trace or span id")
	ErrB3Format  = errors.New("b3: bad field separator")
	ErrB3Sampled = errors.New("b3: bad sampling state")
	ErrB3Missing = errors.New("b3: trace id without span id, or span id without trace id")
)

// errB3NoContext is ParseB3's answer to a sampling-only value ("b3: 0"):
// valid, but no context.
var errB3NoContext = errors.New("b3: sampling state only")

const (
	b3TraceLong  = 32 // hex digits of a 128-bit trace ID
	b3TraceShort = 16 // of a 64-bit one
	b3SpanLen    = 16
)

// ParseB3 parses a single b3 header value (trimmed). A sampling-only value
// yields a zero SpanContext and a nil error.
func ParseB3(v string) (SpanContext, error) {
	sc, err := parseB3(v)
	if errors.Is(err, errB3NoContext) {
		return SpanContext{}, nil
	}
	return sc, err
}

func parseB3(v string) (SpanContext, error) {
	if len(v) == 1 {
		if _, ok := b3State(v[0]); ok {
			return SpanContext{}, errB3NoContext
		}
		return SpanContext{}, ErrB3Sampled
	}
	tl := b3TraceShort
	if len(v) > b3TraceLong && v[b3TraceLong] == '-' {
		tl = b3TraceLong
	}
	rest := tl + 1 + b3SpanLen
	if len(v) < rest {
		return SpanContext{}, ErrB3Length
	}
	if v[tl] != '-' {
		return SpanContext{}, ErrB3Format
	}
	var sc SpanContext
	if err := b3IDs(&sc, v[:tl], v[tl+1:rest]); err != nil {
		return SpanContext{}, err
	}
	sc.Flags = FlagSampled // deferred
	if len(v) == rest {
		return sc, nil
	}
	if v[rest] != '-' {
		return SpanContext{}, ErrB3Format
	}
	if len(v) < rest+2 {
		return SpanContext{}, ErrB3Length
	}
	f, ok := b3State(v[rest+1])
	if !ok {
		return SpanContext{}, ErrB3Sampled
	}
	sc.Flags = f
	if len(v) == rest+2 {
		return sc, nil
	}
	if v[rest+2] != '-' {
		return SpanContext{}, ErrB3Format
	}
	if len(v) != rest+3+b3SpanLen {
		return SpanContext{}, ErrB3Length
	}
	// The parent span ID is checked, not used: the span ID is our parent.
	var parent SpanID
	if !decodeHex(parent[:], v[rest+3:]) {
		return SpanContext{}, ErrB3Hex
	}
	if !parent.IsValid() {
		return SpanContext{}, ErrB3ZeroID
	}
	return sc, nil
}

// b3State decodes a single header's sampling state.
func b3State(c byte) (byte, bool) {
	switch c {
	case '1', 'd':
		return FlagSampled, true
	case '0':
		return 0, true
	}
	return 0, false
}

// b3IDs decodes a 32 or 16 digit trace ID (padded) and a span ID into sc.
func b3IDs(sc *SpanContext, trace, span string) error {
	if len(trace) != b3TraceLong && len(trace) != b3TraceShort || len(span) != b3SpanLen {
		return ErrB3Length
	}
	if !decodeHex(sc.TraceID[len(sc.TraceID)-len(trace)/2:], trace) || !decodeHex(sc.SpanID[:], span) {
		return ErrB3Hex
	}
	if !sc.IsValid() {
		return ErrB3ZeroID
	}
	return nil
}

// ParseB3Multi parses the X-B3-* header values (trimmed, "" when absent).
// Without a trace ID and a span ID (only sampling headers, or none) it
// yields a zero SpanContext and a nil error.
func ParseB3Multi(traceID, spanID, sampled, flags string) (SpanContext, error) {
	if traceID == "" && spanID == "" {
		return SpanContext{}, nil
	}
	if traceID == "" || spanID == "" {
		return SpanContext{}, ErrB3Missing
	}
	var sc SpanContext
	if err := b3IDs(&sc, traceID, spanID); err != nil {
		return SpanContext{}, err
	}
	sc.Flags = FlagSampled // deferred, unless X-B3-Sampled says
	switch {
	case sampled == "":
	case sampled == "1" || strings.EqualFold(sampled, "true"):
	case sampled == "0" || strings.EqualFold(sampled, "false"):
		sc.Flags = 0
	default:
		return SpanContext{}, ErrB3Sampled
	}
	if flags == "1" { // debug; other values are ignored
		sc.Flags = FlagSampled
	}
	return sc, nil
}

// ExtractB3 is the context a request's B3 headers carry: the single
// header's when it is valid, else the multi headers'. A zero SpanContext
// and a nil error: no context (no B3 header, or sampling state only). An
// error: a B3 context was there and malformed (the single header's reason
// when both forms fail).
func ExtractB3(b B3) (SpanContext, error) {
	var errSingle error
	if b.Single != "" {
		sc, err := ParseB3(b.Single)
		if err == nil && sc.IsValid() {
			return sc, nil
		}
		errSingle = err
	}
	sc, err := ParseB3Multi(b.TraceID, b.SpanID, b.Sampled, b.Flags)
	if err == nil && sc.IsValid() {
		return sc, nil
	}
	if errSingle != nil {
		return SpanContext{}, errSingle
	}
	return SpanContext{}, err
}
