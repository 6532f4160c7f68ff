package comm

import "golang.org/x/sys/cpu"

var useAVX2 = cpu.X86.HasAVX2

// sumF32AVX2 adds n float32s: dst[i] = a[i] + b[i]; dst may alias a or b exactly.
//
//go:noescape
func sumF32AVX2(dst, a, b *float32, n int)

func sumF32(dst, a, b []float32) {
	n := len(dst)
	if !useAVX2 || n < 16 {
		sumF32Go(dst, a, b)
		return
	}
	a, b = a[:n], b[:n]
	sumF32AVX2(&dst[0], &a[0], &b[0], n)
}
