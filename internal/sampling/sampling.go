// Package sampling picks the next token from logits as vLLM does: repetition, presence and
// frequency penalties first, then greedy at temperature 0, otherwise temperature, top-k,
// top-p (nucleus) and min-p filtering and a seeded random draw, so the same seed gives the
// same output. It also reports log-probabilities of the raw distribution.
package sampling

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/strata-ai/strata/internal/kernels"
)

// Params are the usual OpenAI/vLLM sampling parameters.
type Params struct {
	Temperature       float64 // 0: greedy
	TopP              float64 // (0, 1]; 1 keeps everything
	TopK              int     // 0 or -1 keeps everything
	MinP              float64 // [0, 1]: drop tokens below MinP × the top token's probability
	PresencePenalty   float64 // [-2, 2]: subtracted once from every token already generated
	FrequencyPenalty  float64 // [-2, 2]: subtracted per occurrence in the generated tokens
	RepetitionPenalty float64 // > 0, 1 (or 0) off: divides positive logits of tokens seen in prompt or output, multiplies negative ones
	Seed              uint64
	LogitBias         map[int]float64 // added to a token's logit before the penalties (OpenAI's logit_bias)
	AllowedTokens     []int           // when not empty, only these tokens can be drawn (vLLM's allowed_token_ids)
}

// Validate says what is out of range.
func (p Params) Validate() error {
	switch {
	case p.Temperature < 0 || math.IsNaN(p.Temperature) || math.IsInf(p.Temperature, 0):
		return fmt.Errorf("temperature %v must be 0 (greedy) or a positive number", p.Temperature)
	case p.TopP <= 0 || p.TopP > 1 || math.IsNaN(p.TopP):
		return fmt.Errorf("top_p %v must be in (0, 1]", p.TopP)
	case p.TopK < -1:
		return fmt.Errorf("top_k %d must be -1 (off), 0 (off) or positive", p.TopK)
	case p.MinP < 0 || p.MinP > 1 || math.IsNaN(p.MinP):
		return fmt.Errorf("min_p %v must be in [0, 1]", p.MinP)
	case math.Abs(p.PresencePenalty) > 2 || math.IsNaN(p.PresencePenalty):
		return fmt.Errorf("presence_penalty %v must be in [-2, 2]", p.PresencePenalty)
	case math.Abs(p.FrequencyPenalty) > 2 || math.IsNaN(p.FrequencyPenalty):
		return fmt.Errorf("frequency_penalty %v must be in [-2, 2]", p.FrequencyPenalty)
	case p.RepetitionPenalty < 0 || math.IsNaN(p.RepetitionPenalty) || math.IsInf(p.RepetitionPenalty, 0):
		return fmt.Errorf("repetition_penalty %v must be positive", p.RepetitionPenalty)
	}
	for t, b := range p.LogitBias {
		if t < 0 || math.IsNaN(b) || math.IsInf(b, 0) {
			return fmt.Errorf("logit_bias: token %d bias %v: the token must be an id and the bias a finite number", t, b)
		}
	}
	for _, t := range p.AllowedTokens {
		if t < 0 {
			return fmt.Errorf("allowed_token_ids: %d is not a token id", t)
		}
	}
	return nil
}

// ReadsTop is how many of a row's largest logits a draw with p reads: 1 when greedy, k for
// top-k sampling (up to 256), or 0 when it reads more: the penalties, the logit bias and the
// allowed tokens change logits of their own tokens, wherever those rank, and sampling
// without top-k weighs the whole vocabulary. A model may then compute the rest of the row
// more cheaply (qwen3.BatchItem.TopK).
func (p Params) ReadsTop() int {
	rp := p.RepetitionPenalty != 0 && p.RepetitionPenalty != 1
	switch {
	case rp || p.PresencePenalty != 0 || p.FrequencyPenalty != 0 || len(p.LogitBias) > 0 || len(p.AllowedTokens) > 0:
		return 0
	case p.Temperature < 1e-5: // pick's greedy
		return 1
	case p.TopK > 0 && p.TopK <= smallTopK:
		return p.TopK
	}
	return 0
}

// Sampler draws tokens for one sequence and remembers what it drew (for the penalties).
type Sampler struct {
	p      Params
	rng    *rand.Rand
	prompt map[int]bool
	counts map[int]int // generated token -> occurrences
	// scratch is the row restrict and penalize write, from rowPool for one draw (drawing)
	scratch []float32
	drawing bool
}

// New returns a sampler seeded by p.Seed; prompt feeds the repetition penalty.
func New(p Params, prompt ...int) *Sampler {
	s := &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, 0x9e3779b97f4a7c15)), prompt: map[int]bool{}, counts: map[int]int{}}
	if p.RepetitionPenalty != 0 && p.RepetitionPenalty != 1 {
		for _, t := range prompt {
			s.prompt[t] = true
		}
	}
	return s
}

// TokenLogprob is a token and its log-probability.
type TokenLogprob struct {
	Token   int
	Logprob float32
}

// Logprobs returns log-softmax(logits)[tok] and the n most likely tokens with theirs, from the
// model's raw distribution (before penalties and filters), as vLLM reports by default.
func Logprobs(logits []float32, tok, n int) (float32, []TokenLogprob) {
	lse := logSumExp(logits)
	lp := func(i int) float32 { return float32(float64(logits[i]) - lse) }
	var top []TokenLogprob
	if n > 0 {
		// the n largest by insertion into a short sorted list: one pass over the vocabulary
		// (a full sort of 151,936 logits took 74 ms a row, and prompt logprobs need one per
		// prompt token); equal logits keep the lower id first, as a stable sort would
		best := make([]int, 0, n)
		for i, v := range logits {
			if math.IsInf(float64(v), -1) || v != v {
				continue // masked (a constraint's): never an alternative
			}
			if len(best) == n && !(v > logits[best[n-1]]) {
				continue
			}
			k := len(best)
			for k > 0 && v > logits[best[k-1]] {
				k--
			}
			if len(best) < n {
				best = append(best, 0)
			}
			copy(best[k+1:], best[k:len(best)-1])
			best[k] = i
		}
		for _, i := range best {
			top = append(top, TokenLogprob{i, lp(i)})
		}
	}
	return lp(tok), top
}

// logSumExp is log Σ exp(logits) (NaN logits count as -Inf), with the exponentials taken
// by the vector kernel a chunk at a time: at 152k tokens the scalar math.Exp loop cost
// 3.7 ms a row.
func logSumExp(logits []float32) float64 {
	mx := float32(math.Inf(-1))
	for _, v := range logits {
		if v > mx {
			mx = v
		}
	}
	if math.IsInf(float64(mx), 0) {
		return float64(mx) // every token masked (-Inf), or one infinitely likely (+Inf)
	}
	var buf [1024]float32
	var total float64
	for lo := 0; lo < len(logits); lo += len(buf) {
		chunk := logits[lo:min(lo+len(buf), len(logits))]
		tmp := buf[:len(chunk)]
		for i, v := range chunk {
			tmp[i] = v - mx
			if v != v {
				tmp[i] = float32(math.Inf(-1))
			}
		}
		kernels.ExpF32(tmp, tmp) // -Inf (and anything below about -88.3) gives 0
		total += sum(tmp)
	}
	return float64(mx) + math.Log(total)
}

// Rank is tok's place in the distribution logits give, 1 for the most likely (ties share
// the better place), as vLLM reports it.
func Rank(logits []float32, tok int) int {
	r := 1
	for _, v := range logits {
		if v > logits[tok] {
			r++
		}
	}
	return r
}

// Next picks a token id from logits and records it.
func (s *Sampler) Next(logits []float32) int { return s.NextExcluding(logits, nil) }

// NextExcluding is Next with the tokens in exclude never drawn: vLLM's min_tokens keeps the
// stop tokens out until the sequence is long enough.
func (s *Sampler) NextExcluding(logits []float32, exclude []int) int {
	buf := rowPool.Get().(*[]float32)
	s.scratch, s.drawing = (*buf)[:0], true
	tok := s.pick(s.penalize(s.restrict(logits, exclude)))
	*buf, s.scratch, s.drawing = s.scratch[:0], nil, false
	rowPool.Put(buf)
	s.counts[tok]++
	return tok
}

// rowPool holds the copies of a row that restrict and penalize change: 600 KB a token at
// Qwen3's vocabulary, which a batch of sampled requests would otherwise leave to the GC.
var rowPool = sync.Pool{New: func() any { return new([]float32) }}

// copyRow returns a copy of logits to change. Within a draw it is the pooled scratch row,
// and penalize (inPlace) may change restrict's copy where it lies; a direct call (tests) gets
// fresh memory, so earlier results stay as they were.
func (s *Sampler) copyRow(logits []float32, inPlace bool) []float32 {
	if !s.drawing {
		return append([]float32(nil), logits...)
	}
	if inPlace && len(logits) > 0 && len(s.scratch) > 0 && &s.scratch[0] == &logits[0] {
		return logits // restrict's copy
	}
	s.scratch = append(s.scratch[:0], logits...)
	return s.scratch
}

// restrict applies the allowed tokens, the logit bias and exclude to a copy of logits (or
// returns logits when there is nothing to apply).
func (s *Sampler) restrict(logits []float32, exclude []int) []float32 {
	if len(s.p.AllowedTokens) == 0 && len(s.p.LogitBias) == 0 && len(exclude) == 0 {
		return logits
	}
	out := s.copyRow(logits, false)
	neg := float32(math.Inf(-1))
	if len(s.p.AllowedTokens) > 0 {
		for i := range out {
			out[i] = neg
		}
		for _, t := range s.p.AllowedTokens {
			if t < len(out) {
				out[t] = logits[t]
			}
		}
	}
	for t, b := range s.p.LogitBias {
		if t < len(out) {
			out[t] = float32(float64(out[t]) + b)
		}
	}
	for _, t := range exclude {
		if t >= 0 && t < len(out) {
			out[t] = neg
		}
	}
	return out
}

// penalize applies the repetition, presence and frequency penalties to a copy of logits.
func (s *Sampler) penalize(logits []float32) []float32 {
	rp := s.p.RepetitionPenalty
	useRP := rp != 0 && rp != 1
	if !useRP && s.p.PresencePenalty == 0 && s.p.FrequencyPenalty == 0 {
		return logits
	}
	out := s.copyRow(logits, true)
	if useRP {
		apply := func(t int) {
			if out[t] > 0 {
				out[t] = float32(float64(out[t]) / rp)
			} else {
				out[t] = float32(float64(out[t]) * rp)
			}
		}
		for t := range s.prompt {
			apply(t)
		}
		for t := range s.counts {
			if !s.prompt[t] {
				apply(t)
			}
		}
	}
	for t, c := range s.counts {
		out[t] -= float32(s.p.FrequencyPenalty*float64(c) + s.p.PresencePenalty)
	}
	return out
}

func (s *Sampler) pick(logits []float32) int {
	if s.p.Temperature < 1e-5 { // as vLLM: a vanishing temperature is greedy (and avoids Inf/NaN)
		return kernels.ArgmaxF32(logits)
	}
	k := keepFor(s.p, logits)
	defer k.free()
	if len(k.id) == 0 {
		return 0 // nothing can be drawn (every token masked): as greedy over all -Inf picks
	}
	r := s.rng.Float64() * k.sum
	for i, w := range k.w {
		r -= float64(w)
		if r < 0 {
			return int(k.id[i])
		}
	}
	return int(k.id[len(k.id)-1])
}
