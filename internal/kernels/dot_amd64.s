#include "textflag.h"

// func dotBF16AVX2(w *uint16, x *float32, n int) float32
// Widens bfloat16 to float32 in registers (zero-extend to 32 bits, shift left 16) and
// multiply-adds into four accumulators, 32 elements per iteration (then 16), so the FMA
// latency is hidden. n is a multiple of 16.
TEXT ·dotBF16AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

loop32:
	CMPQ CX, $32
	JL   loop16
	VPMOVZXWD (SI), Y4
	VPMOVZXWD 16(SI), Y5
	VPMOVZXWD 32(SI), Y6
	VPMOVZXWD 48(SI), Y7
	VPSLLD    $16, Y4, Y4
	VPSLLD    $16, Y5, Y5
	VPSLLD    $16, Y6, Y6
	VPSLLD    $16, Y7, Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $64, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  loop32

loop16:
	CMPQ CX, $16
	JL   done
	VPMOVZXWD (SI), Y4
	VPMOVZXWD 16(SI), Y5
	VPSLLD    $16, Y4, Y4
	VPSLLD    $16, Y5, Y5
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  loop16

done:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dot4BF16AVX2(w *uint16, x *float32, stride int, n int, out *[4]float32)
// Four dot products of one bfloat16 row with four float32 rows (x, x+stride, x+2·stride,
// x+3·stride floats apart): each weight is loaded and widened once and used four times.
// Two 8-element chunks per iteration keep eight independent FMA chains in flight (Y0-Y3
// for the first chunk, Y8-Y11 for the second). n is a multiple of 8.
TEXT ·dot4BF16AVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ stride+16(FP), R8
	SHLQ $2, R8
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), DX
	LEAQ (DI)(R8*1), R9
	LEAQ (R9)(R8*1), R10
	LEAQ (R10)(R8*1), R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

loop16:
	CMPQ CX, $16
	JL   loop8
	VPMOVZXWD (SI), Y4
	VPMOVZXWD 16(SI), Y5
	VPSLLD    $16, Y4, Y4
	VPSLLD    $16, Y5, Y5
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS (R9), Y4, Y1
	VFMADD231PS (R10), Y4, Y2
	VFMADD231PS (R11), Y4, Y3
	VFMADD231PS 32(DI), Y5, Y8
	VFMADD231PS 32(R9), Y5, Y9
	VFMADD231PS 32(R10), Y5, Y10
	VFMADD231PS 32(R11), Y5, Y11
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $64, R9
	ADDQ $64, R10
	ADDQ $64, R11
	SUBQ $16, CX
	JMP  loop16

loop8:
	CMPQ CX, $8
	JL   fin
	VPMOVZXWD (SI), Y4
	VPSLLD    $16, Y4, Y4
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS (R9), Y4, Y1
	VFMADD231PS (R10), Y4, Y2
	VFMADD231PS (R11), Y4, Y3
	ADDQ $16, SI
	ADDQ $32, DI
	ADDQ $32, R9
	ADDQ $32, R10
	ADDQ $32, R11
	SUBQ $8, CX
	JMP  loop8

fin:
	VADDPS       Y8, Y0, Y0
	VADDPS       Y9, Y1, Y1
	VADDPS       Y10, Y2, Y2
	VADDPS       Y11, Y3, Y3
	VEXTRACTF128 $1, Y0, X4
	VADDPS       X4, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	MOVSS        X0, 0(DX)
	VEXTRACTF128 $1, Y1, X4
	VADDPS       X4, X1, X1
	VHADDPS      X1, X1, X1
	VHADDPS      X1, X1, X1
	MOVSS        X1, 4(DX)
	VEXTRACTF128 $1, Y2, X4
	VADDPS       X4, X2, X2
	VHADDPS      X2, X2, X2
	VHADDPS      X2, X2, X2
	MOVSS        X2, 8(DX)
	VEXTRACTF128 $1, Y3, X4
	VADDPS       X4, X3, X3
	VHADDPS      X3, X3, X3
	VHADDPS      X3, X3, X3
	MOVSS        X3, 12(DX)
	VZEROUPPER
	RET

// func dot4BF16AVX512(w *uint16, x *float32, stride int, n int, out *[4]float32)
// The AVX-512 form of dot4BF16AVX2: sixteen lanes, two 16-element chunks per iteration, eight
// FMA chains. n is a multiple of 16.
TEXT ·dot4BF16AVX512(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ stride+16(FP), R8
	SHLQ $2, R8
	MOVQ n+24(FP), CX
	MOVQ out+32(FP), DX
	LEAQ (DI)(R8*1), R9
	LEAQ (R9)(R8*1), R10
	LEAQ (R10)(R8*1), R11
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11

z32:
	CMPQ CX, $32
	JL   z16
	VPMOVZXWD (SI), Z4
	VPMOVZXWD 32(SI), Z5
	VPSLLD    $16, Z4, Z4
	VPSLLD    $16, Z5, Z5
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS (R9), Z4, Z1
	VFMADD231PS (R10), Z4, Z2
	VFMADD231PS (R11), Z4, Z3
	VFMADD231PS 64(DI), Z5, Z8
	VFMADD231PS 64(R9), Z5, Z9
	VFMADD231PS 64(R10), Z5, Z10
	VFMADD231PS 64(R11), Z5, Z11
	ADDQ $64, SI
	ADDQ $128, DI
	ADDQ $128, R9
	ADDQ $128, R10
	ADDQ $128, R11
	SUBQ $32, CX
	JMP  z32

z16:
	CMPQ CX, $16
	JL   zfin
	VPMOVZXWD (SI), Z4
	VPSLLD    $16, Z4, Z4
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS (R9), Z4, Z1
	VFMADD231PS (R10), Z4, Z2
	VFMADD231PS (R11), Z4, Z3
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $64, R9
	ADDQ $64, R10
	ADDQ $64, R11
	SUBQ $16, CX
	JMP  z16

zfin:
	VADDPS        Z8, Z0, Z0
	VADDPS        Z9, Z1, Z1
	VADDPS        Z10, Z2, Z2
	VADDPS        Z11, Z3, Z3
	VEXTRACTF64X4 $1, Z0, Y4
	VADDPS        Y4, Y0, Y0
	VEXTRACTF64X4 $1, Z1, Y4
	VADDPS        Y4, Y1, Y1
	VEXTRACTF64X4 $1, Z2, Y4
	VADDPS        Y4, Y2, Y2
	VEXTRACTF64X4 $1, Z3, Y4
	VADDPS        Y4, Y3, Y3
	VEXTRACTF128  $1, Y0, X4
	VADDPS        X4, X0, X0
	VHADDPS       X0, X0, X0
	VHADDPS       X0, X0, X0
	MOVSS         X0, 0(DX)
	VEXTRACTF128  $1, Y1, X4
	VADDPS        X4, X1, X1
	VHADDPS       X1, X1, X1
	VHADDPS       X1, X1, X1
	MOVSS         X1, 4(DX)
	VEXTRACTF128  $1, Y2, X4
	VADDPS        X4, X2, X2
	VHADDPS       X2, X2, X2
	VHADDPS       X2, X2, X2
	MOVSS         X2, 8(DX)
	VEXTRACTF128  $1, Y3, X4
	VADDPS        X4, X3, X3
	VHADDPS       X3, X3, X3
	VHADDPS       X3, X3, X3
	MOVSS         X3, 12(DX)
	VZEROUPPER
	RET

// func dot2x4BF16AVX2(w *uint16, wstride int, x *float32, xstride int, n int, out *[8]float32)
// Eight dot products: two bfloat16 weight rows (w, w+wstride elements) against four float32
// activation rows (x + j·xstride floats), all packed by packEvenOdd in blocks of 16. A load of
// 16 bfloat16 gives both halves as float32 in one instruction each (the even elements shifted
// up, the odd ones masked), and each activation vector feeds both weight rows: per 16 columns,
// 2 weight loads and 8 activation loads feed 16 FMAs, so the FMA pipes, not the caches, set
// the pace. out gets row 0's four sums, then row 1's. n is a multiple of 16.
TEXT ·dot2x4BF16AVX2(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ wstride+8(FP), R8
	SHLQ $1, R8
	LEAQ (SI)(R8*1), R8          // row 1
	MOVQ x+16(FP), DI
	MOVQ xstride+24(FP), R9
	SHLQ $2, R9
	LEAQ (DI)(R9*1), R10
	LEAQ (R10)(R9*1), R11
	LEAQ (R11)(R9*1), R12
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
	MOVL $0xffff0000, AX
	MOVD AX, X15
	VPBROADCASTD X15, Y15        // the odd (high) halves' mask
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7

loop:
	VMOVDQU (SI), Y9
	VMOVDQU (R8), Y11
	VPSLLD  $16, Y9, Y8          // row 0 even
	VPAND   Y15, Y9, Y9          // row 0 odd
	VPSLLD  $16, Y11, Y10        // row 1 even
	VPAND   Y15, Y11, Y11        // row 1 odd
	VMOVUPS (DI), Y12
	VMOVUPS 32(DI), Y13
	VFMADD231PS Y8, Y12, Y0
	VFMADD231PS Y10, Y12, Y4
	VFMADD231PS Y9, Y13, Y0
	VFMADD231PS Y11, Y13, Y4
	VMOVUPS (R10), Y12
	VMOVUPS 32(R10), Y13
	VFMADD231PS Y8, Y12, Y1
	VFMADD231PS Y10, Y12, Y5
	VFMADD231PS Y9, Y13, Y1
	VFMADD231PS Y11, Y13, Y5
	VMOVUPS (R11), Y12
	VMOVUPS 32(R11), Y13
	VFMADD231PS Y8, Y12, Y2
	VFMADD231PS Y10, Y12, Y6
	VFMADD231PS Y9, Y13, Y2
	VFMADD231PS Y11, Y13, Y6
	VMOVUPS (R12), Y12
	VMOVUPS 32(R12), Y13
	VFMADD231PS Y8, Y12, Y3
	VFMADD231PS Y10, Y12, Y7
	VFMADD231PS Y9, Y13, Y3
	VFMADD231PS Y11, Y13, Y7
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $64, DI
	ADDQ $64, R10
	ADDQ $64, R11
	ADDQ $64, R12
	SUBQ $16, CX
	JNZ  loop

	// row 0: Y0-Y3 to four sums; row 1: Y4-Y7
	VHADDPS      Y1, Y0, Y0
	VHADDPS      Y3, Y2, Y2
	VHADDPS      Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVUPS      X0, 0(DX)
	VHADDPS      Y5, Y4, Y4
	VHADDPS      Y7, Y6, Y6
	VHADDPS      Y6, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VADDPS       X5, X4, X4
	VMOVUPS      X4, 16(DX)
	VZEROUPPER
	RET

DATA oddmask<>+0(SB)/8, $0xffff0000ffff0000
DATA oddmask<>+8(SB)/8, $0xffff0000ffff0000
DATA oddmask<>+16(SB)/8, $0xffff0000ffff0000
DATA oddmask<>+24(SB)/8, $0xffff0000ffff0000
GLOBL oddmask<>(SB), RODATA|NOPTR, $32

// DOT3X4_SETUP, _BODY and _FOLD are dot3x4BF16AVX2's: the argument registers loaded (SI the
// weights, R8 their row stride in bytes, DI the activations, R9 and R10 one and three
// activation strides in bytes, CX the columns, DX the output), zeroed accumulators (Y0-Y3 row
// 0, Y4-Y7 row 1, Y8-Y11 row 2), one iteration of 16 columns, and the sums folded into out.
#define DOT3X4_SETUP \
	SHLQ $1, R8; \
	SHLQ $2, R9; \
	LEAQ (R9)(R9*2), R10; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7; \
	VXORPS Y8, Y8, Y8; \
	VXORPS Y9, Y9, Y9; \
	VXORPS Y10, Y10, Y10; \
	VXORPS Y11, Y11, Y11
#define DOT3X4_HALF(XOFF) \
	VMOVUPS XOFF(DI), Y15; \
	VFMADD231PS Y12, Y15, Y0; \
	VFMADD231PS Y13, Y15, Y4; \
	VFMADD231PS Y14, Y15, Y8; \
	VMOVUPS XOFF(DI)(R9*1), Y15; \
	VFMADD231PS Y12, Y15, Y1; \
	VFMADD231PS Y13, Y15, Y5; \
	VFMADD231PS Y14, Y15, Y9; \
	VMOVUPS XOFF(DI)(R9*2), Y15; \
	VFMADD231PS Y12, Y15, Y2; \
	VFMADD231PS Y13, Y15, Y6; \
	VFMADD231PS Y14, Y15, Y10; \
	VMOVUPS XOFF(DI)(R10*1), Y15; \
	VFMADD231PS Y12, Y15, Y3; \
	VFMADD231PS Y13, Y15, Y7; \
	VFMADD231PS Y14, Y15, Y11
#define DOT3X4_BODY \
	VMOVDQU (SI), Y12; \
	VMOVDQU (SI)(R8*1), Y13; \
	VMOVDQU (SI)(R8*2), Y14; \
	VPSLLD  $16, Y12, Y12; \
	VPSLLD  $16, Y13, Y13; \
	VPSLLD  $16, Y14, Y14; \
	DOT3X4_HALF(0); \
	VMOVDQU (SI), Y12; \
	VMOVDQU (SI)(R8*1), Y13; \
	VMOVDQU (SI)(R8*2), Y14; \
	VPAND   oddmask<>(SB), Y12, Y12; \
	VPAND   oddmask<>(SB), Y13, Y13; \
	VPAND   oddmask<>(SB), Y14, Y14; \
	DOT3X4_HALF(32); \
	ADDQ $32, SI; \
	ADDQ $64, DI
#define DOT3X4_FOLD_ROW(A, B, C, D, XA, XB, OFF) \
	VHADDPS      B, A, A; \
	VHADDPS      D, C, C; \
	VHADDPS      C, A, A; \
	VEXTRACTF128 $1, A, XB; \
	VADDPS       XB, XA, XA; \
	VMOVUPS      XA, OFF(DX)
#define DOT3X4_FOLD \
	DOT3X4_FOLD_ROW(Y0, Y1, Y2, Y3, X0, X1, 0); \
	DOT3X4_FOLD_ROW(Y4, Y5, Y6, Y7, X4, X5, 16); \
	DOT3X4_FOLD_ROW(Y8, Y9, Y10, Y11, X8, X9, 32)

// func dot3x4BF16AVX2(w *uint16, wstride int, x *float32, xstride int, n int, out *[12]float32)
// dot2x4BF16AVX2 for three weight rows: twelve accumulators, the three rows' widened halves in
// Y12-Y14 and each activation vector in Y15 on its way to three FMAs. Sixteen registers leave
// none for the odd halves' mask, so it comes from memory, and each weight line is loaded
// twice, once a half: L1 serves both, and per 16 columns 24 FMAs against 17 loads and 6
// widenings keep the FMA pipes the limit where dot2x4's 16 FMAs ran at two thirds of their
// rate. Each accumulator sees the products in dot2x4's order and the sums fold the same way,
// so the two agree bit for bit.
TEXT ·dot3x4BF16AVX2(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), SI
	MOVQ wstride+8(FP), R8
	MOVQ x+16(FP), DI
	MOVQ xstride+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
	DOT3X4_SETUP

loop3x4:
	DOT3X4_BODY
	SUBQ $16, CX
	JNZ  loop3x4
	DOT3X4_FOLD
	VZEROUPPER
	RET

// func dot3x4NextBF16AVX2(w *uint16, wstride int, x *float32, xstride int, n int, out *[12]float32, pf *uint16, pfstride int)
// dot3x4BF16AVX2 that asks for the next call's three rows (pf, pf+pfstride, pf+2·pfstride,
// in bytes) as it reads its own: half a line of each an iteration, at the pace it reads
// them, as the GEMV does. For one group of four rows, which meets each weight row once.
TEXT ·dot3x4NextBF16AVX2(SB), NOSPLIT, $0-64
	MOVQ w+0(FP), SI
	MOVQ wstride+8(FP), R8
	MOVQ x+16(FP), DI
	MOVQ xstride+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), DX
	MOVQ pf+48(FP), R11
	MOVQ pfstride+56(FP), BX
	DOT3X4_SETUP

next3x4:
	PREFETCHT0 (R11)
	PREFETCHT0 (R11)(BX*1)
	PREFETCHT0 (R11)(BX*2)
	ADDQ $32, R11
	DOT3X4_BODY
	SUBQ $16, CX
	JNZ  next3x4
	DOT3X4_FOLD
	VZEROUPPER
	RET
