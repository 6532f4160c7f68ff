package kernels

import "golang.org/x/sys/cpu"

var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dotBF16AVX2 sums n (a multiple of 16) products of bfloat16 w and float32 x.
//
//go:noescape
func dotBF16AVX2(w *uint16, x *float32, n int) float32

// dot4BF16AVX2 computes four dot products of w with x rows stride floats apart.
//
//go:noescape
func dot4BF16AVX2(w *uint16, x *float32, stride int, n int, out *[4]float32)

// dot2x4BF16AVX2 computes two weight rows (wstride elements apart) against four activation
// rows (xstride floats apart), all packed by packEvenOdd(…, 16); n is a positive multiple of
// 16. out holds row 0's four sums, then row 1's.
//
//go:noescape
func dot2x4BF16AVX2(w *uint16, wstride int, x *float32, xstride int, n int, out *[8]float32)

// dot3x4BF16AVX2 is dot2x4BF16AVX2 for three weight rows: out holds row 0's four sums, then
// row 1's, then row 2's, each bit for bit what dot2x4BF16AVX2 gives for that row.
//
//go:noescape
func dot3x4BF16AVX2(w *uint16, wstride int, x *float32, xstride int, n int, out *[12]float32)

// dot3x4NextBF16AVX2 is dot3x4BF16AVX2 that prefetches, as it reads its own rows, the n
// elements of each of three rows at pf, pf+pfstride and pf+2·pfstride (pfstride in bytes).
//
//go:noescape
func dot3x4NextBF16AVX2(w *uint16, wstride int, x *float32, xstride int, n int, out *[12]float32, pf *uint16, pfstride int)

// VPMOVZXWD on Z registers is AVX512BW; the pair kernels store Y16 (EVEX, so AVX512VL).
var hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL

// dot2x8BF16AVX512 computes two weight rows (wstride elements apart) against eight activation
// rows (xstride floats apart), all packed by packEvenOdd(…, 32); n is a positive multiple of
// 32. out holds row 0's eight sums, then row 1's.
//
//go:noescape
func dot2x8BF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[16]float32)

// packEvenOdd32AVX512 is packEvenOdd(dst[:n], x[:n], 32); n is a positive multiple of 32.
//
//go:noescape
func packEvenOdd32AVX512(dst, x *float32, n int)

// dot3x8BF16AVX512 is dot2x8BF16AVX512 for three weight rows: out holds row 0's eight sums,
// then row 1's, then row 2's. It prefetches n/32 lines from pf on, one an iteration, or
// n/16 when pfstep is 64, two an iteration.
//
//go:noescape
func dot3x8BF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[24]float32, pf *uint16, pfstep int)

// dot3x8NextBF16AVX512 is dot3x8BF16AVX512 that prefetches, as it reads its own rows, n/32
// lines of each of the three rows at pf, pf+pfstride and pf+2·pfstride (pfstride in bytes):
// the next call's.
//
//go:noescape
func dot3x8NextBF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[24]float32, pf *uint16, pfstride int)

// dot2x4BF16AVX512 is dot2x8BF16AVX512 for four activation rows: out holds row 0's four
// sums, then row 1's.
//
//go:noescape
func dot2x4BF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[8]float32)

// dot2x4NextBF16AVX512 is dot2x4BF16AVX512 that prefetches, as it reads its own rows, n/32
// lines of each of the two rows at pf and pf+pfstride (bytes): the next call's.
//
//go:noescape
func dot2x4NextBF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[8]float32, pf *uint16, pfstride int)

// dot4BF16AVX512 is dot4BF16AVX2 with sixteen lanes; n is a multiple of 16.
//
//go:noescape
func dot4BF16AVX512(w *uint16, x *float32, stride int, n int, out *[4]float32)

// hasAVX512BF16 says VDPBF16PS is there: two bfloat16 products per float32 lane per
// instruction, twice the rate of widening bf16 and using FMA.
var hasAVX512BF16 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512BF16

// dpbf16Tile4x4 computes out[j][i] = Σ w[i·wstride+k]·x[j·xstride+k] over k < n for four
// bfloat16 weight rows and four bfloat16 activation rows, storing four float32 at each out[j];
// n is a multiple of 32. If loOff is not 0, x[j·xstride+loOff+k] (the activation's low half)
// is added into the same sums. If add is not 0 the sums are added to out instead of stored.
// If pf is not nil, the next weight block (four rows of n, wstride apart) is prefetched from
// pf while the tile computes.
//
//go:noescape
func dpbf16Tile4x4(w *uint16, wstride int, x *uint16, xstride int, n int, out *[4]*float32, pf *uint16, loOff int, add int)

// dpbf16Tile4x3, 4x2 and 4x1 are dpbf16Tile4x4 over the first 3, 2 or 1 activation rows,
// each sum formed in the same order.
//
//go:noescape
func dpbf16Tile4x3(w *uint16, wstride int, x *uint16, xstride int, n int, out *[4]*float32, pf *uint16, loOff int, add int)

//go:noescape
func dpbf16Tile4x2(w *uint16, wstride int, x *uint16, xstride int, n int, out *[4]*float32, pf *uint16, loOff int, add int)

//go:noescape
func dpbf16Tile4x1(w *uint16, wstride int, x *uint16, xstride int, n int, out *[4]*float32, pf *uint16, loOff int, add int)

// dpbf16Outer8x2 adds, for tiles tiles of 8 weight rows (wstride elements apart, at the
// slice's first column, the tiles one after another from w) and two groups of 16 tokens, the
// products over kch chunks of 32 columns into each tile's sums[r][g][t], the tiles' sums one
// after another: overwritten when add is 0, else added to. x is the token-major activation
// layout of the AMX path (a chunk of a group is 16 rows of 64 bytes, one per column pair, the
// next group 1024 bytes on, the next chunk xcstride bytes on); lo, when not 0, is the byte
// offset of the low halves. pf nil: nothing is prefetched; otherwise each tile prefetches
// the next one's rows, and the last tile pf's. One call takes a work item's rows at one
// column slice, where a call per tile cost a Go loop iteration per 2048 instructions.
//
//go:noescape
func dpbf16Outer8x2(w *uint16, wstride int, x *uint16, xcstride int, kch int, lo int, sums *float32, pf *uint16, add int, tiles int)

// dpbf16Outer16x1 is dpbf16Outer8x2 for tiles of 16 weight rows and one group of tokens.
//
//go:noescape
func dpbf16Outer16x1(w *uint16, wstride int, x *uint16, xcstride int, kch int, lo int, sums *float32, pf *uint16, add int, tiles int)

// bf16PackAVX512 rounds x to bfloat16 into hi and, if lo is not nil, the rest x-hi into lo; n
// is a multiple of 16.
//
//go:noescape
func bf16PackAVX512(hi, lo *uint16, x *float32, n int)

// blockMax64AVX2 sets out[b] to the largest of y[64b : 64b+64] for b < blocks (> 0); the
// values are finite.
//
//go:noescape
func blockMax64AVX2(y *float32, blocks int, out *float32)

// maxNumF32AVX2 returns the largest of x[0:n] that is a number, -Inf when none is; n is a
// positive multiple of 32.
//
//go:noescape
func maxNumF32AVX2(x *float32, n int) float32

// firstEqualAVX2 returns the first i < n with x[i] == v, or -1; n is a positive multiple of 8.
//
//go:noescape
func firstEqualAVX2(x *float32, n int, v float32) int

// dotF32AVX2 returns Σ a[i]·b[i]; n is a positive multiple of 32.
//
//go:noescape
func dotF32AVX2(a, b *float32, n int) float32

// axpyF32AVX2 adds alpha·x[i] to y[i]; n is a positive multiple of 32.
//
//go:noescape
func axpyF32AVX2(alpha float32, x, y *float32, n int)

// dotsF32AVX2 computes n dot products of q with rows of k stride floats apart.
//
//go:noescape
func dotsF32AVX2(q, k *float32, stride, n, hd int, out *float32)

// axpysF32AVX2 adds Σ_s p[s]·v[s·stride:] to o.
//
//go:noescape
func axpysF32AVX2(p, v *float32, stride, n, hd int, o *float32)

// expF32AVX2 sets dst[i] = exp(src[i]); n is a positive multiple of 8.
//
//go:noescape
func expF32AVX2(dst, src *float32, n int)

// siluMulAVX2 sets gate[i] = gate[i]/(1+exp(-gate[i]))·u[i]; n is a positive multiple of 8.
//
//go:noescape
func siluMulAVX2(gate, u *float32, n int)

// dotsBF16AVX2 is dotsF32AVX2 over bfloat16 keys.
//
//go:noescape
func dotsBF16AVX2(q *float32, k *uint16, stride, n, hd int, out *float32)

// axpysBF16AVX2 is axpysF32AVX2 over bfloat16 values.
//
//go:noescape
func axpysBF16AVX2(p *float32, v *uint16, stride, n, hd int, o *float32)

// expSubScaleSumAVX2 sets x[i] = exp((x[i]-m)·scale) and returns their sum; n is a positive
// multiple of 8.
//
//go:noescape
func expSubScaleSumAVX2(x *float32, n int, m, scale float32) float32

// maxF32AVX2 returns the largest of x[:n]; n is a positive multiple of 8.
//
//go:noescape
func maxF32AVX2(x *float32, n int) float32

// scaleF32AVX2 multiplies x[:n] by a; n is a positive multiple of 8.
//
//go:noescape
func scaleF32AVX2(x *float32, n int, a float32)

// hasAVX512VL: Y16-Y31 exist (the pair attention kernel keeps its second query's sums there).
var hasAVX512VL = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL

// dots2F32AVX512 is dotsF32AVX2 for two queries over the same keys, bit-identical to two calls.
//
//go:noescape
func dots2F32AVX512(q0, q1, k *float32, stride, n, hd int, out0, out1 *float32)

// axpys2F32AVX2 is axpysF32AVX2 for two weightings of the same values, bit-identical to two calls.
//
//go:noescape
func axpys2F32AVX2(p0, p1, v *float32, stride, n, hd int, o0, o1 *float32)

// axpys2F32AVX512 is axpys2F32AVX2 with sixteen lanes (hd a multiple of 16), bit-identical.
//
//go:noescape
func axpys2F32AVX512(p0, p1, v *float32, stride, n, hd int, o0, o1 *float32)

// dots2BF16AVX512 is dotsBF16AVX2 for two queries over the same keys, bit-identical to two calls.
//
//go:noescape
func dots2BF16AVX512(q0, q1 *float32, k *uint16, stride, n, hd int, out0, out1 *float32)

// axpys2BF16AVX2 is axpysBF16AVX2 for two weightings of the same values, bit-identical to two
// calls.
//
//go:noescape
func axpys2BF16AVX2(p0, p1 *float32, v *uint16, stride, n, hd int, o0, o1 *float32)

// gemvBF16AVX512 computes out[r] = Σ_k w[r·in+k]·x[k] for rows weight rows (in a multiple of
// 32) with x packed by packEvenOdd.
//
//go:noescape
func gemvBF16AVX512(w *uint16, rows int, in int, x *float32, out *float32)

// gemv1BF16AVX512 is gemvBF16AVX512 one row at a time: each core reads its weights as one
// sequential run.
//
//go:noescape
func gemv1BF16AVX512(w *uint16, rows int, in int, x *float32, out *float32)

// gemv1BF16AVX2 is gemv1BF16AVX512 with eight lanes: in a multiple of 16, x packed by
// packEvenOdd in blocks of 16.
//
//go:noescape
func gemv1BF16AVX2(w *uint16, rows int, in int, x *float32, out *float32)

// cpuVendorAMD reports whether CPUID names AMD as the maker.
func cpuVendorAMD() bool

// seqGEMV says whether one row's GEMV reads its weights one row at a time. Measured on a
// 2-vCPU AMD EPYC (Zen 5), in one process, the two forms taking turns: a batch-1 decode step
// of Qwen3-0.6B's shape 36.1 → 31.9 and 31.6 → 27.4 ms (medians of 20 rounds, two runs); the
// output layer's one-row matmul on the AVX2 kernels (as a CPU without AVX-512 runs them)
// 35.6 → 47.3 GB/s, and at in = 3072 42.2 → 48.7.
// A scratch read of 512 MB on both cores there, one load per line, went 1.6–1.9× as fast as
// one run per core as with four rows in step (57 against 30 GB/s in one run). Intel CPUs keep
// the four-row form, measured there, until it is measured against this one.
var seqGEMV = cpuVendorAMD()

// gemvBF16AVX2 is gemvBF16AVX512 with eight lanes: in a multiple of 16, x packed by
// packEvenOdd in blocks of 16.
//
//go:noescape
func gemvBF16AVX2(w *uint16, rows int, in int, x *float32, out *float32)

// scaleMulF32AVX2 sets out[i] = (x[i]·r)·w[i]; n is a positive multiple of 16.
//
//go:noescape
func scaleMulF32AVX2(out, x, w *float32, r float32, n int)

// rotateHalfF32AVX2 is RotateHalfF32's first n (a positive multiple of 8) pairs; the second
// half starts half elements on.
//
//go:noescape
func rotateHalfF32AVX2(x, cos, sin *float32, half, n int)

// addF32AVX2 sets y[i] += x[i]; n is a positive multiple of 32.
//
//go:noescape
func addF32AVX2(y, x *float32, n int)
