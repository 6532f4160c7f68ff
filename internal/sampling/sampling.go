// Package sampling picks the next token from logits: greedy at temperature 0, otherwise
// temperature, top-k and top-p (nucleus) filtering and a seeded random draw, so the same seed
// gives the same output.
package sampling

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Params are the usual OpenAI/vLLM sampling parameters.
type Params struct {
	Temperature float64 // 0: greedy
	TopP        float64 // (0, 1]; 1 keeps everything
	TopK        int     // 0 or -1 keeps everything
	Seed        uint64
}

// Validate says what is out of range.
func (p Params) Validate() error {
	switch {
	case p.Temperature < 0 || math.IsNaN(p.Temperature):
		return fmt.Errorf("temperature %v must be 0 (greedy) or positive", p.Temperature)
	case p.TopP <= 0 || p.TopP > 1 || math.IsNaN(p.TopP):
		return fmt.Errorf("top_p %v must be in (0, 1]", p.TopP)
	case p.TopK < -1:
		return fmt.Errorf("top_k %d must be -1 (off), 0 (off) or positive", p.TopK)
	}
	return nil
}

// Sampler draws tokens for one sequence.
type Sampler struct {
	p   Params
	rng *rand.Rand
}

// New returns a sampler seeded by p.Seed.
func New(p Params) *Sampler {
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, 0x9e3779b97f4a7c15))}
}

// Next picks a token id from logits.
func (s *Sampler) Next(logits []float32) int {
	if s.p.Temperature == 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best
	}
	type cand struct {
		id int
		p  float64
	}
	c := make([]cand, len(logits))
	mx := math.Inf(-1)
	for i, v := range logits {
		c[i] = cand{i, float64(v) / s.p.Temperature}
		mx = math.Max(mx, c[i].p)
	}
	sort.SliceStable(c, func(a, b int) bool { return c[a].p > c[b].p })
	if k := s.p.TopK; k > 0 && k < len(c) {
		c = c[:k]
	}
	var sum float64
	for i := range c {
		c[i].p = math.Exp(c[i].p - mx)
		sum += c[i].p
	}
	if s.p.TopP < 1 {
		var cum float64
		for i := range c {
			cum += c[i].p / sum
			if cum >= s.p.TopP {
				c = c[:i+1]
				break
			}
		}
		sum = 0
		for _, x := range c {
			sum += x.p
		}
	}
	r := s.rng.Float64() * sum
	for _, x := range c {
		r -= x.p
		if r < 0 {
			return x.id
		}
	}
	return c[len(c)-1].id
}
