package comm

import (
	"fmt"
	"strings"
	"unsafe"
)

// DataType is the element type of a collective's buffers.
type DataType uint8

// The element types a communicator reduces. Names follow nccl-tests.
const (
	Float32 DataType = iota + 1
	Float64
	BFloat16
	Float16
	Int32
	Int64
)

// AllDataTypes lists every supported type, in nccl-tests' order where it has one.
var AllDataTypes = []DataType{Float32, Float64, Float16, BFloat16, Int32, Int64}

// Size is the width of one element in bytes.
func (t DataType) Size() int {
	switch t {
	case Float32, Int32:
		return 4
	case Float64, Int64:
		return 8
	case BFloat16, Float16:
		return 2
	}
	return 0
}

func (t DataType) String() string {
	switch t {
	case Float32:
		return "float"
	case Float64:
		return "double"
	case BFloat16:
		return "bfloat16"
	case Float16:
		return "half"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	}
	return fmt.Sprintf("dtype(%d)", uint8(t))
}

func (t DataType) valid() bool { return t.Size() != 0 }

// ParseDataType accepts nccl-tests' names (float, double, half, bfloat16, int32, int64) and
// the usual aliases (float32, f32, fp16, bf16, ...).
func ParseDataType(s string) (DataType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "float", "float32", "f32", "fp32":
		return Float32, nil
	case "double", "float64", "f64", "fp64":
		return Float64, nil
	case "bfloat16", "bf16":
		return BFloat16, nil
	case "half", "float16", "f16", "fp16":
		return Float16, nil
	case "int32", "int", "i32":
		return Int32, nil
	case "int64", "i64":
		return Int64, nil
	}
	return 0, fmt.Errorf("unknown data type %q (want one of float, double, half, bfloat16, int32, int64)", s)
}

// Op is a reduction operator.
type Op uint8

// Reduction operators, as in NCCL.
const (
	Sum Op = iota + 1
	Prod
	Min
	Max
	Avg
)

// AllOps lists every operator in nccl-tests' order.
var AllOps = []Op{Sum, Prod, Max, Min, Avg}

func (o Op) String() string {
	switch o {
	case Sum:
		return "sum"
	case Prod:
		return "prod"
	case Min:
		return "min"
	case Max:
		return "max"
	case Avg:
		return "avg"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

func (o Op) valid() bool { return o >= Sum && o <= Avg }

// ParseOp accepts sum, prod, min, max, avg.
func ParseOp(s string) (Op, error) {
	for _, o := range AllOps {
		if strings.EqualFold(strings.TrimSpace(s), o.String()) {
			return o, nil
		}
	}
	return 0, fmt.Errorf("unknown reduction op %q (want one of sum, prod, min, max, avg)", s)
}

// Element is a Go type whose memory a collective can move: the fixed-width numbers plus
// uint16 for bfloat16 and float16 bit patterns.
type Element interface {
	~float32 | ~float64 | ~int32 | ~int64 | ~uint16 | ~uint8 | ~uint32 | ~uint64 | ~int8 | ~int16
}

// Bytes views a typed slice as raw bytes without copying, so callers can hand []float32
// (or bf16 bit patterns as []uint16) to the byte-level collectives.
func Bytes[T Element](s []T) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(z)))
}

// View reinterprets raw bytes as a typed slice without copying; len(b) must be a multiple of
// the element size.
func View[T Element](b []byte) []T {
	var z T
	sz := int(unsafe.Sizeof(z))
	if len(b) < sz {
		return []T{}
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/sz)
}
