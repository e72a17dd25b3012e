package tracecontext

import (
	"errors"
	"strings"
	"testing"
)

const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParseTraceparent(t *testing.T) {
	tests := []struct {
		in      string
		err     error
		trace   string
		span    string
		flags   byte
		sampled bool
	}{
		{in: good, trace: "4bf92f3577b34da6a3ce929d0e0e4736", span: "00f067aa0ba902b7", flags: 1, sampled: true},
		{in: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", trace: "4bf92f3577b34da6a3ce929d0e0e4736", span: "00f067aa0ba902b7"},
		// Unknown flag bits are kept.
		{in: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", trace: "4bf92f3577b34da6a3ce929d0e0e4736", span: "00f067aa0ba902b7", flags: 0xff, sampled: true},
		{in: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02", trace: "4bf92f3577b34da6a3ce929d0e0e4736", span: "00f067aa0ba902b7", flags: 2},
		// Higher versions: parsed as 00, extra fields after '-' ignored.
		{in: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", trace: "4bf92f3577b34da6a3ce929d0e0e4736", span: "00f067aa0ba902b7", flags: 1, sampled: true},
		{in: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like", trace: "4bf92f3577b34da6a3ce929d0e0e4736", span: "00f067aa0ba902b7", flags: 1, sampled: true},
		{in: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", trace: "4bf92f3577b34da6a3ce929d0e0e4736", span: "00f067aa0ba902b7", flags: 1, sampled: true},
		{in: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what", err: ErrFormat},
		{in: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", err: ErrLength},

		{in: "", err: ErrLength},
		{in: "00", err: ErrLength},
		{in: good[:54], err: ErrLength},
		{in: good + "-", err: ErrLength},
		{in: good + "0", err: ErrLength},
		{in: " " + good[:54], err: ErrHex},
		{in: "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", err: ErrVersion},
		{in: "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx", err: ErrVersion},
		{in: "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", err: ErrHex},
		{in: "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", err: ErrHex},
		{in: "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", err: ErrHex},
		{in: "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", err: ErrHex},
		{in: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0X", err: ErrHex},
		{in: "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01", err: ErrHex},
		{in: "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", err: ErrFormat},
		{in: "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", err: ErrFormat},
		{in: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01", err: ErrFormat},
		{in: good[:35] + "a" + good[36:], err: ErrFormat},
		{in: good[:34] + "-" + good[35:], err: ErrHex},
		{in: "00-00000000000000000000000000000000-00f067aa0ba902b7-01", err: ErrZeroID},
		{in: "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", err: ErrZeroID},
	}
	for _, tt := range tests {
		sc, err := ParseTraceparent(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("ParseTraceparent(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if sc != (SpanContext{}) {
				t.Errorf("ParseTraceparent(%q) = %+v with error, want zero", tt.in, sc)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTraceparent(%q) error = %v", tt.in, err)
			continue
		}
		if got := sc.TraceID.String(); got != tt.trace {
			t.Errorf("%q: trace %s, want %s", tt.in, got, tt.trace)
		}
		if got := sc.SpanID.String(); got != tt.span {
			t.Errorf("%q: span %s, want %s", tt.in, got, tt.span)
		}
		if sc.Flags != tt.flags || sc.Sampled() != tt.sampled {
			t.Errorf("%q: flags %#x sampled %v, want %#x %v", tt.in, sc.Flags, sc.Sampled(), tt.flags, tt.sampled)
		}
		if !sc.IsValid() {
			t.Errorf("%q: not valid", tt.in)
		}
	}
}

func TestErrorsDistinct(t *testing.T) {
	errs := []error{ErrLength, ErrHex, ErrVersion, ErrZeroID, ErrFormat}
	for i, a := range errs {
		for j, b := range errs {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v is %v", a, b)
			}
		}
	}
}

func TestFormatTraceparent(t *testing.T) {
	sc, err := ParseTraceparent(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatTraceparent(sc); got != good {
		t.Errorf("FormatTraceparent = %q, want %q", got, good)
	}
	// A higher version formats back as 00 and drops the extra fields.
	sc, err = ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatTraceparent(sc); got != good {
		t.Errorf("FormatTraceparent = %q, want %q", got, good)
	}
	var zero SpanContext
	if got := FormatTraceparent(zero); got != "00-00000000000000000000000000000000-0000000000000000-00" {
		t.Errorf("zero = %q", got)
	}
}

func TestIDs(t *testing.T) {
	var tr TraceID
	var sp SpanID
	if tr.IsValid() || sp.IsValid() {
		t.Error("zero IDs valid")
	}
	tr[15], sp[0] = 0xab, 0x01
	if !tr.IsValid() || !sp.IsValid() {
		t.Error("non-zero IDs invalid")
	}
	if tr.String() != "000000000000000000000000000000ab" || sp.String() != "0100000000000000" {
		t.Errorf("String: %s %s", tr, sp)
	}
}

func TestValidTracestate(t *testing.T) {
	long := func(c byte, n int) string { return strings.Repeat(string(c), n) }
	many := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("k")
			b.WriteByte(byte('a' + i/26))
			b.WriteByte(byte('a' + i%26))
			b.WriteString("=v")
		}
		return b.String()
	}
	tests := []struct {
		in string
		ok bool
	}{
		{"", true},
		{"rojo=00f067aa0ba902b7", true},
		{"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", true},
		{"rojo=00f067aa0ba902b7 ,\tcongo=t61rcWkgMzE", true},
		{" rojo=1 ", true},
		{"rojo=1,,congo=2", true}, // empty members are allowed
		{",", true},
		{"tenant@system=value", true},
		{"1tenant@sys=v", true},
		{"a_-*/9=v", true},
		{"k=va lue", true},
		{"k=!\"#$%&'()*+-./:;<>?@[]^_`{|}~", true},
		{long('a', 256) + "=v", true},
		{long('a', 257) + "=v", false},
		{"k=" + long('x', 256), true},
		{"k=" + long('x', 257), false},
		{long('t', 241) + "@" + long('s', 14) + "=v", true},
		{long('t', 242) + "@s=v", false},
		{"t@" + long('s', 15) + "=v", false},
		{many(32), true},
		{many(33), false},
		{"k=" + long('x', MaxTracestateLen-2), false},                   // value too long anyway
		{many(30) + "," + long('z', 200) + "=" + long('v', 130), true},  // 511 bytes
		{many(30) + "," + long('z', 200) + "=" + long('v', 132), false}, // 513 bytes
		{strings.Repeat("abcdefgh=1234567,", 20), false},                // duplicate keys
		{"Rojo=1", false},
		{"1rojo=1", false},
		{"=1", false},
		{"rojo", false},
		{"rojo=", false},
		{"rojo=1=2", false},
		{"rojo=a\x7f", false},
		{"rojo=a\tb", false},
		{"rojo=é", false},
		{"rojo=1,rojo=2", false},
		{"a@b@c=1", false},
		{"@sys=v", false},
		{"t@=v", false},
		{"t@1sys=v", false},
		{"ro jo=1", false},
		{"rojo =1", false},
	}
	for _, tt := range tests {
		if got := ValidTracestate(tt.in); got != tt.ok {
			t.Errorf("ValidTracestate(%q) = %v, want %v", tt.in, got, tt.ok)
		}
	}
}

func FuzzParseTraceparent(f *testing.F) {
	f.Add(good)
	f.Add("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		sc, err := ParseTraceparent(v)
		if err != nil {
			if sc != (SpanContext{}) {
				t.Fatalf("error %v with non-zero result", err)
			}
			n := 0
			for _, e := range []error{ErrLength, ErrHex, ErrVersion, ErrZeroID, ErrFormat} {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %v matches %d sentinels", err, n)
			}
			return
		}
		if !sc.IsValid() {
			t.Fatalf("accepted invalid %q", v)
		}
		out := FormatTraceparent(sc)
		if v[:2] == "00" && out != v {
			t.Fatalf("round trip %q -> %q", v, out)
		}
		if v[:2] != "00" && out[2:] != v[2:TraceparentLen] {
			t.Fatalf("higher version %q -> %q", v, out)
		}
		sc2, err := ParseTraceparent(out)
		if err != nil || sc2 != sc {
			t.Fatalf("reparse %q: %+v %v, want %+v", out, sc2, err, sc)
		}
	})
}

func FuzzValidTracestate(f *testing.F) {
	f.Add("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
	f.Add("a@b=c")
	f.Fuzz(func(t *testing.T, v string) {
		if ValidTracestate(v) && len(v) > MaxTracestateLen {
			t.Fatal("too long accepted")
		}
	})
}
