package discovery

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/weft-dev/weft/internal/probes"
)

// TestExitedLike: a process gone before it was read is described by the
// last one of its executable, with its own PID and nothing of the last
// one's that is that process's alone.
func TestExitedLike(t *testing.T) {
	last := &probes.Process{PID: 10, StartTime: 99, ExePath: "/proc/self/fd/7", GoVersion: "go1.26",
		GoidOffset: 152, Exec: &probes.ExecKey{Ino: 1, Inode: 2},
		Resource: resource.NewSchemaless(attribute.String("service.name", "cli"), attribute.Int("process.pid", 10))}
	g, err := exitedLike(last, 42)
	if err != nil {
		t.Fatal(err)
	}
	if g.PID != 42 || g.StartTime != 0 || g.Exec != nil || g.ExePath != "/proc/42/exe" || g.GoidOffset != 152 {
		t.Fatalf("got %+v", g)
	}
	if v, _ := g.Resource.Set().Value("process.pid"); v.AsInt64() != 42 {
		t.Fatalf("process.pid %v, want 42", v.AsInt64())
	}
	if v, _ := g.Resource.Set().Value("service.name"); v.AsString() != "cli" {
		t.Fatalf("service.name %q", v.AsString())
	}
	if v, _ := last.Resource.Set().Value("process.pid"); v.AsInt64() != 10 {
		t.Fatal("the last process's resource changed")
	}
}
