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
	// and a square below 2^-149 comes out zero (or rounded to a multiple of 2^-149): adding
	// in·2^-148 keeps rows of tiny weights bounded too
	floor := float64(in) * 0x1p-148
	ParallelFor(len(n.block), GrainFor(normBlock*in), func(lo, hi int) {
		wide := make([]float32, in)
		for b := lo; b < hi; b++ {
			m := float32(0)
			for o := b * normBlock; o < min(out, (b+1)*normBlock); o++ {
				row := w[o*in : (o+1)*in]
				for i, v := range row {
					wide[i] = math.Float32frombits(uint32(v) << 16)
				}
				r := float32(math.Sqrt(float64(DotBF16(row, wide))*up + floor))
				r = math.Nextafter32(r, float32(math.Inf(1)))
				n.row[o] = r
				if m == m && !(r <= m) { // a NaN row makes the block NaN for good, and the weight not finite
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
// that is among its row's ks[t] largest comes out as its exact value (defined below); every
// other one comes out strictly below them, as an approximation.
//
// The exact value is the one MatBF16 at Float32 gives where that does not depend on the
// batch: on AMX, whose sums for a row never depend on the other rows, it is MatBF16's own
// value bit for bit, so a draw does not change with what else is in the batch or whether the
// caller wants every logit. Elsewhere MatBF16's float32 sums are formed in an order that
// depends on the batch size, and the exact value is DotBF16's (within float32 rounding of
// any of them).
//
// It makes one pass at BFloat16 precision (half the arithmetic of Float32), then bounds each
// result's distance from its exact value: the activation's rounding x − bf16(x) can move a
// dot product with row o by at most |row o|·|x − bf16(x)| (Cauchy–Schwarz), and each side's
// float32 additions by at most in·2^-24 of Σ|w||x|, itself at most |row o|·|x| (on AMX: the
// low half's |row o|·|bf16(x − bf16(x))| and the additions of both halves). A result whose
// upper bound lies below the ks[t]-th largest lower bound cannot be among the row's largest;
// the few that can are computed again exactly. Rows where the bounds rule out too little
// (activations of zero, a vocabulary of equal logits), ks[t] outside [1, blocks of rows], or
// anything not finite take MatBF16 at Float32 whole.
func MatBF16Top(w []uint16, norms *RowNorms, out, in int, xs, ys [][]float32, ks []int) {
	if !CheapBF16() || norms == nil || !norms.finite {
		MatBF16(w, out, in, xs, ys, Float32)
		return
	}
	MatBF16(w, out, in, xs, ys, BFloat16)
	split := amxOK(1, out, in) // MatBF16 at Float32 runs on the tiles for every batch size
	whole := make([]bool, len(xs))
	ParallelFor(len(xs), 1, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			whole[t] = !refineTop(w, norms, out, in, xs[t], ys[t], ks[t], split)
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
// the bounds cannot settle the row's k largest cheaply. split: the exact values are the AMX
// tiles' at Float32 (bfloat16 high and low halves of x), else DotBF16's.
func refineTop(w []uint16, norms *RowNorms, out, in int, x, y []float32, k int, split bool) bool {
	nb := len(norms.block)
	if k < 1 || k > nb {
		return false
	}
	c, slack, ok := topBound(norms, in, x, split)
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
	if !(L > math.Inf(-1)) { // not a number: no bound can be trusted to rule anything out
		return false
	}
	cand := buf.cand[:0]
	// Past an eighth of the weight's rows read again, the whole row at Float32 is cheaper.
	// On the tiles a candidate costs its 16-row tile: count rows read, not candidates.
	limit, rows, lastTile := max(k, out/8), 0, -1
	for b, m := range bmax {
		if float64(m)+c*float64(norms.block[b])+slack < L {
			continue
		}
		for o := b * normBlock; o < min(out, (b+1)*normBlock); o++ {
			if float64(y[o])+c*float64(norms.row[o])+slack >= L {
				cand = append(cand, int32(o))
				switch {
				case !split:
					rows++
				case o>>4 != lastTile:
					rows, lastTile = rows+16, o>>4
				}
			}
		}
		if rows > limit+15 {
			buf.cand = cand
			return false
		}
	}
	buf.cand = cand
	if split {
		exactTiles(w, out, in, x, y, cand)
		return true
	}
	for _, o := range cand {
		y[o] = DotBF16(w[int(o)*in:(int(o)+1)*in], x)
	}
	return true
}

// exactTiles sets y[o] for each o in cand (ascending) to MatBF16's value at Float32 on AMX:
// the 16-row tile holding o, met by x alone, forms the same sums as in any batch. The last
// out%16 rows, which MatBF16 leaves to DotBF16, get DotBF16's.
//
// x is packed once, as matBF16AMX1 packs it, and each tile is one call of the kernel on
// one-column tiles without prefetching (the next tile wanted is seldom the next in memory).
func exactTiles(w []uint16, out, in int, x, y []float32, cand []int32) {
	ref, packed := amxBuf(2 * in)
	defer amxPool.Put(ref)
	bf16PackAVX512(&packed[0], &packed[in], &x[0], in)
	var tile [1024]float32 // the kernel stores its four sum tiles 1 KB apart; one is used
	last := -1
	for _, o32 := range cand {
		o := int(o32)
		if o >= out&^15 {
			y[o] = DotBF16(w[o*in:(o+1)*in], x)
			continue
		}
		if b := o &^ 15; b != last {
			amxMatBF16(&amxCfg1, &w[b*in], in*2, &packed[0], 64, in/32, in*2, &tile[0], 1, 4|8, 4)
			last = b
		}
		y[o] = tile[o&15]
	}
}

// topBound returns c and slack such that a result of the BFloat16 pass for row o lies within
// c·|row o| + slack of its exact value (refineTop's split says which), or false when x is not
// finite or too large for the bound to be worth taking.
func topBound(norms *RowNorms, in int, x []float32, split bool) (c, slack float64, ok bool) {
	var sx, sh, sl, slo float64
	for _, v := range x[:in] {
		h := math.Float32frombits(uint32(tensor.F32ToBF16(v)) << 16)
		d := float64(v) - float64(h) // exact: both are float32 within a factor of two
		sx += float64(v) * float64(v)
		sh += float64(h) * float64(h)
		sl += d * d
		if split { // the low half the tiles take: d rounded to bfloat16 (d is exact in float32)
			lo := float64(tensor.BF16ToF32(tensor.F32ToBF16(float32(d))))
			slo += lo * lo
		}
	}
	nx, nh, nl, nlo := math.Sqrt(sx), math.Sqrt(sh), math.Sqrt(sl), math.Sqrt(slo)
	gamma := 2 * float64(in+16) * 0x1p-24
	// flushed subnormals (the bfloat16 instructions treat them as zero) move a sum by less
	// than 2^-126 per term and per addition
	slack = float64(in) * 0x1p-124 * (1 + nx + float64(norms.max))
	// the factor covers float64's own rounding here and in the comparisons
	if split {
		// the exact value adds the high and the low halves' products, twice in terms: its
		// distance from the pass is the low half's dot product plus both sides' additions
		gamma2 := 2 * float64(2*in+16) * 0x1p-24
		c = (nlo + gamma*nh + gamma2*(nh+nlo)) * (1 + 0x1p-20)
		slack *= 3
	} else {
		c = (nl + gamma*(nh+nx)) * (1 + 0x1p-20)
	}
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
