package redact

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The fuzz tests check the package against an oracle written independently
// of it, and against net/url's reading of the output.

var escape = regexp.MustCompile(`%[0-9A-Fa-f]{2}|\+`)

// oracleDecode decodes a raw query key the way servers do: valid %XX escapes
// and '+' as a space; anything else (an invalid escape) stays literal.
func oracleDecode(k string) string {
	return escape.ReplaceAllStringFunc(k, func(m string) string {
		if m == "+" {
			return " "
		}
		b, _ := strconv.ParseUint(m[1:], 16, 8)
		return string([]byte{byte(b)})
	})
}

// oracleSecret reports whether the decoded key k is on p's list, ASCII case
// ignored.
func oracleSecret(p Policy, k string) bool {
	for _, name := range p.Keys() {
		if len(name) == len(k) && lowerASCII(k) == name {
			return true
		}
	}
	return false
}

// splitQuery splits a query at '&' and ';', keeping empty segments.
func splitQuery(q string) (segs []string, seps string) {
	start := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '&' || q[i] == ';' {
			segs = append(segs, q[start:i])
			seps += q[i : i+1]
			start = i + 1
		}
	}
	return append(segs, q[start:]), seps
}

// checkQuery checks that out is in redacted with p: the same segments and
// separators, non-secret segments byte for byte, secret ones with their key
// kept and a non-empty value replaced by REDACTED; and that net/url, reading
// out, finds no secret value.
func checkQuery(t *testing.T, p Policy, in, out string) {
	t.Helper()
	if p.keepQuery {
		if out != in {
			t.Fatalf("KeepQuery: %q became %q", in, out)
		}
		return
	}
	inSegs, inSeps := splitQuery(in)
	outSegs, outSeps := splitQuery(out)
	if len(inSegs) != len(outSegs) || inSeps != outSeps {
		t.Fatalf("segments differ: %q became %q", in, out)
	}
	for i, s := range inSegs {
		key, val, hasVal := strings.Cut(s, "=")
		want := s
		if hasVal && val != "" && oracleSecret(p, oracleDecode(key)) {
			want = key + "=" + Redacted
		}
		if outSegs[i] != want {
			t.Fatalf("segment %d: %q became %q, want %q (query %q -> %q)", i, s, outSegs[i], want, in, out)
		}
	}
	vals, _ := url.ParseQuery(out)
	for k, vs := range vals {
		if !oracleSecret(p, k) {
			continue
		}
		for _, v := range vs {
			if v != "" && v != Redacted {
				t.Fatalf("net/url reads %q=%q in %q", k, v, out)
			}
		}
	}
}

var querySeeds = []string{
	"", "a=1&b=2", "q=OpenTelemetry&sig=abc", "SIG=abc&Sig=def", "%73ig=abc", "%2573ig=x",
	"sig=a&x=1&sig=b", "a=1;sig=abc;b=2", "sig=", "sig", "sig=a=b", "token=a%20b+c%zz#frag",
	"AWSAccessKeyId=AKIA&Signature=x%2By", "X-Amz-Credential=AKIA%2F2013&X-Amz-Signature=fe",
	"&&sig=x&&;", "=abc", "%zz=1", "api+key=1&my+key=2", "sig=REDACTED", "\x00sig=\x01", "X%2DAmz%2DSecurity%2DToken=t",
}

func FuzzQuery(f *testing.F) {
	for _, s := range querySeeds {
		f.Add(s, "")
		f.Add(s, "my key,X-Custom")
	}
	f.Fuzz(func(t *testing.T, q, extra string) {
		p := Default()
		if extra != "" {
			p = p.With(strings.Split(extra, ",")...)
		}
		out := p.Query(q)
		if again := p.Query(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", q, out, again)
		}
		checkQuery(t, p, q, out)
		if zero := (Policy{}).Query(q); zero != q {
			t.Fatalf("zero policy changed %q to %q", q, zero)
		}
	})
}

var targetSeeds = []string{
	"", "*", "/", "/a/b?x=1&sig=abc", "/a?x=1#frag", "/a#f?sig=1", "//u:p@h/x",
	"http://user:pass@host/x?sig=abc", "http://user@host/x", "http://host", "http://host?token=t",
	"HTTP://u:p@[::1]:8080/x?key=k", "http://a@b@host/p", "https://u:p@h:8443/a?c=d#e",
	"example.com:443", "user:pass@example.com:443", "a/b?sig=1", "?sig=1", "http:/x", "1http://h/x",
	"http://h/%zz?sig=1", "http://h/a%2Fb?Signature=s&x=%41",
}

func FuzzTarget(f *testing.F) {
	for i, s := range targetSeeds {
		f.Add(s, "example.com", uint8(i))
		f.Add(s, "u:p@[2001:db8::1]:8080", uint8(i))
	}
	f.Fuzz(func(t *testing.T, target, authority string, sel uint8) {
		p := Default()
		if sel&4 != 0 {
			p = p.KeepQuery(true)
		}

		// The query, read independently: after the first '?', before the first
		// '#'.
		beforeFrag, _, _ := strings.Cut(target, "#")
		_, rawQuery, hasQuery := strings.Cut(beforeFrag, "?")
		absolute := schemeLen(target) > 0 && strings.HasPrefix(target[schemeLen(target):], "://")
		authorityForm := !absolute && target != "*" && !strings.HasPrefix(target, "/") && !strings.ContainsAny(target, "/?#")
		if authorityForm {
			rawQuery, hasQuery = "", false
		}

		path, query := p.Target(target)
		if strings.ContainsAny(path, "?#") {
			t.Fatalf("Target(%q): path %q", target, path)
		}
		if again := p.Query(query); again != query {
			t.Fatalf("Target(%q): query %q not idempotent: %q", target, query, again)
		}
		checkQuery(t, p, rawQuery, query)
		if absolute {
			if path == "" || path[0] != '/' {
				t.Fatalf("Target(%q): path %q", target, path)
			}
			// The path is net/url's path, never scheme, userinfo or host.
			if u, err := url.Parse(target); err == nil {
				got, err := url.PathUnescape(path)
				if err == nil && got != u.Path && !(path == "/" && u.Path == "") {
					t.Fatalf("Target(%q): path %q, net/url %q", target, path, u.Path)
				}
			}
		}

		scheme := [...]string{"http", "https", "", "http"}[sel&3]
		full := p.Full(scheme, authority, target)
		if strings.Contains(full, "#") {
			t.Fatalf("Full(%q, %q, %q) = %q has a fragment", scheme, authority, target, full)
		}
		if scheme != "" || absolute {
			if again := p.Full(scheme, authority, full); again != full {
				t.Fatalf("Full(%q, %q, %q) not idempotent: %q -> %q", scheme, authority, target, full, again)
			}
		}
		_, fullQuery, fullHasQuery := strings.Cut(full, "?")
		if fullHasQuery != hasQuery {
			t.Fatalf("Full(%q, %q, %q) = %q: query present %v, want %v", scheme, authority, target, full, fullHasQuery, hasQuery)
		}
		checkQuery(t, p, rawQuery, fullQuery)
		if u, err := url.Parse(full); err == nil {
			if u.User != nil && u.User.String() != redactedUserinfo {
				t.Fatalf("Full(%q, %q, %q) = %q: userinfo %q", scheme, authority, target, full, u.User)
			}
		}
		// Without userinfo or secrets, an absolute-form target comes back as is.
		if absolute && !strings.Contains(target, "@") && !strings.Contains(target, "#") && p.Query(rawQuery) == rawQuery && full != target {
			t.Fatalf("Full(%q) = %q", target, full)
		}
	})
}
