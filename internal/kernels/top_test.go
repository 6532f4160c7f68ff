package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/strata-ai/strata/internal/tensor"
)

// TestBF16PrecisionRoundsToNearest pins what MatBF16Top's bound assumes of every path at
// BFloat16 precision: activations are rounded to the nearest bfloat16 (ties to even), as
// tensor.F32ToBF16 does. One-hot weight rows copy the rounded activation out exactly.
func TestBF16PrecisionRoundsToNearest(t *testing.T) {
	forEachBatchedPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		const out, in = 64, 64
		w := make([]uint16, out*in)
		for o := range out {
			w[o*in+o%in] = tensor.F32ToBF16(1)
		}
		for _, n := range []int{1, 3, 8, 16, 32} {
			xs, ys := batchRows(r, n, in, out)
			for _, x := range xs {
				for i := range x {
					x[i] *= float32(math.Ldexp(1, r.IntN(40)-20))
				}
				x[0] = 1 + 1.0/256 // a tie: to even gives 1
				x[1] = 1 + 3.0/256 // a tie: to even gives 1 + 4/256
			}
			MatBF16(w, out, in, xs, ys, BFloat16)
			for ti, x := range xs {
				for o := range out {
					want := math.Float32frombits(uint32(tensor.F32ToBF16(x[o%in])) << 16)
					if ys[ti][o] != want {
						t.Fatalf("batch %d row %d: %v rounds to %v, want %v (nearest, ties to even)", n, o, x[o%in], ys[ti][o], want)
					}
				}
			}
		}
	})
}

// topCase builds a weight and activations for MatBF16Top: rows of several scales, or rows
// clustered around one direction so that many results lie within the bound of each other.
func topCase(r *rand.Rand, out, in, n int, clustered bool) (w []uint16, xs [][]float32) {
	w = make([]uint16, out*in)
	base := make([]float64, in)
	for i := range base {
		base[i] = r.NormFloat64()
	}
	for o := range out {
		scale := math.Ldexp(1, o%7-3)
		for i := range in {
			v := r.NormFloat64() * scale
			if clustered {
				v = base[i] + 0.01*v
			}
			w[o*in+i] = tensor.F32ToBF16(float32(v))
		}
	}
	if !clustered {
		for i := range in { // a zero row
			w[5*in+i] = 0
		}
	}
	xs, _ = batchRows(r, n, in, 1)
	for t, x := range xs {
		s := []float64{1e-3, 1, 300}[t%3]
		for i := range x {
			x[i] *= float32(s)
		}
		if t%4 == 1 {
			x[3] *= 1000 // an outlier channel
		}
	}
	if n > 2 {
		clear(xs[2]) // every result zero: all tied
	}
	return w, xs
}

// topExact is what MatBF16Top promises for the largest results of row x: MatBF16's values at
// Float32 where they do not depend on the batch (AMX), DotBF16's elsewhere.
func topExact(w []uint16, out, in int, x []float32) []float32 {
	y := make([]float32, out)
	if amxOK(1, out, in) {
		MatBF16(w, out, in, [][]float32{x}, [][]float32{y}, Float32)
		return y
	}
	for o := range out {
		y[o] = DotBF16(w[o*in:(o+1)*in], x)
	}
	return y
}

// checkTop asserts MatBF16Top's promise for one row: the k largest of got are the exact
// values (dot, from topExact) and the rest lie strictly below them, or the row was taken whole at Float32:
// every result within the split activations' rounding (16 bits) of dot, where abs holds
// Σ|w||x| for each.
func checkTop(t *testing.T, name string, got, dot []float32, abs []float64, k int) {
	t.Helper()
	whole := true
	for o := range got {
		if math.Abs(float64(got[o])-float64(dot[o])) > 0x1p-14*abs[o]+1e-30 {
			whole = false
			break
		}
	}
	if whole {
		return
	}
	// the k-th largest float32 value
	sorted := append([]float32(nil), dot...)
	for i := 0; i < k; i++ {
		for j := i + 1; j < len(sorted); j++ {
			if sorted[j] > sorted[i] {
				sorted[i], sorted[j] = sorted[j], sorted[i]
			}
		}
	}
	vk := sorted[k-1]
	for o := range got {
		if dot[o] >= vk {
			if math.Float32bits(got[o]) != math.Float32bits(dot[o]) {
				t.Fatalf("%s: result %d is among the %d largest (%v) but came out %v", name, o, k, dot[o], got[o])
			}
		} else if !(got[o] < vk) {
			t.Fatalf("%s: result %d (float32 %v) is not among the %d largest (the k-th is %v) but came out %v, not below it", name, o, dot[o], k, vk, got[o])
		}
	}
}

func TestMatBF16Top(t *testing.T) {
	forEachBatchedPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, shape := range [][2]int{{5000, 256}, {4099, 512}, {20, 64}, {3001, 100}} {
			out, in := shape[0], shape[1]
			for _, clustered := range []bool{false, true} {
				for _, n := range []int{1, 5, 16, 32} {
					w, xs := topCase(r, out, in, n, clustered)
					norms := NewRowNorms(w, out, in)
					ks := make([]int, n)
					for i := range ks {
						ks[i] = []int{1, 2, 20, 64, 1, 200}[i%6]
					}
					ys := make([][]float32, n)
					for i := range ys {
						ys[i] = make([]float32, out)
					}
					MatBF16Top(w, norms, out, in, xs, ys, ks)
					full := make([][]float32, n)
					for i := range full {
						full[i] = make([]float32, out)
					}
					MatBF16(w, out, in, xs, full, Float32)
					for ti, x := range xs {
						dot, abs := topExact(w, out, in, x), make([]float64, out)
						for o := range out {
							if amxOK(1, out, in) && math.Float32bits(dot[o]) != math.Float32bits(full[ti][o]) {
								t.Fatalf("%dx%d batch %d row %d result %d: %v alone, %v in the batch: on AMX a row's sums must not depend on its batch", out, in, n, ti, o, dot[o], full[ti][o])
							}
							for i, v := range w[o*in : (o+1)*in] {
								abs[o] += math.Abs(float64(math.Float32frombits(uint32(v)<<16)) * float64(x[i]))
							}
						}
						checkTop(t, fmt.Sprintf("%dx%d clustered=%v batch %d row %d k %d", out, in, clustered, n, ti, ks[ti]), ys[ti], dot, abs, min(ks[ti], out))
					}
				}
			}
		}
	})
}

// TestRefineTopBound checks the bound itself, result by result: the BFloat16 pass is within
// c·|row| of the exact value (topExact's), and a typical row settles cheaply (without this, MatBF16Top
// could pass its test by taking every row whole).
func TestRefineTopBound(t *testing.T) {
	forEachBatchedPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, c := range []struct {
			out, in   int
			clustered bool
		}{{8192, 1024, false}, {8192, 1024, true}, {3001, 100, false}, {3001, 100, true}} {
			out, in, clustered := c.out, c.in, c.clustered
			w, xs := topCase(r, out, in, 32, clustered)
			norms := NewRowNorms(w, out, in)
			ys := make([][]float32, len(xs))
			for i := range ys {
				ys[i] = make([]float32, out)
			}
			MatBF16(w, out, in, xs, ys, BFloat16)
			split := amxOK(1, out, in)
			for ti, x := range xs {
				c, slack, ok := topBound(norms, in, x, split)
				if !ok {
					t.Fatalf("row %d: no bound for finite activations", ti)
				}
				exact := topExact(w, out, in, x)
				for o := range out {
					d := exact[o]
					if e := math.Abs(float64(ys[ti][o]) - float64(d)); e > c*float64(norms.row[o])+slack {
						t.Fatalf("%dx%d clustered=%v row %d result %d: the bf16 pass is %g off, beyond the bound %g", out, in, clustered, ti, o, e, c*float64(norms.row[o])+slack)
					}
				}
				y := append([]float32(nil), ys[ti]...)
				if settled := refineTop(w, norms, out, in, x, y, 1, split); !settled && !clustered && ti != 2 {
					t.Errorf("row %d: a row of random activations did not settle its largest result cheaply", ti)
				}
			}
		}
	})
}

// TestMatBF16TopTinyWeights: weights so small that their squares underflow float32 still get
// row norms that bound their results (a norm summed in float32 came out near zero, and the
// bound with it), and the top results come out exact.
func TestMatBF16TopTinyWeights(t *testing.T) {
	forEachBatchedPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		const out, in, n = 512, 1024, 4
		for _, shift := range []int{-80, -90} {
			w, xs := topCase(r, out, in, n, shift == -90)
			for i, v := range w {
				w[i] = tensor.F32ToBF16(float32(math.Ldexp(float64(tensor.BF16ToF32(v)), shift)))
			}
			norms := NewRowNorms(w, out, in)
			ys := make([][]float32, n)
			for i := range ys {
				ys[i] = make([]float32, out)
			}
			MatBF16(w, out, in, xs, ys, BFloat16)
			for ti, x := range xs {
				c, slack, ok := topBound(norms, in, x, amxOK(1, out, in))
				if !ok {
					continue
				}
				exact := topExact(w, out, in, x)
				for o := range out {
					if e := math.Abs(float64(ys[ti][o]) - float64(exact[o])); e > c*float64(norms.row[o])+slack {
						t.Fatalf("weights scaled by 2^%d, row %d result %d: the bf16 pass is %g off, beyond the bound %g", shift, ti, o, e, c*float64(norms.row[o])+slack)
					}
				}
			}
			for i := range ys {
				clear(ys[i])
			}
			MatBF16Top(w, norms, out, in, xs, ys, []int{1, 1, 5, 20})
			for ti, x := range xs {
				dot, abs := topExact(w, out, in, x), make([]float64, out)
				for o := range out {
					for i, v := range w[o*in : (o+1)*in] {
						abs[o] += math.Abs(float64(tensor.BF16ToF32(v)) * float64(x[i]))
					}
				}
				checkTop(t, fmt.Sprintf("weights scaled by 2^%d, row %d", shift, ti), ys[ti], dot, abs, []int{1, 1, 5, 20}[ti])
			}
		}
	})
}

// TestRowNormsNotFinite: a NaN or infinite weight anywhere in a block, not only in its last
// row, marks the weight not finite, so MatBF16Top takes every row at Float32 (a NaN block
// maximum once let the last rows of its block overwrite it, and the pass's NaN results then
// upset the search for the largest).
func TestRowNormsNotFinite(t *testing.T) {
	needBF16(t)
	r := rand.New(rand.NewPCG(23, 24))
	const out, in = 300, 64
	for _, c := range []struct {
		row  int
		bits uint16
	}{{3, 0x7fc0}, {0, 0x7fc0}, {70, 0x7f80}, {130, 0xff80}, {299, 0x7fc0}} {
		w, xs := topCase(r, out, in, 3, false)
		w[c.row*in+7] = c.bits
		norms := NewRowNorms(w, out, in)
		if norms.finite {
			t.Fatalf("weight %#04x in row %d: the norms say every weight is finite", c.bits, c.row)
		}
		ys, want := make([][]float32, 3), make([][]float32, 3)
		for i := range ys {
			ys[i], want[i] = make([]float32, out), make([]float32, out)
		}
		MatBF16Top(w, norms, out, in, xs, ys, []int{1, 2, 3})
		MatBF16(w, out, in, xs, want, Float32)
		for ti := range ys {
			for o := range out {
				if math.Float32bits(ys[ti][o]) != math.Float32bits(want[ti][o]) {
					t.Fatalf("weight %#04x in row %d: row %d result %d is %v, MatBF16 at Float32 gives %v", c.bits, c.row, ti, o, ys[ti][o], want[ti][o])
				}
			}
		}
	}
}

// TestBlockMax checks the assembly block maxima against a plain loop, with short last blocks.
func TestBlockMax(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{1, 63, 64, 65, 128, 1000, 4096, 151936} {
		y := make([]float32, n)
		for i := range y {
			y[i] = float32(r.NormFloat64() * 100)
		}
		y[n-1] = 1e30 // the last value of a (possibly short) last block
		nb := (n + normBlock - 1) / normBlock
		got := make([]float32, nb)
		blockMax(y, got)
		for b := range nb {
			want := float32(math.Inf(-1))
			for _, v := range y[b*normBlock : min(n, (b+1)*normBlock)] {
				want = max(want, v)
			}
			if got[b] != want {
				t.Fatalf("%d values, block %d: got %v, want %v", n, b, got[b], want)
			}
		}
	}
}

// TestMatBF16TopWithoutCheapBF16: where bfloat16 products cost what float32 ones do,
// MatBF16Top is MatBF16 at Float32, bit for bit.
func TestMatBF16TopWithoutCheapBF16(t *testing.T) {
	forceNoBF16 = true
	defer func() { forceNoBF16 = false }()
	if CheapBF16() {
		t.Fatal("CheapBF16 with bfloat16 kernels turned off")
	}
	r := rand.New(rand.NewPCG(15, 16))
	const out, in, n = 5000, 256, 9
	w, xs := topCase(r, out, in, n, false)
	ys, want := make([][]float32, n), make([][]float32, n)
	ks := make([]int, n)
	for i := range ys {
		ys[i], want[i], ks[i] = make([]float32, out), make([]float32, out), 1+i
	}
	MatBF16Top(w, NewRowNorms(w, out, in), out, in, xs, ys, ks)
	MatBF16(w, out, in, xs, want, Float32)
	for ti := range ys {
		for o := range out {
			if math.Float32bits(ys[ti][o]) != math.Float32bits(want[ti][o]) {
				t.Fatalf("row %d result %d: %v, MatBF16 at Float32 gives %v", ti, o, ys[ti][o], want[ti][o])
			}
		}
	}
}

// TestArgmaxF32 checks MaxF32 and ArgmaxF32 against the scans they stand in for, with NaNs,
// infinities, ties, signed zeros and every tail length.
func TestArgmaxF32(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	scanMax := func(x []float32) float32 {
		m := -inf
		for _, v := range x {
			if v > m {
				m = v
			}
		}
		return m
	}
	scanArg := func(x []float32) int {
		best := 0
		for i, v := range x {
			if v > x[best] {
				best = i
			}
		}
		return best
	}
	for n := 0; n < 300; n++ {
		for trial := range 20 {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.IntN(7) - 3) // many ties
				if trial%2 == 0 {
					x[i] = float32(r.NormFloat64())
				}
				switch r.IntN(40) {
				case 0:
					x[i] = nan
				case 1:
					x[i] = -inf
				case 2:
					x[i] = float32(math.Copysign(0, -1))
				}
			}
			if trial == 5 && n > 0 {
				x[r.IntN(n)] = inf
			}
			if trial == 6 {
				for i := range x {
					x[i] = nan
				}
			}
			if got, want := MaxF32(x), scanMax(x); math.Float32bits(got) != math.Float32bits(want) && !(got == 0 && want == 0) {
				t.Fatalf("n %d trial %d: MaxF32 %v, want %v (%v)", n, trial, got, want, x)
			}
			if got, want := ArgmaxF32(x), scanArg(x); got != want {
				t.Fatalf("n %d trial %d: ArgmaxF32 %d, want %d (%v)", n, trial, got, want, x)
			}
		}
	}
}

// TestRefineTopTileBudget: on the tiles a candidate costs its whole 16-row tile, so candidates
// one per tile, a sixteenth of the rows, are already the whole weight read again: the row
// goes to Float32 whole. As single rows (DotBF16) the same candidates are cheap.
func TestRefineTopTileBudget(t *testing.T) {
	needBF16(t)
	r := rand.New(rand.NewPCG(25, 26))
	const out, in = 4096, 64
	w := make([]uint16, out*in)
	top := make([]uint16, in)
	for i := range top {
		top[i] = tensor.F32ToBF16(float32(r.NormFloat64()))
	}
	for o := range out {
		for i := range in {
			if o%16 == 0 {
				w[o*in+i] = top[i] // tied for the largest, one in each tile
			} else {
				w[o*in+i] = tensor.F32ToBF16(float32(r.NormFloat64() * 0x1p-12))
			}
		}
	}
	x := make([]float32, in)
	for i := range x {
		x[i] = tensor.BF16ToF32(top[i]) // the top rows' results are large and positive
	}
	norms := NewRowNorms(w, out, in)
	for _, split := range []bool{false, true} {
		y := make([]float32, out)
		forceNoAMX = !split
		MatBF16(w, out, in, [][]float32{x}, [][]float32{y}, BFloat16)
		forceNoAMX = false
		if split && !hasAMX {
			continue
		}
		if settled := refineTop(w, norms, out, in, x, y, 1, split); settled == split {
			t.Errorf("split %v: %d tied candidates, one per tile: settled %v, want %v", split, out/16, settled, !split)
		}
	}
}
