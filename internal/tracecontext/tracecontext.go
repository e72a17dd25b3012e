// Package tracecontext parses and formats W3C Trace Context headers
// (traceparent and tracestate, https://www.w3.org/TR/trace-context/).
//
// It is pure and allocation-free except for FormatTraceparent's result and
// the String methods.
package tracecontext

import "errors"

// TraceID is a W3C trace-id: 16 bytes, invalid when all zero.
type TraceID [16]byte

// SpanID is a W3C parent-id (span id): 8 bytes, invalid when all zero.
type SpanID [8]byte

const hexDigits = "0123456789abcdef"

// String returns the ID as 32 lowercase hex digits.
func (t TraceID) String() string {
	var b [32]byte
	encodeHex(b[:], t[:])
	return string(b[:])
}

// IsValid reports whether the ID is not all zero.
func (t TraceID) IsValid() bool { return t != TraceID{} }

// String returns the ID as 16 lowercase hex digits.
func (s SpanID) String() string {
	var b [16]byte
	encodeHex(b[:], s[:])
	return string(b[:])
}

// IsValid reports whether the ID is not all zero.
func (s SpanID) IsValid() bool { return s != SpanID{} }

// FlagSampled is the sampled bit of the trace-flags field.
const FlagSampled byte = 0x01

// SpanContext is what a traceparent (and its tracestate) carry.
type SpanContext struct {
	TraceID    TraceID
	SpanID     SpanID // the caller's span: the parent of the span we create
	Flags      byte
	TraceState string // not set by ParseTraceparent
}

// Sampled reports whether the sampled flag is set.
func (sc SpanContext) Sampled() bool { return sc.Flags&FlagSampled != 0 }

// IsValid reports whether both IDs are valid.
func (sc SpanContext) IsValid() bool { return sc.TraceID.IsValid() && sc.SpanID.IsValid() }

// Reasons ParseTraceparent rejects a header, for use with errors.Is. Each
// rejected header yields exactly one of them.
var (
	ErrLength  = errors.New("traceparent: bad length")
	ErrHex     = errors.New("traceparent: not lowercase hex")
	ErrVersion = errors.New("traceparent: invalid version ff")
	ErrZeroID  = errors.New("traceparent: all-zero trace-id or parent-id")
	ErrFormat  = errors.New("traceparent: bad field separator")
)

// Layout of a version-00 traceparent:
//
//	00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
//	0 2 3                              35 36            52 53
const (
	// TraceparentLen is the length of a version-00 traceparent.
	TraceparentLen = 55
	traceOff       = 3
	spanOff        = 36
	flagsOff       = 53
)

// ParseTraceparent parses a traceparent header value. The value must be
// exactly the header's field value: callers trim surrounding whitespace
// (HTTP parsers already strip optional whitespace).
//
// Versions other than 00 are parsed as 00 for forward compatibility: they
// must be at least 55 characters and, when longer, have '-' at index 55;
// what follows is ignored. Version ff is invalid.
func ParseTraceparent(v string) (SpanContext, error) {
	var sc SpanContext
	if len(v) < TraceparentLen {
		return sc, ErrLength
	}
	hi, ok1 := unhex(v[0])
	lo, ok2 := unhex(v[1])
	if !ok1 || !ok2 {
		return sc, ErrHex
	}
	version := hi<<4 | lo
	if version == 0xff {
		return sc, ErrVersion
	}
	if version == 0 && len(v) != TraceparentLen {
		return sc, ErrLength
	}
	if v[2] != '-' || v[spanOff-1] != '-' || v[flagsOff-1] != '-' {
		return sc, ErrFormat
	}
	if len(v) > TraceparentLen && v[TraceparentLen] != '-' {
		return sc, ErrFormat
	}
	if !decodeHex(sc.TraceID[:], v[traceOff:spanOff-1]) ||
		!decodeHex(sc.SpanID[:], v[spanOff:flagsOff-1]) {
		return SpanContext{}, ErrHex
	}
	var flags [1]byte
	if !decodeHex(flags[:], v[flagsOff:TraceparentLen]) {
		return SpanContext{}, ErrHex
	}
	sc.Flags = flags[0]
	if !sc.TraceID.IsValid() || !sc.SpanID.IsValid() {
		return SpanContext{}, ErrZeroID
	}
	return sc, nil
}

// FormatTraceparent returns the version-00 traceparent for sc. It does not
// check validity: callers format only valid contexts.
func FormatTraceparent(sc SpanContext) string {
	var b [TraceparentLen]byte
	b[0], b[1], b[2] = '0', '0', '-'
	encodeHex(b[traceOff:], sc.TraceID[:])
	b[spanOff-1] = '-'
	encodeHex(b[spanOff:], sc.SpanID[:])
	b[flagsOff-1] = '-'
	encodeHex(b[flagsOff:], []byte{sc.Flags})
	return string(b[:])
}

func encodeHex(dst, src []byte) {
	for i, c := range src {
		dst[2*i] = hexDigits[c>>4]
		dst[2*i+1] = hexDigits[c&0x0f]
	}
}

// decodeHex decodes the lowercase hex string s (len(s) == 2*len(dst)).
func decodeHex(dst []byte, s string) bool {
	for i := range dst {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// unhex decodes one lowercase hex digit; uppercase is invalid per the spec.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
