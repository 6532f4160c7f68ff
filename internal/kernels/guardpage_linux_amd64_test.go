package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// guardedMem returns n elements of T in mmapped memory with a PROT_NONE page right after the
// last element (head == false) or right before the first (head == true), so any read or write
// past that end faults. free unmaps it.
func guardedMem[T any](t testing.TB, n int, head bool) (s []T, free func()) {
	t.Helper()
	var z T
	sz := int(unsafe.Sizeof(z))
	pg := unix.Getpagesize()
	body := (n*sz + pg - 1) / pg * pg
	if body == 0 {
		body = pg
	}
	m, err := unix.Mmap(-1, 0, body+pg, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	var off int
	if head {
		if err := unix.Mprotect(m[:pg], unix.PROT_NONE); err != nil {
			t.Fatal(err)
		}
		off = pg
	} else {
		if err := unix.Mprotect(m[body:], unix.PROT_NONE); err != nil {
			t.Fatal(err)
		}
		off = body - n*sz
	}
	s = unsafe.Slice((*T)(unsafe.Pointer(&m[off])), n)
	return s, func() { unix.Munmap(m) }
}

// TestPairsGuardPages runs matBF16Pairs end to end with the weight matrix, every activation
// row and every output row ending at (or starting after) a PROT_NONE page, over awkward
// shapes, on the AVX-512 and AVX2 pair paths, serial and parallel, with and without K blocks.
func TestPairsGuardPages(t *testing.T) {
	if !hasAVX2FMA {
		t.Skip("this CPU has no AVX2/FMA; the pair kernels cannot run here")
	}
	forceNoBF16 = true // where AVX-512 BF16 or AMX is there, MatBF16 would take those first
	defer func(a, a5, k int, f bool) {
		pairActBytes, pairActBytes512, pairKBlock, forceAVX2, forceNoBF16 = a, a5, k, f, false
	}(pairActBytes, pairActBytes512, pairKBlock, forceAVX2)
	r := rand.New(rand.NewPCG(3, 9))
	for _, avx2 := range []bool{false, true} {
		if !avx2 && !hasAVX512 {
			continue
		}
		forceAVX2 = avx2
		for _, c := range []struct{ act, kb int }{{1 << 30, 1024}, {0, 1024}, {0, 64}, {1 << 30, 96}} {
			pairActBytes, pairActBytes512, pairKBlock = c.act, c.act, c.kb
			for _, in := range []int{16, 32, 48, 96, 160, 1056} {
				for _, out := range []int{1, 2, 3, 4, 5, 6, 7, 8, 13, 131} {
					for _, rows := range []int{4, 5, 7, 8, 9, 12, 13, 17} {
						if !pairsOK(rows, in) || amxOK(rows, out, in) || outerOK(rows, out, in) || tiledOK(rows, out, in) {
							t.Fatalf("rows %d in %d out %d: the pair path is not taken", rows, in, out)
						}
						for _, head := range []bool{false, true} {
							var frees []func()
							w, f := guardedMem[uint16](t, out*in, head)
							frees = append(frees, f)
							copy(w, randBF16(r, out*in))
							xs := make([][]float32, rows)
							ys := make([][]float32, rows)
							for i := range xs {
								xs[i], f = guardedMem[float32](t, in, head)
								frees = append(frees, f)
								for k := range xs[i] {
									xs[i][k] = float32(r.NormFloat64())
								}
								ys[i], f = guardedMem[float32](t, out, head)
								frees = append(frees, f)
							}
							for _, procs := range []int{1, 2} {
								matBF16(w, out, in, xs, ys, Float32, procs)
								// checkAgainstSums reads y[:out+1]; copy to heap rows with a sentinel
								hy := guardedRows(rows, out)
								for i := range ys {
									copy(hy[i], ys[i])
								}
								checkAgainstSums(t, fmt.Sprintf("guard avx2=%v head=%v in %d out %d rows %d procs %d kb %d act %d", avx2, head, in, out, rows, procs, c.kb, c.act), w, out, in, xs, hy)
							}
							for _, f := range frees {
								f()
							}
						}
					}
				}
			}
		}
	}
}

// TestPairKernelsGuardPages calls the AVX-512 pair kernels directly with the weights, the
// packed activations, the output array and the prefetch range each ending at a guard page.
func TestPairKernelsGuardPages(t *testing.T) {
	if !hasAVX512 {
		t.Skip("this CPU has no AVX-512 (F, BW and VL); the wide pair kernels cannot run here")
	}
	r := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{32, 64, 96, 1024} {
		for _, wrows := range []int{2, 3} {
			for _, xrows := range []int{4, 8} {
				w, fw := guardedMem[uint16](t, wrows*n, false)
				copy(w, randBF16(r, wrows*n))
				x, fx := guardedMem[float32](t, xrows*n, false)
				raw := make([]float32, xrows*n)
				for i := range raw {
					raw[i] = float32(r.NormFloat64())
				}
				for j := range xrows {
					packEvenOdd(x[j*n:(j+1)*n], raw[j*n:(j+1)*n], 32)
				}
				o, fo := guardedMem[float32](t, wrows*xrows, false)
				pf, fp := guardedMem[uint16](t, n, false)
				switch {
				case wrows == 3 && xrows == 8:
					dot3x8BF16AVX512(&w[0], n, &x[0], n, n, (*[24]float32)(o), &pf[0], 0)
					// the next-call kernel: the same arithmetic, three prefetched rows that
					// end at a guard page
					sameAsNext(t, "dot3x8", n, 3, o, func(o2 []float32, pf *uint16) {
						dot3x8NextBF16AVX512(&w[0], n, &x[0], n, n, (*[24]float32)(o2), pf, 2*n)
					})
				case wrows == 2 && xrows == 8:
					dot2x8BF16AVX512(&w[0], n, &x[0], n, n, (*[16]float32)(o))
				case wrows == 2 && xrows == 4:
					dot2x4BF16AVX512(&w[0], n, &x[0], n, n, (*[8]float32)(o))
					sameAsNext(t, "dot2x4", n, 2, o, func(o2 []float32, pf *uint16) {
						dot2x4NextBF16AVX512(&w[0], n, &x[0], n, n, (*[8]float32)(o2), pf, 2*n)
					})
				default:
					fw()
					fx()
					fo()
					fp()
					continue
				}
				for i := range wrows {
					for j := range xrows {
						want := dotBF16Go(w[i*n:(i+1)*n], raw[j*n:(j+1)*n])
						got := o[i*xrows+j]
						if d := got - want; d > 1e-3 || d < -1e-3 {
							t.Fatalf("n %d %dx%d: out[%d][%d] = %v, want %v", n, wrows, xrows, i, j, got, want)
						}
					}
				}
				fw()
				fx()
				fo()
				fp()
			}
		}
	}
}

// sameAsNext runs a next-call kernel (next) into guarded output, prefetching rows rows of n
// elements that end at a guard page, and fails unless its sums are want's bit for bit.
func sameAsNext(t *testing.T, name string, n, rows int, want []float32, next func(out []float32, pf *uint16)) {
	t.Helper()
	o, fo := guardedMem[float32](t, len(want), false)
	pf, fp := guardedMem[uint16](t, rows*n, false)
	defer fo()
	defer fp()
	next(o, &pf[0])
	for i := range want {
		if math.Float32bits(o[i]) != math.Float32bits(want[i]) {
			t.Fatalf("n %d: the next-call %s kernel's out[%d] = %v, the plain one's %v", n, name, i, o[i], want[i])
		}
	}
}

// TestAVX2ThreeRowKernel calls dot3x4BF16AVX2 with the weights, the packed activations and
// the output each ending at a guard page, and checks its sums against dot2x4BF16AVX2's for
// each row, and dot3x4NextBF16AVX2's against its own, bit for bit: the two feed each accumulator in the same order and fold alike, so
// a batch gives the same sums whichever kernel a weight row falls to.
func TestAVX2ThreeRowKernel(t *testing.T) {
	if !hasAVX2FMA {
		t.Skip("this CPU has no AVX2/FMA; the pair kernels cannot run here")
	}
	r := rand.New(rand.NewPCG(8, 1))
	for _, n := range []int{16, 32, 48, 1056} {
		w, fw := guardedMem[uint16](t, 3*n, false)
		copy(w, randBF16(r, 3*n))
		x, fx := guardedMem[float32](t, 4*n, false)
		for j := range 4 {
			raw := make([]float32, n)
			for i := range raw {
				raw[i] = float32(r.NormFloat64())
			}
			packEvenOdd(x[j*n:(j+1)*n], raw, 16)
		}
		o, fo := guardedMem[float32](t, 12, false)
		dot3x4BF16AVX2(&w[0], n, &x[0], n, n, (*[12]float32)(o))
		// the next-call kernel: the same sums, three prefetched rows that end at a guard page
		sameAsNext(t, "dot3x4", n, 3, o, func(o2 []float32, pf *uint16) {
			dot3x4NextBF16AVX2(&w[0], n, &x[0], n, n, (*[12]float32)(o2), pf, 2*n)
		})
		for row := range 3 {
			var want [8]float32 // dot2x4 on rows row and row+1, or row-1 and row for the last
			first := min(row, 1)
			dot2x4BF16AVX2(&w[first*n], n, &x[0], n, n, &want)
			for j := range 4 {
				got, exp := o[row*4+j], want[(row-first)*4+j]
				if math.Float32bits(got) != math.Float32bits(exp) {
					t.Fatalf("n %d: weight row %d, activation row %d: dot3x4 %v, dot2x4 %v", n, row, j, got, exp)
				}
			}
		}
		fw()
		fx()
		fo()
	}
}
