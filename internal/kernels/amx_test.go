package kernels

import (
	"fmt"
	"math"
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

// BenchmarkAMXKernel runs the AMX block kernel on weights and activations that sit in L2, so it
// shows the TDPBF16PS rate (Gdp/s) the matmul reaches when memory is not the limit.
// TestAMXOneRow: one activation row on one-column tiles (amxCfg1) forms the same sums, bit for
// bit, as the same row among others on 16-token tiles, at both precisions, with 16-row last
// blocks and rows left to the float32 kernel.
func TestAMXOneRow(t *testing.T) {
	if !hasAMX {
		t.Skip("this CPU, or its kernel, offers no AMX-BF16 tiles")
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, in := range []int{32, 1024, 3072} {
		for _, out := range []int{16, 48, 100, 4099, 8192} {
			w := randBF16(r, out*in)
			for _, p := range []Precision{Float32, BFloat16} {
				xs, ys := batchRows(r, 5, in, out)
				xs[2][1] = 1e-30 // bfloat16 flushes it; both layouts must agree
				MatBF16(w, out, in, xs, ys, p)
				for ti := range xs {
					one := make([]float32, out)
					MatBF16(w, out, in, xs[ti:ti+1], [][]float32{one}, p)
					for o := range out {
						if math.Float32bits(one[o]) != math.Float32bits(ys[ti][o]) {
							t.Fatalf("%d×%d precision %v row %d result %d: %v alone, %v among 5", out, in, p, ti, o, one[o], ys[ti][o])
						}
					}
				}
			}
		}
	}
}

func BenchmarkAMXKernel(b *testing.B) {
	if !hasAMX {
		b.Skip("this CPU, or its kernel, offers no AMX-BF16 tiles")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name  string
		flags int
		dps   int
	}{{"1x1", 0, 1}, {"2x1", 1, 2}, {"2x2", 3, 4}, {"2x2-split", 7, 8}} {
		b.Run(c.name, func(b *testing.B) {
			in := 1024
			kch := in / 32
			const nblk = 4
			w := randBF16(r, nblk*32*in)
			x := randBF16(r, 2*kch*2*512)
			var sums [nblk * 1024]float32
			b.ResetTimer()
			for range b.N {
				amxMatBF16(&amxCfg, &w[0], in*2, &x[0], 2048, kch, kch*2048, &sums[0], nblk, c.flags, 64)
			}
			b.ReportMetric(float64(nblk*c.dps*kch*b.N)/b.Elapsed().Seconds()/1e9, "Gdp/s")
		})
	}
}

// BenchmarkMatBF16Decode1 is one row (decoding one sequence) through the output layer's shape,
// which is bound by reading the weights: MB/s is the weights' read rate, on the float32 GEMV
// (AVX2 and AVX-512) and on the AMX tiles.
func BenchmarkMatBF16Decode1(b *testing.B) {
	out, in := 151936, 1024
	r := rand.New(rand.NewPCG(1, 1))
	w := randBF16(r, out*in)
	xs, ys := [][]float32{make([]float32, in)}, [][]float32{make([]float32, out)}
	for k := range xs[0] {
		xs[0][k] = float32(r.NormFloat64())
	}
	for _, c := range []struct {
		name            string
		amx, avx2, wide bool
	}{{"gemv-avx2", false, true, false}, {"gemv", false, false, false}, {"amx", true, false, false}, {"amx-16-token-tiles", true, false, true}} {
		b.Run(c.name, func(b *testing.B) {
			if c.amx && !hasAMX {
				b.Skip("this CPU, or its kernel, offers no AMX-BF16 tiles")
			}
			forceNoAMX, forceAVX2, forceWideAMX = !c.amx, c.avx2, c.wide
			defer func() { forceNoAMX, forceAVX2, forceWideAMX = false, false, false }()
			b.SetBytes(int64(2 * out * in))
			for range b.N {
				MatBF16(w, out, in, xs, ys, Float32)
			}
		})
	}
}

// TestGEMVBF16 checks the GEMV kernels (AVX-512 and AVX2, each in both one-row forms) for one to
// three activation rows against float64 sums of the same products, for weight row counts with
// and without a remainder of the four-row loop, row lengths with and without an odd last
// line, serial and split across cores.
func TestGEMVBF16(t *testing.T) {
	if !hasAVX2FMA {
		t.Skip("this CPU has no AVX2/FMA; the one-row kernels cannot run here")
	}
	for _, c := range []struct{ avx2, seq, four bool }{{false, true, false}, {false, false, true}, {true, true, false}, {true, false, true}} {
		forceAVX2, forceSeqGEMV, forceFourRowGEMV = c.avx2, c.seq, c.four
		testGEMVBF16(t)
	}
	forceAVX2, forceSeqGEMV, forceFourRowGEMV = false, false, false
}

func testGEMVBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 9))
	for _, in := range []int{16, 32, 48, 96, 1024, 3072 + 32} {
		if !gemvOK(in) {
			continue
		}
		for _, out := range []int{1, 3, 4, 7, 9, 130, 4099} {
			w := randBF16(r, out*in)
			xs := make([][]float32, 3)
			for i := range xs {
				xs[i] = make([]float32, in)
				for k := range xs[i] {
					xs[i][k] = float32(r.NormFloat64())
				}
			}
			for _, rows := range []int{1, 2, 3} {
				for _, procs := range []int{1, 2} {
					ys := guardedRows(rows, out)
					gemvBF16(w, out, in, xs[:rows], ys, procs)
					checkAgainstSums(t, fmt.Sprintf("avx2 %v seq %v in %d out %d rows %d procs %d", forceAVX2, forceSeqGEMV, in, out, rows, procs), w, out, in, xs[:rows], ys)
				}
			}
		}
	}
}

// TestPrefetchKeepsResults: prefetching moves only when weights arrive; the sums are the same
// bits either way, for one row and for several.
func TestPrefetchKeepsResults(t *testing.T) {
	if !hasAMX {
		t.Skip("this CPU, or its kernel, offers no AMX-BF16 tiles")
	}
	defer func(p bool) { amxPrefetch = p }(amxPrefetch)
	r := rand.New(rand.NewPCG(31, 32))
	const out, in = 4096, 1024
	w := randBF16(r, out*in)
	for _, n := range []int{1, 7, 32} {
		var got [2][][]float32
		for m, pf := range []bool{false, true} {
			amxPrefetch = pf
			xs, ys := batchRows(rand.New(rand.NewPCG(33, 34)), n, in, out)
			MatBF16(w, out, in, xs, ys, Float32)
			got[m] = ys
		}
		for ti := range got[0] {
			for o := range got[0][ti] {
				if math.Float32bits(got[0][ti][o]) != math.Float32bits(got[1][ti][o]) {
					t.Fatalf("%d rows, row %d result %d: %v without prefetching, %v with", n, ti, o, got[0][ti][o], got[1][ti][o])
				}
			}
		}
	}
}
