package kernelfs

import (
	"os"
	"testing"

	"github.com/weft-dev/weft/internal/testutil/kernel"
)

func TestEnsureTracefs(t *testing.T) {
	kernel.RequireRoot(t)
	for range 2 { // idempotent
		if err := EnsureTracefs(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(TracefsPath + "/events/syscalls/sys_exit_read/id"); err != nil {
		t.Fatalf("tracepoint not visible after mount: %v", err)
	}
}
