package kernels

import "unsafe"

//go:noescape
func prefetchLines(p unsafe.Pointer, n int)

// PrefetchF32 asks the CPU to start loading x into its caches, so a later pass over it finds
// it there instead of waiting on memory; it changes nothing else.
func PrefetchF32(x []float32) {
	if len(x) > 0 {
		prefetchLines(unsafe.Pointer(&x[0]), (len(x)*4+63)/64)
	}
}

// PrefetchBF16 is PrefetchF32 for bfloat16 bit patterns.
func PrefetchBF16(x []uint16) {
	if len(x) > 0 {
		prefetchLines(unsafe.Pointer(&x[0]), (len(x)*2+63)/64)
	}
}
