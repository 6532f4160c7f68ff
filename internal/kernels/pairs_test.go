package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/strata-ai/strata/internal/tensor"
)

// TestMatBF16Pairs checks the AVX2 path (three rows by four, a pair for what is left over)
// against float64 sums of the same products, over batch sizes with and without a remainder
// of four (one or two groups asking for the next call's rows, more taking shares), weight
// row counts with every remainder of three, one unit or chunks of rows at a time, serial and
// split across cores.
func TestMatBF16Pairs(t *testing.T) {
	if !hasAVX2FMA {
		t.Skip("this CPU has no AVX2/FMA; the pair kernel cannot run here")
	}
	forceAVX2 = true
	// the rows the next-call kernel asks for must lie within the weights (a prefetch never
	// faults, so nothing else would show a stray one), and the kernel must run
	var calls atomic.Int64
	var stray atomic.Value
	pairPFCheck = func(w []uint16, pf *uint16, n, step int) {
		calls.Add(1)
		lo, p := uintptr(unsafe.Pointer(&w[0])), uintptr(unsafe.Pointer(pf))
		if p < lo || p+uintptr(2*n) > lo+uintptr(2*len(w)) {
			stray.Store(fmt.Sprintf("a prefetch of %d elements at element %d of %d", n, int(p-lo)/2, len(w)))
		}
	}
	defer func() {
		if s := stray.Load(); s != nil {
			t.Errorf("the next-call kernel strays outside the weights: %s", s)
		}
		if calls.Load() == 0 {
			t.Error("the next-call kernel never ran")
		}
	}()
	defer func(a int) { forceAVX2, pairActBytes, pairPFCheck = false, a, nil }(pairActBytes)
	for _, act := range []int{1 << 30, 0} {
		pairActBytes = act // 1 GiB: every batch one row pair at a time; 0: chunks of rows
		testMatBF16Pairs(t, []int{16, 48, 1024}, []int{2, 3, 4, 5, 7, 8, 11, 32})
	}
}

// TestMatBF16Pairs512 is TestMatBF16Pairs for the AVX-512 kernels (three rows by eight, two
// by eight for leftover rows, two by four for a remainder of activation rows), with rows long
// enough to go in blocks of columns, and blocks made small so that every shape takes several.
func TestMatBF16Pairs512(t *testing.T) {
	if !hasAVX512 {
		t.Skip("this CPU has no AVX-512 (F, BW and VL); the wide pair kernels cannot run here")
	}
	// where AVX-512 BF16 or AMX is there, MatBF16 would take those first
	forceNoBF16 = true
	// every prefetch range must lie within the weights, and both steps must be exercised
	var steps [2]atomic.Int64
	var stray atomic.Value
	pairPFCheck = func(w []uint16, pf *uint16, n, step int) {
		lines := n / 32
		if step == 64 {
			lines *= 2
			steps[1].Add(1)
		} else {
			steps[0].Add(1)
		}
		lo := uintptr(unsafe.Pointer(&w[0]))
		p := uintptr(unsafe.Pointer(pf))
		if p < lo || p+uintptr(64*lines) > lo+uintptr(2*len(w)) {
			stray.Store(fmt.Sprintf("prefetch of %d lines at element %d of %d", lines, int(p-lo)/2, len(w)))
		}
	}
	defer func(a, k int) {
		pairActBytes512, pairKBlock, forceNoBF16, pairPFCheck = a, k, false, nil
	}(pairActBytes512, pairKBlock)
	defer func() {
		if s := stray.Load(); s != nil {
			t.Errorf("a prefetch strays outside the weights: %s", s)
		}
		if steps[0].Load() == 0 || steps[1].Load() == 0 {
			t.Errorf("prefetch steps exercised: one line %d calls, two lines %d", steps[0].Load(), steps[1].Load())
		}
	}()
	for _, c := range []struct{ act, kb int }{{1 << 30, 1024}, {0, 1024}, {0, 64}, {1 << 30, 96}} {
		pairActBytes512, pairKBlock = c.act, c.kb
		testMatBF16Pairs(t, []int{32, 96, 1056, 3072}, []int{2, 3, 4, 5, 7, 8, 11, 12, 15, 16, 19, 32})
	}
}

func testMatBF16Pairs(t *testing.T, ins, batches []int) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	for _, in := range ins {
		for _, out := range []int{1, 2, 5, 130, 257} {
			w := randBF16(r, out*in)
			for _, rows := range batches {
				if !(pairsOK(rows, in) || pairsSmallOK(rows, in)) || amxOK(rows, out, in) || outerOK(rows, out, in) || tiledOK(rows, out, in) {
					t.Fatalf("rows %d in %d out %d: the pair path is not taken", rows, in, out)
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
					checkAgainstSums(t, fmt.Sprintf("wide %v in %d out %d rows %d procs %d kblock %d", pairWide(in), in, out, rows, procs, pairKBlock), w, out, in, xs, ys)
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

// BenchmarkMatBF16Pairs compares the pair kernels with the four-row kernel they replace and,
// on AVX2, with their earlier two-by-four path, on Qwen3-0.6B's batched shapes at decode
// batches of 8, 16 and 32 and a 128-token prefill, with the weights coming from memory as in
// a model step (copies of each, 256 MiB in all, taken in turn). The reported MB/s is
// MFLOP/s.
func BenchmarkMatBF16Pairs(b *testing.B) {
	if !hasAVX2FMA {
		b.Skip("this CPU has no AVX2/FMA")
	}
	for _, shape := range benchShapes {
		out, in := shape[0], shape[1]
		r := rand.New(rand.NewPCG(1, 1))
		copies := max(1, (256<<20)/(2*out*in))
		ws := make([][]uint16, copies)
		for i := range ws {
			ws[i] = randBF16(r, out*in)
		}
		for _, rows := range []int{8, 16, 32, 128} {
			xs, ys := batchRows(r, rows, in, out)
			for _, name := range []string{"four-row", "pairs-2x4", "pairs"} {
				if name == "pairs-2x4" && hasAVX512 {
					continue // AVX2's earlier path: on AVX-512 the wide kernels run instead
				}
				b.Run(fmt.Sprintf("%dx%d/b%d/%s", out, in, rows, name), func(b *testing.B) {
					forceNoPairs, forceAVX2Pairs = name == "four-row", name == "pairs-2x4"
					defer func() { forceNoPairs, forceAVX2Pairs = false, false }()
					b.SetBytes(int64(2 * out * in * rows))
					for i := range b.N {
						MatBF16(ws[i%copies], out, in, xs, ys, Float32)
					}
				})
			}
		}
	}
}

// TestPackEvenOdd checks the packing (the AVX-512 one for blocks of 32 where it runs) against
// its definition, over lengths with and without a partial last block, which stays untouched.
func TestPackEvenOdd(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	for _, blk := range []int{16, 32} {
		for _, n := range []int{0, 16, 31, 32, 33, 64, 96, 1024, 1056, 3072 + 17} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			dst := make([]float32, n+1)
			for i := range dst {
				dst[i] = -7
			}
			packEvenOdd(dst[:n], x, blk)
			full := n / blk * blk
			for i := range dst {
				want := float32(-7)
				if i < full {
					b, j := i/blk*blk, i%blk
					if j < blk/2 {
						want = x[b+2*j]
					} else {
						want = x[b+2*(j-blk/2)+1]
					}
				}
				if dst[i] != want {
					t.Fatalf("blk %d n %d: dst[%d] = %v, want %v", blk, n, i, dst[i], want)
				}
			}
		}
	}
}

// BenchmarkPackEvenOdd packs a batch of 32 rows of 1024 for the AVX-512 pair kernels.
func BenchmarkPackEvenOdd(b *testing.B) {
	x := make([]float32, 32*1024)
	dst := make([]float32, len(x))
	b.SetBytes(int64(4 * len(x)))
	for range b.N {
		for t := range 32 {
			packEvenOdd(dst[t*1024:(t+1)*1024], x[t*1024:(t+1)*1024], 32)
		}
	}
}
