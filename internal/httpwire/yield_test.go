package httpwire

import (
	"encoding/binary"
	"testing"
)

// TestLossyYield guards against a Conn so cautious that it emits nothing:
// with occasional capture losses, most exchanges must still come out. The
// generator cuts messages at random points, often inside request lines, so
// resynchronisation is much harder than with real reads; the thresholds are
// set a little below what the current rules achieve.
func TestLossyYield(t *testing.T) {
	for _, tc := range []struct {
		mode      uint8
		lossEvery int
		min       float64
	}{
		{0, 1 << 30, 1}, // no loss: everything
		{1, 1 << 30, 1},
		{2, 1 << 30, 1},
		{0, 20, 0.5},
		{1, 20, 0.5},
		{2, 20, 0.2},
		// Attached mid-stream: about half the exchanges come before.
		{4, 1 << 30, 0.2},
		// Pipelined requests, attached mid-stream: responses to unseen
		// requests may come first, so nothing can be matched.
		{6, 1 << 30, 0},
		{0, 3, 0.05},
	} {
		gen, done := 0, 0
		lossyProblems = [numProblems]int{}
		for i := 0; i < 2000; i++ {
			var seed [8]byte
			binary.LittleEndian.PutUint64(seed[:], uint64(i)*7919)
			g, d := lossyRun(t, seed[:], tc.mode, tc.lossEvery)
			gen, done = gen+g, done+d
		}
		y := float64(done) / float64(gen)
		t.Logf("mode %d, 1 loss in %d chunks: %d/%d complete (%.2f) %v", tc.mode, tc.lossEvery, done, gen, y, lossyProblems)
		if y < tc.min {
			t.Errorf("mode %d, loss 1/%d: yield %.2f < %.2f", tc.mode, tc.lossEvery, y, tc.min)
		}
	}
}
