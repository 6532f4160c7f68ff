// Package kernels holds the CPU math the forward pass spends its time in, each with a portable
// Go version and, where the CPU allows, an assembly one picked at run time; every variant is
// tested against the portable one.
package kernels

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/strata-ai/strata/internal/tensor"
)

// DotBF16 returns Σ w[i]·x[i] for bfloat16 weights (as bit patterns) and float32 x.
func DotBF16(w []uint16, x []float32) float32 {
	if len(w) == 0 {
		return 0
	}
	x = x[:len(w)]
	if hasAVX2FMA && len(w) >= 16 {
		n := len(w) &^ 15
		s := dotBF16AVX2(&w[0], &x[0], n)
		return s + dotBF16Go(w[n:], x[n:])
	}
	return dotBF16Go(w, x)
}

func dotBF16Go(w []uint16, x []float32) float32 {
	x = x[:len(w)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(w); i += 4 {
		s0 += math.Float32frombits(uint32(w[i])<<16) * x[i]
		s1 += math.Float32frombits(uint32(w[i+1])<<16) * x[i+1]
		s2 += math.Float32frombits(uint32(w[i+2])<<16) * x[i+2]
		s3 += math.Float32frombits(uint32(w[i+3])<<16) * x[i+3]
	}
	for ; i < len(w); i++ {
		s0 += math.Float32frombits(uint32(w[i])<<16) * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// MatBF16 computes ys[t][o] = Σ_i W[o][i]·xs[t][i] for W [out, in] in bfloat16, reading each
// weight row once for every row of xs (so a batch costs little more than one row), and
// splitting the output rows across the machine's cores when the matrix is large enough. On a
// CPU with AMX tiles every batch size takes them (see matBF16AMX). Otherwise, with
// two or more rows on a CPU with AVX-512 BF16 the activations meet the weights as bfloat16 at
// precision p: batches of 16 or more that fill most of their 16-token groups in an outer
// product (matBF16Outer), others in row tiles (matBF16Tiled), which add the same products in
// another order. One row (decoding one sequence, bound by reading the weights) takes the
// float32 GEMV, with the activation rounded first at BFloat16 so that a row computes the same
// products whatever its batch. Without AVX-512 BF16 they stay float32 whatever p says.
func MatBF16(w []uint16, out, in int, xs, ys [][]float32, p Precision) {
	matBF16(w, out, in, xs, ys, p, Threads())
}

// MatBF16Serial is MatBF16 on the calling goroutine only, for callers that already spread
// independent matmuls (a step's MoE experts) over the cores.
func MatBF16Serial(w []uint16, out, in int, xs, ys [][]float32, p Precision) {
	matBF16(w, out, in, xs, ys, p, 1)
}

func matBF16(w []uint16, out, in int, xs, ys [][]float32, p Precision, procs int) {
	if amxOK(len(xs), out, in) {
		matBF16AMX(w, out, in, xs, ys, p, procs)
		return
	}
	if outerOK(len(xs), out, in) {
		matBF16Outer(w, out, in, xs, ys, p, procs)
		return
	}
	if tiledOK(len(xs), out, in) {
		matBF16Tiled(w, out, in, xs, ys, p, procs)
		return
	}
	if p == BFloat16 && hasAVX512BF16 && !forceAVX2 && !forceNoBF16 {
		rounded := make([][]float32, len(xs))
		for t, x := range xs {
			r := make([]float32, in)
			for i, v := range x[:in] {
				r[i] = tensor.BF16ToF32(tensor.F32ToBF16(v))
			}
			rounded[t] = r
		}
		xs = rounded
	}
	if pairsSmallOK(len(xs), in) {
		matBF16Pairs(w, out, in, xs, ys, procs)
		return
	}
	if len(xs) < 4 && gemvOK(in) {
		gemvBF16(w, out, in, xs, ys, procs)
		return
	}
	if pairsOK(len(xs), in) {
		matBF16Pairs(w, out, in, xs, ys, procs)
		return
	}
	// With four or more rows, pack them contiguously so one pass over a weight row feeds four
	// dot products at once (each weight widened once, used four times).
	var packed []float32
	block := hasAVX2FMA && len(xs) >= 4 && in%8 == 0 && in >= 8
	if block {
		packed = make([]float32, len(xs)*in)
		for t, x := range xs {
			copy(packed[t*in:(t+1)*in], x[:in])
		}
	}
	use512 := block && hasAVX512 && in%16 == 0 && !forceAVX2
	work := func(lo, hi int) {
		var acc [4]float32
		for o := lo; o < hi; o++ {
			row := w[o*in : (o+1)*in]
			t := 0
			if block {
				for ; t+4 <= len(xs); t += 4 {
					if use512 {
						dot4BF16AVX512(&row[0], &packed[t*in], in, in, &acc)
					} else {
						dot4BF16AVX2(&row[0], &packed[t*in], in, in, &acc)
					}
					ys[t][o], ys[t+1][o], ys[t+2][o], ys[t+3][o] = acc[0], acc[1], acc[2], acc[3]
				}
			}
			for ; t < len(xs); t++ {
				ys[t][o] = DotBF16(row, xs[t])
			}
		}
	}
	if procs == 1 || out*in*len(xs) < 1<<16 {
		work(0, out)
		return
	}
	ParallelFor(out, (out+procs-1)/procs, work)
}

// pairsOK says whether MatBF16 takes matBF16Pairs: four rows or more on an AVX2 machine
// (with or without AVX-512).
func pairsOK(rows, in int) bool {
	return hasAVX2FMA && !forceNoPairs && rows >= 4 && in%16 == 0 && in > 0
}

// pairsSmallOK says whether two or three rows take matBF16Pairs (padded to a group of four)
// rather than the GEMV: on AVX-512 without BF16, where one group streams the weights once
// with the next call's rows on their way, while the GEMV reads them from L2 again for each
// row. Ice Lake, cold copies taking turns, ms per matmul, GEMV → a padded group: Qwen3-0.6B's
// gate/up (6144×1024, both cores) 2 rows 0.81–0.84 → 0.75, 3 rows 0.91–0.93 → 0.75–0.76; a
// Qwen3-30B-A3B expert (gate/up and down, an expert a core) 2 rows 0.58–0.60 → 0.51–0.52, 3
// rows 0.68–0.69 → 0.52. One row stays with the GEMV, which reads at the probe's bandwidth.
//
// On AVX2 alone too, where the padded group takes the three-row kernel that asks for the next
// call's rows. Zen 3, cold copies taking turns, ms per matmul at the median, GEMV → a padded
// group: the expert's gate/up (1536×2048, one core) 2 rows 0.66 → 0.56, 3 rows 0.82 → 0.56;
// its down (2048×768) 2 rows 0.30 → 0.30, 3 rows 0.38 → 0.30; Qwen3-0.6B's gate/up
// (6144×1024, both cores) 2 rows 0.67 → 0.63, 3 rows 0.76 → 0.61.
func pairsSmallOK(rows, in int) bool {
	if rows < 2 || rows >= 4 || !hasAVX2FMA || forceNoPairs || in%16 != 0 || in == 0 {
		return false
	}
	if hasAVX512 && !forceAVX2 {
		return pairWide(in) && (!hasAVX512BF16 || forceNoBF16)
	}
	return true
}

// pairWide says whether matBF16Pairs takes the AVX-512 kernels for rows of in columns.
func pairWide(in int) bool {
	return hasAVX512 && !forceAVX2 && in%32 == 0
}

// forceAVX2Pairs restores AVX2's earlier path (two weight rows by four, units of two rows, a
// share of the prefetch a group), so benchmarks can compare the two.
var forceAVX2Pairs = false

// forceNoPairs lets tests and benchmarks compare matBF16Pairs with the four-row kernel.
var forceNoPairs = false

// pairPFCheck, when set (by tests), sees every range dot3x8BF16AVX512 is asked to prefetch:
// a prefetch never faults, so nothing else would show one that strays outside the weights.
var pairPFCheck func(w []uint16, pf *uint16, n, step int)

var pairPool sync.Pool

// pairChunkBytes and pairActBytes set matBF16Pairs's weight chunks, pairActBytes512 for the
// AVX-512 kernels: see there.
var pairChunkBytes, pairActBytes, pairActBytes512 = 128 << 10, 96 << 10, 40 << 10

// pairRowChunkMin and pairRowChunkMax bound the packed activations for which
// matBF16Pairs sizes chunks of rows longer than pairKBlock by the whole row: see there.
var pairRowChunkMin, pairRowChunkMax = 128 << 10, 512 << 10

// pairKBlock is the most columns the AVX-512 kernels take in one call: eight activation rows
// of it (32 KiB) stay in a 48 KiB L1 while the weight rows go by.
var pairKBlock = 1024

// pairAheadBytes is how far ahead of the rows it works on matBF16Pairs asks for weights.
// bench engine (Zen 3, three runs each, medians): batch 8 decode 55 tokens/s without a
// prefetch, 60 one row pair ahead, 70 at 16 KiB, 62 at 64 KiB.
var pairAheadBytes = 16 << 10

// matBF16Pairs is MatBF16's path for four or more rows (two or more: pairsSmallOK). Each
// call of a kernel takes a few weight rows against a group of activation rows: three by four
// on AVX2, with two by four for what is left over; three by eight on AVX-512, with two by
// eight and two by four for what is left over. Every activation vector loaded then feeds two
// or three FMAs and every widened weight four or eight (the four-row kernel read four activation vectors per two FMAs'
// worth of weight, and waited on L2 for them). The activations are packed even and odd, as
// the kernels widen bfloat16 pairs; the weights go by in chunks (a unit of rows at a time
// for a small batch, 128 KiB of rows for a larger one or a prefill), each meeting every
// group of activation rows. On AVX-512 a row longer than pairKBlock goes in blocks of
// columns, so a group's activations stay in L1; the blocks' sums are added. A batch that is
// not a multiple of four rows is padded to one with zero rows whose sums are thrown away;
// weight rows left over from the kernels' row counts take DotBF16.
func matBF16Pairs(w []uint16, out, in int, xs, ys [][]float32, procs int) {
	_ = w[out*in-1] // the kernels read whole rows unchecked
	if pad := -len(xs) & 3; pad > 0 {
		// One to three rows past the groups of four took DotBF16 each, a widening and two
		// loads per FMA and the weights read again per row: a batch of five cost 1.6 times
		// a batch of eight, eleven twice twelve. Zero rows cost a group's arithmetic, which
		// the weights' reading hides at decode's batch sizes. Ice Lake, ms per matmul over
		// cold copies, one remainder → padded: Qwen3-0.6B's gate/up (6144×1024, both cores)
		// batch 5 1.75 → 1.09, 7 2.14 → 1.09, 11 3.04 → 1.55; a Qwen3-30B-A3B expert
		// (gate/up then down, an expert a core) 5 rows 1.10 → 0.82, 7 1.81 → 0.82.
		xs, ys, done := padRows(xs, ys, pad, in, out)
		defer done()
		matBF16Pairs(w, out, in, xs, ys, procs)
		return
	}
	wide := pairWide(in)
	// unit is the rows a piece of the work starts on: a multiple of every kernel's rows
	blk, kb, actBytes, unit := 16, in, pairActBytes, 6
	if forceAVX2Pairs {
		unit = 2
	}
	if wide {
		nb := (in + pairKBlock - 1) / pairKBlock
		blk, kb, actBytes, unit = 32, ((in+nb-1)/nb+31)&^31, pairActBytes512, 6
	}
	T4 := len(xs) // a multiple of four, padded above
	T8 := 0       // rows in groups of eight, on AVX-512
	if wide {
		T8 = len(xs) &^ 7
	}
	need := T4 * in
	bufp, _ := pairPool.Get().(*[]float32)
	if bufp == nil || cap(*bufp) < need {
		b := make([]float32, need)
		bufp = &b
	}
	packed := (*bufp)[:need]
	pack := func(lo, hi int) {
		for t := lo; t < hi; t++ {
			packEvenOdd(packed[t*in:(t+1)*in], xs[t][:in], blk)
		}
	}
	if procs > 1 && need >= 1<<17 { // a prefill's rows: worth waking the other cores for
		ParallelFor(T4, 4, pack)
	} else {
		pack(0, T4)
	}
	// Weight rows per chunk. For a small batch (packed activations up to 96 KiB on AVX2,
	// 40 KiB on AVX-512), one unit at a time: its weights stream from memory once, evenly
	// between the FMAs, and every group meets them from L1. Larger batches take 128 KiB
	// chunks of rows that stay in L2 while every group passes, which spares re-reading the
	// activations from L2 for every unit. Measured on Zen 3 over 28 copies of each of
	// Qwen3-0.6B's fused shapes, GFLOP/s one pair → chunks: batch 8 103 → 70, 91 → 94,
	// 75 → 59, 75 → 67 (qkv, o, gate-up, down); batch 16 81 → 74, 74 → 80, 121 → 97, 93 → 95;
	// batch 32 103 → 128, 102 → 119, 95 → 104, 90 → 95. bench engine agreed for batch 8 (58
	// tokens/s with chunks, 77 with one pair) and a 256-token prefill (151 with chunks, 119
	// with one pair).
	chunk := unit
	if 4*need > actBytes || kb < in {
		chunk = max(unit, pairChunkBytes/(2*kb)/unit*unit)
		// Rows longer than a block (in blocks of kb columns) keep all their blocks in L2 for
		// the chunk; with 128–512 KiB of activations beside them, a chunk of 128 KiB blocks
		// is a whole L2 of rows, and the activations get pushed out. Such chunks are sized
		// by the whole row instead. Ice Lake, cold copies, attention output and down
		// projections (1024×2048, 1024×3072), GFLOP/s by block → by row, runs taking turns:
		// batch 32 155 → 161, 157 → 164, 140 → 149, 153 → 163; batch 16 143 → 145, 116 →
		// 129. Smaller activations stay with the block's chunks (batch 8 lost 4 % by row),
		// larger ones too (a prefill re-reads them from L3 for every chunk).
		if act := 4 * need; kb < in && act >= pairRowChunkMin && act <= pairRowChunkMax {
			chunk = max(unit, pairChunkBytes/(2*in)/unit*unit)
		}
	}
	ahead := max(chunk, (pairAheadBytes/(2*in))&^1)
	// On AVX2 a chunk asks for a share of the weights ahead once per group of activation
	// rows. On AVX-512 each kernel call asks for its own share: a burst of hundreds of
	// prefetches stalls the core that issues them. 28 cold copies of the fused shapes, Ice
	// Lake, GFLOP/s per group → per call: batch 16 105 → 122 (qkv-sized 6144×1024), batch
	// 32 131 → 146; batch 8 and 1024×3072 unchanged.
	nk := (in + kb - 1) / kb
	steps := max((T8/8+(T4-T8)/4)*nk, 1)
	if wide {
		steps = max(nk*(T8/8*((chunk+2)/3)+(T4-T8)/4*((chunk+1)/2)), 1)
	} else if !forceAVX2Pairs {
		// On AVX2 too a call of the three-row kernel asks for its share, not a group: Zen 3,
		// cold copies of the fused shapes, the two taking turns, GFLOP/s at the median, per
		// group → per call: 4096×1024 batch 16 130 → 155, batch 32 142 → 162; 6144×1024 130
		// → 155, 148 → 165; batch 8 and the other shapes within ±5 %.
		steps = max(nk*(T4/4)*((chunk+2)/3), 1)
	}
	// One group of eight rows meets each weight row once: the three-row kernel then asks
	// for the next call's rows as it reads its own, a line of each an iteration, as the
	// GEMV does. Against the shared schedule below (a line or two an iteration and the
	// rest in a burst before each call), cold copies taking turns, Ice Lake, ms per
	// matmul: Qwen3-0.6B's gate/up (6144×1024, both cores) 1.12 → 0.86–0.94; a
	// Qwen3-30B-A3B expert (gate/up and down, an expert a core) 0.79 → 0.61–0.66. One
	// group of four does the same with the two-row kernel: 0.87–0.88 → 0.75, 0.59–0.61 →
	// 0.52–0.53.
	single := wide && T8 == 8 && T4 == 8
	single4 := wide && T8 == 0 && T4 == 4
	// On AVX2 the first group of up to two does the same with the three-row kernel, and a
	// second finds the rows in L1 or L2. Zen 3, cold copies taking turns, ms per matmul at
	// the median, a share per call → the next call's rows in the kernel: a Qwen3-30B-A3B
	// expert's gate/up (1536×2048, one core) 4 rows 0.60 → 0.43, 8 rows 0.83 → 0.73;
	// Qwen3-0.6B's gate/up (6144×1024, both cores) 4 rows 1.09 → 0.87, 8 rows 0.96 → 0.84,
	// down (1024×3072) 8 rows 0.62 → 0.50. Three groups or more gain nothing.
	nextAVX2 := !wide && T4 <= 8 && !forceAVX2Pairs
	work := func(ulo, uhi int) {
		lo, hi := unit*ulo, min(unit*uhi, out)
		var acc [24]float32
		for c := lo; c < hi; c += chunk {
			ce := min(c+chunk, hi)
			// the rows ahead by ahead, asked for in shares so a DRAM stream keeps going
			next := w[min(c+ahead, hi)*in : min(ce+ahead, hi)*in]
			share := (len(next) + steps - 1) / steps
			fetch := func() {
				if len(next) > 0 {
					PrefetchBF16(next[:min(share, len(next))])
					next = next[min(share, len(next)):]
				}
			}
			// fetchIn is fetch for dot3x8BF16AVX512, which asks for one or two lines an
			// iteration itself: it returns where the kernel's lines start (the weights it is
			// about to read when there are none left to ask for) and the step between the
			// two (0 for one), and prefetches only what the kernel's lines leave of the
			// share. Cold copies of the fused shapes, Ice Lake, GFLOP/s, a burst before each
			// call → one line an iteration: batch 32 151 → 166 (4096×1024), 124 → 129
			// (1024×2048), 133 → 151 (6144×1024), 136 → 143 (1024×3072), 167 → 183 (the
			// vocabulary); batch 8 gains 4-20 %.
			fetchIn := func(self *uint16, n int) (*uint16, int) {
				lines, step := n/32*32, 0 // in elements: a line holds 32
				if share > lines {
					// a small batch needs the weights faster than a line an iteration:
					// two (batch 8 +1–27 %, batch 16 +2–15 % over cold copies)
					lines, step = 2*lines, 64
				}
				if len(next) < lines {
					fetch()
					return self, 0
				}
				pf := &next[0]
				next = next[lines:]
				if extra := share - lines; extra > 0 && len(next) > 0 {
					PrefetchBF16(next[:min(extra, len(next))])
					next = next[min(extra, len(next)):]
				}
				return pf, step
			}
			triples := c + (ce-c)/3*3 // end of the rows the three-row kernels take
			pairs := c + (ce-c)&^1    // and of those the two-row ones take (groups of four)
			if !wide && !forceAVX2Pairs {
				// On AVX2 the groups of four take three rows at a time, then a pair. Zen 3,
				// Qwen3-0.6B's fused shapes at batch 32 over a weight held in cache, the
				// kernels taking turns, GFLOP/s at the median on both cores, two by four →
				// three by four: 84 → 93 (4096×1024), 104 → 119 (1024×2048), 90 → 100
				// (6144×1024), 103 → 123 (1024×3072); one core gains 4–22 %.
				pairs = triples + (ce-triples)&^1
			}
			// nextCall is where single's, single4's and nextAVX2's call after the one on rows
			// o.. (of those up to end, in the block from k0 of n columns) reads: the next
			// rows, the block after, or the next chunk; its own rows, already on their way,
			// where nothing of that size is left
			nextCall := func(o, rows, end, k0, n int) *uint16 {
				nx, nk := o+rows, k0
				if nx >= end {
					nx, nk = c, k0+kb
					if nk >= in {
						nx, nk = ce, 0
					}
				}
				if nx+rows > hi || nk+n > in {
					nx, nk = o, k0
				}
				if pairPFCheck != nil {
					for i := range rows {
						pairPFCheck(w, &w[(nx+i)*in+nk], n, 0)
					}
				}
				return &w[nx*in+nk]
			}
			for k0 := 0; k0 < in; k0 += kb {
				n := min(kb, in-k0)
				first := k0 == 0
				for t := 0; t < T8; t += 8 {
					o := c
					for ; o < triples; o += 3 {
						if single {
							pf := nextCall(o, 3, triples, k0, n)
							dot3x8NextBF16AVX512(&w[o*in+k0], in, &packed[t*in+k0], in, n, &acc, pf, 2*in)
							put3x8(ys[t:t+8], o, &acc, first)
							continue
						}
						pf, step := fetchIn(&w[o*in+k0], n)
						if pairPFCheck != nil {
							pairPFCheck(w, pf, n, step)
						}
						dot3x8BF16AVX512(&w[o*in+k0], in, &packed[t*in+k0], in, n, &acc, pf, step)
						put3x8(ys[t:t+8], o, &acc, first)
					}
					for ; ce-o >= 2; o += 2 {
						fetch()
						dot2x8BF16AVX512(&w[o*in+k0], in, &packed[t*in+k0], in, n, (*[16]float32)(acc[:16]))
						put2xN(ys[t:t+8], o, acc[:16], first)
					}
				}
				for t := T8; t < T4; t += 4 {
					if !wide && forceAVX2Pairs {
						fetch()
					}
					o := c
					if !wide && !forceAVX2Pairs {
						for ; o < triples; o += 3 {
							a := (*[12]float32)(acc[:12])
							switch {
							case nextAVX2 && t == 0:
								pf := nextCall(o, 3, triples, k0, n)
								dot3x4NextBF16AVX2(&w[o*in+k0], in, &packed[t*in+k0], in, n, a, pf, 2*in)
							case nextAVX2:
								dot3x4BF16AVX2(&w[o*in+k0], in, &packed[t*in+k0], in, n, a)
							default:
								fetch()
								dot3x4BF16AVX2(&w[o*in+k0], in, &packed[t*in+k0], in, n, a)
							}
							put3xN(ys[t:t+4], o, acc[:12], first)
						}
					}
					for ; o < pairs; o += 2 {
						a := (*[8]float32)(acc[:8])
						if single4 {
							pf := nextCall(o, 2, pairs, k0, n)
							dot2x4NextBF16AVX512(&w[o*in+k0], in, &packed[t*in+k0], in, n, a, pf, 2*in)
						} else if wide {
							fetch()
							dot2x4BF16AVX512(&w[o*in+k0], in, &packed[t*in+k0], in, n, a)
						} else {
							dot2x4BF16AVX2(&w[o*in+k0], in, &packed[t*in+k0], in, n, a)
						}
						put2xN(ys[t:t+4], o, acc[:8], first)
					}
				}
			}
			// a row left over by the three- and two-row kernels, for the groups of eight
			if T8 > 0 && (ce-triples)%2 == 1 {
				for t := range T8 {
					ys[t][ce-1] = DotBF16(w[(ce-1)*in:ce*in], xs[t])
				}
			}
			if pairs < ce { // and by the two-row ones, for the groups of four
				for t := T8; t < T4; t++ {
					ys[t][ce-1] = DotBF16(w[(ce-1)*in:ce*in], xs[t])
				}
			}
		}
	}
	units := (out + unit - 1) / unit
	if procs == 1 || out*in*len(xs) < 1<<16 {
		work(0, units)
	} else {
		// four pieces a core from ParallelFor's counter, not one half each: a vCPU the host
		// slows down then takes fewer. 28 cold copies of the model's fused shapes, GFLOP/s,
		// halves → counter, two rounds: batch 8 79 → 95, 84 → 109; batch 16 102 → 109,
		// 88 → 99; batch 32 98 → 107, 85 → 93.
		ParallelFor(units, max(chunk/unit, 1), work)
	}
	pairPool.Put(bufp)
}

// padRows returns xs and ys with pad more rows: zero rows of in columns, and scratch rows
// of out columns for their sums. done gives the scratch back.
func padRows(xs, ys [][]float32, pad, in, out int) (px, py [][]float32, done func()) {
	n := in + pad*out
	bufp, _ := padPool.Get().(*[]float32)
	if bufp == nil || cap(*bufp) < n {
		b := make([]float32, n)
		bufp = &b
	}
	buf := (*bufp)[:n]
	zero := buf[:in:in]
	clear(zero) // the zero rows share one, which nothing writes
	px = append(xs[:len(xs):len(xs)], make([][]float32, pad)...)
	py = append(ys[:len(ys):len(ys)], make([][]float32, pad)...)
	for i := range pad {
		px[len(xs)+i] = zero
		py[len(ys)+i] = buf[in+i*out:][:out:out]
	}
	return px, py, func() { padPool.Put(bufp) }
}

var padPool sync.Pool

// put3x8 stores (or, past the first block of columns, adds) dot3x8BF16AVX512's sums for
// weight rows o, o+1, o+2 into the eight output rows ys. One slice of three per output row,
// not a bounds check per element: this runs once a kernel call, about every 800 cycles.
func put3x8(ys [][]float32, o int, acc *[24]float32, first bool) {
	ys = ys[:8]
	for j := range 8 {
		y := ys[j][o : o+3]
		if first {
			y[0], y[1], y[2] = acc[j], acc[8+j], acc[16+j]
		} else {
			y[0] += acc[j]
			y[1] += acc[8+j]
			y[2] += acc[16+j]
		}
	}
}

// put3xN is put3x8 for a three-row kernel's sums over len(ys) output rows.
func put3xN(ys [][]float32, o int, acc []float32, first bool) {
	m := len(ys)
	acc = acc[:3*m]
	for j := range ys {
		y := ys[j][o : o+3]
		if first {
			y[0], y[1], y[2] = acc[j], acc[m+j], acc[2*m+j]
		} else {
			y[0] += acc[j]
			y[1] += acc[m+j]
			y[2] += acc[2*m+j]
		}
	}
}

// put2xN is put3x8 for a two-row kernel's sums over len(ys) output rows.
func put2xN(ys [][]float32, o int, acc []float32, first bool) {
	m := len(ys)
	acc = acc[:2*m]
	for j := range ys {
		y := ys[j][o : o+2]
		if first {
			y[0], y[1] = acc[j], acc[m+j]
		} else {
			y[0] += acc[j]
			y[1] += acc[m+j]
		}
	}
}

// forceAVX2 lets tests run the AVX2 micro-kernel on machines that also have AVX-512.
var forceAVX2 = false

// forceSeqGEMV and forceFourRowGEMV let tests and benchmarks run either one-row GEMV form
// (AVX-512 or AVX2) whatever the CPU's maker.
var forceSeqGEMV, forceFourRowGEMV = false, false

// gemvOK says whether one row of length in can take gemvBF16.
func gemvOK(in int) bool {
	return in > 0 && (hasAVX512 && !forceAVX2 && in%32 == 0 || hasAVX2FMA && in%16 == 0)
}

// gemvBF16 is MatBF16 for one row (decoding one sequence, bound by reading the weights), and
// for two or three where no batched kernel takes them, on AVX-512 or AVX2. The weight rows go
// out in chunks from a counter, about eight per core, so a core the host slows down takes
// fewer; a chunk is at most 64 rows, so the second and third activation rows find it in L2
// and the weights stream from memory once.
func gemvBF16(w []uint16, out, in int, xs, ys [][]float32, procs int) {
	kernel, blk := gemvBF16AVX2, 16
	wide := hasAVX512 && !forceAVX2 && in%32 == 0
	if wide {
		kernel, blk = gemvBF16AVX512, 32
	}
	// One row alone streams every weight once, row after row: where one sequential run reads
	// faster than four in step (seqGEMV), it goes a row at a time, in chunks of 128 rows so a
	// core's run breaks less often.
	rowsPer := 64
	if len(xs) == 1 && (seqGEMV || forceSeqGEMV) && !forceFourRowGEMV {
		rowsPer = 128
		kernel = gemv1BF16AVX2
		if wide {
			kernel = gemv1BF16AVX512
		}
	}
	if out == 0 {
		return
	}
	xeo := make([][]float32, len(xs))
	for t, x := range xs {
		xeo[t] = make([]float32, in)
		packEvenOdd(xeo[t], x[:in], blk)
	}
	_ = w[out*in-1]
	run := func(lo, hi int) {
		for c := lo; c < hi; c += rowsPer {
			n := min(rowsPer, hi-c)
			for t := range xs {
				kernel(&w[c*in], n, in, &xeo[t][0], &ys[t][:out][c])
			}
		}
	}
	if procs == 1 || out*in < 1<<16 {
		run(0, out)
		return
	}
	chunk := min(rowsPer, max(4, (out/(8*procs))&^3))
	var next atomic.Int64
	work := func() {
		for {
			lo := int(next.Add(int64(chunk))) - chunk
			if lo >= out {
				return
			}
			run(lo, min(lo+chunk, out))
		}
	}
	runOn(procs, work)
}

// packEvenOdd lays x out for the GEMV kernels: each block of blk as its blk/2 even-indexed
// elements, then its odd-indexed ones (len(x) a multiple of blk).
func packEvenOdd(dst, x []float32, blk int) {
	if blk == 32 && hasAVX512 && len(x) >= 32 {
		n := len(x) &^ 31
		_, _ = dst[n-1], x[n-1]
		packEvenOdd32AVX512(&dst[0], &x[0], n)
		return
	}
	h := blk / 2
	dst = dst[:len(dst):len(dst)] // a short dst panics rather than writing past its length
	for b := 0; b+blk <= len(x); b += blk {
		src, d := x[b:b+blk], dst[b:b+blk]
		for j := range h {
			d[j], d[h+j] = src[2*j], src[2*j+1]
		}
	}
}
