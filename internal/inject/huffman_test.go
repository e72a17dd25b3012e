package inject

import (
	"encoding/binary"
	"os"
	"regexp"
	"strconv"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestHuffmanNames: the Huffman codes of "traceparent" and "tracestate"
// that the sk_msg program looks for in header blocks (HUFF_TP, HUFF_TS in
// bpf/inject.bpf.c, little-endian words) are those Go's HPACK encoder
// writes, with the lengths it puts before them.
func TestHuffmanNames(t *testing.T) {
	src, err := os.ReadFile("../../bpf/inject.bpf.c")
	if err != nil {
		t.Fatal(err)
	}
	def := func(name string) uint64 {
		m := regexp.MustCompile(`#define ` + name + ` (0x[0-9a-f]+|[0-9]+)`).FindSubmatch(src)
		if m == nil {
			t.Fatalf("no #define %s in bpf/inject.bpf.c", name)
		}
		v, err := strconv.ParseUint(string(m[1]), 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct{ name, word, length string }{
		{"traceparent", "HUFF_TP", "HUFF_TP_LEN"},
		{"tracestate", "HUFF_TS", "HUFF_TS_LEN"},
	} {
		code := hpack.AppendHuffmanString(nil, c.name)
		if n := hpack.HuffmanEncodeLength(c.name); n >= uint64(len(c.name)) {
			t.Errorf("%s: Huffman (%d bytes) is not shorter than raw: Go's encoder would write it raw", c.name, n)
		}
		if got := def(c.length); got != uint64(len(code)) {
			t.Errorf("%s = %d, Go's Huffman code has %d bytes", c.length, got, len(code))
		}
		var w [8]byte
		copy(w[:], code)
		if got, want := def(c.word), binary.LittleEndian.Uint64(w[:]); got != want {
			t.Errorf("%s = %#x, Go's Huffman code % x is %#x", c.word, got, code, want)
		}
	}
}
