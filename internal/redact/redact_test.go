package redact

import (
	"strings"
	"testing"
	"unsafe"
)

func TestDefaultKeys(t *testing.T) {
	want := []string{
		"awsaccesskeyid", "signature", "sig", "x-goog-signature",
		"x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-credential",
		"token", "access_token", "refresh_token", "id_token",
		"api_key", "apikey", "api-key", "key",
		"password", "passwd", "secret", "client_secret",
		"code", "auth", "session", "jwt",
	}
	got := Default().Keys()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Default().Keys() = %q\nwant %q", got, want)
	}
	// Every default name redacts, spelt as documented or in any case.
	for _, name := range defaultNames {
		for _, k := range []string{name, strings.ToUpper(name), strings.ToLower(name)} {
			if got := Default().Query("a=1&" + k + "=s3cr3t&b=2"); got != "a=1&"+k+"=REDACTED&b=2" {
				t.Errorf("Query with %q = %q", k, got)
			}
		}
	}
	got[0] = "mutated"
	if Default().Keys()[0] != "awsaccesskeyid" {
		t.Error("Keys returned the policy's own slice")
	}
}

func TestQuery(t *testing.T) {
	d := Default()
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"a=1&b=2", "a=1&b=2"},
		{"q=OpenTelemetry&sig=abc", "q=OpenTelemetry&sig=REDACTED"},
		{"sig=abc", "sig=REDACTED"},
		{"AWSAccessKeyId=AKIA&Signature=x%2By&Expires=1", "AWSAccessKeyId=REDACTED&Signature=REDACTED&Expires=1"},
		{"X-Goog-Signature=ab12&X-Goog-Date=2024", "X-Goog-Signature=REDACTED&X-Goog-Date=2024"},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2013%2Fus-east-1&X-Amz-Signature=fe5f&X-Amz-Security-Token=tok",
			"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Security-Token=REDACTED"},
		// Case differences.
		{"SIG=abc&Sig=def&sIg=ghi", "SIG=REDACTED&Sig=REDACTED&sIg=REDACTED"},
		{"awsaccesskeyid=1&SIGNATURE=2&x-goog-signature=3", "awsaccesskeyid=REDACTED&SIGNATURE=REDACTED&x-goog-signature=REDACTED"},
		// Encoded keys: the key is kept as written.
		{"%73ig=abc", "%73ig=REDACTED"},
		{"%53%49%47=abc", "%53%49%47=REDACTED"},
		{"api%5Fkey=abc&api%2dkey=def", "api%5Fkey=REDACTED&api%2dkey=REDACTED"},
		{"X%2DAmz%2DSecurity%2DToken=t&%78%2d%61%6d%7a%2d%73%65%63%75%72%69%74%79%2d%74%6f%6b%65%6e=u", "X%2DAmz%2DSecurity%2DToken=REDACTED&%78%2d%61%6d%7a%2d%73%65%63%75%72%69%74%79%2d%74%6f%6b%65%6e=REDACTED"},
		{"%2573ig=abc", "%2573ig=abc"}, // decoded once, that is "%73ig"
		{"%zzsig=abc&sig%=d&%=e&%7=f", "%zzsig=abc&sig%=d&%=e&%7=f"},
		// Repeated keys.
		{"sig=a&x=1&sig=b&sig=c", "sig=REDACTED&x=1&sig=REDACTED&sig=REDACTED"},
		// ';' separators, mixed with '&'.
		{"a=1;sig=abc;b=2", "a=1;sig=REDACTED;b=2"},
		{"a=1;sig=abc&token=t;b=2", "a=1;sig=REDACTED&token=REDACTED;b=2"},
		// Empty value, key without value, empty segments.
		{"sig=", "sig="},
		{"sig=&a=1", "sig=&a=1"},
		{"sig", "sig"},
		{"sig&token", "sig&token"},
		{"&&sig=x&&;", "&&sig=REDACTED&&;"},
		{"=abc", "=abc"},
		// Value containing '=' and other bytes.
		{"sig=a=b==&c=d", "sig=REDACTED&c=d"},
		{"token=a%20b+c%zz#frag", "token=REDACTED"},
		{"token=\x00\x01\xff&ok=\x7f", "token=REDACTED&ok=\x7f"},
		// Percent-encoding of other values preserved byte for byte.
		{"q=a%2Bb+c%zz%&sig=1&r=%E2%82%AC", "q=a%2Bb+c%zz%&sig=REDACTED&r=%E2%82%AC"},
		// Similar but different names are kept.
		{"sigs=1&signature2=2&xsig=3&tokens=4&keys=5", "sigs=1&signature2=2&xsig=3&tokens=4&keys=5"},
		// Already redacted.
		{"sig=REDACTED&a=1", "sig=REDACTED&a=1"},
		// Short values grow the result.
		{"sig=a&key=b&code=c", "sig=REDACTED&key=REDACTED&code=REDACTED"},
	} {
		if got := d.Query(c.in); got != c.want {
			t.Errorf("Query(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPolicies(t *testing.T) {
	var zero Policy
	if got := zero.Query("sig=abc&token=x"); got != "sig=abc&token=x" {
		t.Errorf("zero policy redacted the query: %q", got)
	}
	if got := zero.Full("https", "u:p@h", "/?sig=1"); got != "https://REDACTED:REDACTED@h/?sig=1" {
		t.Errorf("zero policy Full = %q", got)
	}

	custom := Default().With(" X-Custom-Secret ", "", "SIG", "my key", "\tsecond\t")
	if got := custom.Query("x-custom-secret=1&Second=2&my+key=3&my%20KEY=4&sig=5&a=6"); got != "x-custom-secret=REDACTED&Second=REDACTED&my+key=REDACTED&my%20KEY=REDACTED&sig=REDACTED&a=6" {
		t.Errorf("custom Query = %q", got)
	}
	if n, m := len(custom.Keys()), len(Default().Keys())+3; n != m {
		t.Errorf("custom has %d keys, want %d (duplicates and empties ignored)", n, m)
	}
	if got := Default().Query("x-custom-secret=1"); got != "x-custom-secret=1" {
		t.Error("With modified Default")
	}

	// With never writes into the slice of the policy it copies.
	base := Policy{}.With("a", "b")
	p1, p2 := base.With("c"), base.With("d")
	if p1.Query("c=1&d=2") != "c=REDACTED&d=2" || p2.Query("c=1&d=2") != "c=1&d=REDACTED" {
		t.Error("policies derived from one base share state")
	}

	only := Policy{}.With("foo")
	if got := only.Query("sig=1&foo=2"); got != "sig=1&foo=REDACTED" {
		t.Errorf("replacement list: %q", got)
	}

	keep := Default().KeepQuery(true)
	if got := keep.Query("sig=abc"); got != "sig=abc" {
		t.Errorf("KeepQuery(true).Query = %q", got)
	}
	if p, q := keep.Target("http://u:p@h/x?sig=abc"); p != "/x" || q != "sig=abc" {
		t.Errorf("KeepQuery(true).Target = %q, %q", p, q)
	}
	if got := keep.Full("http", "u:p@h", "/x?sig=abc"); got != "http://REDACTED:REDACTED@h/x?sig=abc" {
		t.Errorf("KeepQuery(true).Full = %q", got)
	}
	if got := keep.KeepQuery(false).Query("sig=abc"); got != "sig=REDACTED" {
		t.Errorf("KeepQuery(false).Query = %q", got)
	}
	if got := keep.With("foo").Query("foo=1"); got != "foo=1" {
		t.Error("With dropped KeepQuery")
	}
}

func TestTarget(t *testing.T) {
	d := Default()
	for _, c := range []struct{ in, path, query string }{
		{"", "", ""},
		{"/", "/", ""},
		{"/a/b", "/a/b", ""},
		{"/a/b?", "/a/b", ""},
		{"/a/b?x=1&sig=abc", "/a/b", "x=1&sig=REDACTED"},
		{"/a?x=1#frag", "/a", "x=1"},
		{"/a#frag?sig=abc", "/a", ""},
		{"/a?x=1#&sig=abc", "/a", "x=1"},
		{"/a?b?sig=c", "/a", "b?sig=c"}, // the key is "b?sig"
		{"/a?sig=c?d", "/a", "sig=REDACTED"},
		{"//u:p@h/x", "//u:p@h/x", ""}, // origin-form: a path whose first segment is empty
		// Absolute-form: only the path.
		{"http://user:pass@host/x?sig=abc", "/x", "sig=REDACTED"},
		{"http://user@host/x", "/x", ""},
		{"http://host", "/", ""},
		{"http://host?token=t", "/", "token=REDACTED"},
		{"https://u:p@host:8443/a/b?c=d#e", "/a/b", "c=d"},
		{"HTTP://u:p@[::1]:8080/x?key=k", "/x", "key=REDACTED"},
		{"http://a@b@host/p", "/p", ""},
		{"http://host#frag", "/", ""},
		{"ws+unix://u:p@sock/p", "/p", ""},
		// Asterisk and authority forms.
		{"*", "*", ""},
		{"example.com:443", "", ""},
		{"user:pass@example.com:443", "", ""},
		{"[::1]:443", "", ""},
		// Anything else is split like origin-form.
		{"a/b?sig=1", "a/b", "sig=REDACTED"},
		{"?sig=1", "", "sig=REDACTED"},
		{"http:/x?sig=1", "http:/x", "sig=REDACTED"},
		{"1http://h/x", "1http://h/x", ""}, // no scheme: a digit starts it
	} {
		p, q := d.Target(c.in)
		if p != c.path || q != c.query {
			t.Errorf("Target(%q) = %q, %q, want %q, %q", c.in, p, q, c.path, c.query)
		}
	}
}

func TestFull(t *testing.T) {
	d := Default()
	for _, c := range []struct{ scheme, authority, target, want string }{
		{"http", "example.com", "/search?q=OpenTelemetry", "http://example.com/search?q=OpenTelemetry"},
		{"https", "www.example.com", "/path?color=blue&sig=abc", "https://www.example.com/path?color=blue&sig=REDACTED"},
		{"http", "h", "/p?", "http://h/p?"},
		{"http", "h", "/p?x=1#frag", "http://h/p?x=1"},
		{"http", "h", "/p#frag", "http://h/p"},
		// Userinfo in the authority, with and without password.
		{"https", "username:password@www.example.com", "/", "https://REDACTED:REDACTED@www.example.com/"},
		{"https", "username@www.example.com", "/", "https://REDACTED:REDACTED@www.example.com/"},
		{"https", "@www.example.com", "/", "https://REDACTED:REDACTED@www.example.com/"},
		{"http", "u:p@[2001:db8::1]:8080", "/x?sig=1", "http://REDACTED:REDACTED@[2001:db8::1]:8080/x?sig=REDACTED"},
		{"http", "a@b:c@h", "/", "http://REDACTED:REDACTED@h/"},
		{"http", "REDACTED:REDACTED@h", "/", "http://REDACTED:REDACTED@h/"},
		// An authority is cut at '/', '?' or '#'.
		{"http", "h/x", "/p", "http://h/p"},
		{"http", "h?sig=abc", "/p", "http://h/p"},
		{"http", "u:p@h#x", "/p", "http://REDACTED:REDACTED@h/p"},
		// Absolute-form targets are the URL; scheme and authority are ignored.
		{"http", "proxy:3128", "http://user:pass@host/x?sig=abc", "http://REDACTED:REDACTED@host/x?sig=REDACTED"},
		{"http", "proxy", "http://user@host/x", "http://REDACTED:REDACTED@host/x"},
		{"http", "proxy", "http://host/x?a=1&Signature=s#f", "http://host/x?a=1&Signature=REDACTED"},
		{"http", "proxy", "http://host", "http://host"},
		{"http", "proxy", "http://host#f", "http://host"},
		{"http", "proxy", "HTTPS://u:p@[fe80::1%25eth0]:443?token=t", "HTTPS://REDACTED:REDACTED@[fe80::1%25eth0]:443?token=REDACTED"},
		{"http", "proxy", "http://a@b@host/p", "http://REDACTED:REDACTED@host/p"},
		// Asterisk, authority-form and empty targets have no path.
		{"http", "h", "*", "http://h"},
		{"http", "h", "", "http://h"},
		{"http", "ignored", "example.com:443", "http://example.com:443"},
		{"http", "ignored", "user:pass@example.com:443", "http://REDACTED:REDACTED@example.com:443"},
		// Other targets.
		{"http", "h", "a/b?sig=1", "http://h/a/b?sig=REDACTED"},
		{"http", "h", "?sig=1", "http://h?sig=REDACTED"},
		// No scheme.
		{"", "localhost", "", "//localhost"},
		{"", "u:p@localhost", "/x", "//REDACTED:REDACTED@localhost/x"},
	} {
		if got := d.Full(c.scheme, c.authority, c.target); got != c.want {
			t.Errorf("Full(%q, %q, %q) = %q, want %q", c.scheme, c.authority, c.target, got, c.want)
		}
	}
}

// TestUnchanged checks that inputs needing no redaction come back as the same
// string, without allocating.
func TestUnchanged(t *testing.T) {
	d := Default()
	same := func(a, b string) bool { return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b) }
	for _, q := range []string{"a=1&b=2", "q=OpenTelemetry&sig=REDACTED&sig=&sig", "%zz=1;x"} {
		if got := d.Query(q); !same(got, q) {
			t.Errorf("Query(%q) = %q, not the input", q, got)
		}
		if n := testing.AllocsPerRun(100, func() { d.Query(q) }); n != 0 {
			t.Errorf("Query(%q): %v allocs", q, n)
		}
	}
	for _, tg := range []string{"/a/b?x=1&y=2", "http://host/x?y=1", "*", "host:443"} {
		if n := testing.AllocsPerRun(100, func() { d.Target(tg) }); n != 0 {
			t.Errorf("Target(%q): %v allocs", tg, n)
		}
	}
	for _, u := range []string{"http://host/x?y=1", "https://REDACTED:REDACTED@h/p?sig=REDACTED"} {
		if got := d.Full("http", "x", u); !same(got, u) {
			t.Errorf("Full(%q) = %q, not the input", u, got)
		}
		if n := testing.AllocsPerRun(100, func() { d.Full("http", "x", u) }); n != 0 {
			t.Errorf("Full(%q): %v allocs", u, n)
		}
	}
	// Redacting costs one allocation.
	for _, f := range []func(){
		func() { d.Query("a=1&sig=abc&token=t&b=2") },
		func() { d.Target("http://u:p@h/x?a=1&sig=abc") },
		func() { d.Full("http", "u:p@h", "/x?a=1&sig=abc&code=c") },
		func() { d.Full("http", "h", "http://u:p@h/x?a=1&sig=abc") },
	} {
		if n := testing.AllocsPerRun(100, f); n != 1 {
			t.Errorf("%v allocs, want 1", n)
		}
	}
}

// TestHuge runs the functions over large and hostile inputs.
func TestHuge(t *testing.T) {
	d := Default().With(strings.Repeat("k", 1000))
	big := strings.Repeat("sig=abc&", 100000) + strings.Repeat("%", 100000) + strings.Repeat("%73", 10000) + "=x"
	if got := d.Query(big); strings.Contains(got, "abc") {
		t.Error("a value survived in a huge query")
	}
	d.Target("/" + big)
	d.Full("http", strings.Repeat("@", 1000), "http://"+strings.Repeat("u:p@", 1000)+"h/?"+big)
	if got := d.Query(strings.Repeat("%6B", 1000) + "=v"); !strings.HasSuffix(got, "=REDACTED") {
		t.Error("a long encoded key was not matched")
	}
}

var sink string

func BenchmarkQuery(b *testing.B) {
	d := Default()
	for _, c := range []struct{ name, q string }{
		{"clean", "id=123&page=2&sort=desc&filter=active"},
		{"secret", "id=123&page=2&sig=abcdef0123456789&sort=desc"},
		{"presigned", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130721%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130721T201207Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = d.Query(c.q)
			}
		})
	}
}

func BenchmarkTargetNoQuery(b *testing.B) {
	d := Default()
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = d.Target("/api/v1/users/12345/orders")
	}
}

func BenchmarkTarget(b *testing.B) {
	d := Default()
	b.ReportAllocs()
	for b.Loop() {
		sink, sink = d.Target("/api/v1/users?id=123&page=2&sort=desc")
	}
}

func BenchmarkFull(b *testing.B) {
	d := Default()
	b.Run("origin", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink = d.Full("http", "api.example.com:8080", "/api/v1/users?id=123&page=2")
		}
	})
	b.Run("absolute", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink = d.Full("http", "proxy:3128", "http://api.example.com/api/v1/users?id=123&page=2")
		}
	})
}
