package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestTranspose16x16 checks the shuffle network against index arithmetic, with short sources
// (missing rows read as zeros) and short destinations (rows past dstRows untouched).
func TestTranspose16x16(t *testing.T) {
	if !hasAVX512 {
		t.Skip("this CPU has no AVX-512; the transpose is used only by the AMX path")
	}
	r := rand.New(rand.NewPCG(4, 4))
	const stride = 21 // elements between source rows, more than 16 to test the stride
	src := make([]uint32, 16*stride)
	for i := range src {
		src[i] = r.Uint32()
	}
	for _, srcRows := range []int{0, 1, 7, 15, 16} {
		for _, dstRows := range []int{0, 1, 9, 16} {
			out := make([]uint32, 16*18)
			for i := range out {
				out[i] = 0xdeadbeef
			}
			var dst [16]*uint32
			for j := range dst {
				dst[j] = &out[j*18+1]
			}
			transpose16x16(&src[0], stride*4, srcRows, &dst, dstRows)
			for j := range 16 {
				for i := -1; i < 17; i++ {
					got := out[j*18+1+i]
					want := uint32(0xdeadbeef)
					if j < dstRows && i >= 0 && i < 16 {
						want = 0
						if i < srcRows {
							want = src[i*stride+j]
						}
					}
					if got != want {
						t.Fatalf("srcRows %d dstRows %d: out[%d][%d] = %#x, want %#x", srcRows, dstRows, j, i, got, want)
					}
				}
			}
		}
	}
}
