#include "textflag.h"

// The folds that turn a kernel's accumulators into sums, each adding two registers' halves
// into the first (p), with t0 and t1 as scratch. FOLD_HALVES: p = [p.lo256 + p.hi256 in its
// 128-bit lanes 0-1, q's in 2-3]; FOLD_LANES: from [a a b b] and [c c d d] (128-bit lanes)
// to [a b c d]; FOLD_PAIRS: per 128-bit lane, p's and q's 64-bit halves added; FOLD_FLOATS:
// per 128-bit lane, adjacent floats of p then of q added.
#define FOLD_HALVES(p, q, t0, t1) VSHUFF64X2 $0x44, q, p, t0; VSHUFF64X2 $0xEE, q, p, t1; VADDPS t1, t0, p
#define FOLD_LANES(p, q, t0, t1) VSHUFF64X2 $0x88, q, p, t0; VSHUFF64X2 $0xDD, q, p, t1; VADDPS t1, t0, p
#define FOLD_PAIRS(p, q, t0, t1) VUNPCKLPD q, p, t0; VUNPCKHPD q, p, t1; VADDPS t1, t0, p
#define FOLD_FLOATS(p, q, t0, t1) VSHUFPS $0x88, q, p, t0; VSHUFPS $0xDD, q, p, t1; VADDPS t1, t0, p

// The two-by-four kernel's parts, shared by dot2x4BF16AVX512 and dot2x4NextBF16AVX512.
// DOT2X4_SETUP expects SI = w, R8 = wstride, DI = x, R9 = xstride (elements), CX = n and
// DX = out.
#define DOT2X4_SETUP \
	SHLQ $1, R8; \
	LEAQ (SI)(R8*1), R8; \
	SHLQ $2, R9; \
	LEAQ (R9)(R9*2), R10; \
	MOVL $0xffff0000, AX; \
	VPBROADCASTD AX, Z31; \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z4, Z4, Z4; \
	VPXORD Z5, Z5, Z5; \
	VPXORD Z6, Z6, Z6; \
	VPXORD Z7, Z7, Z7
// DOT2X4_BODY: one 64-byte line of each weight row widened in place (VPSLLD 16: the even,
// low bfloat16s as float32; VPANDD Z31: the odd, high ones), then each activation row's
// even and odd vectors (packed by packEvenOdd) against both rows: Z0-Z3 row 0, Z4-Z7 row 1.
#define DOT2X4_BODY \
	VMOVDQU32 (SI), Z16; \
	VMOVDQU32 (R8), Z18; \
	VPSLLD    $16, Z16, Z17; \
	VPANDD    Z31, Z16, Z16; \
	VPSLLD    $16, Z18, Z19; \
	VPANDD    Z31, Z18, Z18; \
	VMOVUPS     (DI), Z20; \
	VMOVUPS     64(DI), Z21; \
	VFMADD231PS Z17, Z20, Z0; \
	VFMADD231PS Z19, Z20, Z4; \
	VFMADD231PS Z16, Z21, Z0; \
	VFMADD231PS Z18, Z21, Z4; \
	VMOVUPS     (DI)(R9*1), Z22; \
	VMOVUPS     64(DI)(R9*1), Z23; \
	VFMADD231PS Z17, Z22, Z1; \
	VFMADD231PS Z19, Z22, Z5; \
	VFMADD231PS Z16, Z23, Z1; \
	VFMADD231PS Z18, Z23, Z5; \
	VMOVUPS     (DI)(R9*2), Z24; \
	VMOVUPS     64(DI)(R9*2), Z25; \
	VFMADD231PS Z17, Z24, Z2; \
	VFMADD231PS Z19, Z24, Z6; \
	VFMADD231PS Z16, Z25, Z2; \
	VFMADD231PS Z18, Z25, Z6; \
	VMOVUPS     (DI)(R10*1), Z26; \
	VMOVUPS     64(DI)(R10*1), Z27; \
	VFMADD231PS Z17, Z26, Z3; \
	VFMADD231PS Z19, Z26, Z7; \
	VFMADD231PS Z16, Z27, Z3; \
	VFMADD231PS Z18, Z27, Z7
#define DOT2X4_ADVANCE \
	ADDQ $64, SI; \
	ADDQ $64, R8; \
	ADDQ $128, DI; \
	SUBQ $32, CX
#define DOT2X4_FOLD \
	FOLD_HALVES(Z0, Z1, Z16, Z17); \
	FOLD_HALVES(Z2, Z3, Z16, Z17); \
	FOLD_HALVES(Z4, Z5, Z16, Z17); \
	FOLD_HALVES(Z6, Z7, Z16, Z17); \
	FOLD_LANES(Z0, Z2, Z16, Z17); \
	FOLD_LANES(Z4, Z6, Z16, Z17); \
	FOLD_PAIRS(Z0, Z4, Z16, Z17); \
	FOLD_FLOATS(Z0, Z0, Z16, Z17); \
	VMOVDQU32  pairPerm<>(SB), Z30; \
	VPERMPS    Z0, Z30, Z0; \
	VMOVUPS    Y0, (DX)

// The three-by-eight kernel's parts, shared by its two prefetch schemes (dot3x8BF16AVX512 and
// dot3x8NextBF16AVX512). DOT3X8_SETUP expects SI = w, R8 = wstride, DI = x, R9 = xstride
// (elements), CX = n, DX = out, R13 = pf and BX = the prefetch step or stride.
#define DOT3X8_SETUP \
	SHLQ $1, R8; \
	LEAQ (SI)(R8*2), R12; \
	LEAQ (SI)(R8*1), R8; \
	SHLQ $2, R9; \
	LEAQ (R9)(R9*2), R10; \
	LEAQ (DI)(R9*4), R11; \
	MOVL $0xffff0000, AX; \
	VPBROADCASTD AX, Z31; \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z4, Z4, Z4; \
	VPXORD Z5, Z5, Z5; \
	VPXORD Z6, Z6, Z6; \
	VPXORD Z7, Z7, Z7; \
	VPXORD Z8, Z8, Z8; \
	VPXORD Z9, Z9, Z9; \
	VPXORD Z10, Z10, Z10; \
	VPXORD Z11, Z11, Z11; \
	VPXORD Z12, Z12, Z12; \
	VPXORD Z13, Z13, Z13; \
	VPXORD Z14, Z14, Z14; \
	VPXORD Z15, Z15, Z15; \
	VPXORD Z16, Z16, Z16; \
	VPXORD Z17, Z17, Z17; \
	VPXORD Z18, Z18, Z18; \
	VPXORD Z19, Z19, Z19; \
	VPXORD Z20, Z20, Z20; \
	VPXORD Z21, Z21, Z21; \
	VPXORD Z22, Z22, Z22; \
	VPXORD Z23, Z23, Z23
// DOT3X8_WIDEN: a line of each of the three weight rows into even (Z25, Z27, Z29) and odd
// (Z24, Z26, Z28) float32 halves; DOT3X8_FMAS: each of the eight activation rows' even and
// odd vectors against all three (Z0-Z7 row 0, Z8-Z15 row 1, Z16-Z23 row 2).
#define DOT3X8_WIDEN \
	VMOVDQU32 (SI), Z24; \
	VMOVDQU32 (R8), Z26; \
	VMOVDQU32 (R12), Z28; \
	VPSLLD    $16, Z24, Z25; \
	VPANDD    Z31, Z24, Z24; \
	VPSLLD    $16, Z26, Z27; \
	VPANDD    Z31, Z26, Z26; \
	VPSLLD    $16, Z28, Z29; \
	VPANDD    Z31, Z28, Z28
#define DOT3X8_FMAS \
	VMOVUPS     (DI), Z30; \
	VFMADD231PS Z25, Z30, Z0; \
	VFMADD231PS Z27, Z30, Z8; \
	VFMADD231PS Z29, Z30, Z16; \
	VMOVUPS     64(DI), Z30; \
	VFMADD231PS Z24, Z30, Z0; \
	VFMADD231PS Z26, Z30, Z8; \
	VFMADD231PS Z28, Z30, Z16; \
	VMOVUPS     (DI)(R9*1), Z30; \
	VFMADD231PS Z25, Z30, Z1; \
	VFMADD231PS Z27, Z30, Z9; \
	VFMADD231PS Z29, Z30, Z17; \
	VMOVUPS     64(DI)(R9*1), Z30; \
	VFMADD231PS Z24, Z30, Z1; \
	VFMADD231PS Z26, Z30, Z9; \
	VFMADD231PS Z28, Z30, Z17; \
	VMOVUPS     (DI)(R9*2), Z30; \
	VFMADD231PS Z25, Z30, Z2; \
	VFMADD231PS Z27, Z30, Z10; \
	VFMADD231PS Z29, Z30, Z18; \
	VMOVUPS     64(DI)(R9*2), Z30; \
	VFMADD231PS Z24, Z30, Z2; \
	VFMADD231PS Z26, Z30, Z10; \
	VFMADD231PS Z28, Z30, Z18; \
	VMOVUPS     (DI)(R10*1), Z30; \
	VFMADD231PS Z25, Z30, Z3; \
	VFMADD231PS Z27, Z30, Z11; \
	VFMADD231PS Z29, Z30, Z19; \
	VMOVUPS     64(DI)(R10*1), Z30; \
	VFMADD231PS Z24, Z30, Z3; \
	VFMADD231PS Z26, Z30, Z11; \
	VFMADD231PS Z28, Z30, Z19; \
	VMOVUPS     (R11), Z30; \
	VFMADD231PS Z25, Z30, Z4; \
	VFMADD231PS Z27, Z30, Z12; \
	VFMADD231PS Z29, Z30, Z20; \
	VMOVUPS     64(R11), Z30; \
	VFMADD231PS Z24, Z30, Z4; \
	VFMADD231PS Z26, Z30, Z12; \
	VFMADD231PS Z28, Z30, Z20; \
	VMOVUPS     (R11)(R9*1), Z30; \
	VFMADD231PS Z25, Z30, Z5; \
	VFMADD231PS Z27, Z30, Z13; \
	VFMADD231PS Z29, Z30, Z21; \
	VMOVUPS     64(R11)(R9*1), Z30; \
	VFMADD231PS Z24, Z30, Z5; \
	VFMADD231PS Z26, Z30, Z13; \
	VFMADD231PS Z28, Z30, Z21; \
	VMOVUPS     (R11)(R9*2), Z30; \
	VFMADD231PS Z25, Z30, Z6; \
	VFMADD231PS Z27, Z30, Z14; \
	VFMADD231PS Z29, Z30, Z22; \
	VMOVUPS     64(R11)(R9*2), Z30; \
	VFMADD231PS Z24, Z30, Z6; \
	VFMADD231PS Z26, Z30, Z14; \
	VFMADD231PS Z28, Z30, Z22; \
	VMOVUPS     (R11)(R10*1), Z30; \
	VFMADD231PS Z25, Z30, Z7; \
	VFMADD231PS Z27, Z30, Z15; \
	VFMADD231PS Z29, Z30, Z23; \
	VMOVUPS     64(R11)(R10*1), Z30; \
	VFMADD231PS Z24, Z30, Z7; \
	VFMADD231PS Z26, Z30, Z15; \
	VFMADD231PS Z28, Z30, Z23
#define DOT3X8_ADVANCE \
	ADDQ $64, SI; \
	ADDQ $64, R8; \
	ADDQ $64, R12; \
	ADDQ $128, DI; \
	ADDQ $128, R11; \
	SUBQ $32, CX
#define DOT3X8_FOLD \
	FOLD_HALVES(Z0, Z1, Z24, Z25); \
	FOLD_HALVES(Z2, Z3, Z24, Z25); \
	FOLD_HALVES(Z4, Z5, Z24, Z25); \
	FOLD_HALVES(Z6, Z7, Z24, Z25); \
	FOLD_HALVES(Z8, Z9, Z24, Z25); \
	FOLD_HALVES(Z10, Z11, Z24, Z25); \
	FOLD_HALVES(Z12, Z13, Z24, Z25); \
	FOLD_HALVES(Z14, Z15, Z24, Z25); \
	FOLD_HALVES(Z16, Z17, Z24, Z25); \
	FOLD_HALVES(Z18, Z19, Z24, Z25); \
	FOLD_HALVES(Z20, Z21, Z24, Z25); \
	FOLD_HALVES(Z22, Z23, Z24, Z25); \
	FOLD_LANES(Z0, Z2, Z24, Z25); \
	FOLD_LANES(Z4, Z6, Z24, Z25); \
	FOLD_LANES(Z8, Z10, Z24, Z25); \
	FOLD_LANES(Z12, Z14, Z24, Z25); \
	FOLD_LANES(Z16, Z18, Z24, Z25); \
	FOLD_LANES(Z20, Z22, Z24, Z25); \
	FOLD_PAIRS(Z0, Z4, Z24, Z25); \
	FOLD_PAIRS(Z8, Z12, Z24, Z25); \
	FOLD_PAIRS(Z16, Z20, Z24, Z25); \
	FOLD_FLOATS(Z0, Z8, Z24, Z25); \
	FOLD_FLOATS(Z16, Z16, Z24, Z25); \
	VMOVDQU32  pairPerm<>(SB), Z30; \
	VPERMPS    Z0, Z30, Z0; \
	VPERMPS    Z16, Z30, Z16; \
	VMOVUPS    Z0, (DX); \
	VMOVUPS    Y16, 64(DX)


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

// Indices for VPERMT2PS over two vectors (x[0:16], x[16:32]): the even elements of the 32,
// then the odd ones.
DATA evenOddIdx<>+0(SB)/4, $0
DATA evenOddIdx<>+4(SB)/4, $2
DATA evenOddIdx<>+8(SB)/4, $4
DATA evenOddIdx<>+12(SB)/4, $6
DATA evenOddIdx<>+16(SB)/4, $8
DATA evenOddIdx<>+20(SB)/4, $10
DATA evenOddIdx<>+24(SB)/4, $12
DATA evenOddIdx<>+28(SB)/4, $14
DATA evenOddIdx<>+32(SB)/4, $16
DATA evenOddIdx<>+36(SB)/4, $18
DATA evenOddIdx<>+40(SB)/4, $20
DATA evenOddIdx<>+44(SB)/4, $22
DATA evenOddIdx<>+48(SB)/4, $24
DATA evenOddIdx<>+52(SB)/4, $26
DATA evenOddIdx<>+56(SB)/4, $28
DATA evenOddIdx<>+60(SB)/4, $30
DATA evenOddIdx<>+64(SB)/4, $1
DATA evenOddIdx<>+68(SB)/4, $3
DATA evenOddIdx<>+72(SB)/4, $5
DATA evenOddIdx<>+76(SB)/4, $7
DATA evenOddIdx<>+80(SB)/4, $9
DATA evenOddIdx<>+84(SB)/4, $11
DATA evenOddIdx<>+88(SB)/4, $13
DATA evenOddIdx<>+92(SB)/4, $15
DATA evenOddIdx<>+96(SB)/4, $17
DATA evenOddIdx<>+100(SB)/4, $19
DATA evenOddIdx<>+104(SB)/4, $21
DATA evenOddIdx<>+108(SB)/4, $23
DATA evenOddIdx<>+112(SB)/4, $25
DATA evenOddIdx<>+116(SB)/4, $27
DATA evenOddIdx<>+120(SB)/4, $29
DATA evenOddIdx<>+124(SB)/4, $31
GLOBL evenOddIdx<>(SB), RODATA|NOPTR, $128

// func packEvenOdd32AVX512(dst, x *float32, n int)
// packEvenOdd(dst, x, 32) for n floats (a positive multiple of 32): each block of 32 as its 16
// even-indexed elements, then its 16 odd ones, two permutes a block.
TEXT ·packEvenOdd32AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VMOVDQU32 evenOddIdx<>+0(SB), Z6
	VMOVDQU32 evenOddIdx<>+64(SB), Z7

pack:
	VMOVUPS   (SI), Z0
	VMOVUPS   64(SI), Z1
	VMOVAPS   Z0, Z2
	VPERMT2PS Z1, Z6, Z0          // even
	VPERMT2PS Z1, Z7, Z2          // odd
	VMOVUPS   Z0, (DI)
	VMOVUPS   Z2, 64(DI)
	ADDQ      $128, SI
	ADDQ      $128, DI
	SUBQ      $32, CX
	JNZ       pack
	VZEROUPPER
	RET

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
	FOLD_HALVES(Z0, Z1, Z16, Z17)
	FOLD_HALVES(Z2, Z3, Z16, Z17)
	FOLD_HALVES(Z4, Z5, Z16, Z17)
	FOLD_HALVES(Z6, Z7, Z16, Z17)
	FOLD_HALVES(Z8, Z9, Z16, Z17)
	FOLD_HALVES(Z10, Z11, Z16, Z17)
	FOLD_HALVES(Z12, Z13, Z16, Z17)
	FOLD_HALVES(Z14, Z15, Z16, Z17)
	FOLD_LANES(Z0, Z2, Z16, Z17)
	FOLD_LANES(Z4, Z6, Z16, Z17)
	FOLD_LANES(Z8, Z10, Z16, Z17)
	FOLD_LANES(Z12, Z14, Z16, Z17)
	FOLD_PAIRS(Z0, Z4, Z16, Z17)
	FOLD_PAIRS(Z8, Z12, Z16, Z17)
	FOLD_FLOATS(Z0, Z8, Z16, Z17)
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
	MOVQ x+16(FP), DI
	MOVQ xstride+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
	DOT2X4_SETUP
loop:
	DOT2X4_BODY
	DOT2X4_ADVANCE
	JNZ  loop
	DOT2X4_FOLD
	VZEROUPPER
	RET

// func dot2x4NextBF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[8]float32, pf *uint16, pfstride int)
// dot2x4BF16AVX512 that prefetches the next call's two rows as it reads its own: each
// iteration asks for one line of the rows at pf and pf+pfstride (bytes), pf then advancing
// a line. For a batch of one group of four rows, which meets each weight row once.
TEXT ·dot2x4NextBF16AVX512(SB), NOSPLIT, $0-64
	MOVQ w+0(FP), SI
	MOVQ wstride+8(FP), R8
	MOVQ x+16(FP), DI
	MOVQ xstride+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
	MOVQ pf+48(FP), R13
	MOVQ pfstride+56(FP), BX
	DOT2X4_SETUP
next:
	DOT2X4_BODY
	PREFETCHT0 (R13)
	PREFETCHT0 (R13)(BX*1)
	ADDQ $64, R13
	DOT2X4_ADVANCE
	JNZ  next
	DOT2X4_FOLD
	VZEROUPPER
	RET

// func dot3x8BF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[24]float32, pf *uint16, pfstep int)
// dot2x8BF16AVX512 for three weight rows: 24 accumulators, the three rows' widened halves in
// six registers, one activation vector at a time feeding three FMAs. Per 32 columns, 3 weight
// loads, 6 widening instructions and 16 activation loads feed 48 FMAs; loads are what this
// kernel family waits on (on Ice Lake an FMA with a 64-byte load beside it costs about half
// again one without), and this is 0.40 loads an FMA against the two-row kernel's 0.56: 10 %
// faster on rows held in L1. out gets row 0's eight sums, then row 1's, then row 2's. Each
// iteration also asks for the line at pf and the one at pf+pfstep (pfstep 0 or 64), pf then
// advancing past them: the weights' prefetch spread evenly among the FMAs, where a burst of
// prefetches before the call stalled the core.
TEXT ·dot3x8BF16AVX512(SB), NOSPLIT, $0-64
	MOVQ w+0(FP), SI
	MOVQ wstride+8(FP), R8
	MOVQ x+16(FP), DI
	MOVQ xstride+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
	MOVQ pf+48(FP), R13
	MOVQ pfstep+56(FP), BX
	DOT3X8_SETUP
loop:
	DOT3X8_WIDEN
	PREFETCHT0 (R13)
	PREFETCHT0 (R13)(BX*1)
	DOT3X8_FMAS
	LEAQ 64(R13)(BX*1), R13
	DOT3X8_ADVANCE
	JNZ  loop
	DOT3X8_FOLD
	VZEROUPPER
	RET

// func dot3x8NextBF16AVX512(w *uint16, wstride int, x *float32, xstride int, n int, out *[24]float32, pf *uint16, pfstride int)
// dot3x8BF16AVX512 that prefetches the next call's three rows as it reads its own, as the
// GEMV does: each iteration asks for one line of each of the rows at pf, pf+pfstride and
// pf+2·pfstride (bytes), pf then advancing a line. For a batch of one group of eight rows,
// where the weights go by once and no chunk is shared among groups.
TEXT ·dot3x8NextBF16AVX512(SB), NOSPLIT, $0-64
	MOVQ w+0(FP), SI
	MOVQ wstride+8(FP), R8
	MOVQ x+16(FP), DI
	MOVQ xstride+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
	MOVQ pf+48(FP), R13
	MOVQ pfstride+56(FP), BX
	DOT3X8_SETUP
next:
	DOT3X8_WIDEN
	PREFETCHT0 (R13)
	PREFETCHT0 (R13)(BX*1)
	PREFETCHT0 (R13)(BX*2)
	DOT3X8_FMAS
	ADDQ $64, R13
	DOT3X8_ADVANCE
	JNZ  next
	DOT3X8_FOLD
	VZEROUPPER
	RET
