package qwen3

import (
	"fmt"
	"math"
	"sort"
	"sync/atomic"

	"github.com/strata-ai/strata/internal/kernels"
	"github.com/strata-ai/strata/internal/tensor"
)

// Output of a forward pass over new tokens.
type Output struct {
	Logits [][]float32   // [new position][vocab]
	Hidden [][][]float32 // [0] embeddings, [1..L-1] after each layer, [L] after the final norm
}

// Cache holds one sequence's keys and values per layer (after norm and RoPE), so each step
// attends over the past without recomputing it. The paged, shared cache of the engine keeps
// the same contents in blocks.
type Cache struct {
	k, v [][][]float32 // [layer][position][kvHeads*headDim]
}

// NewCache returns an empty cache for m.
func (m *Model) NewCache() *Cache {
	return &Cache{k: make([][][]float32, len(m.layers)), v: make([][][]float32, len(m.layers))}
}

// Len is the number of positions cached.
func (c *Cache) Len() int {
	if len(c.k) == 0 {
		return 0
	}
	return len(c.k[0])
}

// Forward runs the whole sequence through the model from position 0, in float32 from the
// stored weights, as transformers does in float32.
func (m *Model) Forward(tokens []int) (*Output, error) {
	return m.Step(m.NewCache(), tokens, true)
}

// Step appends tokens to the sequence in c (their positions follow the cached ones) and
// returns their logits; with hidden it also returns the hidden states after every layer.
func (m *Model) Step(c *Cache, tokens []int, hidden bool) (*Output, error) {
	cfg := m.Cfg
	if m.shard.TP > 1 || !m.shard.first() || !m.shard.last() {
		return nil, fmt.Errorf("the reference forward pass needs the whole model; this is a shard (%s)", m.shard)
	}
	T, past := len(tokens), c.Len()
	if past+T > cfg.MaxPositions && cfg.MaxPositions > 0 {
		return nil, fmt.Errorf("sequence of %d tokens exceeds max_position_embeddings %d", past+T, cfg.MaxPositions)
	}
	m.bytesRead.Add(m.denseBytes)
	h := make([][]float32, T)
	for t, id := range tokens {
		if id < 0 || id >= cfg.Vocab {
			return nil, errTokenRange(id, cfg.Vocab)
		}
		h[t] = make([]float32, cfg.Hidden)
		m.embed.row(id, h[t])
	}
	out := &Output{}
	if hidden {
		out.Hidden = [][][]float32{clone(h)}
	}
	cos, sin := ropeTables(past, past+T, cfg.HeadDim, cfg.RopeTheta, cfg.DType)
	for i := range m.layers {
		h = m.layerForward(i, c, h, cos, sin)
		if hidden && i < len(m.layers)-1 {
			out.Hidden = append(out.Hidden, clone(h))
		}
	}
	for t := range h {
		h[t] = rmsNorm(h[t], m.norm, cfg.RMSEps)
	}
	if hidden {
		out.Hidden = append(out.Hidden, clone(h))
	}
	out.Logits = m.lmHead.apply(nil, h)
	m.bytesRead.Add(m.lmHead.bytes())
	return out, nil
}

func (m *Model) layerForward(li int, c *Cache, h [][]float32, cos, sin [][]float32) [][]float32 {
	cfg := m.Cfg
	l := &m.layers[li]
	T, hd := len(h), cfg.HeadDim
	past := len(c.k[li])
	x := make([][]float32, T)
	for t := range h {
		x[t] = rmsNorm(h[t], l.inNorm, cfg.RMSEps)
	}
	q, k, v := l.projectQKV(nil, x)
	for t := range T {
		for hh := range cfg.Heads {
			headNormRope(q[t][hh*hd:(hh+1)*hd], l.qNorm, cfg.RMSEps, cos[t], sin[t])
		}
		for hh := range cfg.KVHeads {
			headNormRope(k[t][hh*hd:(hh+1)*hd], l.kNorm, cfg.RMSEps, cos[t], sin[t])
		}
	}
	for t := range T { // copies: k and v are views into a fused q|k|v row the cache must not keep
		c.k[li] = append(c.k[li], append([]float32(nil), k[t]...))
		c.v[li] = append(c.v[li], append([]float32(nil), v[t]...))
	}
	keys, vals := c.k[li], c.v[li]
	attn := make([][]float32, T)
	group := cfg.Heads / cfg.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	scores := make([]float32, past+T)
	for t := range T {
		attn[t] = make([]float32, cfg.Heads*hd)
		last := past + t // causal: position past+t sees 0..past+t
		for hh := range cfg.Heads {
			kv := hh / group
			qh := q[t][hh*hd : (hh+1)*hd]
			mx := float32(math.Inf(-1))
			for s := 0; s <= last; s++ {
				scores[s] = kernels.DotF32(qh, keys[s][kv*hd:(kv+1)*hd]) * scale
				mx = max(mx, scores[s])
			}
			var sum float32
			for s := 0; s <= last; s++ {
				scores[s] = float32(math.Exp(float64(scores[s] - mx)))
				sum += scores[s]
			}
			o := attn[t][hh*hd : (hh+1)*hd]
			for s := 0; s <= last; s++ {
				p := scores[s] / sum
				vs := vals[s][kv*hd : (kv+1)*hd]
				for d := range o {
					o[d] += p * vs[d]
				}
			}
		}
	}
	_ = m.finishLayer(nil, l, h, attn) // a whole model (the reference path) has no collectives to fail
	return h
}

// finishLayer is the rest of a decoder layer once attention has produced its per-head outputs:
// the output projection and residual, the post-attention norm, the MLP (or the experts) and the
// second residual, in place on h.
func (m *Model) finishLayer(a *arena, l *layer, h, attn [][]float32) error {
	ao := l.o.apply(a, attn)
	if m.tp != nil { // row-parallel o_proj: each rank holds a partial sum
		if err := allReduceRows(m.tp, ao); err != nil {
			return err
		}
	}
	x := rowsOf(a.uncleared(len(h)*m.Cfg.Hidden), len(h), m.Cfg.Hidden) // rmsNormInto writes every element
	kernels.ParallelFor(len(h), kernels.GrainFor(m.Cfg.Hidden), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			kernels.AddF32(h[t], ao[t])
			rmsNormInto(x[t], h[t], l.postNorm, m.Cfg.RMSEps)
		}
	})
	var mo [][]float32
	if l.dense != nil {
		mo = l.dense.forward(a, x)
	} else {
		var err error
		if mo, err = m.moeForward(a, l, x); err != nil {
			return err
		}
	}
	if m.tp != nil { // row-parallel down_proj (in every expert): partial sums again
		if err := allReduceRows(m.tp, mo); err != nil {
			return err
		}
	}
	kernels.ParallelFor(len(h), kernels.GrainFor(m.Cfg.Hidden), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			kernels.AddF32(h[t], mo[t])
		}
	})
	return nil
}

func (p *mlp) forward(a *arena, x [][]float32) [][]float32 { return p.run(a, x, false) }

// run is the SwiGLU block; serial keeps it on the calling goroutine (see runExperts).
func (p *mlp) run(a *arena, x [][]float32, serial bool) [][]float32 {
	apply := (*linear).apply
	if serial {
		apply = (*linear).applySerial
	}
	var g, u [][]float32
	if p.gateUp != nil {
		gu := apply(p.gateUp, a, x)
		g, u = make([][]float32, len(gu)), make([][]float32, len(gu))
		I := p.gate.out
		for t, row := range gu {
			g[t], u[t] = row[:I:I], row[I:]
		}
	} else {
		g, u = apply(p.gate, a, x), apply(p.up, a, x)
	}
	grain := kernels.GrainFor(4 * p.gate.out) // exp costs ~4 elements
	if serial {
		grain = len(g)
	}
	kernels.ParallelFor(len(g), grain, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			kernels.SiluMul(g[t], u[t])
		}
	})
	return apply(p.down, a, g)
}

// countExperts adds the weights of the experts that got tokens to WeightBytesRead.
func (m *Model) countExperts(l *layer, inputs [][][]float32) {
	var n int64
	for e, in := range inputs {
		if len(in) > 0 {
			n += l.experts[e].bytes()
		}
	}
	m.bytesRead.Add(n)
}

// runExperts computes ys[e] = experts[e](inputs[e]) for every expert given inputs. A step's
// experts each see a few tokens, too little work to split one expert's matmuls over the
// cores, so the cores take whole experts instead, each allocating from its own arena.
func runExperts(a *arena, experts []mlp, inputs [][][]float32) [][][]float32 {
	ys := make([][][]float32, len(experts))
	var active []int
	for e, in := range inputs {
		if len(in) > 0 {
			active = append(active, e)
		}
	}
	procs := min(kernels.Threads(), len(active))
	if procs <= 1 {
		for _, e := range active {
			ys[e] = experts[e].forward(a, inputs[e])
		}
		return ys
	}
	ws := a.workerArenas(procs)
	var next, worker atomic.Int64
	kernels.Run(procs, func() {
		a := ws[worker.Add(1)-1]
		for {
			i := int(next.Add(1) - 1)
			if i >= len(active) {
				return
			}
			e := active[i]
			ys[e] = experts[e].run(a, inputs[e], true)
		}
	})
	return ys
}

// moeForward routes each token to its top-k experts: softmax over the router's logits, the k
// largest, renormalised when norm_topk_prob, each expert's output weighted and summed.
// Tokens are grouped by expert so each expert's weights are read once per pass, whatever the
// number of tokens routed to it; each token then sums its experts in rank order.
func (m *Model) moeForward(a *arena, l *layer, x [][]float32) ([][]float32, error) {
	cfg := m.Cfg
	logits := l.router.apply(a, x)
	out := a.rows(len(x), cfg.Hidden)
	picks := make([][]pick, len(x))
	byExpert := make([][]int, len(l.experts)) // token indices routed to each expert
	for t := range x {
		probs := softmax(logits[t])
		idx := make([]int, len(probs))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return probs[idx[a]] > probs[idx[b]] })
		top := idx[:cfg.ExpertsPerTok]
		var norm float32 = 1
		if cfg.NormTopK {
			norm = 0
			for _, e := range top {
				norm += probs[e]
			}
		}
		for _, e := range top {
			picks[t] = append(picks[t], pick{e, probs[e] / norm})
			byExpert[e] = append(byExpert[e], t)
		}
	}
	if m.shard.ExpertParallel && m.tp != nil {
		return m.moeDispatch(a, l, x, picks, out)
	}
	inputs := make([][][]float32, len(l.experts))
	for e, toks := range byExpert {
		if len(toks) == 0 || l.experts[e].gate == nil { // nil: another rank's expert
			continue
		}
		inputs[e] = make([][]float32, len(toks))
		for i, t := range toks {
			inputs[e][i] = x[t]
		}
	}
	ys := runExperts(a, l.experts, inputs) // [expert][i] is the output for byExpert[e][i]
	m.countExperts(l, inputs)
	next := make([]int, len(l.experts))
	for t := range x {
		for _, p := range picks[t] {
			if ys[p.e] == nil {
				continue
			}
			y := ys[p.e][next[p.e]]
			next[p.e]++
			for d := range y {
				out[t][d] += p.w * y[d]
			}
		}
	}
	return out, nil
}

// pick is one of a token's top-k experts and its weight.
type pick struct {
	e int
	w float32
}

// moeDispatch is expert parallelism: rank r owns every TP-th token from r on, sends each of
// their picks (token id, expert id, hidden row) to the rank holding the expert with an
// all-to-all, runs its own experts on what it received, returns the outputs with a second
// all-to-all, and sums its tokens' weighted outputs in pick order. Rows of tokens other ranks
// own stay zero; the allreduce after the MoE block fills them in.
func (m *Model) moeDispatch(a *arena, l *layer, x [][]float32, picks [][]pick, out [][]float32) ([][]float32, error) {
	T, r, H := m.shard.TP, m.shard.Rank, m.Cfg.Hidden
	per := m.Cfg.Experts / T
	type entry struct{ t, e int }
	send := make([][]entry, T)
	for t := r; t < len(x); t += T {
		for _, p := range picks[t] {
			send[p.e/per] = append(send[p.e/per], entry{t, p.e})
		}
	}
	// every rank sends equal blocks: as many entries as any rank sends any other
	most := []float32{0}
	for _, s := range send {
		most[0] = max(most[0], float32(len(s)))
	}
	if err := m.tp.AllReduceMax(most); err != nil {
		return nil, err
	}
	M := int(most[0])
	if M == 0 {
		return out, nil
	}
	W := 2 + H // token id, expert id, row
	outbox := make([]float32, T*M*W)
	for d := range T {
		for i := range M {
			row := outbox[(d*M+i)*W : (d*M+i+1)*W]
			if i >= len(send[d]) {
				row[0] = -1 // padding
				continue
			}
			row[0], row[1] = float32(send[d][i].t), float32(send[d][i].e)
			copy(row[2:], x[send[d][i].t])
		}
	}
	inbox := make([]float32, T*M*W)
	if err := m.tp.AllToAll(outbox, inbox); err != nil {
		return nil, err
	}
	// run this rank's experts on what arrived, one batch per expert
	slots := make([][]int, len(l.experts))
	for p := range T * M {
		if row := inbox[p*W:]; row[0] >= 0 {
			e := int(row[1])
			slots[e] = append(slots[e], p)
		}
	}
	reply := make([]float32, T*M*W)
	for p := range T * M {
		reply[p*W] = -1
	}
	for e, ps := range slots {
		if len(ps) == 0 {
			continue
		}
		if l.experts[e].gate == nil {
			return nil, fmt.Errorf("expert %d was sent to rank %d, which does not hold it", e, r)
		}
		in := make([][]float32, len(ps))
		for i, p := range ps {
			in[i] = inbox[p*W+2 : (p+1)*W]
		}
		ys := l.experts[e].forward(a, in)
		m.bytesRead.Add(l.experts[e].bytes())
		for i, p := range ps {
			reply[p*W], reply[p*W+1] = inbox[p*W], inbox[p*W+1]
			copy(reply[p*W+2:(p+1)*W], ys[i])
		}
	}
	back := make([]float32, T*M*W)
	if err := m.tp.AllToAll(reply, back); err != nil {
		return nil, err
	}
	// block d of back answers, in order, the entries this rank sent to rank d
	results := map[entry][]float32{}
	for d := range T {
		for i, en := range send[d] {
			results[en] = back[(d*M+i)*W+2 : (d*M+i+1)*W]
		}
	}
	for t := r; t < len(x); t += T {
		for _, p := range picks[t] {
			y := results[entry{t, p.e}]
			for k := range y {
				out[t][k] += p.w * y[k]
			}
		}
	}
	return out, nil
}

func softmax(x []float32) []float32 {
	mx := float32(math.Inf(-1))
	for _, v := range x {
		mx = max(mx, v)
	}
	out := make([]float32, len(x))
	var sum float32
	for i, v := range x {
		out[i] = float32(math.Exp(float64(v - mx)))
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// rmsNorm returns x / sqrt(mean(x²) + eps) * w.
func rmsNorm(x, w []float32, eps float64) []float32 {
	return rmsNormInto(make([]float32, len(x)), x, w, eps)
}

// rmsNormInto is rmsNorm writing into out.
func rmsNormInto(out, x, w []float32, eps float64) []float32 {
	ss := kernels.DotF32(x, x)
	r := float32(1 / math.Sqrt(float64(ss/float32(len(x)))+eps))
	kernels.ScaleMulF32(out[:len(x)], x, w, r)
	return out
}

// headNormRope applies the per-head RMSNorm then rotary embedding in place (rotate-half
// layout: the first half of the head pairs with the second).
func headNormRope(x, w []float32, eps float64, cos, sin []float32) {
	rmsNormInto(x, x, w, eps) // in place: each output needs only its own input and the shared scale
	kernels.RotateHalfF32(x, cos, sin)
}

// ropeTables gives cos and sin per position for every dimension of a head, as transformers
// builds them: inv_freq = 1/theta^(2i/d), angles = position × inv_freq in float32, repeated
// for both halves. transformers keeps inv_freq as a buffer that takes the checkpoint's dtype
// when the model loads in it, so for a bf16 (f16) checkpoint the frequencies carry bf16 (f16)
// rounding even when everything then runs in float32; matching its logits means doing the same
// (the error would otherwise grow with the position, past 1e-3 by position ~30).
func ropeTables(from, to, hd int, theta float64, dtype string) (cos, sin [][]float32) {
	half := hd / 2
	inv := make([]float32, half)
	for i := range half {
		f := float32(1 / math.Pow(theta, float64(2*i)/float64(hd)))
		switch dtype {
		case "bfloat16":
			f = tensor.BF16ToF32(tensor.F32ToBF16(f))
		case "float16":
			f = tensor.F16ToF32(tensor.F32ToF16(f))
		}
		inv[i] = f
	}
	cos, sin = make([][]float32, to-from), make([][]float32, to-from)
	for t := range to - from {
		cos[t], sin[t] = make([]float32, hd), make([]float32, hd)
		for i := range half {
			a := float32(from+t) * inv[i]
			c, s := float32(math.Cos(float64(a))), float32(math.Sin(float64(a)))
			cos[t][i], cos[t][i+half] = c, c
			sin[t][i], sin[t][i+half] = s, s
		}
	}
	return cos, sin
}

func clone(h [][]float32) [][]float32 {
	out := make([][]float32, len(h))
	for i := range h {
		out[i] = append([]float32(nil), h[i]...)
	}
	return out
}

type tokenRangeError struct{ id, vocab int }

func (e tokenRangeError) Error() string {
	return "token id " + itoa(e.id) + " is outside the vocabulary (0.." + itoa(e.vocab-1) + ")"
}

func errTokenRange(id, vocab int) error { return tokenRangeError{id, vocab} }

func itoa(i int) string {
	if i < 0 {
		return "-" + itoa(-i)
	}
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// Greedy generates n tokens after prompt, always taking the most likely next token.
func (m *Model) Greedy(prompt []int, n int) ([]int, error) {
	c := m.NewCache()
	o, err := m.Step(c, prompt, false)
	if err != nil {
		return nil, err
	}
	var out []int
	for range n {
		next := Argmax(o.Logits[len(o.Logits)-1])
		out = append(out, next)
		if len(out) == n {
			break
		}
		if o, err = m.Step(c, []int{next}, false); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Argmax is the index of the largest value (the first of equals).
func Argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// projectQKV computes the attention projections, in one matmul when they are fused.
func (l *layer) projectQKV(a *arena, x [][]float32) (q, k, v [][]float32) {
	if l.qkv == nil {
		return l.q.apply(a, x), l.k.apply(a, x), l.v.apply(a, x)
	}
	all := l.qkv.apply(a, x)
	q, k, v = make([][]float32, len(all)), make([][]float32, len(all)), make([][]float32, len(all))
	nq, nk := l.q.out, l.k.out
	for t, row := range all {
		q[t], k[t], v[t] = row[:nq:nq], row[nq:nq+nk:nq+nk], row[nq+nk:]
	}
	return q, k, v
}
