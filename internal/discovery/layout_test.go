package discovery

import (
	"testing"

	"github.com/weft-dev/weft/internal/btfcheck"
)

func TestLayout(t *testing.T) {
	spec, err := loadProcwatch()
	if err != nil {
		t.Fatal(err)
	}
	if err := btfcheck.Layout(spec, "watch_event", procwatchWatchEvent{}); err != nil {
		t.Error(err)
	}
}
