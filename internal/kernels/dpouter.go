package kernels

import (
	"sync"
	"unsafe"
)

//go:generate go run gen_dpouter.go

// forceRowTiles lets tests and benchmarks run matBF16Tiled where matBF16Outer would be taken.
var forceRowTiles = false

// outerOK says whether MatBF16 takes the outer-product path for this shape. Its vectors hold
// 16 tokens, so a batch pays for whole groups of 16: it is taken when the padding costs less
// than the row tiles' reductions and re-reads (measured about a third slower per product).
func outerOK(rows, out, in int) bool {
	if !hasAVX512BF16 || forceAVX2 || forceNoBF16 || forceRowTiles || in%32 != 0 || in == 0 || out < 16 {
		return false
	}
	padded := (rows + 15) &^ 15
	return rows >= 16 && 3*padded <= 4*rows
}

var outerSumsPool sync.Pool

// matBF16Outer is MatBF16's path on AVX-512 BF16 for batches of 16 tokens or more. The
// activations are laid out token-major (tokenTiles, as for AMX), so one vector holds a column
// pair of 16 tokens, and each weight pair is broadcast across the vector: one VDPBF16PS adds a
// weight row's products with 16 tokens, each lane its own output. No sum is ever reduced
// across lanes, each weight is read from memory once per matmul (a tile of 8 rows meets 32
// tokens in 16 registers), and the sums leave through one 16×16 transpose per 16 rows and 16
// tokens. Work items are chunks of weight rows; the last out%16 rows take the float32 path.
//
// A sum is formed from its own row and token only, column pair by column pair in order (the
// low half of a pair right after its high half), so a token's result does not depend on the
// batch it is in.
func matBF16Outer(w []uint16, out, in int, xs, ys [][]float32, p Precision, procs int) {
	n := len(xs)
	tt := packTokenTiles(xs, in, p, procs)
	defer tt.release()
	groups := tt.groups
	lo := 0
	if p == Float32 {
		lo = tt.partPairs * 4
	}
	parts := 1
	if lo != 0 {
		parts = 2
	}
	xcstride := groups * 1024
	// The columns go in slices, whose partial sums are added in turn, so the slice width
	// must not depend on the batch: a row's result would otherwise change with the batch it
	// is in. It is sized for a batch of 32 tokens, whose activations for the slice then stay
	// in the core's L1 next to the weight rows streaming through (16 KB, a third of a 48 KB
	// L1); from L2 (the whole row of the batch) a matmul ran 2-3 % slower in
	// BenchmarkMatBF16Cold32. Longer prompts' slices come from L2 as before.
	kc := min(in, (16<<10)/(32*parts*2))
	out16 := out &^ 15
	// About eight items per core: the last one to finish decides when the matmul ends.
	chunk := max(16, min(64, out16/(8*procs)&^15))
	total := (out16 + chunk - 1) / chunk
	workers := min(procs, total)
	q := newRunQueue(workers, total)
	work := func() {
		need := chunk * groups * 16
		var sums []float32
		if v, ok := outerSumsPool.Get().(*[]float32); ok && cap(*v) >= need {
			sums = (*v)[:need]
		} else {
			sums = make([]float32, need)
		}
		defer outerSumsPool.Put(&sums)
		var yPtrs [16]*uint32
		me := q.join()
		for {
			item, end := q.next(me)
			if item < 0 {
				return
			}
			olo, ohi := item*chunk, min((item+1)*chunk, out16)
			rows := ohi - olo
			for k0 := 0; k0 < in; k0 += kc {
				kn := min(kc, in-k0)
				add := min(k0, 1)
				for g0 := 0; g0 < groups; g0 += 2 {
					G := min(2, groups-g0)
					region := sums[rows*16*g0:]
					x := &tt.tiles[(k0/32*groups+g0)*512]
					O := 8
					if G == 1 {
						O = 16
					}
					// The first pass over these rows streams them in from memory: each tile
					// asks for the next one's rows, and the last for what follows the item's
					// rows at this slice (the next slice's, or the next item's), or for its
					// own when nothing follows (a harmless request, so the others still go out).
					var pf *uint16
					if g0 == 0 {
						switch {
						case k0+kc < in:
							pf = &w[olo*in+k0+kc]
						case item+1 < end:
							pf = &w[(item+1)*chunk*in]
						default:
							pf = &w[(ohi-O)*in+k0]
						}
					}
					if G == 2 {
						dpbf16Outer8x2(&w[olo*in+k0], in, x, xcstride, kn/32, lo, &region[0], pf, add, rows/O)
					} else {
						dpbf16Outer16x1(&w[olo*in+k0], in, x, xcstride, kn/32, lo, &region[0], pf, add, rows/O)
					}
				}
			}
			// sums[g0 pair region][row][g][token] → ys[token][row]
			for g0 := 0; g0 < groups; g0 += 2 {
				G := min(2, groups-g0)
				region := sums[rows*16*g0:]
				for gi := range G {
					g := g0 + gi
					toks := min(16, n-g*16)
					for r0 := 0; r0 < rows; r0 += 16 {
						for t := range toks {
							yPtrs[t] = (*uint32)(unsafe.Pointer(&ys[g*16+t][olo+r0 : olo+r0+16][0]))
						}
						src := (*uint32)(unsafe.Pointer(&region[(r0*G+gi)*16]))
						transpose16x16(src, G*64, 16, &yPtrs, toks)
					}
				}
			}
		}
	}
	if procs == 1 || workers == 1 {
		work()
	} else {
		runOn(workers, work)
	}
	tailRows(w, out16, out, in, xs, ys, p)
}
