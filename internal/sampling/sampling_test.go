package sampling

import (
	"math"
	"math/rand/v2"
	"sort"
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

func TestPenaltiesAndMinP(t *testing.T) {
	// token 0 leads; penalties on it hand the greedy choice to token 1
	logits := []float32{2, 1.5, -1}
	s := New(Params{TopP: 1, FrequencyPenalty: 1})
	if a, b := s.Next(logits), s.Next(logits); a != 0 || b != 1 {
		t.Fatalf("frequency penalty: drew %d then %d, want 0 then 1", a, b)
	}
	s = New(Params{TopP: 1, RepetitionPenalty: 2}, 0) // token 0 in the prompt: 2/2 = 1 < 1.5
	if got := s.Next(logits); got != 1 {
		t.Fatalf("repetition penalty over the prompt: drew %d, want 1", got)
	}
	// negative logits get multiplied, so a penalised negative token sinks further
	s = New(Params{TopP: 1, RepetitionPenalty: 2}, 1)
	if out := s.penalize([]float32{-1, -1, 3}); out[1] != -2 || out[0] != -1 {
		t.Fatalf("repetition penalty on negatives: %v", out)
	}
	// min_p 0.5 keeps only tokens with at least half the top probability
	s = New(Params{Temperature: 1, TopP: 1, MinP: 0.5, Seed: 3})
	for range 300 {
		if s.Next([]float32{0, float32(math.Log(0.4)), -5}) == 2 {
			t.Fatal("min_p let a token below the floor through")
		}
	}
	for _, bad := range []Params{{TopP: 1, MinP: 1.5}, {TopP: 1, PresencePenalty: 3}, {TopP: 1, FrequencyPenalty: -2.5}, {TopP: 1, RepetitionPenalty: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestLogprobs(t *testing.T) {
	logits := []float32{1, 3, 2}
	lp, top := Logprobs(logits, 2, 2)
	z := math.Log(math.Exp(1) + math.Exp(3) + math.Exp(2))
	if math.Abs(float64(lp)-(2-z)) > 1e-6 {
		t.Fatalf("logprob of token 2: %v, want %v", lp, 2-z)
	}
	if len(top) != 2 || top[0].Token != 1 || top[1].Token != 2 || math.Abs(float64(top[0].Logprob)-(3-z)) > 1e-6 {
		t.Fatalf("top-2: %+v", top)
	}
}

// TestRestrictions: allowed tokens, logit bias and an excluded set decide which tokens can be
// drawn, table-driven over greedy and sampled draws.
func TestRestrictions(t *testing.T) {
	logits := []float32{0.1, 2, -1, 1.9, 0.5}
	cases := []struct {
		name    string
		p       Params
		exclude []int
		can     map[int]bool // the tokens a draw may give
	}{
		{"greedy allowed", Params{TopP: 1, AllowedTokens: []int{0, 2}}, nil, map[int]bool{0: true}},
		{"sampled allowed", Params{Temperature: 1, TopP: 1, AllowedTokens: []int{2, 4}}, nil, map[int]bool{2: true, 4: true}},
		{"bias promotes", Params{TopP: 1, LogitBias: map[int]float64{2: 100}}, nil, map[int]bool{2: true}},
		{"bias bans", Params{Temperature: 1, TopP: 1, LogitBias: map[int]float64{1: -100, 3: -100}}, nil, map[int]bool{0: true, 2: true, 4: true}},
		{"greedy exclude", Params{TopP: 1}, []int{1}, map[int]bool{3: true}},
		{"sampled exclude with min_p", Params{Temperature: 1, TopP: 1, MinP: 0.1}, []int{1, 3}, map[int]bool{0: true, 2: true, 4: true}},
		{"allowed minus excluded", Params{Temperature: 1, TopP: 0.9, AllowedTokens: []int{1, 3}}, []int{1}, map[int]bool{3: true}},
		{"everything masked", Params{Temperature: 1, TopP: 1, MinP: 0.5, AllowedTokens: []int{1}}, []int{1}, map[int]bool{0: true}},
	}
	for _, c := range cases {
		s := New(c.p)
		seen := map[int]bool{}
		for range 300 {
			tok := s.NextExcluding(logits, c.exclude)
			if !c.can[tok] {
				t.Fatalf("%s: drew %d, want one of %v", c.name, tok, c.can)
			}
			seen[tok] = true
		}
		if len(seen) != len(c.can) && c.p.Temperature > 0 && c.name != "everything masked" {
			t.Fatalf("%s: 300 draws gave only %v of %v", c.name, seen, c.can)
		}
	}
	if err := (Params{TopP: 1, LogitBias: map[int]float64{1: math.NaN()}}).Validate(); err == nil {
		t.Fatal("a NaN bias passed validation")
	}
}

// TestLogprobsTopMatchesSort: the one-pass top-n gives what a stable sort of the whole
// vocabulary gives, ties (lower id first) included.
func TestLogprobsTopMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for trial := range 200 {
		logits := make([]float32, 1+r.IntN(300))
		for i := range logits {
			logits[i] = float32(r.IntN(20)) / 4 // many ties
		}
		n := 1 + r.IntN(25)
		_, top := Logprobs(logits, 0, n)
		idx := make([]int, len(logits))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
		want := idx[:min(n, len(idx))]
		if len(top) != len(want) {
			t.Fatalf("trial %d: %d of top %d, want %d", trial, len(top), n, len(want))
		}
		for k := range want {
			if top[k].Token != want[k] {
				t.Fatalf("trial %d: top %v, want ids %v", trial, top, want)
			}
		}
	}
}

// TestLogprobsMasked: masked logits (-Inf, a constraint's) are never alternatives, however
// many are asked for, and the allowed ones share all the probability.
func TestLogprobsMasked(t *testing.T) {
	neg := float32(math.Inf(-1))
	logits := []float32{neg, 1, neg, 3, neg}
	lp, top := Logprobs(logits, 3, 4)
	if len(top) != 2 || top[0].Token != 3 || top[1].Token != 1 {
		t.Fatalf("top %v, want tokens 3 and 1 only", top)
	}
	want := -math.Log(1 + math.Exp(-2))
	if math.Abs(float64(lp)-want) > 1e-6 {
		t.Fatalf("logprob %v, want %v", lp, want)
	}
}

func TestReadsTop(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Params
		want int
	}{
		{"greedy", Params{TopP: 1}, 1},
		{"greedy ignores top-k", Params{TopP: 1, TopK: 50}, 1},
		{"vanishing temperature is greedy", Params{Temperature: 1e-6, TopP: 1}, 1},
		{"top-k", Params{Temperature: 0.6, TopP: 0.95, TopK: 20, MinP: 0.05}, 20},
		{"largest top-k", Params{Temperature: 1, TopP: 1, TopK: smallTopK}, smallTopK},
		{"top-k too large", Params{Temperature: 1, TopP: 1, TopK: smallTopK + 1}, 0},
		{"no top-k", Params{Temperature: 1, TopP: 0.9}, 0},
		{"top-k off", Params{Temperature: 1, TopP: 1, TopK: -1}, 0},
		{"repetition penalty", Params{TopP: 1, RepetitionPenalty: 1.1}, 0},
		{"repetition penalty off", Params{TopP: 1, RepetitionPenalty: 1}, 1},
		{"presence penalty", Params{TopP: 1, PresencePenalty: 0.5}, 0},
		{"frequency penalty", Params{TopP: 1, FrequencyPenalty: -0.5}, 0},
		{"logit bias", Params{TopP: 1, LogitBias: map[int]float64{3: 5}}, 0},
		{"allowed tokens", Params{TopP: 1, AllowedTokens: []int{1, 2}}, 0},
	} {
		if got := c.p.ReadsTop(); got != c.want {
			t.Errorf("%s: ReadsTop() = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestReadsTopIsAllADrawReads checks ReadsTop's promise from the sampler's side: a row whose
// ReadsTop() largest logits are kept and whose others are lowered anywhere below them draws
// the same tokens, seed for seed, as the row itself.
func TestReadsTopIsAllADrawReads(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const V = 5000
	for _, p := range []Params{
		{TopP: 1},
		{Temperature: 0.6, TopP: 0.95, TopK: 20, Seed: 1},
		{Temperature: 1.5, TopP: 1, TopK: 5, MinP: 0.1, Seed: 2},
		{Temperature: 100, TopP: 1, TopK: 256, Seed: 3},
	} {
		k := p.ReadsTop()
		for trial := range 20 {
			row := make([]float32, V)
			for i := range row {
				row[i] = float32(r.NormFloat64() * 3)
			}
			if trial%2 == 1 { // ties at the top
				for i := range 8 {
					row[r.IntN(V)] = 11
					_ = i
				}
			}
			sorted := append([]float32(nil), row...)
			sort.Slice(sorted, func(i, j int) bool { return sorted[i] > sorted[j] })
			vk := sorted[k-1]
			lowered := append([]float32(nil), row...)
			for i, v := range lowered {
				if v < vk {
					lowered[i] = vk - float32(math.Abs(r.NormFloat64())) - 1e-3
				}
			}
			a, b := New(p), New(p)
			for step := range 30 {
				if x, y := a.Next(row), b.Next(lowered); x != y {
					t.Fatalf("%+v trial %d step %d: the row drew %d, the row lowered below its %d largest %d", p, trial, step, x, k, y)
				}
			}
		}
	}
}
