package kernels

import (
	"math/rand/v2"
	"testing"
)

// The references round after every operation (an explicit conversion forbids fusing): the
// vector kernels and the loops after them must give the same bits.

func randF32(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func TestScaleMulF32(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 7, 15, 16, 17, 33, 128, 1000, 1024} {
		x, w := randF32(r, n), randF32(r, n)
		s := float32(r.NormFloat64())
		want := make([]float32, n)
		for i := range want {
			want[i] = float32(float32(x[i]*s) * w[i])
		}
		got := make([]float32, n)
		ScaleMulF32(got, x, w, s)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("n=%d: out[%d] = %v, want %v", n, i, got[i], want[i])
			}
		}
		ScaleMulF32(x, x, w, s) // in place
		for i := range want {
			if x[i] != want[i] {
				t.Fatalf("n=%d in place: out[%d] = %v, want %v", n, i, x[i], want[i])
			}
		}
	}
}

func TestRotateHalfF32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{2, 6, 16, 18, 30, 64, 128, 136, 256} {
		x, c, s := randF32(r, n), randF32(r, n), randF32(r, n)
		h := n / 2
		want := make([]float32, n)
		for i := range h {
			a, b := x[i], x[i+h]
			want[i] = float32(a*c[i]) - float32(b*s[i])
			want[i+h] = float32(b*c[i+h]) + float32(a*s[i+h])
		}
		RotateHalfF32(x, c, s)
		for i := range want {
			if x[i] != want[i] {
				t.Fatalf("n=%d: x[%d] = %v, want %v", n, i, x[i], want[i])
			}
		}
	}
}

func TestAddF32(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 31, 32, 33, 100, 1024, 1056} {
		y, x := randF32(r, n), randF32(r, n)
		want := make([]float32, n)
		for i := range want {
			want[i] = y[i] + x[i]
		}
		AddF32(y, x)
		for i := range want {
			if y[i] != want[i] {
				t.Fatalf("n=%d: y[%d] = %v, want %v", n, i, y[i], want[i])
			}
		}
	}
}
