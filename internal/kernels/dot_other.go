//go:build !amd64

package kernels

const hasAVX2FMA = false

func dotBF16AVX2(w *uint16, x *float32, n int) float32 { panic("no AVX2 on this architecture") }

func dot4BF16AVX2(w *uint16, x *float32, stride int, n int, out *[4]float32) {
	panic("no AVX2 on this architecture")
}

func dot2x4BF16AVX2(w *uint16, wstride int, x *float32, xstride int, n int, out *[8]float32) {
	panic("no AVX2 on this architecture")
}

func dot3x4BF16AVX2(w *uint16, wstride int, x *float32, xstride int, n int, out *[12]float32) {
	panic("no AVX2 on this architecture")
}

func dot3x4NextBF16AVX2(w *uint16, wstride int, x *float32, xstride int, n int, out *[12]float32, pf *uint16, pfstride int) {
	panic("no AVX2 on this architecture")
}

const hasAVX512 = false

func dot4BF16AVX512(w *uint16, x *float32, stride int, n int, out *[4]float32) {
	panic("no AVX-512 on this architecture")
}

func dot2x8BF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[16]float32) {
	panic("no AVX-512 on this architecture")
}

func packEvenOdd32AVX512(dst, x *float32, n int) { panic("no AVX-512 on this architecture") }

func dot3x8BF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[24]float32, pf *uint16, pfstep int) {
	panic("no AVX-512 on this architecture")
}

func dot3x8NextBF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[24]float32, pf *uint16, pfstride int) {
	panic("no AVX-512 on this architecture")
}

func dot2x4NextBF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[8]float32, pf *uint16, pfstride int) {
	panic("no AVX-512 on this architecture")
}

func dot2x4BF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[8]float32) {
	panic("no AVX-512 on this architecture")
}

const hasAVX512BF16 = false

func dpbf16Tile4x4(w *uint16, wstride int, x *uint16, xstride int, n int, out *[4]*float32, pf *uint16, loOff int, add int) {
	panic("no AVX-512 BF16 on this architecture")
}

func dpbf16Outer8x2(w *uint16, wstride int, x *uint16, xcstride int, kch int, lo int, sums *float32, pf *uint16, add int, tiles int) {
	panic("no AVX-512 BF16 on this architecture")
}

func dpbf16Outer16x1(w *uint16, wstride int, x *uint16, xcstride int, kch int, lo int, sums *float32, pf *uint16, add int, tiles int) {
	panic("no AVX-512 BF16 on this architecture")
}

func bf16PackAVX512(hi, lo *uint16, x *float32, n int) { panic("no AVX-512 on this architecture") }

func dotF32AVX2(a, b *float32, n int) float32 { panic("no AVX2 on this architecture") }

func blockMax64AVX2(y *float32, blocks int, out *float32) { panic("no AVX2 on this architecture") }

func maxNumF32AVX2(x *float32, n int) float32 { panic("no AVX2 on this architecture") }

func firstEqualAVX2(x *float32, n int, v float32) int { panic("no AVX2 on this architecture") }

func axpyF32AVX2(alpha float32, x, y *float32, n int) { panic("no AVX2 on this architecture") }

func dotsF32AVX2(q, k *float32, stride, n, hd int, out *float32) {
	panic("no AVX2 on this architecture")
}

func axpysF32AVX2(p, v *float32, stride, n, hd int, o *float32) {
	panic("no AVX2 on this architecture")
}

func expF32AVX2(dst, src *float32, n int) { panic("no AVX2 on this architecture") }

func siluMulAVX2(gate, u *float32, n int) { panic("no AVX2 on this architecture") }

func dotsBF16AVX2(q *float32, k *uint16, stride, n, hd int, out *float32) {
	panic("no AVX2 on this architecture")
}

func axpysBF16AVX2(p *float32, v *uint16, stride, n, hd int, o *float32) {
	panic("no AVX2 on this architecture")
}

func dpbf16Tile4x3(w *uint16, wstride int, x *uint16, xstride int, n int, out *[4]*float32, pf *uint16, loOff int, add int) {
	panic("no AVX-512 BF16 on this architecture")
}

func dpbf16Tile4x2(w *uint16, wstride int, x *uint16, xstride int, n int, out *[4]*float32, pf *uint16, loOff int, add int) {
	panic("no AVX-512 BF16 on this architecture")
}

func dpbf16Tile4x1(w *uint16, wstride int, x *uint16, xstride int, n int, out *[4]*float32, pf *uint16, loOff int, add int) {
	panic("no AVX-512 BF16 on this architecture")
}

func expSubScaleSumAVX2(x *float32, n int, m, scale float32) float32 {
	panic("no AVX2 on this architecture")
}

func maxF32AVX2(x *float32, n int) float32 { panic("no AVX2 on this architecture") }

func scaleF32AVX2(x *float32, n int, a float32) { panic("no AVX2 on this architecture") }

const hasAVX512VL = false

func dots2F32AVX512(q0, q1, k *float32, stride, n, hd int, out0, out1 *float32) {
	panic("no AVX-512 on this architecture")
}

func axpys2F32AVX2(p0, p1, v *float32, stride, n, hd int, o0, o1 *float32) {
	panic("no AVX2 on this architecture")
}

func dots2BF16AVX512(q0, q1 *float32, k *uint16, stride, n, hd int, out0, out1 *float32) {
	panic("no AVX-512 on this architecture")
}

func axpys2BF16AVX2(p0, p1 *float32, v *uint16, stride, n, hd int, o0, o1 *float32) {
	panic("no AVX2 on this architecture")
}

const hasAMX = false

func amxMatBF16(cfg *[64]byte, w *uint16, wstride int, x *uint16, xcstride int, kchunks int, lo int, out *float32, nblk int, flags int, bstride int) {
	panic("no AMX on this architecture")
}

func transpose16x16(src *uint32, srcStride int, srcRows int, dst *[16]*uint32, dstRows int) {
	panic("no AVX-512 on this architecture")
}

func axpys2F32AVX512(p0, p1, v *float32, stride, n, hd int, o0, o1 *float32) {
	panic("no AVX-512 on this architecture")
}

const seqGEMV = false

func gemv1BF16AVX2(w *uint16, rows int, in int, x *float32, out *float32) {
	panic("no AVX2 on this architecture")
}

func gemv1BF16AVX512(w *uint16, rows int, in int, x *float32, out *float32) {
	panic("no AVX-512 on this architecture")
}

func gemvBF16AVX512(w *uint16, rows int, in int, x *float32, out *float32) {
	panic("no AVX-512 on this architecture")
}

func gemvBF16AVX2(w *uint16, rows int, in int, x *float32, out *float32) {
	panic("no AVX2 on this architecture")
}

func scaleMulF32AVX2(out, x, w *float32, r float32, n int) { panic("no AVX2 on this architecture") }

func rotateHalfF32AVX2(x, cos, sin *float32, half, n int) {
	panic("no AVX2 on this architecture")
}

func addF32AVX2(y, x *float32, n int) { panic("no AVX2 on this architecture") }
