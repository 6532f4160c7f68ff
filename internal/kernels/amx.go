package kernels

import (
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/strata-ai/strata/internal/tensor"
)

// amxCfg configures all eight tiles as 16 rows of 64 bytes: a weight tile is 16 rows × 32
// bfloat16, an activation tile 16 column pairs × 16 rows, a sum tile 16 × 16 float32.
var amxCfg = func() (c [64]byte) {
	c[0] = 1 // palette 1
	for i := range 8 {
		c[16+2*i] = 64
		c[48+i] = 16
	}
	return c
}()

// forceNoAMX lets tests and benchmarks run the AVX-512 kernels on machines with AMX.
var forceNoAMX = false

// amxOK says whether MatBF16 takes the AMX path for this shape: any number of rows. Even one
// row (decoding one sequence, bound by reading the weights) goes faster through the tiles
// than through the float32 GEMV, whose widening and FMAs keep a core too busy to stream
// (measured: 101 -> 74 ms per Qwen3-0.6B step), and every batch size then forms the same
// sums, bit for bit. One row takes one-column tiles (amxCfg1).
func amxOK(rows, out, in int) bool {
	return hasAMX && !forceNoAMX && !forceAVX2 && !forceNoBF16 && rows >= 1 && in > 0 && in%32 == 0 && out >= 16
}

var amxPool sync.Pool

var amxSumsPool = sync.Pool{New: func() any { return new([8 * 1024]float32) }}

func amxBuf(n int) (*[]uint16, []uint16) {
	if v, ok := amxPool.Get().(*[]uint16); ok && cap(*v) >= n {
		return v, (*v)[:n]
	}
	b := make([]uint16, n)
	return &b, b
}

// matBF16AMX is MatBF16 on AMX. TDPBF16PS multiplies a 16×32 bfloat16 tile by a 32×16 one
// stored as 16 rows of column pairs, adding into 16×16 float32 sums: sixteen times the
// products per cycle of AVX-512 BF16. The weights are the first operand straight from their
// rows (16 rows of 64 bytes, the row length apart), so nothing is repacked; the activations
// are rounded to bfloat16 (at Float32 also their low halves, as matBF16Tiled does) and laid
// out as second operands, groups of 16 rows padded with zeros. Each block of 32 weight rows
// meets two groups at a time in four sum tiles, which are stored and written into ys
// transposed. Rows out%16 at the end take the float32 kernel.
//
// A sum is formed from its own row and column only, chunk by chunk in order, so a row's
// result does not depend on the batch it is in.
func matBF16AMX(w []uint16, out, in int, xs, ys [][]float32, p Precision, procs int) {
	n := len(xs)
	if n == 1 && !forceWideAMX {
		matBF16AMX1(w, out, in, xs[0], ys[0], p, procs)
		return
	}
	pf := amxPrefetch
	tt := packTokenTiles(xs, in, p, procs)
	defer tt.release()
	groups, kch, tiles := tt.groups, tt.kch, tt.tiles
	loOff := 0
	if p == Float32 {
		loOff = tt.partPairs * 4
	}
	xcstride := groups * 1024
	amxBlocks(out, in, n, procs, func(sums []float32, o, nblk, flags int) {
		var yPtrs [16]*uint32
		aRows := 16 * (1 + flags&1)
		if loOff != 0 {
			flags |= 4
		}
		if !pf {
			flags |= 8
		}
		for g := 0; g < groups; g += 2 {
			f := flags
			if g+1 < groups {
				f |= 2
			}
			amxMatBF16(&amxCfg, &w[o*in], in*2, &tiles[g*512], xcstride, kch, loOff, &sums[0], nblk, f, 64)
			for b := 0; b < 2 && g+b < groups; b++ {
				toks := min(16, n-(g+b)*16)
				for blk := range nblk {
					for a := 0; a < aRows; a += 16 {
						o0 := o + blk*32 + a
						for tt := range toks {
							yPtrs[tt] = (*uint32)(unsafe.Pointer(&ys[(g+b)*16+tt][o0 : o0+16][0]))
						}
						s := &sums[blk*1024+(a/16*2+b)*256]
						transpose16x16((*uint32)(unsafe.Pointer(s)), 64, 16, &yPtrs, toks)
					}
				}
			}
		}
	})
	tailRows(w, out&^15, out, in, xs, ys, p)
}

// amxPrefetch says whether the AMX kernel prefetches the next block of weight rows into L2
// while it works on the current one. It made the output layer about a quarter faster on an
// Emerald Rapids VM (2026-12-06, noisy) and 5–30 % slower on a Granite Rapids-class one
// (2026-12-07, every shape at one row and at 32, weights from memory; whole decode steps up
// to 10 % in a quiet hour, within the noise in a busy one), where the CPU's own prefetchers
// keep up and the extra requests only crowd them.
// Nothing in CPUID tells the two apart, and timing both ways in the process proved too noisy
// on a shared 2-vCPU VM to choose between effects of that size, so it is off unless
// STRATA_AMX_PREFETCH=1. Results are the same bits either way.
var amxPrefetch = os.Getenv("STRATA_AMX_PREFETCH") == "1"

// forceWideAMX makes one row take the 16-token tiles, for tests that compare the two layouts.
var forceWideAMX = false

// amxCfg1 is amxCfg for one activation row: the activation and sum tiles are one column of
// 4 bytes (N = 1). An activation tile is then the row's 32 values as they lie in memory (16
// pairs, 4 bytes apart) and a sum tile 16 consecutive results, so one row needs no transposes
// and reads 64 bytes of activations per chunk instead of a 16-token tile's 1 KB. Each sum is
// formed from the same products in the same order as in a 16-token tile.
var amxCfg1 = func() (c [64]byte) {
	c = amxCfg
	for _, t := range []int{0, 1, 2, 3, 6, 7} {
		c[16+2*t] = 4
	}
	return c
}()

// matBF16AMX1 is matBF16AMX for one activation row.
func matBF16AMX1(w []uint16, out, in int, x, y []float32, p Precision, procs int) {
	pf := amxPrefetch
	ref, buf := amxBuf(2 * in)
	defer amxPool.Put(ref)
	var lo *uint16
	loOff := 0
	if p == Float32 {
		lo, loOff = &buf[in], in*2
	}
	bf16PackAVX512(&buf[0], lo, &x[0], in)
	amxBlocks(out, in, 1, procs, func(sums []float32, o, nblk, flags int) {
		if loOff != 0 {
			flags |= 4
		}
		if !pf {
			flags |= 8
		}
		amxMatBF16(&amxCfg1, &w[o*in], in*2, &buf[0], 64, in/32, loOff, &sums[0], nblk, flags, 4)
		for blk := range nblk {
			o0 := o + blk*32
			copy(y[o0:o0+16], sums[blk*1024:blk*1024+16])
			if flags&1 != 0 {
				copy(y[o0+16:o0+32], sums[blk*1024+512:blk*1024+528])
			}
		}
	})
	tailRows(w, out&^15, out, in, [][]float32{x}, [][]float32{y}, p)
}

// amxBlocks hands out the weight's blocks of 32 rows (and a last one of 16 where out%32 >= 16,
// flags&1 clear) to the cores, in runs of at most eight blocks, calling do with the run's
// first row and a 32 KB buffer for its sums.
func amxBlocks(out, in, n, procs int, do func(sums []float32, o, nblk, flags int)) {
	blocks := out / 32
	tail16 := out%32 >= 16
	// About eight items per core, at most eight blocks (32 KB of sums) each.
	per := max(1, min(8, blocks/(8*procs)))
	nItems := (blocks + per - 1) / per
	if tail16 {
		nItems++
	}
	var next atomic.Int64
	work := func() {
		// 32 KB of sums from a pool, not the stack: a fresh worker goroutine would grow its
		// stack (a copy) on every matmul.
		sumsRef := amxSumsPool.Get().(*[8 * 1024]float32)
		defer amxSumsPool.Put(sumsRef)
		for {
			item := int(next.Add(1) - 1)
			if item >= nItems {
				return
			}
			if tail16 && item == nItems-1 {
				do(sumsRef[:], blocks*32, 1, 0)
			} else {
				do(sumsRef[:], item*per*32, min(per, blocks-item*per), 1)
			}
		}
	}
	// Reading the weights is the cost at small batches: two cores stream them faster than
	// one once a matrix is a few hundred KB (waking a goroutine costs microseconds).
	if procs == 1 || nItems == 1 || (out*in < 1<<17 && out*in*n < 1<<23) {
		work()
	} else {
		runOn(min(procs, nItems), work)
	}
}

// tailRows computes rows from… of out the token-major paths leave to the float32 kernel,
// meeting the activations as the tiles did: at BFloat16 rounded first.
func tailRows(w []uint16, from, out, in int, xs, ys [][]float32, p Precision) {
	if from >= out {
		return
	}
	n := len(xs)
	x := xs
	if p == BFloat16 {
		x = make([][]float32, n)
		for t := range x {
			x[t] = make([]float32, in)
			for k, v := range xs[t][:in] {
				x[t][k] = tensor.BF16ToF32(tensor.F32ToBF16(v))
			}
		}
	}
	for o := from; o < out; o++ {
		row := w[o*in : (o+1)*in]
		for t := range x {
			ys[t][o] = DotBF16(row, x[t])
		}
	}
}

// tokenTiles is a batch of activations laid out for the token-major kernels (AMX tiles and
// the AVX-512 BF16 outer product): for every chunk of 16 column pairs and every group of 16
// tokens, 16 rows of 64 bytes, one per column pair, each holding that pair (two bfloat16) of
// every token of the group, zeros past the last token. At Float32 the low halves follow as a
// second part of the same shape.
type tokenTiles struct {
	tilesRef    *[]uint16
	tiles       []uint16 // [part][chunk][group][16 pairs][16 tokens] 32-bit pairs
	groups, kch int
	partPairs   int // 32-bit pairs in one part
}

func (t tokenTiles) release() { amxPool.Put(t.tilesRef) }

// packSpan is how many chunks of 32 columns packTokenTiles rounds at a time: 16 tokens'
// halves of them (16 KB at Float32) stay in L1 for the transposes.
const packSpan = 8

var packBufPool = sync.Pool{New: func() any { return new([2 * 16 * packSpan * 32]uint16) }}

// packTokenTiles rounds xs to bfloat16 (at Float32 also their low halves) and lays them out
// as tokenTiles; in is a multiple of 32. Each goroutine takes a range of column chunks: it
// rounds 16 tokens' columns there into a buffer that stays in L1 (vectorised), then writes
// their tiles with 16 by 16 transposes. Rounding all rows first and transposing after, split
// by tokens and then by chunks, cost 2-3 times as much in a batch-32 matmul on a 2-vCPU EPYC
// (39 against 20 µs at 1024 columns): each core read back lines the other had just written.
func packTokenTiles(xs [][]float32, in int, p Precision, procs int) tokenTiles {
	n := len(xs)
	groups := (n + 15) / 16
	kch := in / 32
	parts := 1
	if p == Float32 {
		parts = 2
	}
	tilesRef, tiles := amxBuf(parts * kch * groups * 512)
	dst := unsafe.Slice((*uint32)(unsafe.Pointer(&tiles[0])), len(tiles)/2)
	partPairs := kch * groups * 256
	grain := GrainFor(groups * 256 * parts)
	// MatBF16Serial's callers already keep every core busy: then the packing stays here too.
	if procs == 1 {
		grain = kch
	}
	ParallelFor(kch, grain, func(clo, chi int) {
		buf := packBufPool.Get().(*[2 * 16 * packSpan * 32]uint16)
		defer packBufPool.Put(buf)
		const rowLen = packSpan * 32 // bfloat16 per token row in buf
		src := unsafe.Slice((*uint32)(unsafe.Pointer(&buf[0])), len(buf)/2)
		var rowPtrs [16]*uint32
		for c0 := clo; c0 < chi; c0 += packSpan {
			c1 := min(chi, c0+packSpan)
			for g := range groups {
				toks := min(16, n-g*16)
				for tl := range toks {
					var lo *uint16
					if parts == 2 {
						lo = &buf[16*rowLen+tl*rowLen]
					}
					bf16PackAVX512(&buf[tl*rowLen], lo, &xs[g*16+tl][c0*32], (c1-c0)*32)
				}
				for part := range parts {
					for c := c0; c < c1; c++ {
						tile := dst[part*partPairs+(c*groups+g)*256:]
						for pp := range rowPtrs {
							rowPtrs[pp] = &tile[pp*16]
						}
						transpose16x16(&src[part*16*rowLen/2+(c-c0)*16], rowLen*2, toks, &rowPtrs, 16)
					}
				}
			}
		}
	})
	return tokenTiles{tilesRef: tilesRef, tiles: tiles, groups: groups, kch: kch, partPairs: partPairs}
}
