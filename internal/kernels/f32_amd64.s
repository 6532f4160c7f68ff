#include "textflag.h"
#include "hsum_amd64.h"

// func dotF32AVX2(a, b *float32, n int) float32
// Σ a[i]·b[i] with four 8-lane FMA chains; n is a multiple of 32.
TEXT ·dotF32AVX2(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

dloop:
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         dloop

	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+24(FP)
	RET

// func axpyF32AVX2(alpha float32, x, y *float32, n int)
// y[i] += alpha·x[i]; n is a multiple of 32.
TEXT ·axpyF32AVX2(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ         x+8(FP), SI
	MOVQ         y+16(FP), DI
	MOVQ         n+24(FP), CX

aloop:
	VMOVUPS     (DI), Y4
	VMOVUPS     32(DI), Y5
	VMOVUPS     64(DI), Y6
	VMOVUPS     96(DI), Y7
	VFMADD231PS (SI), Y0, Y4
	VFMADD231PS 32(SI), Y0, Y5
	VFMADD231PS 64(SI), Y0, Y6
	VFMADD231PS 96(SI), Y0, Y7
	VMOVUPS     Y4, (DI)
	VMOVUPS     Y5, 32(DI)
	VMOVUPS     Y6, 64(DI)
	VMOVUPS     Y7, 96(DI)
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JNZ         aloop
	VZEROUPPER
	RET

// func dotsF32AVX2(q, k *float32, stride, n, hd int, out *float32)
// out[s] = Σ_d q[d]·k[s·stride+d] for s < n: attention scores of one query against n keys
// stride floats apart; hd is a positive multiple of 8. Eight keys go together, one
// accumulator each, so q is loaded once per eight and the horizontal sums are one tree for
// all eight; the rest go one by one.
TEXT ·dotsF32AVX2(SB), NOSPLIT, $0-48
	MOVQ q+0(FP), SI
	MOVQ k+8(FP), DI
	MOVQ stride+16(FP), R8
	SHLQ $2, R8
	MOVQ n+24(FP), CX
	MOVQ hd+32(FP), R9
	MOVQ out+40(FP), DX

ds8rows:
	CMPQ CX, $8
	JLT  dsone
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ   AX, AX // byte offset within the head

ds8chunk:
	VMOVUPS     (SI)(AX*1), Y8
	MOVQ        DI, R10
	VFMADD231PS (R10)(AX*1), Y8, Y0
	ADDQ        R8, R10
	VFMADD231PS (R10)(AX*1), Y8, Y1
	ADDQ        R8, R10
	VFMADD231PS (R10)(AX*1), Y8, Y2
	ADDQ        R8, R10
	VFMADD231PS (R10)(AX*1), Y8, Y3
	ADDQ        R8, R10
	VFMADD231PS (R10)(AX*1), Y8, Y4
	ADDQ        R8, R10
	VFMADD231PS (R10)(AX*1), Y8, Y5
	ADDQ        R8, R10
	VFMADD231PS (R10)(AX*1), Y8, Y6
	ADDQ        R8, R10
	VFMADD231PS (R10)(AX*1), Y8, Y7
	ADDQ        $32, AX
	MOVQ        R9, BX
	SHLQ        $2, BX
	CMPQ        AX, BX
	JLT         ds8chunk

	// eight sums from eight accumulators: hadd pairs, hadd again, then fold the 128-bit halves
	HSUM8
	VMOVUPS    Y1, (DX)
	ADDQ       $32, DX
	LEAQ       (DI)(R8*8), DI
	SUBQ       $8, CX
	JMP        ds8rows

dsone:
	TESTQ CX, CX
	JEQ   dsdone

dsrow:
	VXORPS Y0, Y0, Y0
	XORQ   AX, AX
	MOVQ   R9, BX
	SHLQ   $2, BX

dsrowchunk:
	VMOVUPS     (SI)(AX*1), Y4
	VFMADD231PS (DI)(AX*1), Y4, Y0
	ADDQ        $32, AX
	CMPQ        AX, BX
	JLT         dsrowchunk
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	MOVSS        X0, (DX)
	ADDQ         $4, DX
	ADDQ         R8, DI
	DECQ         CX
	JNZ          dsrow

dsdone:
	VZEROUPPER
	RET

// func axpysF32AVX2(p, v *float32, stride, n, hd int, o *float32)
// o[d] += Σ_s p[s]·v[s·stride+d]: attention's weighted sum of n values stride floats apart.
// 32 lanes of o stay in four registers (four independent FMA chains) across all s, then 8 at
// a time for the rest; hd is a positive multiple of 8.
TEXT ·axpysF32AVX2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ v+8(FP), DI
	MOVQ stride+16(FP), R8
	SHLQ $2, R8
	MOVQ n+24(FP), CX
	MOVQ hd+32(FP), R9
	SHLQ $2, R9 // bytes per head
	MOVQ o+40(FP), DX
	TESTQ CX, CX
	JEQ  axdone
	XORQ AX, AX // byte offset within the head

ax32:
	MOVQ R9, BX
	SUBQ AX, BX
	CMPQ BX, $128
	JLT  ax8
	VMOVUPS (DX)(AX*1), Y0
	VMOVUPS 32(DX)(AX*1), Y1
	VMOVUPS 64(DX)(AX*1), Y2
	VMOVUPS 96(DX)(AX*1), Y3
	MOVQ    DI, R10
	MOVQ    SI, R11
	MOVQ    CX, BX

ax32row:
	VBROADCASTSS (R11), Y4
	VFMADD231PS  (R10)(AX*1), Y4, Y0
	VFMADD231PS  32(R10)(AX*1), Y4, Y1
	VFMADD231PS  64(R10)(AX*1), Y4, Y2
	VFMADD231PS  96(R10)(AX*1), Y4, Y3
	ADDQ         R8, R10
	ADDQ         $4, R11
	DECQ         BX
	JNZ          ax32row
	VMOVUPS      Y0, (DX)(AX*1)
	VMOVUPS      Y1, 32(DX)(AX*1)
	VMOVUPS      Y2, 64(DX)(AX*1)
	VMOVUPS      Y3, 96(DX)(AX*1)
	ADDQ         $128, AX
	JMP          ax32

ax8:
	CMPQ AX, R9
	JGE  axdone
	VMOVUPS (DX)(AX*1), Y0
	MOVQ    DI, R10
	MOVQ    SI, R11
	MOVQ    CX, BX

ax8row:
	VBROADCASTSS (R11), Y4
	VFMADD231PS  (R10)(AX*1), Y4, Y0
	ADDQ         R8, R10
	ADDQ         $4, R11
	DECQ         BX
	JNZ          ax8row
	VMOVUPS      Y0, (DX)(AX*1)
	ADDQ         $32, AX
	JMP          ax8

axdone:
	VZEROUPPER
	RET

// func scaleMulF32AVX2(out, x, w *float32, r float32, n int)
// out[i] = (x[i]·r)·w[i]; n is a positive multiple of 16.
TEXT ·scaleMulF32AVX2(SB), NOSPLIT, $0-40
	MOVQ         out+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         w+16(FP), DX
	VBROADCASTSS r+24(FP), Y0
	MOVQ         n+32(FP), CX

smloop:
	VMULPS  (SI), Y0, Y1
	VMULPS  32(SI), Y0, Y2
	VMULPS  (DX), Y1, Y1
	VMULPS  32(DX), Y2, Y2
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	SUBQ    $16, CX
	JNZ     smloop
	VZEROUPPER
	RET

// func rotateHalfF32AVX2(x, cos, sin *float32, half, n int)
// For i < n (a positive multiple of 8): a, b = x[i], x[i+half];
// x[i] = a·cos[i] − b·sin[i]; x[i+half] = b·cos[i+half] + a·sin[i+half].
TEXT ·rotateHalfF32AVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), DI
	MOVQ cos+8(FP), SI
	MOVQ sin+16(FP), DX
	MOVQ half+24(FP), AX
	MOVQ n+32(FP), CX
	SHLQ $2, AX

rhloop:
	VMOVUPS (DI), Y0
	VMOVUPS (DI)(AX*1), Y1
	VMULPS  (SI), Y0, Y2
	VMULPS  (DX), Y1, Y3
	VSUBPS  Y3, Y2, Y2
	VMULPS  (SI)(AX*1), Y1, Y4
	VMULPS  (DX)(AX*1), Y0, Y5
	VADDPS  Y5, Y4, Y4
	VMOVUPS Y2, (DI)
	VMOVUPS Y4, (DI)(AX*1)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, DX
	SUBQ    $8, CX
	JNZ     rhloop
	VZEROUPPER
	RET

// func addF32AVX2(y, x *float32, n int)
// y[i] += x[i]; n is a positive multiple of 32.
TEXT ·addF32AVX2(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX

adloop:
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VADDPS  (SI), Y0, Y0
	VADDPS  32(SI), Y1, Y1
	VADDPS  64(SI), Y2, Y2
	VADDPS  96(SI), Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, DI
	ADDQ    $128, SI
	SUBQ    $32, CX
	JNZ     adloop
	VZEROUPPER
	RET

// func blockMax64AVX2(y *float32, blocks int, out *float32)
// out[b] = the largest of y[64b : 64b+64] for b < blocks (finite values: VMAXPS passes a NaN
// through only from its second operand).
TEXT ·blockMax64AVX2(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), SI
	MOVQ blocks+8(FP), CX
	MOVQ out+16(FP), DI

bmloop:
	VMOVUPS      (SI), Y0
	VMAXPS       32(SI), Y0, Y0
	VMOVUPS      64(SI), Y1
	VMAXPS       96(SI), Y1, Y1
	VMOVUPS      128(SI), Y2
	VMAXPS       160(SI), Y2, Y2
	VMOVUPS      192(SI), Y3
	VMAXPS       224(SI), Y3, Y3
	HMAX4
	VMOVSS       X0, (DI)
	ADDQ         $256, SI
	ADDQ         $4, DI
	DECQ         CX
	JNZ          bmloop
	VZEROUPPER
	RET

// func maxNumF32AVX2(x *float32, n int) float32
// The largest of x[0:n] that is a number (-Inf when none is); n is a positive multiple of 32.
// Each VMAXPS takes x first, so a NaN in x gives the running maximum back.
TEXT ·maxNumF32AVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	MOVL         $0xff800000, AX
	MOVL         AX, X0
	VBROADCASTSS X0, Y0
	VMOVAPS      Y0, Y1
	VMOVAPS      Y0, Y2
	VMOVAPS      Y0, Y3

mxloop:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VMAXPS  Y0, Y4, Y0
	VMAXPS  Y1, Y5, Y1
	VMAXPS  Y2, Y6, Y2
	VMAXPS  Y3, Y7, Y3
	ADDQ    $128, SI
	SUBQ    $32, CX
	JNZ     mxloop

	HMAX4
	VZEROUPPER
	MOVSS        X0, ret+16(FP)
	RET

// func firstEqualAVX2(x *float32, n int, v float32) int
// The first i < n with x[i] == v, or -1; n is a positive multiple of 8.
TEXT ·firstEqualAVX2(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS v+16(FP), Y0
	XORQ         DX, DX

feloop:
	VCMPPS    $0, (SI)(DX*4), Y0, Y1
	VMOVMSKPS Y1, AX
	TESTL     AX, AX
	JNZ       fefound
	ADDQ      $8, DX
	CMPQ      DX, CX
	JLT       feloop
	VZEROUPPER
	MOVQ      $-1, ret+24(FP)
	RET

fefound:
	BSFL       AX, AX
	ADDQ       AX, DX
	VZEROUPPER
	MOVQ       DX, ret+24(FP)
	RET
