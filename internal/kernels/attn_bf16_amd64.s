#include "textflag.h"
#include "hsum_amd64.h"

// func dotsBF16AVX2(q *float32, k *uint16, stride, n, hd int, out *float32)
// dotsF32AVX2 over bfloat16 keys: out[s] = Σ_d q[d]·k[s·stride+d], each key widened to float32
// in registers (a shift), so the cache is read at half the bytes. AX walks the keys (2 bytes
// an element) and, scaled by 2, the query.
TEXT ·dotsBF16AVX2(SB), NOSPLIT, $0-48
	MOVQ q+0(FP), SI
	MOVQ k+8(FP), DI
	MOVQ stride+16(FP), R8
	SHLQ $1, R8
	MOVQ n+24(FP), CX
	MOVQ hd+32(FP), BX
	SHLQ $1, BX // key bytes per head
	MOVQ out+40(FP), DX

bd8rows:
	CMPQ CX, $8
	JLT  bdone
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ   AX, AX

bd8chunk:
	VMOVUPS     (SI)(AX*2), Y8
	MOVQ        DI, R10
	VPMOVZXWD   (R10)(AX*1), Y9
	VPSLLD      $16, Y9, Y9
	VFMADD231PS Y9, Y8, Y0
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y10
	VPSLLD      $16, Y10, Y10
	VFMADD231PS Y10, Y8, Y1
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y11
	VPSLLD      $16, Y11, Y11
	VFMADD231PS Y11, Y8, Y2
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y12
	VPSLLD      $16, Y12, Y12
	VFMADD231PS Y12, Y8, Y3
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y9
	VPSLLD      $16, Y9, Y9
	VFMADD231PS Y9, Y8, Y4
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y10
	VPSLLD      $16, Y10, Y10
	VFMADD231PS Y10, Y8, Y5
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y11
	VPSLLD      $16, Y11, Y11
	VFMADD231PS Y11, Y8, Y6
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y12
	VPSLLD      $16, Y12, Y12
	VFMADD231PS Y12, Y8, Y7
	ADDQ        $16, AX
	CMPQ        AX, BX
	JLT         bd8chunk

	// as dotsF32AVX2: hadd pairs, hadd again, fold the 128-bit halves
	HSUM8
	VMOVUPS    Y1, (DX)
	ADDQ       $32, DX
	LEAQ       (DI)(R8*8), DI
	SUBQ       $8, CX
	JMP        bd8rows

bdone:
	TESTQ CX, CX
	JEQ   bddone

bdrow:
	VXORPS Y0, Y0, Y0
	XORQ   AX, AX

bdrowchunk:
	VMOVUPS     (SI)(AX*2), Y4
	VPMOVZXWD   (DI)(AX*1), Y5
	VPSLLD      $16, Y5, Y5
	VFMADD231PS Y5, Y4, Y0
	ADDQ        $16, AX
	CMPQ        AX, BX
	JLT         bdrowchunk
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	MOVSS        X0, (DX)
	ADDQ         $4, DX
	ADDQ         R8, DI
	DECQ         CX
	JNZ          bdrow

bddone:
	VZEROUPPER
	RET

// func axpysBF16AVX2(p *float32, v *uint16, stride, n, hd int, o *float32)
// axpysF32AVX2 over bfloat16 values: o[d] += Σ_s p[s]·v[s·stride+d]. AX walks the values (2
// bytes an element) and, scaled by 2, o.
TEXT ·axpysBF16AVX2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ v+8(FP), DI
	MOVQ stride+16(FP), R8
	SHLQ $1, R8
	MOVQ n+24(FP), CX
	MOVQ hd+32(FP), R9
	SHLQ $1, R9 // value bytes per head
	MOVQ o+40(FP), DX
	TESTQ CX, CX
	JEQ  bxdone
	XORQ AX, AX

bx32:
	MOVQ R9, BX
	SUBQ AX, BX
	CMPQ BX, $64
	JLT  bx8
	VMOVUPS (DX)(AX*2), Y0
	VMOVUPS 32(DX)(AX*2), Y1
	VMOVUPS 64(DX)(AX*2), Y2
	VMOVUPS 96(DX)(AX*2), Y3
	MOVQ    DI, R10
	MOVQ    SI, R11
	MOVQ    CX, BX

bx32row:
	VBROADCASTSS (R11), Y4
	VPMOVZXWD    (R10)(AX*1), Y5
	VPSLLD       $16, Y5, Y5
	VFMADD231PS  Y5, Y4, Y0
	VPMOVZXWD    16(R10)(AX*1), Y6
	VPSLLD       $16, Y6, Y6
	VFMADD231PS  Y6, Y4, Y1
	VPMOVZXWD    32(R10)(AX*1), Y7
	VPSLLD       $16, Y7, Y7
	VFMADD231PS  Y7, Y4, Y2
	VPMOVZXWD    48(R10)(AX*1), Y8
	VPSLLD       $16, Y8, Y8
	VFMADD231PS  Y8, Y4, Y3
	ADDQ         R8, R10
	ADDQ         $4, R11
	DECQ         BX
	JNZ          bx32row
	VMOVUPS      Y0, (DX)(AX*2)
	VMOVUPS      Y1, 32(DX)(AX*2)
	VMOVUPS      Y2, 64(DX)(AX*2)
	VMOVUPS      Y3, 96(DX)(AX*2)
	ADDQ         $64, AX
	JMP          bx32

bx8:
	CMPQ AX, R9
	JGE  bxdone
	VMOVUPS (DX)(AX*2), Y0
	MOVQ    DI, R10
	MOVQ    SI, R11
	MOVQ    CX, BX

bx8row:
	VBROADCASTSS (R11), Y4
	VPMOVZXWD    (R10)(AX*1), Y5
	VPSLLD       $16, Y5, Y5
	VFMADD231PS  Y5, Y4, Y0
	ADDQ         R8, R10
	ADDQ         $4, R11
	DECQ         BX
	JNZ          bx8row
	VMOVUPS      Y0, (DX)(AX*2)
	ADDQ         $16, AX
	JMP          bx8

bxdone:
	VZEROUPPER
	RET
