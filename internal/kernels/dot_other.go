//go:build !amd64

package kernels

const hasAVX2FMA = false

func dotBF16AVX2(w *uint16, x *float32, n int) float32 { panic("no AVX2 on this architecture") }

func dot4BF16AVX2(w *uint16, x *float32, stride int, n int, out *[4]float32) {
	panic("no AVX2 on this architecture")
}

const hasAVX512 = false

func dot4BF16AVX512(w *uint16, x *float32, stride int, n int, out *[4]float32) {
	panic("no AVX-512 on this architecture")
}
