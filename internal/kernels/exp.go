package kernels

import "math"

// ExpF32 sets dst[i] = exp(src[i]) (dst may be src). The vector form is within about 2 ulp
// of the exact value; inputs beyond ±88.38 clamp to exp(±88.38).
func ExpF32(dst, src []float32) {
	src = src[:len(dst)]
	n := 0
	if hasAVX2FMA && len(dst) >= 8 {
		n = len(dst) &^ 7
		expF32AVX2(&dst[0], &src[0], n)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = float32(math.Exp(float64(src[i])))
	}
}

// Softmax turns x into softmax(x) in place.
func Softmax(x []float32) { SoftmaxScaled(x, 1) }

// SoftmaxScaled turns x into softmax(scale·x) in place, for scale > 0 (attention's 1/√d):
// exp((x - max)·scale) normalised, in three vector passes.
func SoftmaxScaled(x []float32, scale float32) {
	if len(x) == 0 {
		return
	}
	n := 0
	if hasAVX2FMA && len(x) >= 8 {
		n = len(x) &^ 7
	}
	mx := x[0]
	if n > 0 {
		mx = maxF32AVX2(&x[0], n)
	}
	for _, v := range x[n:] {
		mx = max(mx, v)
	}
	var sum float32
	if n > 0 {
		sum = expSubScaleSumAVX2(&x[0], n, mx, scale)
	}
	for i := n; i < len(x); i++ {
		e := float32(math.Exp(float64((x[i] - mx) * scale)))
		x[i] = e
		sum += e
	}
	inv := 1 / sum
	if n > 0 {
		scaleF32AVX2(&x[0], n, inv)
	}
	for i := n; i < len(x); i++ {
		x[i] *= inv
	}
}

// SiluMul sets g[i] = silu(g[i])·u[i], SwiGLU's gate: silu(x) = x / (1 + exp(-x)).
func SiluMul(g, u []float32) {
	u = u[:len(g)]
	n := 0
	if hasAVX2FMA && len(g) >= 8 {
		n = len(g) &^ 7
		siluMulAVX2(&g[0], &u[0], n)
	}
	siluMulPieces(g[n:], u[n:])
}

// siluMulPieces is siluMulGo through a scratch array on the stack, a piece at a time: a
// scratch slice made per call by the caller cost a batch-32 decode step 2.7 MB of fresh heap
// (page faults, clearing), where the vector kernel needs none.
func siluMulPieces(g, u []float32) {
	var tmp [256]float32
	for n := 0; n < len(g); n += len(tmp) {
		m := min(len(tmp), len(g)-n)
		siluMulGo(g[n:n+m], u[n:n+m], tmp[:m])
	}
}

func siluMulGo(g, u, tmp []float32) {
	for i, v := range g {
		tmp[i] = -v
	}
	ExpF32(tmp, tmp)
	for i, v := range g {
		g[i] = v / (1 + tmp[i]) * u[i]
	}
}
