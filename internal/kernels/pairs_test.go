package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/strata-ai/strata/internal/tensor"
)

// TestMatBF16Pairs checks the two-by-four AVX2 path against float64 sums of the same
// products, over batch sizes with and without a remainder of four, odd and even weight row
// counts, one row pair or chunks of rows at a time, serial and split across cores.
func TestMatBF16Pairs(t *testing.T) {
	if !hasAVX2FMA {
		t.Skip("this CPU has no AVX2/FMA; the pair kernel cannot run here")
	}
	forceAVX2 = true
	defer func(a int) { forceAVX2, pairActBytes = false, a }(pairActBytes)
	for _, act := range []int{1 << 30, 0} {
		pairActBytes = act // 1 GiB: every batch one row pair at a time; 0: chunks of rows
		testMatBF16Pairs(t)
	}
}

func testMatBF16Pairs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, in := range []int{16, 48, 1024} {
		for _, out := range []int{1, 2, 5, 130, 257} {
			w := randBF16(r, out*in)
			for _, rows := range []int{4, 5, 8, 11, 32} {
				if !pairsOK(rows, in) {
					t.Fatalf("rows %d in %d: the pair path is not taken", rows, in)
				}
				xs := make([][]float32, rows)
				for i := range xs {
					xs[i] = make([]float32, in)
					for k := range xs[i] {
						xs[i][k] = float32(r.NormFloat64())
					}
				}
				for _, procs := range []int{1, 2} {
					ys := guardedRows(rows, out)
					matBF16(w, out, in, xs, ys, Float32, procs)
					checkAgainstSums(t, fmt.Sprintf("in %d out %d rows %d procs %d", in, out, rows, procs), w, out, in, xs, ys)
				}
			}
		}
	}
}

// guardedRows makes rows output rows of out floats with a sentinel just past each end.
func guardedRows(rows, out int) [][]float32 {
	ys := make([][]float32, rows)
	for i := range ys {
		ys[i] = make([]float32, out+1)
		ys[i][out] = 12345 // past the end: untouched
		ys[i] = ys[i][:out]
	}
	return ys
}

// checkAgainstSums fails unless each ys[i][o] matches the float64 sum Σ_k W[o][k]·xs[i][k]
// to within 1e-6 of the products' magnitudes, and the sentinels past the rows are intact.
func checkAgainstSums(t *testing.T, what string, w []uint16, out, in int, xs, ys [][]float32) {
	t.Helper()
	for i, y := range ys {
		if y[:out+1][out] != 12345 {
			t.Fatalf("%s: wrote past output row %d", what, i)
		}
		for o := range out {
			var ref, mag float64
			for k := range in {
				p := float64(tensor.BF16ToF32(w[o*in+k])) * float64(xs[i][k])
				ref += p
				mag += math.Abs(p)
			}
			if d := math.Abs(float64(y[o]) - ref); d > 1e-6*mag {
				t.Fatalf("%s: y[%d][%d] = %v, want %v", what, i, o, y[o], ref)
			}
		}
	}
}
