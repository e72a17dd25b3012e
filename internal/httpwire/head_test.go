package httpwire

import (
	"bytes"
	"strings"
	"testing"

	"github.com/weft-dev/weft/internal/tracecontext"
)

// TestSourceCluster: X-Source-Cluster is kept like Host: the first field,
// any case, without surrounding whitespace, continued by obs-fold.
func TestSourceCluster(t *testing.T) {
	for _, tc := range []struct {
		name, fields string
		want         string
		ok           bool
	}{
		{"absent", "Host: a\r\n", "", true},
		{"plain", "X-Source-Cluster: aws-us-west-2-prod-01\r\n", "aws-us-west-2-prod-01", true},
		{"any case", "x-SOURCE-cluster: eu-west-1\r\n", "eu-west-1", true},
		{"whitespace trimmed", "X-Source-Cluster: \t us-west-2 \t\r\n", "us-west-2", true},
		{"first wins", "X-Source-Cluster: one\r\nHost: h\r\nX-Source-Cluster: two\r\n", "one", true},
		{"empty then value", "X-Source-Cluster:\r\nX-Source-Cluster: two\r\n", "two", true},
		{"obs-fold", "X-Source-Cluster: a\r\n  b\r\n", "a b", true},
		{"bare LF", "X-Source-Cluster: lf\n", "lf", true},
		{"longer name is another field", "X-Source-Clusters: no\r\n", "", true},
		{"prefix is another field", "X-Source-Cluste: no\r\n", "", true},
		{"control byte", "X-Source-Cluster: a\x00b\r\n", "", false},
		{"space before colon", "X-Source-Cluster : a\r\n", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := []byte("GET / HTTP/1.1\r\n" + tc.fields + "\r\n")
			var h msgHead
			ok := parseHead(head, lineRequest, &h)
			if ok != tc.ok {
				t.Fatalf("parseHead = %v, want %v", ok, tc.ok)
			}
			if ok && h.sourceCluster != tc.want {
				t.Errorf("sourceCluster %q, want %q", h.sourceCluster, tc.want)
			}
		})
	}
}

// TestB3Fields: the B3 fields are kept like Host (first, any case, trimmed)
// and reach the Exchange's request.
func TestB3Fields(t *testing.T) {
	head := "GET / HTTP/1.1\r\nB3:  a-b-1 \r\nx-b3-traceid: t\r\nX-B3-SpanId: s\r\nX-B3-SPANID: s2\r\n" +
		"X-B3-Sampled: true\r\nx-b3-flags: 1\r\nX-B3-Other: o\r\n\r\n"
	want := tracecontext.B3{Single: "a-b-1", TraceID: "t", SpanID: "s", Sampled: "true", Flags: "1"}
	var h msgHead
	if !parseHead([]byte(head), lineRequest, &h) || h.b3 != want {
		t.Errorf("b3 %+v, want %+v", h.b3, want)
	}
	r := play(t, Limits{}, R(head), W(ok0))
	checkProblems(t, r)
	if len(r.ex) != 1 || r.ex[0].Req.B3 != want {
		t.Errorf("%s", dump(r.ex))
	}
}

// The field reaches the Exchange, on both sides of a connection.
func TestSourceClusterExchange(t *testing.T) {
	req := "GET /c HTTP/1.1\r\nHost: h\r\nX-Source-Cluster: gcp-europe-west1-shop-2\r\n\r\n"
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"server", []step{R(req), W(ok0)}},
		{"client", []step{W(req), R(ok0)}},
	} {
		r := play(t, Limits{}, tc.steps...)
		checkProblems(t, r)
		if len(r.ex) != 1 || r.ex[0].Req.SourceCluster != "gcp-europe-west1-shop-2" {
			t.Errorf("%s: %s", tc.name, dump(r.ex))
		}
	}
}

// FuzzParseHead: any head parseHead accepts yields a source cluster that is
// a trimmed slice of the input without control bytes.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte("X-Source-Cluster: aws-us-east-1-prod-01\r\n"))
	f.Add([]byte("x-source-cluster:a\r\n b\r\nX-Source-Cluster: c\r\n"))
	f.Add([]byte("X-Source-Cluster: \t\r\nTracestate: weft=a\r\n"))
	f.Fuzz(func(t *testing.T, fields []byte) {
		if bytes.Contains(fields, []byte("\n\n")) || bytes.Contains(fields, []byte("\n\r\n")) {
			return // an empty line would end the head early
		}
		head := append([]byte("GET / HTTP/1.1\r\n"), fields...)
		if len(fields) > 0 && fields[len(fields)-1] != '\n' {
			head = append(head, "\r\n"...)
		}
		head = append(head, "\r\n"...)
		var h msgHead
		if findHeadEnd(head, 0) != len(head) || !parseHead(head, lineRequest, &h) {
			return
		}
		sc := h.sourceCluster
		if strings.ContainsAny(sc, "\r\n\x00") || strings.TrimLeft(sc, " \t") != sc || strings.TrimRight(sc, " \t") != sc {
			t.Fatalf("source cluster %q", sc)
		}
		if sc != "" && !strings.Contains(strings.ToLower(string(fields)), "x-source-cluster:") {
			t.Fatalf("source cluster %q from a head without the field", sc)
		}
	})
}

// validFieldBytesSlow is validFieldBytes' definition, a byte at a time.
func validFieldBytesSlow(line []byte) bool {
	for _, c := range line {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func TestValidFieldBytes(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{"", true},
		{"Host: example.com", true},
		{"X-A: a\tb and more than eight bytes", true},
		{"X-A: \x7f", false},
		{"X-Long-Header-Name: value\x00with a NUL", false},
		{"X-Long-Header-Name: value\rwith a CR", false},
		{"X-Long-Header-Name: value with a DEL\x7fbyte", false},
		{"X-Long: caf\xc3\xa9 \xff\x80 obs-text", true},
		{"\t\t\t\t\t\t\t\t\t", true},
		{"12345678\x1f", false},
		{"1234567\x1f", false},
	} {
		if got := validFieldBytes([]byte(tc.line)); got != tc.want {
			t.Errorf("validFieldBytes(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
	// Every byte value at every position of a word, among ordinary bytes.
	for pos := range 17 {
		for c := range 256 {
			b := []byte("abcdefghijklmnopq")
			b[pos] = byte(c)
			if got, want := validFieldBytes(b), validFieldBytesSlow(b); got != want {
				t.Fatalf("byte %#x at %d: %v, want %v", c, pos, got, want)
			}
		}
	}
}

func FuzzValidFieldBytes(f *testing.F) {
	f.Add([]byte("Host: x\t\x7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validFieldBytes(b), validFieldBytesSlow(b); got != want {
			t.Fatalf("validFieldBytes(%q) = %v, want %v", b, got, want)
		}
	})
}
