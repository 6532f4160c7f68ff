package kernels

import "golang.org/x/sys/cpu"

var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dotBF16AVX2 sums n (a multiple of 16) products of bfloat16 w and float32 x.
//
//go:noescape
func dotBF16AVX2(w *uint16, x *float32, n int) float32
