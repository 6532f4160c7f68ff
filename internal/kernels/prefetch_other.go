//go:build !amd64

package kernels

// PrefetchF32 is a no-op where no prefetch instruction is wired up.
func PrefetchF32(x []float32) {}

// PrefetchBF16 is a no-op where no prefetch instruction is wired up.
func PrefetchBF16(x []uint16) {}
