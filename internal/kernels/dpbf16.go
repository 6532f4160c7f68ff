package kernels

import (
	"sync"
	"sync/atomic"

	"github.com/strata-ai/strata/internal/tensor"
)

//go:generate go run gen_dpbf16.go
//go:generate go run gen_transpose.go

// Precision says how float32 activations meet bfloat16 weights in a batched matmul.
type Precision uint8

const (
	// Float32 keeps the activations' precision: on CPUs with AVX-512 BF16 each activation is
	// split into two bfloat16 halves (x ≈ hi + lo, 16 significant bits, relative error below
	// 2^-16) and both meet the weight in VDPBF16PS, which multiplies bf16 pairs exactly and adds
	// in float32. Results are within about 1e-5 relative of a float32 dot product. (An infinite
	// activation, or one within 1 % of float32's largest, gives NaN here where the float32 path
	// gives ±Inf: hi rounds to Inf and lo = x − hi does not exist. A model that produces such
	// activations has already overflowed.)
	Float32 Precision = iota
	// BFloat16 rounds activations to bfloat16 (8 significant bits) before the matmul, as vLLM's
	// CPU backend computes a bf16 model: half the work of Float32, at about 3 significant
	// digits per product.
	BFloat16
)

// String names the precision as the command line spells it.
func (p Precision) String() string {
	if p == BFloat16 {
		return "bfloat16"
	}
	return "float32"
}

// tiledOK says whether MatBF16 can take the VDPBF16PS path for this shape: two rows or more.
// One row stays with the GEMV, which reads the weights at the probe's bandwidth. Two or three
// rows took the GEMV too, which reads each chunk of weight rows once from memory and again from
// L2 for every further row, widening every weight to float32 each time; a tile of that many
// rows reads the weights once. Zen 5, cold copies, the two paths taking turns, medians of three,
// µs per matmul, GEMV → tiles: a Qwen3-30B-A3B expert's gate/up (1536×2048, one core) 2 rows
// 411 → 258, 3 rows 498 → 315; its down (2048×768) 209 → 166 and 232 → 138; Qwen3-0.6B's
// gate/up (6144×1024, both cores) 417 → 303 and 504 → 301.
func tiledOK(rows, out, in int) bool {
	return hasAVX512BF16 && !forceAVX2 && !forceNoBF16 && rows >= 2 && in%32 == 0 && in > 0 && out >= 4
}

// actRowsPerBlock bounds the packed activation rows one pass over the weights uses, so they
// stay in the core's L2 cache (256 KiB) while every weight tile passes by.
func actRowsPerBlock(in int) int {
	r := (256 << 10) / (2 * in)
	return max(4, r&^3)
}

// forceNoBF16 lets tests and benchmarks run the float32 kernels on machines with AVX-512 BF16.
var forceNoBF16 = false

var packPool sync.Pool

// tileWChunk is how many weight rows one work item covers: every activation group of a
// block meets all of them, so the group's packed rows are read from L2 once per chunk.
var tileWChunk = 128

// tileK bounds the row slice one tile call covers (see matBF16Tiled).
var tileK = 1024

// spreadPrefetch lets benchmarks compare the matmul without its prefetch of the next segment.
var spreadPrefetch = true

// matBF16Tiled is MatBF16's path on AVX-512 BF16: activations packed as bfloat16 rows (at
// Float32 precision each with a second row holding the low half, stored npad rows further on),
// weight rows split across cores in blocks of four, each block meeting every packed group of four
// activations in one 4×4 register tile that stores straight into the output rows. A last group
// of one to three rows takes the tile of that many rows, which forms every sum in the same
// order: a row's result does not depend on the batch (of two or more) it is in.
func matBF16Tiled(w []uint16, out, in int, xs, ys [][]float32, p Precision, procs int) {
	parts := 1
	if p == Float32 {
		parts = 2
	}
	n := len(xs)
	npad := (n + 3) &^ 3
	// Packed rows are one cache line longer than the activations, and the low halves start
	// a few lines further on: with rows 4 KiB apart (in = 2048) the eight packed rows and the
	// weight rows of a tile would otherwise fall into one L1 set and evict each other.
	xsd := in + 32
	need := parts*npad*xsd + 128
	var packed []uint16
	if v, ok := packPool.Get().(*[]uint16); ok && cap(*v) >= need {
		packed = (*v)[:need]
	} else {
		packed = make([]uint16, need)
	}
	defer packPool.Put(&packed)
	loOff := 0
	if parts == 2 {
		loOff = npad*xsd + 128
	}
	grain := GrainFor(in)
	if procs == 1 {
		grain = n
	}
	ParallelFor(n, grain, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			var loRow *uint16
			if parts == 2 {
				loRow = &packed[loOff+t*xsd]
			}
			bf16PackAVX512(&packed[t*xsd], loRow, &xs[t][:in][0], in)
		}
	})
	out4 := out &^ 3
	// Long rows are cut into slices of at most tileK, so the eight packed rows of one
	// activation group (hi and lo of four) stay in L1 while a chunk of weight rows streams by
	// from L2; later slices add into the sums the first one stored.
	slices := (in + tileK - 1) / tileK
	kc := (in/32 + slices - 1) / slices * 32
	blockRows := actRowsPerBlock(parts * kc)
	// With few rows, the packed activations of a whole slice fit in L1 next to a weight block,
	// and the loops go weight block by weight block (memory-bound, like decoding a small batch).
	blockMajor := parts*npad*kc*2 <= 32<<10
	// Work items are (activation block, tileWChunk weight rows), handed out by a counter so a
	// core that the host slows down takes fewer of them.
	// Chunks shrink for short matrices so each core gets about eight items: the last one to
	// finish decides when the matmul ends.
	wChunk := max(32, min(tileWChunk, out4/(8*procs)&^3))
	wChunks := (out4 + wChunk - 1) / wChunk
	aBlocks := (npad + blockRows - 1) / blockRows
	total := wChunks * aBlocks
	workers := min(procs, total)
	q := newRunQueue(workers, total)
	work := func() {
		var dst [4]*float32
		me := q.join()
		for {
			item, end := q.next(me)
			if item < 0 {
				return
			}
			ab, wc := item/wChunks, item%wChunks
			alo, ahi := ab*blockRows, min((ab+1)*blockRows, npad)
			olo, ohi := wc*wChunk, min((wc+1)*wChunk, out4)
			tile := func(g, o, k0, kn int, pf *uint16) {
				rows := min(4, n-g)
				for j := range rows {
					dst[j] = &ys[g+j][o : o+4][0]
				}
				wp, xp := &w[o*in+k0], &packed[g*xsd+k0]
				switch rows {
				case 4:
					dpbf16Tile4x4(wp, in, xp, xsd, kn, &dst, pf, loOff, k0)
				case 3:
					dpbf16Tile4x3(wp, in, xp, xsd, kn, &dst, pf, loOff, k0)
				case 2:
					dpbf16Tile4x2(wp, in, xp, xsd, kn, &dst, pf, loOff, k0)
				default:
					dpbf16Tile4x1(wp, in, xp, xsd, kn, &dst, pf, loOff, k0)
				}
			}
			for k0 := 0; k0 < in; k0 += kc {
				kn := min(kc, in-k0)
				if blockMajor {
					// Few rows: all groups meet a weight block while it is in L1, and the
					// next block streams in under every group's tile, so memory never idles.
					for o := olo; o < ohi; o += 4 {
						var pf *uint16
						if next := o + 4; next < out4 {
							pf = &w[next*in+k0]
						}
						for g := alo; g < ahi; g += 4 {
							tile(g, o, k0, kn, pf)
						}
					}
					continue
				}
				// The segment after this one (the next slice of these rows, or the first slice
				// of the item this worker will take next) streams in under this one's later
				// passes, a few blocks per pass. Left to the first pass, where each block would
				// arrive just before its tile, a segment's weights would come at the full
				// compute rate, faster than one core's share of memory bandwidth, and that pass
				// would wait on memory.
				nbase, nend, nk := olo, ohi, k0+kc
				if nk >= in {
					nbase, nk = -1, 0
					if ni := item + 1; ni < end {
						nwc := ni % wChunks
						nbase, nend = nwc*wChunk, min((nwc+1)*wChunk, out4)
					}
				}
				if !spreadPrefetch {
					nbase = -1
				}
				passes := (ahi - alo + 3) / 4
				for g := alo; g < ahi; g += 4 {
					pass := (g - alo) / 4
					for o := olo; o < ohi; o += 4 {
						var pf *uint16
						if pass == 0 {
							if next := o + 4; next < out4 {
								pf = &w[next*in+k0]
							}
						} else if r := nbase + o - olo; nbase >= 0 && r < nend && ((o-olo)/4)%(passes-1) == pass-1 {
							pf = &w[r*in+nk]
						}
						tile(g, o, k0, kn, pf)
					}
				}
			}
		}
	}
	// Under ~16 MFLOP a second core costs more than it gives (measured with four rows or
	// more), unless the weight alone takes a megabyte or more: a few rows are bound by reading
	// it, and one core reads at about half the machine's bandwidth. Zen 5, cold copies, one
	// core → both, medians of three, µs: 1024×2048 2 rows 225 → 128 (4 rows 125 → 127, over
	// 16 MFLOP either way), 2048×768 2 rows 147 → 109 and 4 rows 159 → 101, 512×1024 4 rows
	// 57 → 43.
	if procs == 1 || out*in*len(xs) < 1<<23 && out*in < 1<<19 {
		work()
	} else {
		runOn(min(procs, total), work)
	}
	// The last out%4 rows take the float32 path.
	for o := out4; o < out; o++ {
		row := w[o*in : (o+1)*in]
		for t := range xs {
			ys[t][o] = DotBF16(row, xs[t])
		}
	}
}

// paddedCounter keeps each worker's counter on its own cache line.
type paddedCounter struct {
	n atomic.Int64
	_ [56]byte
}

// runQueue hands out total work items to workers: each owns a contiguous run and takes it in
// order, so it knows the item it will take next and can stream that item's weights in under
// this one; a worker whose run is done takes from the fronts of the others' (so a core the
// host slows down still takes fewer items).
type runQueue struct {
	fronts []paddedCounter
	total  int
	joined atomic.Int32
}

func newRunQueue(workers, total int) *runQueue {
	q := &runQueue{fronts: make([]paddedCounter, workers), total: total}
	for r := range q.fronts {
		q.fronts[r].n.Store(int64(r * total / workers))
	}
	return q
}

// join gives the calling worker its own run.
func (q *runQueue) join() int { return int(q.joined.Add(1)-1) % len(q.fronts) }

// next returns the worker me's next item and the end of the run it came from, or -1 when
// every run is done.
func (q *runQueue) next(me int) (item, end int) {
	workers := len(q.fronts)
	for k := range workers {
		r := (me + k) % workers
		end = (r + 1) * q.total / workers
		if i := int(q.fronts[r].n.Add(1) - 1); i < end {
			return i, end
		}
	}
	return -1, 0
}

// ToBF16 rounds src to bfloat16 bit patterns in dst (to nearest even, as the weights were).
func ToBF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	n := 0
	if hasAVX512BF16 && len(src) >= 16 {
		n = len(src) &^ 15
		bf16PackAVX512(&dst[0], nil, &src[0], n)
	}
	for i := n; i < len(src); i++ {
		dst[i] = tensor.F32ToBF16(src[i])
	}
}
