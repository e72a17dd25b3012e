package inject

import "fmt"

// stateMax is INJ_STATE_MAX (bpf/inject.h): room for the encoded member.
const stateMax = 96

// traceState is what the injector adds after traceparent: one W3C
// tracestate list member, as an HTTP/1 header line and as an HPACK field;
// and, for an HTTP/1 request with a tracestate of its own, the member to
// put first in that list ("key=value,"), whose first keyLen bytes are
// "key=".
type traceState struct {
	line, field, member []byte
	keyLen              int
}

// encodeTraceState checks key=value against the W3C tracestate grammar (a
// simple key: lowercase letter first, then [a-z0-9_*/-]; a value of
// printable ASCII without ',' and '=', not ending in a space) and encodes
// it. Empty value: nothing to add.
func encodeTraceState(key, value string) (traceState, error) {
	if value == "" {
		return traceState{}, nil
	}
	if err := checkKey(key); err != nil {
		return traceState{}, err
	}
	if len(value) > 256 {
		return traceState{}, fmt.Errorf("tracestate value %q: longer than 256 characters", value)
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return traceState{}, fmt.Errorf("tracestate value %q: character %q not allowed", value, c)
		}
	}
	if value[len(value)-1] == ' ' {
		return traceState{}, fmt.Errorf("tracestate value %q: ends in a space", value)
	}
	member := key + "=" + value
	line := []byte("tracestate: " + member + "\r\n")
	// A literal without indexing, no Huffman: the dynamic table of the
	// connection stays as the application left it.
	field := []byte{0x00}
	field = appendHPACKString(field, "tracestate")
	field = appendHPACKString(field, member)
	if len(line) > stateMax || len(field) > stateMax {
		return traceState{}, fmt.Errorf("tracestate member %q: longer than the %d bytes the injector has room for", member, stateMax-len("tracestate: \r\n"))
	}
	return traceState{line: line, field: field, member: []byte(member + ","), keyLen: len(key) + 1}, nil
}

// appendHPACKString appends a raw (not Huffman-coded) HPACK string: a
// 7-bit-prefix length, then the bytes. Lengths here are below 127, so the
// prefix is one byte.
func appendHPACKString(b []byte, s string) []byte {
	return append(append(b, byte(len(s))), s...)
}

func checkKey(key string) error {
	if key == "" || len(key) > 256 || key[0] < 'a' || key[0] > 'z' {
		return fmt.Errorf("tracestate key %q: must start with a lowercase letter", key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '*' || c == '/') {
			return fmt.Errorf("tracestate key %q: character %q not allowed", key, c)
		}
	}
	return nil
}

// headerLen is INJ_HEADER_LEN (bpf/inject.h): the traceparent line.
const headerLen = 70

// HTTP1Added is how many bytes the injector adds to each HTTP/1 request
// it gives context to, with tracestate key=value ("" value: none; a value
// SetTraceState would refuse adds nothing either), when the request has no
// tracestate of its own.
func HTTP1Added(key, value string) uint32 {
	ts, err := encodeTraceState(key, value)
	if err != nil {
		return headerLen
	}
	return uint32(headerLen + len(ts.line))
}

// HTTP1MergedAdded is how many bytes it adds to a request that has a
// tracestate of its own, without key: the traceparent line and "key=value,"
// at the start of the app's list. (With key there already, or without a
// member to add, it adds the traceparent line alone: headerLen.)
func HTTP1MergedAdded(key, value string) uint32 {
	ts, err := encodeTraceState(key, value)
	if err != nil {
		return headerLen
	}
	return uint32(headerLen + len(ts.member))
}
