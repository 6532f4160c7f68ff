package kernels

import "testing"

// TestFMALoop checks that the probe's loop runs the rounds it is asked for (each accumulator
// gains 1·1 a round) and that FMAPeak reports a rate where a loop exists.
func TestFMALoop(t *testing.T) {
	loop, lanes := fmaLoopFor()
	if loop == nil {
		if FMAPeak(2) != 0 {
			t.Fatal("FMAPeak reports a rate where no vector loop runs")
		}
		t.Skip("no vector FMA loop on this CPU; FMAPeak reports 0")
	}
	for _, n := range []int{0, 1, 7, 1000, 1 << 20} {
		if got := loop(n); got != float32(n) {
			t.Fatalf("%d-lane loop of %d rounds: accumulator %v, want %d", lanes, n, got, n)
		}
	}
	if p := FMAPeak(1); !(p > 0) {
		t.Fatalf("FMAPeak(1) = %v, want a positive rate", p)
	}
}
