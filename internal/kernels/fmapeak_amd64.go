package kernels

//go:noescape
func fmaLoopAVX2(n int) float32

//go:noescape
func fmaLoopAVX512(n int) float32

// fmaLoopFor returns the FMA loop of the widest vectors the matmul kernels use here, and its
// lanes: n rounds of twelve FMAs of 1·1, returning one accumulator's lane (n, below 2²⁴).
func fmaLoopFor() (func(n int) float32, int) {
	switch {
	case hasAVX512 && !forceAVX2:
		return fmaLoopAVX512, 16
	case hasAVX2FMA:
		return fmaLoopAVX2, 8
	}
	return nil, 0
}
