#include "textflag.h"

// The order in which the fold at the end of each kernel below leaves its sums, lane 4i+j
// holding row/token (i, j) as each kernel says: VPERMPS with this table puts them in order.
DATA pairPerm<>+0(SB)/4, $0
DATA pairPerm<>+4(SB)/4, $4
DATA pairPerm<>+8(SB)/4, $8
DATA pairPerm<>+12(SB)/4, $12
DATA pairPerm<>+16(SB)/4, $1
DATA pairPerm<>+20(SB)/4, $5
DATA pairPerm<>+24(SB)/4, $9
DATA pairPerm<>+28(SB)/4, $13
DATA pairPerm<>+32(SB)/4, $2
DATA pairPerm<>+36(SB)/4, $6
DATA pairPerm<>+40(SB)/4, $10
DATA pairPerm<>+44(SB)/4, $14
DATA pairPerm<>+48(SB)/4, $3
DATA pairPerm<>+52(SB)/4, $7
DATA pairPerm<>+56(SB)/4, $11
DATA pairPerm<>+60(SB)/4, $15
GLOBL pairPerm<>(SB), RODATA|NOPTR, $64

// func dot2x8BF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[16]float32)
// Sixteen dot products: two bfloat16 weight rows (w, w+wstride elements) against eight
// float32 activation rows (x + j·xstride floats), all packed by packEvenOdd in blocks of
// 32. A load of 32 bfloat16 gives both halves as float32 in one instruction each (the even
// elements shifted up, the odd ones masked), and each activation vector loaded feeds both
// weight rows: per 32 columns, 2 weight loads, 4 widening instructions and 16 activation
// loads feed 32 FMAs, so the two FMA pipes run at 8/9 of their peak. The sixteen
// accumulators are folded together (halves, quarters, pairs of floats) rather than summed
// one by one. out gets row 0's eight sums, then row 1's. n is a positive multiple of 32.
TEXT ·dot2x8BF16AVX512(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ wstride+8(FP), R8
	SHLQ $1, R8
	LEAQ (SI)(R8*1), R8          // row 1
	MOVQ x+16(FP), DI
	MOVQ xstride+24(FP), R9
	SHLQ $2, R9
	LEAQ (R9)(R9*2), R10         // three rows
	LEAQ (DI)(R9*4), R11         // activation row 4
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
	MOVL $0xffff0000, AX
	VPBROADCASTD AX, Z31         // the odd (high) halves' mask
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

loop:
	VMOVDQU32 (SI), Z16
	VMOVDQU32 (R8), Z18
	VPSLLD    $16, Z16, Z17      // row 0 even
	VPANDD    Z31, Z16, Z16      // row 0 odd
	VPSLLD    $16, Z18, Z19      // row 1 even
	VPANDD    Z31, Z18, Z18      // row 1 odd
	VMOVUPS     (DI), Z20
	VMOVUPS     64(DI), Z21
	VFMADD231PS Z17, Z20, Z0
	VFMADD231PS Z19, Z20, Z8
	VFMADD231PS Z16, Z21, Z0
	VFMADD231PS Z18, Z21, Z8
	VMOVUPS     (DI)(R9*1), Z22
	VMOVUPS     64(DI)(R9*1), Z23
	VFMADD231PS Z17, Z22, Z1
	VFMADD231PS Z19, Z22, Z9
	VFMADD231PS Z16, Z23, Z1
	VFMADD231PS Z18, Z23, Z9
	VMOVUPS     (DI)(R9*2), Z24
	VMOVUPS     64(DI)(R9*2), Z25
	VFMADD231PS Z17, Z24, Z2
	VFMADD231PS Z19, Z24, Z10
	VFMADD231PS Z16, Z25, Z2
	VFMADD231PS Z18, Z25, Z10
	VMOVUPS     (DI)(R10*1), Z26
	VMOVUPS     64(DI)(R10*1), Z27
	VFMADD231PS Z17, Z26, Z3
	VFMADD231PS Z19, Z26, Z11
	VFMADD231PS Z16, Z27, Z3
	VFMADD231PS Z18, Z27, Z11
	VMOVUPS     (R11), Z20
	VMOVUPS     64(R11), Z21
	VFMADD231PS Z17, Z20, Z4
	VFMADD231PS Z19, Z20, Z12
	VFMADD231PS Z16, Z21, Z4
	VFMADD231PS Z18, Z21, Z12
	VMOVUPS     (R11)(R9*1), Z22
	VMOVUPS     64(R11)(R9*1), Z23
	VFMADD231PS Z17, Z22, Z5
	VFMADD231PS Z19, Z22, Z13
	VFMADD231PS Z16, Z23, Z5
	VFMADD231PS Z18, Z23, Z13
	VMOVUPS     (R11)(R9*2), Z24
	VMOVUPS     64(R11)(R9*2), Z25
	VFMADD231PS Z17, Z24, Z6
	VFMADD231PS Z19, Z24, Z14
	VFMADD231PS Z16, Z25, Z6
	VFMADD231PS Z18, Z25, Z14
	VMOVUPS     (R11)(R10*1), Z26
	VMOVUPS     64(R11)(R10*1), Z27
	VFMADD231PS Z17, Z26, Z7
	VFMADD231PS Z19, Z26, Z15
	VFMADD231PS Z16, Z27, Z7
	VFMADD231PS Z18, Z27, Z15
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $128, DI
	ADDQ $128, R11
	SUBQ $32, CX
	JNZ  loop

	// Z0-Z7 are row 0's accumulators (A0-A7), Z8-Z15 row 1's (B0-B7). Fold pairs of
	// them into one register each: 256-bit halves, then 128-bit lanes, then 64-bit
	// pairs, then single floats, which leaves lane 4i+j holding Ai, Ai+4, Bi, Bi+4 for
	// j = 0..3.
	VSHUFF64X2 $0x44, Z1, Z0, Z16
	VSHUFF64X2 $0xEE, Z1, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VSHUFF64X2 $0x44, Z3, Z2, Z16
	VSHUFF64X2 $0xEE, Z3, Z2, Z17
	VADDPS     Z17, Z16, Z2
	VSHUFF64X2 $0x44, Z5, Z4, Z16
	VSHUFF64X2 $0xEE, Z5, Z4, Z17
	VADDPS     Z17, Z16, Z4
	VSHUFF64X2 $0x44, Z7, Z6, Z16
	VSHUFF64X2 $0xEE, Z7, Z6, Z17
	VADDPS     Z17, Z16, Z6
	VSHUFF64X2 $0x44, Z9, Z8, Z16
	VSHUFF64X2 $0xEE, Z9, Z8, Z17
	VADDPS     Z17, Z16, Z8
	VSHUFF64X2 $0x44, Z11, Z10, Z16
	VSHUFF64X2 $0xEE, Z11, Z10, Z17
	VADDPS     Z17, Z16, Z10
	VSHUFF64X2 $0x44, Z13, Z12, Z16
	VSHUFF64X2 $0xEE, Z13, Z12, Z17
	VADDPS     Z17, Z16, Z12
	VSHUFF64X2 $0x44, Z15, Z14, Z16
	VSHUFF64X2 $0xEE, Z15, Z14, Z17
	VADDPS     Z17, Z16, Z14
	VSHUFF64X2 $0x88, Z2, Z0, Z16
	VSHUFF64X2 $0xDD, Z2, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VSHUFF64X2 $0x88, Z6, Z4, Z16
	VSHUFF64X2 $0xDD, Z6, Z4, Z17
	VADDPS     Z17, Z16, Z4
	VSHUFF64X2 $0x88, Z10, Z8, Z16
	VSHUFF64X2 $0xDD, Z10, Z8, Z17
	VADDPS     Z17, Z16, Z8
	VSHUFF64X2 $0x88, Z14, Z12, Z16
	VSHUFF64X2 $0xDD, Z14, Z12, Z17
	VADDPS     Z17, Z16, Z12
	VUNPCKLPD  Z4, Z0, Z16
	VUNPCKHPD  Z4, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VUNPCKLPD  Z12, Z8, Z16
	VUNPCKHPD  Z12, Z8, Z17
	VADDPS     Z17, Z16, Z8
	VSHUFPS    $0x88, Z8, Z0, Z16
	VSHUFPS    $0xDD, Z8, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VMOVDQU32  pairPerm<>(SB), Z30
	VPERMPS    Z0, Z30, Z0
	VMOVUPS    Z0, (DX)
	VZEROUPPER
	RET

// func dot2x4BF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[8]float32)
// dot2x8BF16AVX512 for four activation rows: out gets row 0's four sums, then row 1's.
TEXT ·dot2x4BF16AVX512(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ wstride+8(FP), R8
	SHLQ $1, R8
	LEAQ (SI)(R8*1), R8          // row 1
	MOVQ x+16(FP), DI
	MOVQ xstride+24(FP), R9
	SHLQ $2, R9
	LEAQ (R9)(R9*2), R10         // three rows
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
	MOVL $0xffff0000, AX
	VPBROADCASTD AX, Z31         // the odd (high) halves' mask
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7

loop:
	VMOVDQU32 (SI), Z16
	VMOVDQU32 (R8), Z18
	VPSLLD    $16, Z16, Z17      // row 0 even
	VPANDD    Z31, Z16, Z16      // row 0 odd
	VPSLLD    $16, Z18, Z19      // row 1 even
	VPANDD    Z31, Z18, Z18      // row 1 odd
	VMOVUPS     (DI), Z20
	VMOVUPS     64(DI), Z21
	VFMADD231PS Z17, Z20, Z0
	VFMADD231PS Z19, Z20, Z4
	VFMADD231PS Z16, Z21, Z0
	VFMADD231PS Z18, Z21, Z4
	VMOVUPS     (DI)(R9*1), Z22
	VMOVUPS     64(DI)(R9*1), Z23
	VFMADD231PS Z17, Z22, Z1
	VFMADD231PS Z19, Z22, Z5
	VFMADD231PS Z16, Z23, Z1
	VFMADD231PS Z18, Z23, Z5
	VMOVUPS     (DI)(R9*2), Z24
	VMOVUPS     64(DI)(R9*2), Z25
	VFMADD231PS Z17, Z24, Z2
	VFMADD231PS Z19, Z24, Z6
	VFMADD231PS Z16, Z25, Z2
	VFMADD231PS Z18, Z25, Z6
	VMOVUPS     (DI)(R10*1), Z26
	VMOVUPS     64(DI)(R10*1), Z27
	VFMADD231PS Z17, Z26, Z3
	VFMADD231PS Z19, Z26, Z7
	VFMADD231PS Z16, Z27, Z3
	VFMADD231PS Z18, Z27, Z7
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $128, DI
	SUBQ $32, CX
	JNZ  loop

	// Z0-Z3 are row 0's accumulators (A0-A3), Z4-Z7 row 1's (B0-B3): folded as in
	// dot2x8BF16AVX512, lane 4i holds Ai and lane 4i+1 Bi.
	VSHUFF64X2 $0x44, Z1, Z0, Z16
	VSHUFF64X2 $0xEE, Z1, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VSHUFF64X2 $0x44, Z3, Z2, Z16
	VSHUFF64X2 $0xEE, Z3, Z2, Z17
	VADDPS     Z17, Z16, Z2
	VSHUFF64X2 $0x44, Z5, Z4, Z16
	VSHUFF64X2 $0xEE, Z5, Z4, Z17
	VADDPS     Z17, Z16, Z4
	VSHUFF64X2 $0x44, Z7, Z6, Z16
	VSHUFF64X2 $0xEE, Z7, Z6, Z17
	VADDPS     Z17, Z16, Z6
	VSHUFF64X2 $0x88, Z2, Z0, Z16
	VSHUFF64X2 $0xDD, Z2, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VSHUFF64X2 $0x88, Z6, Z4, Z16
	VSHUFF64X2 $0xDD, Z6, Z4, Z17
	VADDPS     Z17, Z16, Z4
	VUNPCKLPD  Z4, Z0, Z16
	VUNPCKHPD  Z4, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VSHUFPS    $0x88, Z0, Z0, Z16
	VSHUFPS    $0xDD, Z0, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VMOVDQU32  pairPerm<>(SB), Z30
	VPERMPS    Z0, Z30, Z0
	VMOVUPS    Y0, (DX)
	VZEROUPPER
	RET
