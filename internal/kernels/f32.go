package kernels

import "math"

// DotF32 returns Σ a[i]·b[i] over len(a) elements (attention's query·key).
func DotF32(a, b []float32) float32 {
	b = b[:len(a)]
	n := 0
	var s float32
	if hasAVX2FMA && len(a) >= 32 {
		n = len(a) &^ 31
		s = dotF32AVX2(&a[0], &b[0], n)
	}
	return s + dotF32Go(a[n:], b[n:])
}

func dotF32Go(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// AxpyF32 adds alpha·x[i] to y[i] over len(y) elements (attention's weighted sum of values).
func AxpyF32(alpha float32, x, y []float32) {
	x = x[:len(y)]
	n := 0
	if hasAVX2FMA && len(y) >= 32 {
		n = len(y) &^ 31
		axpyF32AVX2(alpha, &x[0], &y[0], n)
	}
	for i := n; i < len(y); i++ {
		y[i] += alpha * x[i]
	}
}

// DotsStrided sets out[s] = q·k[s·stride : s·stride+len(q)] for s < len(out): one query against
// the keys of a KV-cache block in one call.
func DotsStrided(q, k []float32, stride int, out []float32) {
	n, hd := len(out), len(q)
	if n == 0 {
		return
	}
	_ = k[(n-1)*stride+hd-1]
	if hasAVX2FMA && hd%8 == 0 && hd > 0 {
		dotsF32AVX2(&q[0], &k[0], stride, n, hd, &out[0])
		return
	}
	for s := range out {
		out[s] = dotF32Go(q, k[s*stride:s*stride+hd])
	}
}

// AxpysStrided adds Σ_s p[s]·v[s·stride : s·stride+len(o)] to o: the weighted sum of a
// block's values.
func AxpysStrided(p, v []float32, stride int, o []float32) {
	n, hd := len(p), len(o)
	if n == 0 {
		return
	}
	_ = v[(n-1)*stride+hd-1]
	if hasAVX2FMA && hd%8 == 0 && hd > 0 {
		axpysF32AVX2(&p[0], &v[0], stride, n, hd, &o[0])
		return
	}
	for s, w := range p {
		row := v[s*stride : s*stride+hd]
		for d := range o {
			o[d] += w * row[d]
		}
	}
}

// DotsStridedBF16 is DotsStrided over a bfloat16 KV cache: keys are widened to float32 (exact)
// and every product and sum is float32.
func DotsStridedBF16(q []float32, k []uint16, stride int, out []float32) {
	n, hd := len(out), len(q)
	if n == 0 {
		return
	}
	_ = k[(n-1)*stride+hd-1]
	if hasAVX2FMA && hd%8 == 0 && hd > 0 {
		dotsBF16AVX2(&q[0], &k[0], stride, n, hd, &out[0])
		return
	}
	for s := range out {
		out[s] = dotBF16Go(k[s*stride:s*stride+hd], q)
	}
}

// AxpysStridedBF16 is AxpysStrided over bfloat16 values.
func AxpysStridedBF16(p []float32, v []uint16, stride int, o []float32) {
	n, hd := len(p), len(o)
	if n == 0 {
		return
	}
	_ = v[(n-1)*stride+hd-1]
	if hasAVX2FMA && hd%8 == 0 && hd > 0 {
		axpysBF16AVX2(&p[0], &v[0], stride, n, hd, &o[0])
		return
	}
	for s, w := range p {
		row := v[s*stride : s*stride+hd]
		for d := range o {
			o[d] += w * math.Float32frombits(uint32(row[d])<<16)
		}
	}
}

// DotsStrided2 is DotsStrided for two queries over the same keys (the two query heads of a KV
// group): each key is read once for both, and the scores are bit-identical to two calls.
func DotsStrided2(q0, q1, k []float32, stride int, out0, out1 []float32) {
	n, hd := len(out0), len(q0)
	if n == 0 {
		return
	}
	_ = k[(n-1)*stride+hd-1]
	q1, out1 = q1[:hd], out1[:n]
	if hasAVX2FMA && hasAVX512VL && hd%8 == 0 && hd > 0 {
		dots2F32AVX512(&q0[0], &q1[0], &k[0], stride, n, hd, &out0[0], &out1[0])
		return
	}
	DotsStrided(q0, k, stride, out0)
	DotsStrided(q1, k, stride, out1)
}

// AxpysStrided2 is AxpysStrided for two weightings of the same values: each value is read once
// for both, and the sums are bit-identical to two calls.
func AxpysStrided2(p0, p1, v []float32, stride int, o0, o1 []float32) {
	n, hd := len(p0), len(o0)
	if n == 0 {
		return
	}
	_ = v[(n-1)*stride+hd-1]
	p1, o1 = p1[:n], o1[:hd]
	if hasAVX512 && !forceAVX2 && hd%16 == 0 && hd > 0 {
		axpys2F32AVX512(&p0[0], &p1[0], &v[0], stride, n, hd, &o0[0], &o1[0])
		return
	}
	if hasAVX2FMA && hd%8 == 0 && hd > 0 {
		axpys2F32AVX2(&p0[0], &p1[0], &v[0], stride, n, hd, &o0[0], &o1[0])
		return
	}
	AxpysStrided(p0, v, stride, o0)
	AxpysStrided(p1, v, stride, o1)
}

// DotsStrided2BF16 is DotsStrided2 over bfloat16 keys.
func DotsStrided2BF16(q0, q1 []float32, k []uint16, stride int, out0, out1 []float32) {
	n, hd := len(out0), len(q0)
	if n == 0 {
		return
	}
	_ = k[(n-1)*stride+hd-1]
	q1, out1 = q1[:hd], out1[:n]
	if hasAVX2FMA && hasAVX512VL && hd%8 == 0 && hd > 0 {
		dots2BF16AVX512(&q0[0], &q1[0], &k[0], stride, n, hd, &out0[0], &out1[0])
		return
	}
	DotsStridedBF16(q0, k, stride, out0)
	DotsStridedBF16(q1, k, stride, out1)
}

// AxpysStrided2BF16 is AxpysStrided2 over bfloat16 values.
func AxpysStrided2BF16(p0, p1 []float32, v []uint16, stride int, o0, o1 []float32) {
	n, hd := len(p0), len(o0)
	if n == 0 {
		return
	}
	_ = v[(n-1)*stride+hd-1]
	p1, o1 = p1[:n], o1[:hd]
	if hasAVX2FMA && hd%8 == 0 && hd > 0 {
		axpys2BF16AVX2(&p0[0], &p1[0], &v[0], stride, n, hd, &o0[0], &o1[0])
		return
	}
	AxpysStridedBF16(p0, v, stride, o0)
	AxpysStridedBF16(p1, v, stride, o1)
}

// MaxF32 returns the largest of x that is a number, or -Inf when none is (x empty, or all NaN).
func MaxF32(x []float32) float32 {
	m := float32(math.Inf(-1))
	n := 0
	if hasAVX2FMA && len(x) >= 32 {
		n = len(x) &^ 31
		m = maxNumF32AVX2(&x[0], n)
	}
	for _, v := range x[n:] {
		if v > m { // a NaN never wins
			m = v
		}
	}
	return m
}

// ArgmaxF32 returns the first index of x's largest value, as a scan that moves on only to a
// strictly larger value does: 0 for an empty x, or when x[0] is NaN (nothing is larger than
// it), and NaNs elsewhere never win. A greedy draw over 152k logits took 60 µs as that scan
// in Go; the vector passes take a fraction of it.
func ArgmaxF32(x []float32) int {
	if len(x) == 0 || x[0] != x[0] {
		return 0
	}
	m := MaxF32(x)
	n := 0
	if hasAVX2FMA && len(x) >= 8 {
		n = len(x) &^ 7
		if i := firstEqualAVX2(&x[0], n, m); i >= 0 {
			return i
		}
	}
	for i, v := range x[n:] {
		if v == m {
			return n + i
		}
	}
	return 0 // unreachable: x[0] is a number, so m is one of x's values
}
