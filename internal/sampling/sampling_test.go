package sampling

import (
	"math"
	"testing"
)

func TestGreedyAndSeeds(t *testing.T) {
	logits := []float32{0.1, 2, -1, 1.9}
	if got := New(Params{TopP: 1}).Next(logits); got != 1 {
		t.Fatalf("greedy picked %d", got)
	}
	draw := func(seed uint64) []int {
		s := New(Params{Temperature: 1, TopP: 1, Seed: seed})
		var out []int
		for range 50 {
			out = append(out, s.Next(logits))
		}
		return out
	}
	a, b, c := draw(7), draw(7), draw(8)
	same := func(x, y []int) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatal("same seed, different draws")
	}
	if same(a, c) {
		t.Fatal("different seeds, same 50 draws")
	}
}

// TestDistribution: at temperature 1 the draw frequencies follow softmax(logits); top-k 1 and
// a tiny top-p leave only the best token.
func TestDistribution(t *testing.T) {
	logits := []float32{0, float32(math.Log(3))} // probabilities 1/4, 3/4
	s := New(Params{Temperature: 1, TopP: 1, Seed: 1})
	n, ones := 20000, 0
	for range n {
		ones += s.Next(logits)
	}
	if f := float64(ones) / float64(n); math.Abs(f-0.75) > 0.02 {
		t.Fatalf("token 1 drawn %.3f of the time, want 0.75", f)
	}
	for _, p := range []Params{{Temperature: 1, TopP: 1, TopK: 1}, {Temperature: 1, TopP: 0.5}} {
		s := New(p)
		for range 200 {
			if s.Next(logits) != 1 {
				t.Fatalf("%+v drew the filtered-out token", p)
			}
		}
	}
	if err := (Params{Temperature: -1, TopP: 1}).Validate(); err == nil {
		t.Fatal("negative temperature accepted")
	}
	if err := (Params{TopP: 0}).Validate(); err == nil {
		t.Fatal("top_p 0 accepted")
	}
}
