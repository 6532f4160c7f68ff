package kernels

import (
	"github.com/strata-ai/strata/internal/tensor"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDotAxpyF32 checks the vector forms against float64 sums at lengths around the 32-element
// blocks, including lengths with a scalar tail.
func TestDotAxpyF32(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{0, 1, 31, 32, 33, 64, 100, 128, 257} {
		a, b, y := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i], y[i] = float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())
		}
		var ref, mag float64
		for i := range a {
			ref += float64(a[i]) * float64(b[i])
			mag += math.Abs(float64(a[i]) * float64(b[i]))
		}
		if got := DotF32(a, b); math.Abs(float64(got)-ref) > 1e-6*(mag+1) {
			t.Fatalf("n=%d: DotF32 = %v, want %v", n, got, ref)
		}
		want := make([]float64, n)
		for i := range y {
			want[i] = float64(y[i]) + 0.37*float64(a[i])
		}
		AxpyF32(0.37, a, y)
		for i := range y {
			if math.Abs(float64(y[i])-want[i]) > 1e-6*(1+math.Abs(want[i])) {
				t.Fatalf("n=%d: AxpyF32 y[%d] = %v, want %v", n, i, y[i], want[i])
			}
		}
	}
}

// TestParallelFor checks every index is visited exactly once for sizes around the grain.
func TestParallelFor(t *testing.T) {
	for _, n := range []int{0, 1, 7, 64, 1000, 4097} {
		for _, grain := range []int{1, 3, 64} {
			seen := make([]int32, n)
			ParallelFor(n, grain, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					seen[i]++ // pieces never overlap, so no two goroutines touch one index
				}
			})
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("n=%d grain=%d: index %d visited %d times", n, grain, i, c)
				}
			}
		}
	}
}

// TestStridedKernels checks the block forms, over float32 and over bfloat16 caches, against
// float64 sums, for head sizes with and without the vector loops.
func TestStridedKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, bf16 := range []bool{false, true} {
		for _, hd := range []int{8, 24, 32, 128, 12, 40} {
			for _, n := range []int{1, 5, 8, 16, 21} {
				stride := 3*hd + 8
				q := make([]float32, hd)
				k := make([]float32, (n-1)*stride+hd)
				k16 := make([]uint16, len(k))
				p := make([]float32, n)
				for i := range q {
					q[i] = float32(r.NormFloat64())
				}
				for i := range k {
					k16[i] = tensor.F32ToBF16(float32(r.NormFloat64()))
					k[i] = tensor.BF16ToF32(k16[i]) // the same values either way
				}
				for i := range p {
					p[i] = float32(r.Float64())
				}
				out := make([]float32, n)
				o := make([]float32, hd)
				for i := range o {
					o[i] = 1
				}
				if bf16 {
					DotsStridedBF16(q, k16, stride, out)
					AxpysStridedBF16(p, k16, stride, o)
				} else {
					DotsStrided(q, k, stride, out)
					AxpysStrided(p, k, stride, o)
				}
				for s := range n {
					var ref float64
					for d := range hd {
						ref += float64(q[d]) * float64(k[s*stride+d])
					}
					if math.Abs(float64(out[s])-ref) > 1e-5*(1+math.Abs(ref)) {
						t.Fatalf("bf16 %v hd %d n %d: dot %d = %v, want %v", bf16, hd, n, s, out[s], ref)
					}
				}
				for d := range hd {
					ref := 1.0
					for s := range n {
						ref += float64(p[s]) * float64(k[s*stride+d])
					}
					if math.Abs(float64(o[d])-ref) > 1e-5*(1+math.Abs(ref)) {
						t.Fatalf("bf16 %v hd %d n %d: axpy %d = %v, want %v", bf16, hd, n, d, o[d], ref)
					}
				}
			}
		}
	}
}

// TestExpF32 checks the vector exp against math.Exp across the float32 range it serves.
func TestExpF32(t *testing.T) {
	var src []float32
	for x := -90.0; x <= 90; x += 0.0137 {
		src = append(src, float32(x))
	}
	src = append(src, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 88.3, -87.3)
	dst := make([]float32, len(src))
	ExpF32(dst, src)
	for i, x := range src {
		want := math.Exp(float64(x))
		if math.Abs(float64(x)) > 88 { // clamped: finite, and as large/small as float32 allows
			if math.IsInf(float64(dst[i]), 0) || math.IsNaN(float64(dst[i])) || (x > 0 && dst[i] < 1e38) || (x < 0 && dst[i] > 1e-38) {
				t.Fatalf("exp(%v) = %v outside the clamp's range", x, dst[i])
			}
			continue
		}
		if want < 1.2e-38 { // float32 subnormals: the approximation flushes toward them loosely
			if dst[i] > 1.2e-38 {
				t.Fatalf("exp(%v) = %v, want ~%v", x, dst[i], want)
			}
			continue
		}
		if rel := math.Abs(float64(dst[i])-want) / want; rel > 3e-7 {
			t.Fatalf("exp(%v) = %v, want %v (relative error %.2g)", x, dst[i], want, rel)
		}
	}
}

// TestSiluMul checks the fused vector SwiGLU gate bit for bit against the portable one (same
// exp, same float32 operations) and against float64 math, on lengths with a scalar tail.
func TestSiluMul(t *testing.T) {
	for _, n := range []int{1, 7, 8, 29, 700, 3072} {
		g, u := make([]float32, n), make([]float32, n)
		for i := range g {
			g[i] = float32(math.Sin(float64(i)*0.77) * 12)
			u[i] = float32(math.Cos(float64(i)*1.3) * 3)
		}
		g[0] = -100 // exp(100) is clamped: the gate is ~0, not NaN
		want := append([]float32(nil), g...)
		siluMulGo(want, u, make([]float32, n))
		pieces := append([]float32(nil), g...)
		siluMulPieces(pieces, u)
		got := append([]float32(nil), g...)
		SiluMul(got, u)
		for i := range g {
			if math.Float32bits(pieces[i]) != math.Float32bits(want[i]) {
				t.Fatalf("n=%d: in pieces, silu(%v)·%v = %v, portable %v", n, g[i], u[i], pieces[i], want[i])
			}
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("n=%d: silu(%v)·%v = %v, portable %v", n, g[i], u[i], got[i], want[i])
			}
			x := float64(g[i])
			ref := x / (1 + math.Exp(-x)) * float64(u[i])
			if math.Abs(float64(got[i])-ref) > 1e-6*math.Max(1, math.Abs(ref)) {
				t.Fatalf("n=%d: silu(%v)·%v = %v, want %v", n, g[i], u[i], got[i], ref)
			}
		}
	}
}

// TestSoftmaxScaled checks the vector softmax against float64 math on lengths with and without
// a scalar tail, with large scores (the max must be taken out first) and a scale.
func TestSoftmaxScaled(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{1, 7, 8, 29, 1000} {
		for _, scale := range []float32{1, 0.0884} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64()*20 + 300) // exp(300) overflows float32 without the max
			}
			ref := make([]float64, n)
			mx := math.Inf(-1)
			for _, v := range x {
				mx = math.Max(mx, float64(v))
			}
			var sum float64
			for i, v := range x {
				ref[i] = math.Exp((float64(v) - mx) * float64(scale))
				sum += ref[i]
			}
			SoftmaxScaled(x, scale)
			var got float64
			for i := range x {
				want := ref[i] / sum
				if d := math.Abs(float64(x[i]) - want); d > 1e-6*want+1e-12 {
					t.Fatalf("n %d scale %v: p[%d] = %v, want %v", n, scale, i, x[i], want)
				}
				got += float64(x[i])
			}
			if math.Abs(got-1) > 1e-5 {
				t.Fatalf("n %d scale %v: probabilities sum to %v", n, scale, got)
			}
		}
	}
}

// TestStridedPairs: the two-query kernels give exactly (bit for bit) what two single calls give,
// over float32 and bfloat16 caches, for head sizes with and without the 32-wide loop and key
// counts with and without a tail.
func TestStridedPairs(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	for _, hd := range []int{8, 24, 40, 128, 12, 48, 144, 256} {
		for _, n := range []int{1, 7, 8, 15, 16, 21} {
			stride := 3*hd + 8
			rnd := func(m int) []float32 {
				x := make([]float32, m)
				for i := range x {
					x[i] = float32(r.NormFloat64())
				}
				return x
			}
			q0, q1, k, p0, p1 := rnd(hd), rnd(hd), rnd((n-1)*stride+hd), rnd(n), rnd(n)
			a0, a1, b0, b1 := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
			DotsStrided2(q0, q1, k, stride, a0, a1)
			DotsStrided(q0, k, stride, b0)
			DotsStrided(q1, k, stride, b1)
			o0, o1, w0, w1 := rnd(hd), rnd(hd), make([]float32, hd), make([]float32, hd)
			copy(w0, o0)
			copy(w1, o1)
			AxpysStrided2(p0, p1, k, stride, o0, o1)
			AxpysStrided(p0, k, stride, w0)
			AxpysStrided(p1, k, stride, w1)
			for i := range n {
				if math.Float32bits(a0[i]) != math.Float32bits(b0[i]) || math.Float32bits(a1[i]) != math.Float32bits(b1[i]) {
					t.Fatalf("hd %d n %d: pair scores %v %v, single %v %v", hd, n, a0[i], a1[i], b0[i], b1[i])
				}
			}
			for d := range hd {
				if math.Float32bits(o0[d]) != math.Float32bits(w0[d]) || math.Float32bits(o1[d]) != math.Float32bits(w1[d]) {
					t.Fatalf("hd %d n %d: pair sums %v %v, single %v %v", hd, n, o0[d], o1[d], w0[d], w1[d])
				}
			}
			// the same over bfloat16 keys and values
			k16 := make([]uint16, len(k))
			for i, v := range k {
				k16[i] = tensor.F32ToBF16(v)
			}
			DotsStrided2BF16(q0, q1, k16, stride, a0, a1)
			DotsStridedBF16(q0, k16, stride, b0)
			DotsStridedBF16(q1, k16, stride, b1)
			copy(w0, o0)
			copy(w1, o1)
			AxpysStrided2BF16(p0, p1, k16, stride, o0, o1)
			AxpysStridedBF16(p0, k16, stride, w0)
			AxpysStridedBF16(p1, k16, stride, w1)
			for i := range n {
				if math.Float32bits(a0[i]) != math.Float32bits(b0[i]) || math.Float32bits(a1[i]) != math.Float32bits(b1[i]) {
					t.Fatalf("bf16 hd %d n %d: pair scores %v %v, single %v %v", hd, n, a0[i], a1[i], b0[i], b1[i])
				}
			}
			for d := range hd {
				if math.Float32bits(o0[d]) != math.Float32bits(w0[d]) || math.Float32bits(o1[d]) != math.Float32bits(w1[d]) {
					t.Fatalf("bf16 hd %d n %d: pair sums %v %v, single %v %v", hd, n, o0[d], o1[d], w0[d], w1[d])
				}
			}
		}
	}
}
