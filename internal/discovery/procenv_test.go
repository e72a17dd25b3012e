package discovery

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

func TestEnvAttributes(t *testing.T) {
	env := func(kv ...string) []byte {
		var b []byte
		for _, s := range kv {
			b = append(append(b, s...), 0)
		}
		return b
	}
	tests := []struct {
		name    string
		environ []byte
		want    string
	}{
		{"none", env("PATH=/bin", "HOME=/"), "[]"},
		{"service", env("OTEL_SERVICE_NAME=orders"), "[service.name=orders]"},
		{"attributes", env("OTEL_RESOURCE_ATTRIBUTES=team=shop,deployment.environment.name=prod%20eu"),
			"[team=shop deployment.environment.name=prod eu]"},
		{"service wins", env("OTEL_SERVICE_NAME=b", "OTEL_RESOURCE_ATTRIBUTES=service.name=a"), "[service.name=a service.name=b]"},
		{"malformed pairs skipped", env("OTEL_RESOURCE_ATTRIBUTES=novalue,=x,ok=1,bad=%zz"), "[ok=1]"},
		{"no trailing NUL", []byte("OTEL_SERVICE_NAME=x"), "[service.name=x]"},
	}
	for _, tc := range tests {
		got := envAttributes(tc.environ)
		if s := show(got); s != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, s, tc.want)
		}
	}
}

func show(kvs []attribute.KeyValue) string {
	var out []string
	for _, kv := range kvs {
		out = append(out, fmt.Sprintf("%s=%s", kv.Key, kv.Value.Emit()))
	}
	return fmt.Sprint(out)
}

func FuzzEnvAttributes(f *testing.F) {
	f.Add([]byte("OTEL_RESOURCE_ATTRIBUTES=a=b,c=%41\x00OTEL_SERVICE_NAME=s\x00"))
	f.Fuzz(func(t *testing.T, environ []byte) {
		for _, kv := range envAttributes(environ) {
			if kv.Key == "" {
				t.Fatalf("empty key from %q", environ)
			}
		}
	})
}
