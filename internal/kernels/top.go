package kernels

import (
	"math"
	"sync"

	"github.com/strata-ai/strata/internal/tensor"
)

// normBlock is how many weight rows share one entry of RowNorms' block maxima: MatBF16Top
// rules out a block with one comparison, so a 152k-token vocabulary costs it one pass over
// the logits and a pass over 2.4k block maxima.
const normBlock = 64

// RowNorms is what MatBF16Top needs to know of a weight: each row's Euclidean norm, rounded
// up, and the largest of them in each block of normBlock rows. A weight's norms are measured
// once and serve every call.
type RowNorms struct {
	row, block []float32
	max        float32
	finite     bool // every weight is a finite number
}

// NewRowNorms measures the rows of w ([out, in] bfloat16) across the cores.
func NewRowNorms(w []uint16, out, in int) *RowNorms {
	n := &RowNorms{row: make([]float32, out), block: make([]float32, (out+normBlock-1)/normBlock)}
	// float32 sums of in squares are within in·2^-24 of the real sum (every term positive):
	// raising each sum by twice that keeps the norm an upper bound
	up := 1 + 2*float64(in+1)*0x1p-24
	ParallelFor(len(n.block), GrainFor(normBlock*in), func(lo, hi int) {
		wide := make([]float32, in)
		for b := lo; b < hi; b++ {
			m := float32(0)
			for o := b * normBlock; o < min(out, (b+1)*normBlock); o++ {
				row := w[o*in : (o+1)*in]
				for i, v := range row {
					wide[i] = math.Float32frombits(uint32(v) << 16)
				}
				r := float32(math.Sqrt(float64(DotBF16(row, wide)) * up))
				r = math.Nextafter32(r, float32(math.Inf(1)))
				n.row[o] = r
				if !(r <= m) { // a NaN row makes the block NaN, and the weight not finite
					m = r
				}
			}
			n.block[b] = m
		}
	})
	n.finite = true
	for _, m := range n.block {
		if math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
			n.finite = false
		}
		n.max = max(n.max, m)
	}
	return n
}

// CheapBF16 says whether MatBF16 at BFloat16 precision costs about half of Float32 here
// (AVX-512 BF16 or AMX: one VDPBF16PS per product instead of two); MatBF16Top gains only
// where it does.
func CheapBF16() bool { return hasAVX512BF16 && !forceAVX2 && !forceNoBF16 }

// MatBF16Top is MatBF16 at Float32 for callers that read only each row's ks[t] largest
// results: greedy decoding reads the largest logit, top-k sampling the k largest. Every result
// that is among its row's ks[t] largest comes out as a float32 dot product (DotBF16's, or
// MatBF16's at Float32 for a row taken whole); every other one comes out strictly below them,
// as an approximation.
//
// It makes one pass at BFloat16 precision (half the arithmetic of Float32), then bounds each
// result's distance from its float32 value: the activation's rounding x − bf16(x) can move a
// dot product with row o by at most |row o|·|x − bf16(x)| (Cauchy–Schwarz), and each side's
// float32 additions by at most in·2^-24 of Σ|w||x|, itself at most |row o|·|x|. A result
// whose upper bound lies below the ks[t]-th largest lower bound cannot be among the row's
// largest; the few that can are computed again in float32. Rows where the bounds rule out
// too little (activations of zero, a vocabulary of equal logits), ks[t] outside [1, blocks of
// rows], or anything not finite take MatBF16 at Float32 whole.
func MatBF16Top(w []uint16, norms *RowNorms, out, in int, xs, ys [][]float32, ks []int) {
	if !CheapBF16() || norms == nil || !norms.finite {
		MatBF16(w, out, in, xs, ys, Float32)
		return
	}
	MatBF16(w, out, in, xs, ys, BFloat16)
	whole := make([]bool, len(xs))
	ParallelFor(len(xs), 1, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			whole[t] = !refineTop(w, norms, out, in, xs[t], ys[t], ks[t])
		}
	})
	var fx, fy [][]float32
	for t, f := range whole {
		if f {
			fx, fy = append(fx, xs[t]), append(fy, ys[t])
		}
	}
	if len(fx) > 0 {
		MatBF16(w, out, in, fx, fy, Float32)
	}
}

var topScratch = sync.Pool{New: func() any { return new(topBufs) }}

type topBufs struct {
	bmax []float32
	heap []float64
	cand []int32
}

// refineTop turns y = W·bf16(x) into MatBF16Top's result for one row, or reports false when
// the bounds cannot settle the row's k largest cheaply.
func refineTop(w []uint16, norms *RowNorms, out, in int, x, y []float32, k int) bool {
	nb := len(norms.block)
	if k < 1 || k > nb {
		return false
	}
	c, slack, ok := topBound(norms, in, x)
	if !ok {
		return false
	}
	buf := topScratch.Get().(*topBufs)
	defer topScratch.Put(buf)
	if cap(buf.bmax) < nb {
		buf.bmax = make([]float32, nb)
	}
	bmax := buf.bmax[:nb]
	y = y[:out]
	blockMax(y, bmax)
	// L: the k-th largest of the blocks' lower bounds. Each is one token's (its block's
	// largest result) and at most that token's float32 value, so the k-th largest float32
	// value is at least L.
	h := buf.heap[:0]
	for b, m := range bmax {
		lb := float64(m) - c*float64(norms.block[b]) - slack
		if len(h) < k {
			h = heapPush(h, lb)
		} else if lb > h[0] {
			h[0] = lb
			heapDown(h)
		}
	}
	buf.heap = h
	L := h[0]
	cand := buf.cand[:0]
	limit := max(k, out/8)
	for b, m := range bmax {
		if float64(m)+c*float64(norms.block[b])+slack < L {
			continue
		}
		for o := b * normBlock; o < min(out, (b+1)*normBlock); o++ {
			if float64(y[o])+c*float64(norms.row[o])+slack >= L {
				cand = append(cand, int32(o))
			}
		}
		if len(cand) > limit {
			buf.cand = cand
			return false
		}
	}
	buf.cand = cand
	for _, o := range cand {
		y[o] = DotBF16(w[int(o)*in:(int(o)+1)*in], x)
	}
	return true
}

// topBound returns c and slack such that a result of the BFloat16 pass for row o lies within
// c·|row o| + slack of its float32 value, or false when x is not finite or too large for the
// bound to be worth taking.
func topBound(norms *RowNorms, in int, x []float32) (c, slack float64, ok bool) {
	var sx, sh, sl float64
	for _, v := range x[:in] {
		h := math.Float32frombits(uint32(tensor.F32ToBF16(v)) << 16)
		d := float64(v) - float64(h) // exact: both are float32 within a factor of two
		sx += float64(v) * float64(v)
		sh += float64(h) * float64(h)
		sl += d * d
	}
	nx, nh, nl := math.Sqrt(sx), math.Sqrt(sh), math.Sqrt(sl)
	gamma := 2 * float64(in+16) * 0x1p-24
	// the factor covers float64's own rounding here and in the comparisons
	c = (nl + gamma*(nh+nx)) * (1 + 0x1p-20)
	// flushed subnormals (the bfloat16 instructions treat them as zero) move a sum by less
	// than 2^-126 per term and per addition
	slack = float64(in) * 0x1p-124 * (1 + nx + float64(norms.max))
	if !(c*float64(norms.max) < 1e30) || !(nx*float64(norms.max) < 1e30) {
		return 0, 0, false // not finite, or near float32's range: the whole row in float32
	}
	return c, slack, true
}

// blockMax sets bmax[b] to the largest of y's block b of normBlock values (the last block may
// be short); y holds finite numbers. A branch per value mispredicted often enough in Go to
// cost 1.4 ns a value, more than the search it serves (measured at 152k values).
func blockMax(y, bmax []float32) {
	full := len(y) / normBlock
	if hasAVX2FMA && full > 0 {
		blockMax64AVX2(&y[0], full, &bmax[0])
	} else {
		full = 0
	}
	for b := full; b < len(bmax); b++ {
		blk := y[b*normBlock : min(len(y), (b+1)*normBlock)]
		m := blk[0]
		for _, v := range blk[1:] {
			if v > m {
				m = v
			}
		}
		bmax[b] = m
	}
}

// heapPush adds v to the min-heap h.
func heapPush(h []float64, v float64) []float64 {
	h = append(h, v)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	return h
}

// heapDown restores the min-heap h after its root grew.
func heapDown(h []float64) {
	for i := 0; ; {
		l, s := 2*i+1, i
		if l < len(h) && h[l] < h[s] {
			s = l
		}
		if r := l + 1; r < len(h) && h[r] < h[s] {
			s = r
		}
		if s == i {
			return
		}
		h[i], h[s] = h[s], h[i]
		i = s
	}
}
