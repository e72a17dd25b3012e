package export

import (
	"testing"

	"github.com/weft-dev/weft/internal/metrics"
)

// TestStatsDropped: each reason counts in its own series, the known ones
// exposed from the start (at 0), an unknown one made when first used.
func TestStatsDropped(t *testing.T) {
	reg := metrics.New()
	s := newStats(reg)
	if got := s.Dropped(DropQueueFull); got != 0 {
		t.Fatalf("queue_full starts at %d", got)
	}
	s.dropped(DropQueueFull, 3)
	s.dropped(DropQueueFull, 0)
	s.dropped(DropRejected, 2)
	s.dropped("other", 1)
	for reason, want := range map[string]uint64{DropQueueFull: 3, DropRejected: 2, "other": 1, DropSpoolAge: 0} {
		if got := s.Dropped(reason); got != want {
			t.Errorf("%s: %d, want %d", reason, got, want)
		}
	}
}

// BenchmarkStatsDropped: the cost of counting one dropped span, paid per
// span by an agent behind its load.
func BenchmarkStatsDropped(b *testing.B) {
	s := newStats(metrics.New())
	for b.Loop() {
		s.dropped(DropQueueFull, 1)
	}
}
