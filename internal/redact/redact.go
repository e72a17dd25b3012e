// Package redact removes credentials from URLs before they leave the node, as
// the OpenTelemetry semantic conventions ask of url.full, url.query and
// url.path (https://opentelemetry.io/docs/specs/semconv/registry/attributes/url/).
//
// Userinfo ("user:pass@" or "user@") in an authority is replaced by
// "REDACTED:REDACTED@". The conventions make this a MUST, so every Policy does
// it, the zero value included.
//
// The values (never the keys) of sensitive query parameters are replaced by
// "REDACTED": "a=1&sig=abc" becomes "a=1&sig=REDACTED". Everything else is kept
// byte for byte: the keys and their spelling, the order of the parameters, the
// separators ('&' and ';'), empty values ("sig=" stays "sig=", there is nothing
// to hide), keys without '=' ("sig" stays "sig"), repeated keys (each value is
// redacted) and the percent-encoding of the other parameters. A value is
// everything after the first '=' up to the next '&' or ';', so "sig=a=b"
// becomes "sig=REDACTED".
//
// A query key matches a name on the list when, percent-decoded ("%73ig" is
// "sig"; '+' reads as a space, as in application/x-www-form-urlencoded;
// invalid escapes such as "%zz" stay literal), it equals the name ignoring
// ASCII case. The conventions' latest text asks for case-sensitive matching;
// weft folds case because servers do (ASP.NET Core's query collection, for
// one, hands "SIG=" to the application as "sig") and because a redaction too
// many costs nothing while one too few leaks a credential.
//
// The default list is the conventions' (AWSAccessKeyId, Signature, sig and
// X-Goog-Signature, and the AWS SigV4 names X-Amz-Signature, X-Amz-Credential
// and X-Amz-Security-Token that later revisions list) and weft's common
// secret names, all matched as above:
//
//	AWSAccessKeyId  Signature  sig  X-Goog-Signature
//	X-Amz-Signature  X-Amz-Credential  X-Amz-Security-Token  X-Goog-Credential
//	token  access_token  refresh_token  id_token
//	api_key  apikey  api-key  key
//	password  passwd  secret  client_secret
//	code  auth  session  jwt
//
// Policy.With adds names to it (weft reads WEFT_REDACT_QUERY_KEYS); a list that
// replaces the default, as the conventions' sensitive_query_parameters does,
// is Policy{}.With(names...).
//
// A fragment ("#...") is dropped wherever it appears: HTTP never sends one, so
// a '#' in a captured request-target is a client's mistake, and dropping it
// keeps whatever follows out of the span.
//
// Every function is pure and never panics, whatever the input (invalid
// escapes, control bytes, any length). When there is nothing to redact,
// Query, Target and (for an absolute-form target) Full return their input or
// substrings of it, without allocating; when there is, they cost one
// allocation. Full given any other target builds url.full in one allocation.
// Redacting twice gives what redacting once did.
package redact

import (
	"slices"
	"strings"

	"github.com/weft-dev/weft/internal/wire"
)

// Redacted replaces a redacted query value, and both halves of a userinfo.
const Redacted = "REDACTED"

const redactedUserinfo = Redacted + ":" + Redacted

// defaultNames is the default list, spelt as the services spell them.
var defaultNames = []string{
	// OpenTelemetry semantic conventions.
	"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature",
	"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
	// weft's additions.
	"X-Goog-Credential",
	"token", "access_token", "refresh_token", "id_token",
	"api_key", "apikey", "api-key", "key",
	"password", "passwd", "secret", "client_secret",
	"code", "auth", "session", "jwt",
}

var defaultPolicy = Policy{}.With(defaultNames...)

// Policy says what to redact. It is an immutable value, safe to share between
// goroutines. The zero value redacts no query parameter (userinfo is always
// redacted); Default is what weft uses.
type Policy struct {
	keys      *keySet // nil: none
	keepQuery bool
}

// keySet is a list of names to redact, indexed by length. It is never
// modified once built: copies of a Policy share it.
type keySet struct {
	names          []string // ASCII lower case, unique, in the order added
	byLen          []string // names sorted by length
	start          []int    // names of length n are byLen[start[n]:start[n+1]]
	minLen, maxLen int      // shortest and longest name
}

// Default returns the policy with the default list of sensitive query keys.
func Default() Policy { return defaultPolicy }

// With returns a copy of p that also redacts the values of the query
// parameters named extraKeys. Names are matched as the package documentation
// says (decoded, ASCII case ignored), so give them decoded: "api key", not
// "api%20key". Surrounding spaces and tabs are trimmed; empty names and names
// already on the list are ignored. p is not modified.
func (p Policy) With(extraKeys ...string) Policy {
	var names []string
	if p.keys != nil {
		names = slices.Clone(p.keys.names)
	}
next:
	for _, k := range extraKeys {
		k = lowerASCII(strings.Trim(k, " \t\r\n"))
		if k == "" {
			continue
		}
		for _, have := range names {
			if have == k {
				continue next
			}
		}
		names = append(names, k)
	}
	if len(names) == 0 {
		return Policy{keepQuery: p.keepQuery}
	}
	ks := &keySet{names: names, minLen: len(names[0])}
	for _, k := range names {
		ks.minLen, ks.maxLen = min(ks.minLen, len(k)), max(ks.maxLen, len(k))
	}
	ks.byLen = slices.Clone(names)
	slices.SortStableFunc(ks.byLen, func(a, b string) int { return len(a) - len(b) })
	ks.start = make([]int, ks.maxLen+2)
	for n, i := 0, 0; n <= ks.maxLen+1; n++ {
		for i < len(ks.byLen) && len(ks.byLen[i]) < n {
			i++
		}
		ks.start[n] = i
	}
	return Policy{keys: ks, keepQuery: p.keepQuery}
}

// KeepQuery returns a copy of p that, if raw is true, leaves query strings as
// they came (weft's WEFT_KEEP_RAW_QUERY=true); userinfo is still redacted.
func (p Policy) KeepQuery(raw bool) Policy {
	p.keepQuery = raw
	return p
}

// Keys returns the names whose values p redacts, in ASCII lower case, in the
// order they were added. The slice is a copy.
func (p Policy) Keys() []string {
	if p.keys == nil {
		return nil
	}
	return slices.Clone(p.keys.names)
}

// Query redacts a query component (the part after '?', without it):
// "a=1&sig=abc" becomes "a=1&sig=REDACTED". It returns q itself when nothing
// needs redacting.
func (p Policy) Query(q string) string {
	n, changed := p.redactedLen(q)
	if !changed {
		return q
	}
	var b strings.Builder
	b.Grow(n)
	p.writeQuery(&b, q)
	return b.String()
}

// Target splits an HTTP request-target (HTTP/1) or :path (HTTP/2) into the
// values of url.path and url.query, the query redacted. The fragment, if a
// client sent one, is dropped; query is "" when there is none.
//
//   - origin-form "/p?q": path "/p".
//   - absolute-form "http://user:pass@host/p?q", as proxies receive: path is
//     only the path component, "/p" ("/" when empty), never the scheme,
//     userinfo or host.
//   - asterisk-form "*": path "*".
//   - authority-form "host:443" (CONNECT), or "": no path, path "".
//
// Absolute-form is a scheme followed by "://". Any other target that does not
// start with '/' is authority-form when it holds no '/', '?' or '#', and is
// otherwise split like origin-form. "//u:p@h/x" is origin-form, a path whose
// first segment is empty, as RFC 9112 reads it (so does net/http): it is
// returned as the path, unchanged.
func (p Policy) Target(target string) (path, query string) {
	t := parse(target)
	switch t.form {
	case formAbsolute:
		path = t.path
		if path == "" {
			path = "/"
		}
	case formOrigin, formOther:
		path = t.path
	case formAsterisk:
		return "*", ""
	default:
		return "", ""
	}
	if t.query == "" {
		return path, ""
	}
	return path, p.Query(t.query)
}

// Full builds url.full from the scheme ("http", "https"), the authority (the
// Host header or :authority) and the request-target, redacting userinfo and
// the query and dropping any fragment.
//
// An absolute-form target is already a URL: Full returns it redacted, and
// ignores scheme and authority. When it needs no redaction it is returned
// itself (up to any '#'), without allocating.
//
// Otherwise the result is scheme "://" authority path ["?" query] ("//"
// authority ... when scheme is ""). The authority is cut at its first '/',
// '?' or '#', which no valid Host has and which would otherwise change the
// URL's shape. An authority-form target (CONNECT) stands for the authority
// and gives no path; "*" and "" give no path either. A target that is none of
// the forms and does not start with '/' gets a '/' before it, so that it
// cannot run into the host.
func (p Policy) Full(scheme, authority, target string) string {
	t := parse(target)
	if t.form == formAbsolute {
		user := strings.LastIndexByte(t.auth, '@')
		redactUser := user >= 0 && t.auth[:user] != redactedUserinfo
		qlen, redactQuery := p.redactedLen(t.query)
		if !redactUser && !redactQuery {
			return target[:t.end]
		}
		auth := t.auth
		if redactUser {
			auth = t.auth[user:] // from the '@' on
		}
		var b strings.Builder
		b.Grow(t.authStart + len(redactedUserinfo) + len(auth) + len(t.path) + 1 + qlen)
		b.WriteString(target[:t.authStart])
		if redactUser {
			b.WriteString(redactedUserinfo)
		}
		b.WriteString(auth)
		b.WriteString(t.path)
		if t.hasQuery {
			b.WriteByte('?')
			p.writeQuery(&b, t.query)
		}
		return b.String()
	}

	if t.form == formAuthority {
		authority = t.auth
	}
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	user := strings.LastIndexByte(authority, '@')
	slash := t.form == formOther && t.path != "" && t.path[0] != '/'

	qlen, _ := p.redactedLen(t.query)
	var b strings.Builder
	b.Grow(len(scheme) + 3 + len(redactedUserinfo) + len(authority) + 2 + len(t.path) + qlen)
	if scheme != "" {
		b.WriteString(scheme)
		b.WriteByte(':')
	}
	b.WriteString("//")
	if user >= 0 {
		b.WriteString(redactedUserinfo)
		b.WriteString(authority[user:])
	} else {
		b.WriteString(authority)
	}
	if slash {
		b.WriteByte('/')
	}
	b.WriteString(t.path)
	if t.hasQuery {
		b.WriteByte('?')
		p.writeQuery(&b, t.query)
	}
	return b.String()
}

// writeQuery writes q, redacted, to b.
func (p Policy) writeQuery(b *strings.Builder, q string) {
	if p.keepQuery || p.keys == nil {
		b.WriteString(q)
		return
	}
	last := 0
	for start, end, ok := p.keys.nextSecret(q, 0); ok; start, end, ok = p.keys.nextSecret(q, end) {
		b.WriteString(q[last:start])
		b.WriteString(Redacted)
		last = end
	}
	b.WriteString(q[last:])
}

// redactedLen returns the length of q redacted, and whether that changes it.
func (p Policy) redactedLen(q string) (n int, changed bool) {
	n = len(q)
	if p.keepQuery || p.keys == nil || q == "" {
		return n, false
	}
	for start, end, ok := p.keys.nextSecret(q, 0); ok; start, end, ok = p.keys.nextSecret(q, end) {
		n += len(Redacted) - (end - start)
		changed = true
	}
	return n, changed
}

// nextSecret finds, from offset from on, the next value in q to redact: a
// non-empty value, not already "REDACTED", of a sensitive key. It returns the
// value's bounds.
func (ks *keySet) nextSecret(q string, from int) (start, end int, ok bool) {
	for i := from; i < len(q); {
		end = i
		eq := -1
		for end < len(q) && q[end] != '&' && q[end] != ';' {
			if eq < 0 && q[end] == '=' {
				eq = end
			}
			end++
		}
		if eq >= 0 && eq+1 < end && q[eq+1:end] != Redacted && ks.match(q[i:eq]) {
			return eq + 1, end, true
		}
		i = end + 1
	}
	return 0, 0, false
}

// match reports whether the raw (still percent-encoded) query key k names a
// sensitive parameter.
func (ks *keySet) match(k string) bool {
	// Decoding shortens a key at most threefold.
	if len(k) < ks.minLen || len(k) > 3*ks.maxLen {
		return false
	}
	n := decodedLen(k)
	if n < ks.minLen || n > ks.maxLen {
		return false
	}
	for _, name := range ks.byLen[ks.start[n]:ks.start[n+1]] {
		if decodedEqualFold(k, name) {
			return true
		}
	}
	return false
}

// decodedLen is the length of k once its valid %XX escapes are decoded.
func decodedLen(k string) int {
	n := len(k)
	for i := 0; i < len(k); i++ {
		if k[i] == '%' && i+2 < len(k) && isHex(k[i+1]) && isHex(k[i+2]) {
			n -= 2
			i += 2
		}
	}
	return n
}

// decodedEqualFold reports whether k, decoded, equals lower (ASCII lower
// case, as long as k decoded) ignoring ASCII case.
func decodedEqualFold(k, lower string) bool {
	i := 0
	for j := 0; j < len(lower); j++ {
		if i >= len(k) {
			return false
		}
		c := k[i]
		switch {
		case c == '%' && i+2 < len(k) && isHex(k[i+1]) && isHex(k[i+2]):
			c = unhex(k[i+1])<<4 | unhex(k[i+2])
			i += 3
		case c == '+':
			c = ' '
			i++
		default:
			i++
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[j] {
			return false
		}
	}
	return i == len(k)
}

func isHex(c byte) bool {
	_, ok := wire.Unhex(c)
	return ok
}

// unhex decodes a digit isHex accepted.
func unhex(c byte) byte {
	v, _ := wire.Unhex(c)
	return v
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

type form uint8

const (
	formEmpty     form = iota // ""
	formOrigin                // "/p?q"
	formAbsolute              // "scheme://authority/p?q"
	formAuthority             // "host:port"
	formAsterisk              // "*"
	formOther                 // anything else, split like origin-form
)

// target is a request-target cut into its parts; all are substrings of it.
type target struct {
	form      form
	auth      string // absolute-form: the authority; authority-form: the target
	authStart int    // absolute-form: where auth starts
	path      string
	query     string // without '?'
	hasQuery  bool
	end       int // where the fragment's '#' is, or the target's length
}

func parse(s string) target {
	t := target{end: len(s)}
	rest := 0 // where path, query and fragment start
	switch {
	case s == "":
		return t
	case s == "*":
		t.form = formAsterisk
		return t
	case s[0] == '/':
		t.form = formOrigin
	default:
		if n := schemeLen(s); n > 0 && strings.HasPrefix(s[n:], "://") {
			t.form = formAbsolute
			t.authStart = n + 3
			rest = len(s)
			if i := strings.IndexAny(s[t.authStart:], "/?#"); i >= 0 {
				rest = t.authStart + i
			}
			t.auth = s[t.authStart:rest]
		} else if strings.IndexAny(s, "/?#") < 0 {
			t.form = formAuthority
			t.auth = s
			return t
		} else {
			t.form = formOther
		}
	}
	if i := strings.IndexByte(s[rest:], '#'); i >= 0 {
		t.end = rest + i
	}
	t.path, t.query, t.hasQuery = strings.Cut(s[rest:t.end], "?")
	return t
}

// schemeLen returns the length of the RFC 3986 scheme s starts with, when a
// ':' follows it, or 0.
func schemeLen(s string) int {
	if s == "" || !('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z') {
		return 0
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '+', c == '-', c == '.':
		case c == ':':
			return i
		default:
			return 0
		}
	}
	return 0
}
