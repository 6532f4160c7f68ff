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

var hasAVX512 = cpu.X86.HasAVX512F

// dot4BF16AVX512 is dot4BF16AVX2 with sixteen lanes; n is a multiple of 16.
//
//go:noescape
func dot4BF16AVX512(w *uint16, x *float32, stride int, n int, out *[4]float32)
