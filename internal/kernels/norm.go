package kernels

// ScaleMulF32 sets out[i] = x[i]·r·w[i], rounding after each product:
// RMSNorm's last step, its scale r applied before the learned weight w. out may be x.
func ScaleMulF32(out, x, w []float32, r float32) {
	x, w = x[:len(out)], w[:len(out)]
	n := 0
	if hasAVX2FMA && len(out) >= 16 {
		n = len(out) &^ 15
		scaleMulF32AVX2(&out[0], &x[0], &w[0], r, n)
	}
	for i := n; i < len(out); i++ {
		out[i] = float32(x[i]*r) * w[i]
	}
}

// RotateHalfF32 applies rotary embedding to one head in place, in the rotate-half layout that
// transformers' Qwen3 uses: element i pairs with element i+len/2, and cos, sin hold a value
// per element (the two halves repeat the same angles). Each output is formed as
// a·cos − b·sin (first half) or b·cos + a·sin (second half), rounded after every operation.
func RotateHalfF32(x, cos, sin []float32) {
	half := len(x) / 2
	cos, sin = cos[:len(x)], sin[:len(x)]
	n := 0
	if hasAVX2FMA && len(x)%2 == 0 && half >= 8 {
		n = half &^ 7
		// The vector kernel reaches the second half at half elements on, so it takes whole
		// 8-lane groups from the front of each half; the rest falls to the loop below.
		rotateHalfF32AVX2(&x[0], &cos[0], &sin[0], half, n)
	}
	for i := n; i < half; i++ {
		a, b := x[i], x[i+half]
		// the conversions keep a compiler that may fuse (GOAMD64=v3) from doing so, so every
		// path rounds the same way
		x[i] = float32(a*cos[i]) - float32(b*sin[i])
		x[i+half] = float32(b*cos[i+half]) + float32(a*sin[i+half])
	}
}

// AddF32 adds x[i] to y[i] over len(y) elements: the residual connections.
func AddF32(y, x []float32) {
	x = x[:len(y)]
	n := 0
	if hasAVX2FMA && len(y) >= 32 {
		n = len(y) &^ 31
		addF32AVX2(&y[0], &x[0], n)
	}
	for i := n; i < len(y); i++ {
		y[i] += x[i]
	}
}
