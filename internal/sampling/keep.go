package sampling

import (
	"math"
	"math/bits"
	"sort"
	"sync"

	"github.com/strata-ai/strata/internal/kernels"
)

// negligible is how far (in logits over temperature) below the top a token may lie and still
// be worth a weight: all of a 152k vocabulary beyond it weighs under 2^-53 of the top token,
// below what a float64 draw resolves.
const negligible = 50

// kept is what survives the filters: token ids with their unnormalised weights (the top
// token's is 1) and the weights' sum. The order is the selection's, not sorted.
type kept struct {
	id  []int32
	key []float32 // the token's logit: the order of the filters, with ties to the lower id
	w   []float32
	sum float64
	bin []uint8 // nucleus's scratch
}

var keptPool = sync.Pool{New: func() any { return new(kept) }}

func (k *kept) free() { keptPool.Put(k) }

// grow makes room for n tokens.
func (k *kept) grow(n int) {
	if cap(k.id) < n {
		k.id, k.key, k.w = make([]int32, 0, n), make([]float32, 0, n), make([]float32, 0, n)
	}
}

// keepFor applies temperature, top-k, min-p and top-p to logits in time linear in the
// vocabulary: the filters need the tokens in order of probability only up to a cut, so
// selection stands in for the full sort (which cost 200 ms a token at 152k tokens).
func keepFor(p Params, logits []float32) *kept {
	k := keptPool.Get().(*kept)
	k.id, k.key, k.w, k.sum = k.id[:0], k.key[:0], k.w[:0], 0
	mx := kernels.MaxF32(logits) // a NaN never wins (the builtin max would return it): it can never be drawn
	if math.IsInf(float64(mx), -1) {
		return k
	}
	T := p.Temperature
	if math.IsInf(float64(mx), 1) {
		// an infinite logit outweighs every finite one: the infinite ones share the draw
		for i, v := range logits {
			if v == mx {
				k.id, k.key, k.w = append(k.id, int32(i)), append(k.key, v), append(k.w, 1)
			}
		}
		k.sum = float64(len(k.id))
		return k
	}
	// -MaxFloat64 at the least: at an absurd temperature the cut must still keep out -Inf
	cut, top, inv := max(float64(mx)-negligible*T, -math.MaxFloat64), float64(mx), 1/T
	if p.TopK > 0 && p.TopK <= smallTopK && p.TopK < len(logits) {
		k.heapTop(logits, p.TopK) // one pass, most tokens turned away by one comparison
		n := 0
		for i, v := range k.key {
			if float64(v) >= cut {
				k.id[n], k.key[n], k.w[n] = k.id[i], v, float32((float64(v)-top)*inv)
				n++
			}
		}
		k.id, k.key, k.w = k.id[:n], k.key[:n], k.w[:n]
		// into the filters' order: the heap's order depends on the tokens it turned away, and
		// the draw walks the kept tokens in order, so a row must draw the same whatever lies
		// below its top k (Params.ReadsTop)
		k.sortRange(0, n)
	} else {
		k.grow(len(logits))
		n := 0
		id, key, w := k.id[:len(logits)], k.key[:len(logits)], k.w[:len(logits)]
		for i, v := range logits {
			if float64(v) >= cut {
				id[n], key[n], w[n] = int32(i), v, float32((float64(v)-top)*inv)
				n++
			}
		}
		k.id, k.key, k.w = id[:n], key[:n], w[:n]
	}
	if p.TopK > 0 && p.TopK < len(k.id) {
		k.selectTop(0, len(k.id), p.TopK)
		k.id, k.key, k.w = k.id[:p.TopK], k.key[:p.TopK], k.w[:p.TopK]
	}
	kernels.ExpF32(k.w, k.w)
	if p.MinP > 0 {
		// weight ≥ MinP × the top's (which is 1) in the logits' own float64 terms, so the
		// float32 weights' rounding cannot move a token across the floor
		floor := math.Log(p.MinP)
		n := 0
		for i, v := range k.key {
			if (float64(v)-top)*inv >= floor {
				k.id[n], k.key[n], k.w[n] = k.id[i], v, k.w[i]
				n++
			}
		}
		k.id, k.key, k.w = k.id[:n], k.key[:n], k.w[:n]
	}
	k.sum = sum(k.w)
	if p.TopP < 1 {
		n := max(1, k.nucleus(p.TopP*k.sum, top, inv)) // the top token at least, whatever top_p
		k.id, k.key, k.w = k.id[:n], k.key[:n], k.w[:n]
		k.sum = sum(k.w)
	}
	return k
}

// sum adds w in float64, four chains at a time so the adds overlap.
func sum(w []float32) float64 {
	var a, b, c, d float64
	i := 0
	for ; i+4 <= len(w); i += 4 {
		a += float64(w[i])
		b += float64(w[i+1])
		c += float64(w[i+2])
		d += float64(w[i+3])
	}
	for ; i < len(w); i++ {
		a += float64(w[i])
	}
	return (a + b) + (c + d)
}

// smallTopK is the largest top-k taken in one pass with a heap.
const smallTopK = 256

// heapTop sets k to the n first tokens of logits in the filters' order (n < len(logits)),
// kept as a heap whose root is the last of them: a token that does not beat the root is
// turned away by one comparison, which is nearly every token.
func (k *kept) heapTop(logits []float32, n int) {
	k.grow(n)
	k.id, k.key, k.w = k.id[:0], k.key[:0], k.w[:n]
	// worse orders the heap: ids come in ascending order, so a tie never displaces the root
	worse := func(i, j int) bool { return k.key[i] < k.key[j] || k.key[i] == k.key[j] && k.id[i] > k.id[j] }
	down := func(i int) {
		for {
			c := 2*i + 1
			if c >= len(k.id) {
				return
			}
			if c+1 < len(k.id) && worse(c+1, c) {
				c++
			}
			if !worse(c, i) {
				return
			}
			k.id[i], k.id[c] = k.id[c], k.id[i]
			k.key[i], k.key[c] = k.key[c], k.key[i]
			i = c
		}
	}
	for i, v := range logits {
		if v != v {
			continue // NaN: never drawn
		}
		if len(k.id) < n {
			k.id, k.key = append(k.id, int32(i)), append(k.key, v)
			for c := len(k.id) - 1; c > 0; { // sift up
				p := (c - 1) / 2
				if !worse(c, p) {
					break
				}
				k.id[c], k.id[p] = k.id[p], k.id[c]
				k.key[c], k.key[p] = k.key[p], k.key[c]
				c = p
			}
			continue
		}
		if v > k.key[0] {
			k.id[0], k.key[0] = int32(i), v
			down(0)
		}
	}
}

// before orders tokens as a stable sort by descending logit would: the larger logit first,
// equal logits by id.
func (k *kept) before(i, j int) bool {
	return k.key[i] > k.key[j] || k.key[i] == k.key[j] && k.id[i] < k.id[j]
}

func (k *kept) swap(i, j int) {
	k.id[i], k.id[j] = k.id[j], k.id[i]
	k.key[i], k.key[j] = k.key[j], k.key[i]
	k.w[i], k.w[j] = k.w[j], k.w[i]
}

// partition splits [lo, hi) around a median-of-three pivot: it returns m with [lo, m) before
// the pivot, the pivot at m and (m, hi) after it. The order is total (ids break ties), so
// equal logits cannot make the split lopsided.
func (k *kept) partition(lo, hi int) int {
	mid := lo + (hi-lo)/2
	if k.before(mid, lo) {
		k.swap(mid, lo)
	}
	if k.before(hi-1, lo) {
		k.swap(hi-1, lo)
	}
	if k.before(hi-1, mid) {
		k.swap(hi-1, mid)
	}
	k.swap(mid, hi-1) // the median is the pivot, parked at the end
	m := lo
	for i := lo; i < hi-1; i++ {
		if k.before(i, hi-1) {
			k.swap(i, m)
			m++
		}
	}
	k.swap(m, hi-1)
	return m
}

// sortRange sorts [lo, hi) in the filters' order: the fallback when selection keeps
// choosing poor pivots.
func (k *kept) sortRange(lo, hi int) { sort.Sort(keptRange{k, lo, hi}) }

type keptRange struct {
	k      *kept
	lo, hi int
}

func (r keptRange) Len() int           { return r.hi - r.lo }
func (r keptRange) Less(i, j int) bool { return r.k.before(r.lo+i, r.lo+j) }
func (r keptRange) Swap(i, j int)      { r.k.swap(r.lo+i, r.lo+j) }

// selectTop moves the n first tokens (in the filters' order) of [lo, hi) to [lo, lo+n).
func (k *kept) selectTop(lo, hi, n int) {
	budget := 2 * bits.Len(uint(hi-lo)) // beyond this many rounds the pivots are bad: sort
	for hi-lo > 1 {
		if budget == 0 {
			k.sortRange(lo, hi)
			return
		}
		budget--
		m := k.partition(lo, hi)
		switch {
		case m == n:
			return
		case m > n:
			hi = m
		default:
			lo = m + 1
		}
	}
}

// nucleus moves the shortest run of most likely tokens whose weights reach target to the
// front and returns its length (all of them when rounding leaves the total short). top and
// inv are the largest logit and 1/temperature.
func (k *kept) nucleus(target, top, inv float64) int {
	if len(k.id) <= 4096 {
		return k.nucleusIn(0, len(k.id), 0, target)
	}
	// Tokens are binned by how far below the top they lie, half a unit of logit/temperature
	// per bin (a function of the logit that never decreases, so bins keep the filters'
	// order): whole bins are in or out, and only the bin the cut falls in is ordered.
	const bins = 2*negligible + 1
	var mass [bins]float64
	if cap(k.bin) < len(k.id) {
		k.bin = make([]uint8, len(k.id))
	}
	bin := k.bin[:len(k.id)]
	w := k.w[:len(bin)]
	for i, v := range k.key[:len(bin)] {
		b := min(bins-1, int((top-float64(v))*inv*2))
		bin[i] = uint8(b)
		mass[b] += float64(w[i])
	}
	var acc float64
	b := 0
	for ; b < bins && acc+mass[b] < target; b++ {
		acc += mass[b]
	}
	if b == bins {
		return len(k.id) // rounding left the whole total short of target
	}
	// [0, in) the bins before b, then [in, edge) bin b
	in := 0
	for i, x := range bin {
		if int(x) < b {
			k.swap(i, in)
			bin[i], bin[in] = bin[in], x
			in++
		}
	}
	edge := in
	for i := in; i < len(bin); i++ {
		if int(bin[i]) == b {
			k.swap(i, edge)
			bin[i], bin[edge] = bin[edge], bin[i]
			edge++
		}
	}
	return k.nucleusIn(in, edge, acc, target)
}

// nucleusIn is nucleus over [lo, hi), after tokens before it that weigh acc.
func (k *kept) nucleusIn(lo, hi int, acc, target float64) int {
	budget := 2 * bits.Len(uint(hi-lo))
	for hi > lo {
		if budget == 0 {
			k.sortRange(lo, hi)
			for i := lo; i < hi; i++ {
				acc += float64(k.w[i])
				if acc >= target {
					return i + 1
				}
			}
			return hi
		}
		budget--
		m := k.partition(lo, hi)
		up := sum(k.w[lo:m])
		if acc+up >= target {
			hi = m // the cut falls before the pivot
			continue
		}
		acc += up + float64(k.w[m])
		if acc >= target {
			return m + 1
		}
		lo = m + 1
	}
	return lo // past the range: rounding left its total short of target, so all of it stays
}
