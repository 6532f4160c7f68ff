package comm

import (
	"github.com/strata-ai/strata/internal/tensor"
)

// reducer combines buffers element-wise. Avg reduces as Sum; finalize divides once at the
// end, as NCCL does, so partial results stay exact for integer-valued data.
type reducer struct {
	dt DataType
	op Op
}

type number interface {
	~int32 | ~int64 | ~float32 | ~float64
}

// reduce sets dst[i] = a[i] op b[i]. dst may alias a or b exactly. All three have equal length.
func (r reducer) reduce(dst, a, b []byte) {
	if len(dst) == 0 {
		return
	}
	switch r.dt {
	case Float32:
		reduceNum(r.op, View[float32](dst), View[float32](a), View[float32](b))
	case Float64:
		reduceNum(r.op, View[float64](dst), View[float64](a), View[float64](b))
	case Int32:
		reduceNum(r.op, View[int32](dst), View[int32](a), View[int32](b))
	case Int64:
		reduceNum(r.op, View[int64](dst), View[int64](a), View[int64](b))
	case BFloat16:
		reduceHalf(r.op, View[uint16](dst), View[uint16](a), View[uint16](b), tensor.BF16ToF32, tensor.F32ToBF16)
	case Float16:
		reduceHalf(r.op, View[uint16](dst), View[uint16](a), View[uint16](b), tensor.F16ToF32, tensor.F32ToF16)
	}
}

// reduceMany sets dst = srcs[0] op srcs[1] op ... in that order, walking the buffers in
// blocks so the partial result stays in L1 while every source streams through once.
func (r reducer) reduceMany(dst []byte, srcs [][]byte) {
	if len(srcs) == 1 {
		copy(dst, srcs[0])
		return
	}
	const block = 16 << 10
	// A source that is dst itself (in-place on the rank doing the work) must be read before
	// dst is written: accumulate through a block-sized buffer then.
	var tmp []byte
	for _, s := range srcs[1:] {
		if sameStart(s, dst) {
			tmp = make([]byte, min(block, len(dst)))
		}
	}
	for off := 0; off < len(dst); off += block {
		end := min(off+block, len(dst))
		acc := dst[off:end]
		if tmp != nil {
			acc = tmp[:end-off]
		}
		r.reduce(acc, srcs[0][off:end], srcs[1][off:end])
		for _, s := range srcs[2:] {
			r.reduce(acc, acc, s[off:end])
		}
		if tmp != nil {
			copy(dst[off:end], acc)
		}
	}
}

// finalize turns a complete reduction over n ranks into the op's result: Avg divides by n
// (integers truncate toward zero, floats divide in float64 and round once).
func (r reducer) finalize(buf []byte, n int) {
	if r.op != Avg || n == 1 || len(buf) == 0 {
		return
	}
	switch r.dt {
	case Float32:
		for i, v := range View[float32](buf) {
			View[float32](buf)[i] = float32(float64(v) / float64(n))
		}
	case Float64:
		s := View[float64](buf)
		for i := range s {
			s[i] /= float64(n)
		}
	case Int32:
		s := View[int32](buf)
		for i := range s {
			s[i] /= int32(n)
		}
	case Int64:
		s := View[int64](buf)
		for i := range s {
			s[i] /= int64(n)
		}
	case BFloat16:
		s := View[uint16](buf)
		for i, v := range s {
			s[i] = tensor.F32ToBF16(float32(float64(tensor.BF16ToF32(v)) / float64(n)))
		}
	case Float16:
		s := View[uint16](buf)
		for i, v := range s {
			s[i] = tensor.F32ToF16(float32(float64(tensor.F16ToF32(v)) / float64(n)))
		}
	}
}

func reduceNum[T number](op Op, dst, a, b []T) {
	n := len(dst)
	a, b = a[:n], b[:n]
	switch op {
	case Sum, Avg:
		if isF32(dst) {
			sumF32(any(dst).([]float32), any(a).([]float32), any(b).([]float32))
			return
		}
		i := 0
		for ; i+4 <= n; i += 4 {
			dst[i] = a[i] + b[i]
			dst[i+1] = a[i+1] + b[i+1]
			dst[i+2] = a[i+2] + b[i+2]
			dst[i+3] = a[i+3] + b[i+3]
		}
		for ; i < n; i++ {
			dst[i] = a[i] + b[i]
		}
	case Prod:
		for i := range dst {
			dst[i] = a[i] * b[i]
		}
	case Min:
		for i := range dst {
			// NaN propagates from either side, as a float comparison-based min would not.
			x, y := a[i], b[i]
			if y < x || y != y {
				x = y
			}
			dst[i] = x
		}
	case Max:
		for i := range dst {
			x, y := a[i], b[i]
			if y > x || y != y {
				x = y
			}
			dst[i] = x
		}
	}
}

func isF32[T number](s []T) bool {
	_, ok := any(s).([]float32)
	return ok
}

func reduceHalf(op Op, dst, a, b []uint16, widen func(uint16) float32, narrow func(float32) uint16) {
	n := len(dst)
	a, b = a[:n], b[:n]
	for i := range dst {
		x, y := widen(a[i]), widen(b[i])
		var z float32
		switch op {
		case Sum, Avg:
			z = x + y
		case Prod:
			z = x * y
		case Min:
			z = x
			if y < x || y != y {
				z = y
			}
		case Max:
			z = x
			if y > x || y != y {
				z = y
			}
		}
		dst[i] = narrow(z)
	}
}
