package discovery

import (
	"bytes"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
)

// envAttributes reads the OTel resource settings a program was started
// with (its /proc/PID/environ, NUL-separated): OTEL_RESOURCE_ATTRIBUTES
// (key=value pairs, comma-separated, values percent-encoded) and
// OTEL_SERVICE_NAME, which wins over a service.name among them, as in
// the OTel SDKs. Malformed pairs are skipped; the rest still count.
func envAttributes(environ []byte) []attribute.KeyValue {
	var service, resAttrs string
	for _, kv := range bytes.Split(environ, []byte{0}) {
		k, v, ok := bytes.Cut(kv, []byte("="))
		if !ok {
			continue
		}
		switch string(k) {
		case "OTEL_SERVICE_NAME":
			service = strings.TrimSpace(string(v))
		case "OTEL_RESOURCE_ATTRIBUTES":
			resAttrs = string(v)
		}
	}
	var out []attribute.KeyValue
	for _, pair := range strings.Split(resAttrs, ",") {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			continue
		}
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		out = append(out, attribute.String(k, val))
	}
	if service != "" {
		out = append(out, attribute.String("service.name", service))
	}
	return out
}
