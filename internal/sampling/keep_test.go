package sampling

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// refKeep is the filters as a plain reading of vLLM's sampler gives them, the way this package
// once ran them: every token sorted by probability (stably, so equal logits keep the lower id
// first), then top-k, min-p and top-p cut that list. It returns each kept token's weight
// relative to the top token's. Tokens more than negligible below the top are left out of its
// answer, as keepFor leaves them out (their weights are below e^-50).
func refKeep(p Params, logits []float32) map[int]float64 {
	type cand struct {
		id int
		x  float64
	}
	c := make([]cand, len(logits))
	mx := math.Inf(-1)
	for i, v := range logits {
		x := float64(v) / p.Temperature
		if math.IsNaN(x) {
			x = math.Inf(-1)
		}
		c[i] = cand{i, x}
		mx = math.Max(mx, x)
	}
	out := map[int]float64{}
	if math.IsInf(mx, -1) {
		return out
	}
	sort.SliceStable(c, func(a, b int) bool { return c[a].x > c[b].x })
	if k := p.TopK; k > 0 && k < len(c) {
		c = c[:k]
	}
	w := make([]float64, len(c))
	var sum float64
	for i := range c {
		w[i] = math.Exp(c[i].x - mx)
		sum += w[i]
	}
	n := len(c)
	if p.MinP > 0 {
		n = 0
		for n < len(c) && w[n] >= p.MinP*w[0] {
			n++
		}
		sum = 0
		for _, x := range w[:n] {
			sum += x
		}
	}
	if p.TopP < 1 {
		var cum float64
		for i := range n {
			cum += w[i] / sum
			if cum >= p.TopP {
				n = i + 1
				break
			}
		}
	}
	for i := range n {
		if c[i].x >= mx-negligible {
			out[c[i].id] = w[i]
		}
	}
	return out
}

// TestKeepMatchesReference: the linear-time filters keep exactly the tokens the sort-based
// ones keep, with the same weights to float32 accuracy, over vocabularies on both sides of the
// heap and bin thresholds, with ties and masked tokens.
func TestKeepMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 2))
	for trial := range 400 {
		V := []int{1, 7, 300, 5000, 20000}[trial%5]
		logits := make([]float32, V)
		spread := []float64{0.5, 3, 30}[r.IntN(3)]
		ties := r.IntN(3) == 0
		for i := range logits {
			x := r.NormFloat64() * spread
			if ties {
				x = math.Round(x*2) / 2
			}
			logits[i] = float32(x)
			if r.IntN(50) == 0 {
				logits[i] = float32(math.Inf(-1)) // masked
			}
			if r.IntN(500) == 0 {
				logits[i] = float32(math.NaN())
			}
		}
		p := Params{Temperature: []float64{0.1, 0.7, 1, 2.5}[r.IntN(4)], TopP: 1}
		if r.IntN(2) == 0 {
			p.TopK = []int{1, 20, 256, 257, 1000, V - 1, V, V + 5}[r.IntN(8)]
		}
		if r.IntN(3) == 0 {
			p.MinP = r.Float64() * 0.3
		}
		if r.IntN(2) == 0 {
			p.TopP = 0.05 + 0.9*r.Float64()
		}
		name := fmt.Sprintf("trial %d (V %d, %+v)", trial, V, p)
		want := refKeep(p, logits)
		k := keepFor(p, logits)
		got := map[int]float64{}
		var sum float64
		for i, id := range k.id {
			got[int(id)] = float64(k.w[i])
			sum += float64(k.w[i])
		}
		if math.Abs(sum-k.sum) > 1e-9*sum {
			t.Fatalf("%s: sum %v, weights add to %v", name, k.sum, sum)
		}
		k.free()
		if len(got) != len(want) {
			t.Fatalf("%s: kept %d tokens, want %d", name, len(got), len(want))
		}
		for id, w := range want {
			g, ok := got[id]
			if !ok {
				t.Fatalf("%s: token %d (weight %v) not kept", name, id, w)
			}
			if math.Abs(g-w) > 1e-5*w+1e-30 {
				t.Fatalf("%s: token %d weight %v, want %v", name, id, g, w)
			}
		}
	}
}

// TestKeepEdges: non-finite logits.
func TestKeepEdges(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	cases := []struct {
		name   string
		logits []float32
		can    map[int]bool
	}{
		{"all masked", []float32{float32(math.Inf(-1)), float32(math.Inf(-1))}, map[int]bool{0: true}},
		{"NaN never drawn", []float32{nan, 0, nan, 0.5}, map[int]bool{1: true, 3: true}},
		{"all NaN", []float32{nan, nan}, map[int]bool{0: true}},
		{"infinite wins", []float32{3, inf, 100, inf}, map[int]bool{1: true, 3: true}},
	}
	for _, c := range cases {
		for _, p := range []Params{{Temperature: 1, TopP: 1}, {Temperature: 0.5, TopP: 0.9, TopK: 1000}, {Temperature: 1, TopP: 1, TopK: 2, MinP: 0.1}} {
			s := New(p)
			for range 200 {
				if tok := s.Next(c.logits); !c.can[tok] {
					t.Fatalf("%s %+v: drew %d, want one of %v", c.name, p, tok, c.can)
				}
			}
		}
	}
}

// TestDrawFrequencies: over a vocabulary large enough to take the binned top-p path, draws
// follow the reference's kept weights (a chi-square test at a fixed seed).
func TestDrawFrequencies(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 1))
	logits := make([]float32, 6000)
	for i := range logits {
		logits[i] = float32(r.NormFloat64())
	}
	for i := range 8 {
		logits[i*700] = 9 - float32(i) // a few likely tokens among many unlikely ones
	}
	for _, p := range []Params{{Temperature: 1, TopP: 0.8, Seed: 5}, {Temperature: 0.8, TopP: 1, TopK: 5, Seed: 6}} {
		want := refKeep(p, logits)
		var total float64
		for _, w := range want {
			total += w
		}
		s := New(p)
		const n = 40000
		count := map[int]int{}
		for range n {
			tok := s.Next(logits)
			if _, ok := want[tok]; !ok {
				t.Fatalf("%+v: drew %d, which the filters drop", p, tok)
			}
			count[tok]++
		}
		// chi-square over the kept tokens expected at least 5 times, the rest pooled
		var chi, rest, restWant float64
		dof := -1
		for id, w := range want {
			e := n * w / total
			if e < 5 {
				rest += float64(count[id])
				restWant += e
				continue
			}
			d := float64(count[id]) - e
			chi += d * d / e
			dof++
		}
		if restWant > 0 {
			chi += (rest - restWant) * (rest - restWant) / max(restWant, 1)
			dof++
		}
		// far beyond the 99.9th percentile for these degrees of freedom
		if limit := float64(dof) + 6*math.Sqrt(2*float64(dof)) + 10; chi > limit {
			t.Fatalf("%+v: chi-square %.1f with %d degrees of freedom (limit %.1f)", p, chi, dof, limit)
		}
	}
}

// TestLogprobsLargeVocab: the chunked vector log-sum-exp agrees with a float64 reference over
// a Qwen3-sized vocabulary with masked and NaN logits.
func TestLogprobsLargeVocab(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	logits := make([]float32, 151936)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 4)
		if r.IntN(10) == 0 {
			logits[i] = float32(math.Inf(-1))
		}
	}
	logits[77] = float32(math.NaN())
	mx := math.Inf(-1)
	for _, v := range logits {
		if v == v {
			mx = math.Max(mx, float64(v))
		}
	}
	var sum float64
	for _, v := range logits {
		if v == v {
			sum += math.Exp(float64(v) - mx)
		}
	}
	lse := mx + math.Log(sum)
	for _, tok := range []int{0, 5, 1000, 151935} {
		if logits[tok] != logits[tok] || math.IsInf(float64(logits[tok]), -1) {
			continue
		}
		lp, _ := Logprobs(logits, tok, 0)
		if want := float64(logits[tok]) - lse; math.Abs(float64(lp)-want) > 1e-5 {
			t.Fatalf("token %d: logprob %v, want %v", tok, lp, want)
		}
	}
}

// TestKeepCutEdges: min_p decides in the logits' float64 terms, so float32 weights that round
// onto the floor do not cross it; top_p 0 (which Validate refuses) still keeps the top token.
func TestKeepCutEdges(t *testing.T) {
	one := float32(1)
	below := math.Nextafter32(one, 0)
	cases := []struct {
		name   string
		p      Params
		logits []float32
	}{
		{"min_p 1 near tie", Params{Temperature: 4, TopP: 1, MinP: 1}, []float32{one, below}},
		{"min_p 0.5 at ln 2", Params{Temperature: 1, TopP: 1, MinP: 0.5}, []float32{0, -float32(math.Ln2)}},
		{"top_p 0", Params{Temperature: 1, TopP: 0}, []float32{-5, 3, 1}},
		{"huge temperature", Params{Temperature: 1e307, TopP: 1}, []float32{0, float32(math.Inf(-1)), 1, float32(math.Inf(-1))}},
	}
	for _, c := range cases {
		want := refKeep(c.p, c.logits)
		if c.p.TopP == 0 {
			want = map[int]float64{1: 1}
		}
		if c.name == "huge temperature" {
			want = map[int]float64{0: 1, 2: 1} // masked tokens stay out
		}
		k := keepFor(c.p, c.logits)
		got := map[int]bool{}
		for _, id := range k.id {
			got[int(id)] = true
		}
		k.free()
		if len(got) != len(want) {
			t.Fatalf("%s: kept %v, want %v", c.name, got, want)
		}
		for id := range want {
			if !got[id] {
				t.Fatalf("%s: kept %v, want %v", c.name, got, want)
			}
		}
	}
}

// TestNextLeavesRowAlone: penalties, biases and allowed tokens work on a pooled copy; the
// caller's row (whose logprobs the engine reports) is never written, draw after draw.
func TestNextLeavesRowAlone(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	row := make([]float32, 3000)
	for i := range row {
		row[i] = float32(r.NormFloat64())
	}
	orig := append([]float32(nil), row...)
	p := Params{Temperature: 0.8, TopP: 0.9, RepetitionPenalty: 1.3, PresencePenalty: 0.5, FrequencyPenalty: 0.2,
		LogitBias: map[int]float64{7: 3}, AllowedTokens: []int{1, 7, 9, 100, 2999}, Seed: 1}
	s := New(p, 1, 9)
	allowed := map[int]bool{1: true, 7: true, 9: true, 100: true, 2999: true}
	for range 50 {
		if tok := s.NextExcluding(row, []int{100}); !allowed[tok] || tok == 100 {
			t.Fatalf("drew %d", tok)
		}
	}
	for i := range row {
		if row[i] != orig[i] {
			t.Fatalf("row[%d] changed from %v to %v", i, orig[i], row[i])
		}
	}
}

// TestDirectCallsCopy: restrict and penalize called outside a draw return fresh rows, so an
// earlier result is not overwritten by a later call, nor restrict's output by restrict.
func TestDirectCallsCopy(t *testing.T) {
	s := New(Params{TopP: 1, PresencePenalty: 1, AllowedTokens: []int{1}})
	s.counts[0] = 1
	a := s.penalize([]float32{0, 2, 3})
	b := s.penalize([]float32{5, 3, 7})
	if a[0] != -1 || a[1] != 2 || b[0] != 4 {
		t.Fatalf("penalize: a %v, b %v", a, b)
	}
	r := s.restrict([]float32{1, 2, 3}, nil)
	if r2 := s.restrict(r, nil); r2[1] != 2 || r[1] != 2 {
		t.Fatalf("restrict of its own output: %v then %v", r, r2)
	}
}
