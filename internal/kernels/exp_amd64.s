#include "textflag.h"

// Constants of the Cephes expf approximation (range reduction by ln 2, a degree-5
// polynomial), one float32 each, broadcast at run time.
DATA expconst<>+0(SB)/4, $0x42b0c0a5 // exp_hi 88.3762626647949
DATA expconst<>+4(SB)/4, $0xc2b0c0a5 // exp_lo -88.3762626647949
DATA expconst<>+8(SB)/4, $0x3fb8aa3b // log2e 1.4426950408889634
DATA expconst<>+12(SB)/4, $0x3f318000 // c1 0.693359375
DATA expconst<>+16(SB)/4, $0xb95e8083 // c2 -0.00021219444
DATA expconst<>+20(SB)/4, $0x39506967 // p0 0.000198756915
DATA expconst<>+24(SB)/4, $0x3ab743ce // p1 0.0013981999507
DATA expconst<>+28(SB)/4, $0x3c088908 // p2 0.0083334519073
DATA expconst<>+32(SB)/4, $0x3d2aa9c1 // p3 0.041665795894
DATA expconst<>+36(SB)/4, $0x3e2aaaaa // p4 0.16666665459
DATA expconst<>+40(SB)/4, $0x3f000000 // p5 0.50000001201
DATA expconst<>+44(SB)/4, $0x3f800000 // one 1.0
DATA expconst<>+48(SB)/4, $0x3f000000 // half 0.5
GLOBL expconst<>(SB), RODATA|NOPTR, $52

// EXP_CONSTS loads the exp constants: AX points at expconst, Y10-Y15 hold hi, lo, log2e, c1,
// c2 and 1, Y9 the exponent bias. Clobbers BX.
#define EXP_CONSTS \
	LEAQ         expconst<>(SB), AX; \
	VBROADCASTSS 0(AX), Y10; \
	VBROADCASTSS 4(AX), Y11; \
	VBROADCASTSS 8(AX), Y12; \
	VBROADCASTSS 12(AX), Y13; \
	VBROADCASTSS 16(AX), Y14; \
	VBROADCASTSS 44(AX), Y15; \
	MOVL         $127, BX; \
	MOVQ         BX, X9; \
	VPBROADCASTD X9, Y9

// EXP_Y0_TO_Y2 sets Y2 = exp(Y0) for eight floats, to about 2 ulp: x clamped to ±88.38,
// k = round(x·log2e), r = x - k·c1 - k·c2, exp(r) from a degree-5 polynomial
// (y = ((((p0·r + p1)·r + p2)·r + p3)·r + p4)·r + p5, then y·r² + r + 1), times 2^k put
// into the exponent bits. Needs EXP_CONSTS; clobbers Y0, Y1, Y3-Y5.
#define EXP_Y0_TO_Y2 \
	VMINPS       Y10, Y0, Y0; \
	VMAXPS       Y11, Y0, Y0; \
	VMULPS       Y12, Y0, Y1; \
	VROUNDPS     $0, Y1, Y1; \
	VFNMADD231PS Y13, Y1, Y0; \
	VFNMADD231PS Y14, Y1, Y0; \
	VBROADCASTSS 20(AX), Y2; \
	VBROADCASTSS 24(AX), Y3; \
	VFMADD213PS  Y3, Y0, Y2; \
	VBROADCASTSS 28(AX), Y3; \
	VFMADD213PS  Y3, Y0, Y2; \
	VBROADCASTSS 32(AX), Y3; \
	VFMADD213PS  Y3, Y0, Y2; \
	VBROADCASTSS 36(AX), Y3; \
	VFMADD213PS  Y3, Y0, Y2; \
	VBROADCASTSS 40(AX), Y3; \
	VFMADD213PS  Y3, Y0, Y2; \
	VMULPS       Y0, Y0, Y4; \
	VADDPS       Y15, Y0, Y5; \
	VFMADD213PS  Y5, Y4, Y2; \
	VCVTPS2DQ    Y1, Y1; \
	VPADDD       Y9, Y1, Y1; \
	VPSLLD       $23, Y1, Y1; \
	VMULPS       Y1, Y2, Y2

// func expF32AVX2(dst, src *float32, n int)
// dst[i] = exp(src[i]) for n a positive multiple of 8, to about 2 ulp: x = k·ln2 + r with
// |r| ≤ ln2/2, exp(r) from a degree-5 polynomial, 2^k put into the exponent bits.
TEXT ·expF32AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	EXP_CONSTS

eloop:
	VMOVUPS     (SI), Y0
	EXP_Y0_TO_Y2
	VMOVUPS      Y2, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          eloop
	VZEROUPPER
	RET

// func siluMulAVX2(gate, u *float32, n int)
// gate[i] = gate[i] / (1 + exp(-gate[i])) · u[i] for n a positive multiple of 8: expF32AVX2's
// exp inline, so the gate is read and written once.
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-24
	MOVQ gate+0(FP), DI
	MOVQ u+8(FP), SI
	MOVQ n+16(FP), CX
	EXP_CONSTS
	VXORPS       Y8, Y8, Y8  // zero

sloop:
	VMOVUPS     (DI), Y6
	VSUBPS      Y6, Y8, Y0   // x = -g
	EXP_Y0_TO_Y2
	VADDPS       Y15, Y2, Y2 // 1 + exp(-g)
	VDIVPS       Y2, Y6, Y6  // g / (1 + exp(-g))
	VMULPS       (SI), Y6, Y6
	VMOVUPS      Y6, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          sloop
	VZEROUPPER
	RET

// func expSubScaleSumAVX2(x *float32, n int, m, scale float32) float32
// x[i] = exp((x[i] - m)·scale) in place, returning Σ x[i]: softmax's middle pass (expF32AVX2's
// exp inline); n is a positive multiple of 8.
TEXT ·expSubScaleSumAVX2(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Y6
	VBROADCASTSS scale+20(FP), Y7
	EXP_CONSTS
	VXORPS       Y8, Y8, Y8  // the sum

xloop:
	VMOVUPS     (DI), Y0
	VSUBPS      Y6, Y0, Y0
	VMULPS      Y7, Y0, Y0
	EXP_Y0_TO_Y2
	VMOVUPS      Y2, (DI)
	VADDPS       Y2, Y8, Y8
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          xloop
	VEXTRACTF128 $1, Y8, X0
	VADDPS       X0, X8, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	MOVSS        X0, ret+24(FP)
	VZEROUPPER
	RET

// func maxF32AVX2(x *float32, n int) float32
// max over x[:n]; n is a positive multiple of 8.
TEXT ·maxF32AVX2(SB), NOSPLIT, $0-20
	MOVQ    x+0(FP), DI
	MOVQ    n+8(FP), CX
	VMOVUPS (DI), Y0
	ADDQ    $32, DI
	SUBQ    $8, CX
	JZ      mdone

mloop:
	VMAXPS (DI), Y0, Y0
	ADDQ   $32, DI
	SUBQ   $8, CX
	JNZ    mloop

mdone:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4E, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xB1, X0, X1
	VMAXPS       X1, X0, X0
	MOVSS        X0, ret+16(FP)
	VZEROUPPER
	RET

// func scaleF32AVX2(x *float32, n int, a float32)
// x[i] *= a; n is a positive multiple of 8.
TEXT ·scaleF32AVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS a+16(FP), Y1

sloop2:
	VMULPS  (DI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     sloop2
	VZEROUPPER
	RET
