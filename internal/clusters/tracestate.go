package clusters

import "strings"

// TracestateKey is the tracestate member a weft agent adds when it
// injects context: weft=<its cluster name>.
const TracestateKey = "weft"

// TracestateMember returns the value of the first (leftmost, so most
// recent, in W3C terms) member key of a tracestate list. It reads lists
// that are not entirely valid too: a bad member elsewhere must not hide the
// caller's cluster. Values are returned as they are; check them.
func TracestateMember(tracestate, key string) (string, bool) {
	for rest := tracestate; rest != ""; {
		var m string
		m, rest, _ = strings.Cut(rest, ",")
		k, v, ok := strings.Cut(strings.Trim(m, " \t"), "=")
		if ok && k == key {
			return v, true
		}
	}
	return "", false
}
