package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// TestRouteKlog: what client-go logs through klog arrives in the agent's
// slog handler, with its level and key/values, tagged component=client-go.
func TestRouteKlog(t *testing.T) {
	var buf bytes.Buffer
	routeKlog(slog.New(slog.NewTextHandler(&buf, nil)))
	klog.ErrorS(nil, "failed to list", "resource", "pods")
	klog.Flush()
	out := buf.String()
	for _, want := range []string{"level=ERROR", `msg="failed to list"`, "resource=pods", "component=client-go"} {
		if !strings.Contains(out, want) {
			t.Errorf("slog output %q lacks %s", out, want)
		}
	}
}
