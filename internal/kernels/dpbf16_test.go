package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/strata-ai/strata/internal/tensor"
)

func needBF16(t testing.TB) {
	t.Helper()
	if !hasAVX512BF16 {
		t.Skip("this CPU has no AVX-512 BF16 (VDPBF16PS); the tiled kernel cannot run here")
	}
}

// forEachBatchedPath runs f on each batched matmul path this CPU has: the AVX-512 BF16 row
// tiles (every batch of two rows or more), the outer product beside them (batches of 16 or
// more that fill most of its lanes; the row tiles for the rest) and, where there are AMX tiles,
// those.
func forEachBatchedPath(t *testing.T, f func(t *testing.T)) {
	needBF16(t)
	t.Run("rowtiles", func(t *testing.T) {
		forceNoAMX, forceRowTiles = true, true
		defer func() { forceNoAMX, forceRowTiles = false, false }()
		f(t)
	})
	t.Run("outer", func(t *testing.T) {
		forceNoAMX = true
		defer func() { forceNoAMX = false }()
		f(t)
	})
	t.Run("amx", func(t *testing.T) {
		if !hasAMX {
			t.Skip("this CPU, or its kernel, offers no AMX-BF16 tiles")
		}
		f(t)
	})
}

func randBF16(r *rand.Rand, n int) []uint16 {
	w := make([]uint16, n)
	for i := range w {
		w[i] = tensor.F32ToBF16(float32(r.NormFloat64()))
	}
	return w
}

// TestDPBF16Tile checks the assembly tile against float64 sums of the same bfloat16 products
// (each product is exact in float32, so only the float32 additions can differ), with and
// without low halves, with and without prefetching, stored whole or as two added halves.
func TestDPBF16Tile(t *testing.T) {
	needBF16(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{32, 64, 1024, 3072} {
		for _, split := range []bool{false, true} {
			for _, prefetch := range []bool{false, true} {
				const ws, xs = 5, 7 // rows further apart than n, to test the strides
				w := randBF16(r, 4*(n+ws))
				x := randBF16(r, 8*(n+xs))
				loOff := 0
				if split {
					loOff = 4 * (n + xs)
				}
				var pf *uint16
				if prefetch {
					pf = &w[n]
				}
				ys := make([]float32, 4*6)
				var dst [4]*float32
				for j := range 4 {
					dst[j] = &ys[6*j+1] // rows with gaps, so a store past four floats shows
				}
				for j := range 4 {
					ys[6*j+1] = 1e9 // overwritten, not added to
				}
				dpbf16Tile4x4(&w[0], n+ws, &x[0], n+xs, n, &dst, pf, loOff, 0)
				if n >= 64 { // the second half again, added: the sums come out the same
					half := n / 2
					dpbf16Tile4x4(&w[0], n+ws, &x[0], n+xs, half, &dst, pf, loOff, 0)
					dpbf16Tile4x4(&w[half], n+ws, &x[half], n+xs, half, &dst, nil, loOff, 1)
				}
				for j := range 4 {
					if ys[6*j] != 0 || ys[6*j+5] != 0 {
						t.Fatalf("n=%d split=%v: the tile wrote outside row %d's four floats: %v", n, split, j, ys[6*j:6*j+6])
					}
					for i := range 4 {
						var ref, mag float64
						for k := range n {
							xv := float64(tensor.BF16ToF32(x[j*(n+xs)+k]))
							if split {
								xv += float64(tensor.BF16ToF32(x[loOff+j*(n+xs)+k]))
							}
							p := float64(tensor.BF16ToF32(w[i*(n+ws)+k])) * xv
							ref += p
							mag += math.Abs(p)
						}
						if got := ys[6*j+1+i]; math.Abs(float64(got)-ref) > 1e-6*mag {
							t.Fatalf("n=%d split=%v w%d·x%d = %v, want %v (scale %g)", n, split, i, j, got, ref, mag)
						}
					}
				}
			}
		}
	}
}

// TestDPBF16TileRows: the tiles over 1, 2 and 3 activation rows give those rows bit for bit what
// the four-row tile gives them, and leave the other output pointers alone.
func TestDPBF16TileRows(t *testing.T) {
	needBF16(t)
	r := rand.New(rand.NewPCG(9, 9))
	n := 256
	w, x := randBF16(r, 4*n), randBF16(r, 8*n)
	for _, loOff := range []int{0, 4 * n} {
		full := make([]float32, 16)
		var dst [4]*float32
		for j := range 4 {
			dst[j] = &full[4*j]
		}
		dpbf16Tile4x4(&w[0], n, &x[0], n, n, &dst, nil, loOff, 0)
		for J, tile := range []func(*uint16, int, *uint16, int, int, *[4]*float32, *uint16, int, int){dpbf16Tile4x1, dpbf16Tile4x2, dpbf16Tile4x3} {
			rows := J + 1
			got := make([]float32, 16)
			for j := range 4 {
				got[4*j] = -1
				dst[j] = &got[4*j]
			}
			tile(&w[0], n, &x[0], n, n, &dst, &w[0], loOff, 0)
			for j := range 4 {
				for i := range 4 {
					want := full[4*j+i]
					if j >= rows {
						want = 0
						if i == 0 {
							want = -1
						}
					}
					if math.Float32bits(got[4*j+i]) != math.Float32bits(want) {
						t.Fatalf("loOff %d, tile of %d rows: out[%d][%d] = %v, want %v", loOff, rows, j, i, got[4*j+i], want)
					}
				}
			}
		}
	}
}

// TestBF16Pack checks the vector packing against the portable rounding: hi is x rounded to
// nearest even, lo the rounded remainder, for ordinary values, ties, infinities and NaN.
// (Subnormal inputs are left out: VCVTNEPS2BF16 flushes them to zero, and VDPBF16PS would
// treat them as zero anyway.)
func TestBF16Pack(t *testing.T) {
	needBF16(t)
	r := rand.New(rand.NewPCG(7, 8))
	x := make([]float32, 256)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(12)-6)))
	}
	x[0], x[1], x[2] = float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())
	x[3] = math.Float32frombits(0x3f808000) // a tie that rounds down to even
	x[4] = math.Float32frombits(0x3f818000) // a tie that rounds up to even
	x[5], x[6] = 0, float32(math.Copysign(0, -1))
	hi, lo := make([]uint16, len(x)), make([]uint16, len(x))
	bf16PackAVX512(&hi[0], &lo[0], &x[0], len(x))
	only := make([]uint16, len(x))
	bf16PackAVX512(&only[0], nil, &x[0], len(x))
	for i, v := range x {
		wantHi := tensor.F32ToBF16(v)
		if v != v { // NaN: any quiet NaN will do
			if h := tensor.BF16ToF32(hi[i]); h == h || only[i] != hi[i] {
				t.Fatalf("x[%d] = NaN packs to %#04x / %#04x, want a NaN", i, hi[i], only[i])
			}
			continue
		}
		if hi[i] != wantHi || only[i] != wantHi {
			t.Fatalf("x[%d] = %v (%#08x): hi %#04x (alone %#04x), want %#04x", i, v, math.Float32bits(v), hi[i], only[i], wantHi)
		}
		if math.IsInf(float64(v), 0) {
			continue
		}
		if wantLo := tensor.F32ToBF16(v - tensor.BF16ToF32(wantHi)); lo[i] != wantLo {
			t.Fatalf("x[%d] = %v: lo %#04x, want %#04x", i, v, lo[i], wantLo)
		}
	}
}

// TestMatBF16Tiled runs the tiled path over uneven shapes at both precisions against float64
// references: the float32 activations for Float32, the bf16-rounded ones for BFloat16 (except in
// the row tiles' last out%4 rows, which take the float32 kernel).
func TestMatBF16Tiled(t *testing.T) { forEachBatchedPath(t, testMatBF16Tiled) }

func testMatBF16Tiled(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, p := range []Precision{Float32, BFloat16} {
		for _, shape := range [][3]int{{4, 4, 32}, {5, 67, 96}, {7, 130, 1024}, {33, 9, 64}, {64, 36, 3072}, {9, 12, 1056}, {130, 20, 1024}, {4, 53, 128}, {20, 1079, 64}, {32, 2100, 96}, {1, 68, 96}, {2, 52, 128}, {3, 132, 1024},
			{16, 16, 32}, {16, 40, 2048}, {48, 100, 4096}, {47, 33, 8192}, {96, 1030, 64},
			{2, 600, 1024}, {3, 1030, 512}} { // few rows over a weight large enough to split across cores
			rows, out, in := shape[0], shape[1], shape[2]
			t.Run(fmt.Sprintf("%v/%dx%dx%d", p, rows, out, in), func(t *testing.T) {
				w := randBF16(r, out*in)
				xs, ys := make([][]float32, rows), make([][]float32, rows)
				for i := range xs {
					xs[i] = make([]float32, in)
					for k := range xs[i] {
						xs[i][k] = float32(r.NormFloat64() * 3)
					}
					ys[i] = make([]float32, out)
				}
				// all cores, and the calling goroutine only (as MatBF16Serial, where one call
				// walks many weight blocks)
				for _, procs := range []int{Threads(), 1} {
					for i := range ys {
						clear(ys[i])
					}
					matBF16(w, out, in, xs, ys, p, procs)
					checkMatBF16(t, w, out, in, xs, ys, p)
				}
			})
		}
	}
}

func checkMatBF16(t *testing.T, w []uint16, out, in int, xs, ys [][]float32, p Precision) {
	t.Helper()
	rows := len(xs)
	tol := 2e-5 // relative to Σ|w·x|: the hi+lo split keeps 16 bits
	for i := range xs {
		for o := range out {
			var ref, mag float64
			for k := range in {
				xv := xs[i][k]
				// the last out%4 rows of the AVX-512 row tiles stay float32; the token-major
				// paths (AMX, outer product) round every row's activations
				if p == BFloat16 && (amxOK(rows, out, in) || outerOK(rows, out, in) || o < out&^3) {
					xv = tensor.BF16ToF32(tensor.F32ToBF16(xv))
				}
				q := float64(tensor.BF16ToF32(w[o*in+k])) * float64(xv)
				ref += q
				mag += math.Abs(q)
			}
			if d := math.Abs(float64(ys[i][o]) - ref); d > tol*mag {
				t.Fatalf("y[%d][%d] = %v, want %v (|diff| %g, scale %g)", i, o, ys[i][o], ref, d, mag)
			}
		}
	}
}

// TestMatBF16TiledBatchInvariant checks that a row's result does not depend on which other rows
// share its batch, where it sits, or how many there are, as long as the batch takes the same
// path: bit for bit. The engine promises that a batched request produces what it produces
// alone; across paths the sums are the same products added in another order, so they agree to
// rounding. A batch of one row takes the float32 GEMV (decode is bound by reading the weights
// there); with AMX every size takes the tiles; without it, batches of 16 or more
// that fill most of a 16-token group take the outer product, the others the row tiles.
func TestMatBF16TiledBatchInvariant(t *testing.T) {
	forEachBatchedPath(t, testMatBF16TiledBatchInvariant)
}

// batchPath names the path MatBF16 takes for a batch of rows.
func batchPath(rows, out, in int) string {
	switch {
	case amxOK(rows, out, in):
		return "amx"
	case outerOK(rows, out, in):
		return "outer"
	case tiledOK(rows, out, in):
		return "rowtiles"
	}
	return "float32"
}

func testMatBF16TiledBatchInvariant(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	// rows as wide as Qwen3-0.6B's down projection: wide enough that the outer product adds
	// partial sums of column slices, which must be cut the same way whatever the batch
	out, in := 40, 3072
	w := randBF16(r, out*in)
	pool := make([][]float32, 40)
	for i := range pool {
		pool[i] = make([]float32, in)
		for k := range pool[i] {
			pool[i][k] = float32(r.NormFloat64())
		}
	}
	seq := func(from, to int) []int {
		var idx []int
		for i := from; i < to; i++ {
			idx = append(idx, i)
		}
		return idx
	}
	batches := [][]int{{9, 5, 30, 4, 3, 2, 1, 0, 17, 21, 33}, {5, 0, 1, 2, 3}, {0}, {1, 2}, {3, 4, 5},
		r.Perm(32), append(seq(20, 36), seq(0, 8)...), seq(0, 17), r.Perm(40)[:16], seq(0, 16)}
	for _, p := range []Precision{Float32, BFloat16} {
		run := func(idx []int) map[int][]float32 {
			xs, ys := make([][]float32, len(idx)), make([][]float32, len(idx))
			for i, j := range idx {
				xs[i], ys[i] = pool[j], make([]float32, out)
			}
			MatBF16(w, out, in, xs, ys, p)
			m := map[int][]float32{}
			for i, j := range idx {
				m[j] = ys[i]
			}
			return m
		}
		// one reference per path: the first batch that takes it
		refs := map[string]map[int][]float32{}
		base := run(seq(0, 6))
		for _, idx := range append([][]int{seq(0, 6)}, batches...) {
			path := batchPath(len(idx), out, in)
			got := run(idx)
			ref, ok := refs[path]
			if !ok {
				refs[path] = got
				ref = got
			}
			for _, j := range idx {
				for o := range out {
					if a, ok := ref[j]; ok && path != "float32" && math.Float32bits(a[o]) != math.Float32bits(got[j][o]) {
						t.Fatalf("%v: row %d out %d is %v in one batch and %v in another of %d rows, both on %s", p, j, o, a[o], got[j][o], len(idx), path)
					}
					// other paths' sums differ only in rounding: the split activations carry
					// 16 of float32's 24 bits, which over 3072 products of unit size measured
					// up to 3e-4
					if a, ok := base[j]; ok && math.Abs(float64(a[o]-got[j][o])) > 1e-3 {
						t.Fatalf("%v: row %d out %d is %v in a batch of 6 and %v in a batch of %d (%s)", p, j, o, a[o], got[j][o], len(idx), path)
					}
				}
			}
		}
		if !hasAMX || forceNoAMX {
			if _, ok := refs["outer"]; !ok && !forceRowTiles {
				t.Fatalf("%v: no batch took the outer product", p)
			}
		}
	}
}

// BenchmarkDPBF16Tile runs the register tile on rows that sit in L1, so it shows the core's
// VDPBF16PS rate (Gdp/s: instructions per second) that the matmul can at best reach.
func BenchmarkDPBF16Tile(b *testing.B) {
	needBF16(b)
	r := rand.New(rand.NewPCG(1, 2))
	n := 1024
	w, x := randBF16(r, 4*n), randBF16(r, 8*n)
	ys := make([]float32, 16)
	var dst [4]*float32
	for j := range 4 {
		dst[j] = &ys[4*j]
	}
	for _, loOff := range []int{0, 4 * n} {
		name, dps := "bfloat16", 16*n/32
		if loOff != 0 {
			name, dps = "split", 2*dps
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				dpbf16Tile4x4(&w[0], n, &x[0], n, n, &dst, nil, loOff, 0)
			}
			b.ReportMetric(float64(dps*b.N)/b.Elapsed().Seconds()/1e9, "Gdp/s")
		})
	}
}

// BenchmarkMatBF16Decode32 is one batch-32 decode matmul of Qwen3-0.6B's MLP and output-layer
// shapes on each path (float32 FMA, AVX-512 BF16 row tiles and outer product, AMX tiles); the
// reported MB/s is MFLOP/s.
func BenchmarkMatBF16Decode32(b *testing.B) {
	for _, shape := range benchShapes {
		out, in := shape[0], shape[1]
		r := rand.New(rand.NewPCG(1, 1))
		w := randBF16(r, out*in)
		xs, ys := batchRows(r, 32, in, out)
		for _, c := range []struct {
			name     string
			noBF16   bool
			amx      bool
			rowTiles bool
			p        Precision
		}{{"fma-f32", true, false, false, Float32}, {"rowtiles-f32", false, false, true, Float32}, {"outer-f32", false, false, false, Float32},
			{"rowtiles-bf16", false, false, true, BFloat16}, {"outer-bf16", false, false, false, BFloat16},
			{"amx-f32", false, true, false, Float32}, {"amx-bf16", false, true, false, BFloat16}} {
			b.Run(fmt.Sprintf("%dx%d/%s", out, in, c.name), func(b *testing.B) {
				if !c.noBF16 {
					needBF16(b)
				}
				if c.amx && !hasAMX {
					b.Skip("this CPU, or its kernel, offers no AMX-BF16 tiles")
				}
				forceNoBF16, forceNoAMX, forceRowTiles = c.noBF16, !c.amx, c.rowTiles
				defer func() { forceNoBF16, forceNoAMX, forceRowTiles = false, false, false }()
				b.SetBytes(int64(2 * out * in * 32))
				for range b.N {
					MatBF16(w, out, in, xs, ys, c.p)
				}
			})
		}
	}
}

// benchShapes are Qwen3-0.6B's batched matmuls as the model runs them: fused q/k/v, the
// attention output, fused gate/up, down, and the output layer.
var benchShapes = [][2]int{{4096, 1024}, {1024, 2048}, {6144, 1024}, {1024, 3072}, {151936, 1024}}

// BenchmarkMatBF16Cold32 is BenchmarkMatBF16Decode32 with the weights coming from memory, as
// in a model step, instead of from a cache that holds them from the last iteration: copies of
// the weight, 256 MiB in all, are taken in turn. "rowtiles-no-prefetch" leaves out the row
// tiles' prefetch of the next segment under the current one, to show what it buys.
func BenchmarkMatBF16Cold32(b *testing.B) {
	needBF16(b)
	for _, shape := range [][2]int{{4096, 1024}, {1024, 2048}, {6144, 1024}, {1024, 3072}, {151936, 1024}} {
		out, in := shape[0], shape[1]
		r := rand.New(rand.NewPCG(1, 1))
		copies := max(1, (256<<20)/(2*out*in))
		ws := make([][]uint16, copies)
		for i := range ws {
			ws[i] = randBF16(r, out*in)
		}
		xs, ys := batchRows(r, 32, in, out)
		for _, c := range []struct {
			name         string
			rowTiles, pf bool
		}{{"outer", false, true}, {"rowtiles", true, true}, {"rowtiles-no-prefetch", true, false}} {
			b.Run(fmt.Sprintf("%dx%d/%s", out, in, c.name), func(b *testing.B) {
				forceNoAMX, forceRowTiles, spreadPrefetch = true, c.rowTiles, c.pf
				defer func() { forceNoAMX, forceRowTiles, spreadPrefetch = false, false, true }()
				b.SetBytes(int64(2 * out * in * 32))
				for i := range b.N {
					MatBF16(ws[i%copies], out, in, xs, ys, Float32)
				}
			})
		}
	}
}

// batchRows makes n activation rows of in normal values and n output rows of out.
func batchRows(r *rand.Rand, n, in, out int) (xs, ys [][]float32) {
	xs, ys = make([][]float32, n), make([][]float32, n)
	for i := range xs {
		xs[i] = make([]float32, in)
		for k := range xs[i] {
			xs[i][k] = float32(r.NormFloat64())
		}
		ys[i] = make([]float32, out)
	}
	return xs, ys
}
