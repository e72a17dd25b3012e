package tracecontext

// Limits on tracestate from the W3C specification.
const (
	MaxTracestateMembers = 32
	// MaxTracestateLen is the length vendors must be able to propagate;
	// ValidTracestate rejects longer values so the agent never forwards a
	// header that a compliant peer may truncate.
	MaxTracestateLen = 512
)

// ValidTracestate reports whether v is a tracestate value the agent may
// propagate unchanged:
//
//	list        = list-member *( OWS "," OWS list-member ), at most 32 members
//	list-member = key "=" value        (empty members are allowed and ignored)
//	key         = simple-key / tenant-id "@" system-id
//	simple-key  = lcalpha 0*255( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
//	tenant-id   = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
//	system-id   = lcalpha 0*13( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
//	value       = 0*255( %x20-2B / %x2D-3C / %x3E-7E ) %x21-2B / %x2D-3C / %x3E-7E
//
// Keys must be unique and the whole value at most MaxTracestateLen bytes.
// The empty string is valid (an empty header).
func ValidTracestate(v string) bool {
	if len(v) > MaxTracestateLen {
		return false
	}
	var keys [MaxTracestateMembers]string
	n := 0
	for start := 0; start <= len(v); {
		end := start
		for end < len(v) && v[end] != ',' {
			end++
		}
		m := trimOWS(v[start:end])
		start = end + 1
		if m == "" {
			continue
		}
		key, ok := validMember(m)
		if !ok || n == MaxTracestateMembers {
			return false
		}
		for _, k := range keys[:n] {
			if k == key {
				return false
			}
		}
		keys[n] = key
		n++
	}
	return true
}

// validMember checks one non-empty list member and returns its key.
func validMember(m string) (string, bool) {
	eq := -1
	for i := 0; i < len(m); i++ {
		if m[i] == '=' {
			eq = i
			break
		}
	}
	if eq < 0 {
		return "", false
	}
	key, val := m[:eq], m[eq+1:]
	if !validKey(key) || !validValue(val) {
		return "", false
	}
	return key, true
}

func validKey(k string) bool {
	at := -1
	for i := 0; i < len(k); i++ {
		if k[i] == '@' {
			if at >= 0 {
				return false
			}
			at = i
		}
	}
	if at < 0 {
		return len(k) >= 1 && len(k) <= 256 && isLcalpha(k[0]) && keyChars(k[1:])
	}
	tenant, system := k[:at], k[at+1:]
	return len(tenant) >= 1 && len(tenant) <= 241 &&
		(isLcalpha(tenant[0]) || isDigit(tenant[0])) && keyChars(tenant[1:]) &&
		len(system) >= 1 && len(system) <= 14 &&
		isLcalpha(system[0]) && keyChars(system[1:])
}

func keyChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLcalpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '*' && c != '/' {
			return false
		}
	}
	return true
}

func validValue(v string) bool {
	if len(v) == 0 || len(v) > 256 || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

// trimOWS removes spaces and tabs around s.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func isLcalpha(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool   { return '0' <= c && c <= '9' }
