package kernelfs

import (
	"os"
	"testing"
)

func TestEnsureTracefs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	for range 2 { // idempotent
		if err := EnsureTracefs(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(TracefsPath + "/events/syscalls/sys_exit_read/id"); err != nil {
		t.Fatalf("tracepoint not visible after mount: %v", err)
	}
}
