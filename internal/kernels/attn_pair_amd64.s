#include "textflag.h"
#include "hsum_amd64.h"

// func dots2F32AVX512(q0, q1, k *float32, stride, n, hd int, out0, out1 *float32)
// dotsF32AVX2 for two queries at once (the two heads of a KV group): each key vector is
// loaded once for both. Every score is formed with the same FMAs in the same order and the
// same reduction tree as dotsF32AVX2, so the results are bit-identical to two single calls.
// The second query's accumulators live in Y16-Y23 (AVX-512VL).
TEXT ·dots2F32AVX512(SB), NOSPLIT, $0-64
	MOVQ q0+0(FP), SI
	MOVQ q1+8(FP), R11
	MOVQ k+16(FP), DI
	MOVQ stride+24(FP), R8
	SHLQ $2, R8
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), R9
	SHLQ $2, R9 // bytes per head
	MOVQ out0+48(FP), DX
	MOVQ out1+56(FP), R12

q8rows:
	CMPQ CX, $8
	JLT  qone
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VPXORD Y16, Y16, Y16
	VPXORD Y17, Y17, Y17
	VPXORD Y18, Y18, Y18
	VPXORD Y19, Y19, Y19
	VPXORD Y20, Y20, Y20
	VPXORD Y21, Y21, Y21
	VPXORD Y22, Y22, Y22
	VPXORD Y23, Y23, Y23
	XORQ AX, AX

q8chunk:
	VMOVUPS (SI)(AX*1), Y8
	VMOVUPS (R11)(AX*1), Y9
	MOVQ    DI, R10
	VMOVUPS     (R10)(AX*1), Y10
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y10, Y9, Y16
	ADDQ        R8, R10
	VMOVUPS     (R10)(AX*1), Y10
	VFMADD231PS Y10, Y8, Y1
	VFMADD231PS Y10, Y9, Y17
	ADDQ        R8, R10
	VMOVUPS     (R10)(AX*1), Y10
	VFMADD231PS Y10, Y8, Y2
	VFMADD231PS Y10, Y9, Y18
	ADDQ        R8, R10
	VMOVUPS     (R10)(AX*1), Y10
	VFMADD231PS Y10, Y8, Y3
	VFMADD231PS Y10, Y9, Y19
	ADDQ        R8, R10
	VMOVUPS     (R10)(AX*1), Y10
	VFMADD231PS Y10, Y8, Y4
	VFMADD231PS Y10, Y9, Y20
	ADDQ        R8, R10
	VMOVUPS     (R10)(AX*1), Y10
	VFMADD231PS Y10, Y8, Y5
	VFMADD231PS Y10, Y9, Y21
	ADDQ        R8, R10
	VMOVUPS     (R10)(AX*1), Y10
	VFMADD231PS Y10, Y8, Y6
	VFMADD231PS Y10, Y9, Y22
	ADDQ        R8, R10
	VMOVUPS     (R10)(AX*1), Y10
	VFMADD231PS Y10, Y8, Y7
	VFMADD231PS Y10, Y9, Y23
	ADDQ $32, AX
	CMPQ AX, R9
	JLT  q8chunk
	// the first query's eight scores, then the second's (VHADDPS has no EVEX form, so its
	// accumulators come down to Y0-Y7 first)
	HSUM8
	VMOVUPS    Y1, (DX)
	VMOVAPS Y16, Y0
	VMOVAPS Y17, Y1
	VMOVAPS Y18, Y2
	VMOVAPS Y19, Y3
	VMOVAPS Y20, Y4
	VMOVAPS Y21, Y5
	VMOVAPS Y22, Y6
	VMOVAPS Y23, Y7
	HSUM8
	VMOVUPS    Y1, (R12)
	ADDQ $32, DX
	ADDQ $32, R12
	LEAQ (DI)(R8*8), DI
	SUBQ $8, CX
	JMP  q8rows

qone:
	TESTQ CX, CX
	JEQ   qdone

qrow:
	VXORPS Y0, Y0, Y0
	VXORPS Y2, Y2, Y2
	XORQ   AX, AX

qrowchunk:
	VMOVUPS     (DI)(AX*1), Y5
	VMOVUPS     (SI)(AX*1), Y4
	VFMADD231PS Y5, Y4, Y0
	VMOVUPS     (R11)(AX*1), Y6
	VFMADD231PS Y5, Y6, Y2
	ADDQ        $32, AX
	CMPQ        AX, R9
	JLT         qrowchunk
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	MOVSS        X0, (DX)
	VEXTRACTF128 $1, Y2, X3
	VADDPS       X3, X2, X2
	VHADDPS      X2, X2, X2
	VHADDPS      X2, X2, X2
	MOVSS        X2, (R12)
	ADDQ         $4, DX
	ADDQ         $4, R12
	ADDQ         R8, DI
	DECQ         CX
	JNZ          qrow

qdone:
	VZEROUPPER
	RET

// func axpys2F32AVX2(p0, p1, v *float32, stride, n, hd int, o0, o1 *float32)
// axpysF32AVX2 for two queries at once: each value vector is loaded once for both, and each
// output lane gets the same FMAs in the same order as in two single calls (bit-identical).
TEXT ·axpys2F32AVX2(SB), NOSPLIT, $0-64
	MOVQ p0+0(FP), SI
	MOVQ p1+8(FP), R13
	MOVQ v+16(FP), DI
	MOVQ stride+24(FP), R8
	SHLQ $2, R8
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), R9
	SHLQ $2, R9 // bytes per head
	MOVQ o0+48(FP), DX
	MOVQ o1+56(FP), R12
	TESTQ CX, CX
	JEQ  pxdone
	XORQ AX, AX

px32:
	MOVQ R9, BX
	SUBQ AX, BX
	CMPQ BX, $128
	JLT  px8
	VMOVUPS 0(DX)(AX*1), Y0
	VMOVUPS 32(DX)(AX*1), Y1
	VMOVUPS 64(DX)(AX*1), Y2
	VMOVUPS 96(DX)(AX*1), Y3
	VMOVUPS 0(R12)(AX*1), Y4
	VMOVUPS 32(R12)(AX*1), Y5
	VMOVUPS 64(R12)(AX*1), Y6
	VMOVUPS 96(R12)(AX*1), Y7
	MOVQ    DI, R10
	MOVQ    SI, R11
	MOVQ    R13, R14
	MOVQ    CX, BX

px32row:
	VBROADCASTSS (R11), Y8
	VBROADCASTSS (R14), Y9
	VMOVUPS      0(R10)(AX*1), Y10
	VMOVUPS      32(R10)(AX*1), Y11
	VMOVUPS      64(R10)(AX*1), Y12
	VMOVUPS      96(R10)(AX*1), Y13
	VFMADD231PS  Y10, Y8, Y0
	VFMADD231PS  Y11, Y8, Y1
	VFMADD231PS  Y12, Y8, Y2
	VFMADD231PS  Y13, Y8, Y3
	VFMADD231PS  Y10, Y9, Y4
	VFMADD231PS  Y11, Y9, Y5
	VFMADD231PS  Y12, Y9, Y6
	VFMADD231PS  Y13, Y9, Y7
	ADDQ         R8, R10
	ADDQ         $4, R11
	ADDQ         $4, R14
	DECQ         BX
	JNZ          px32row
	VMOVUPS      Y0, 0(DX)(AX*1)
	VMOVUPS      Y1, 32(DX)(AX*1)
	VMOVUPS      Y2, 64(DX)(AX*1)
	VMOVUPS      Y3, 96(DX)(AX*1)
	VMOVUPS      Y4, 0(R12)(AX*1)
	VMOVUPS      Y5, 32(R12)(AX*1)
	VMOVUPS      Y6, 64(R12)(AX*1)
	VMOVUPS      Y7, 96(R12)(AX*1)
	ADDQ         $128, AX
	JMP          px32

px8:
	CMPQ AX, R9
	JGE  pxdone
	VMOVUPS (DX)(AX*1), Y0
	VMOVUPS (R12)(AX*1), Y1
	MOVQ    DI, R10
	MOVQ    SI, R11
	MOVQ    R13, R14
	MOVQ    CX, BX

px8row:
	VBROADCASTSS (R11), Y8
	VBROADCASTSS (R14), Y9
	VMOVUPS      (R10)(AX*1), Y10
	VFMADD231PS  Y10, Y8, Y0
	VFMADD231PS  Y10, Y9, Y1
	ADDQ         R8, R10
	ADDQ         $4, R11
	ADDQ         $4, R14
	DECQ         BX
	JNZ          px8row
	VMOVUPS      Y0, (DX)(AX*1)
	VMOVUPS      Y1, (R12)(AX*1)
	ADDQ         $32, AX
	JMP          px8

pxdone:
	VZEROUPPER
	RET

// func dots2BF16AVX512(q0, q1 *float32, k *uint16, stride, n, hd int, out0, out1 *float32)
// dotsBF16AVX2 for two queries at once over bfloat16 keys, each key widened once for both;
// bit-identical to two dotsBF16AVX2 calls. AX walks the keys (2 bytes an element) and, scaled
// by 2, the queries.
TEXT ·dots2BF16AVX512(SB), NOSPLIT, $0-64
	MOVQ q0+0(FP), SI
	MOVQ q1+8(FP), R11
	MOVQ k+16(FP), DI
	MOVQ stride+24(FP), R8
	SHLQ $1, R8
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), R9
	SHLQ $1, R9 // key bytes per head
	MOVQ out0+48(FP), DX
	MOVQ out1+56(FP), R12

bq8rows:
	CMPQ CX, $8
	JLT  bqone
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VPXORD Y16, Y16, Y16
	VPXORD Y17, Y17, Y17
	VPXORD Y18, Y18, Y18
	VPXORD Y19, Y19, Y19
	VPXORD Y20, Y20, Y20
	VPXORD Y21, Y21, Y21
	VPXORD Y22, Y22, Y22
	VPXORD Y23, Y23, Y23
	XORQ AX, AX

bq8chunk:
	VMOVUPS (SI)(AX*2), Y8
	VMOVUPS (R11)(AX*2), Y9
	MOVQ    DI, R10
	VPMOVZXWD   (R10)(AX*1), Y10
	VPSLLD      $16, Y10, Y10
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y10, Y9, Y16
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y10
	VPSLLD      $16, Y10, Y10
	VFMADD231PS Y10, Y8, Y1
	VFMADD231PS Y10, Y9, Y17
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y10
	VPSLLD      $16, Y10, Y10
	VFMADD231PS Y10, Y8, Y2
	VFMADD231PS Y10, Y9, Y18
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y10
	VPSLLD      $16, Y10, Y10
	VFMADD231PS Y10, Y8, Y3
	VFMADD231PS Y10, Y9, Y19
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y10
	VPSLLD      $16, Y10, Y10
	VFMADD231PS Y10, Y8, Y4
	VFMADD231PS Y10, Y9, Y20
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y10
	VPSLLD      $16, Y10, Y10
	VFMADD231PS Y10, Y8, Y5
	VFMADD231PS Y10, Y9, Y21
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y10
	VPSLLD      $16, Y10, Y10
	VFMADD231PS Y10, Y8, Y6
	VFMADD231PS Y10, Y9, Y22
	ADDQ        R8, R10
	VPMOVZXWD   (R10)(AX*1), Y10
	VPSLLD      $16, Y10, Y10
	VFMADD231PS Y10, Y8, Y7
	VFMADD231PS Y10, Y9, Y23
	ADDQ $16, AX
	CMPQ AX, R9
	JLT  bq8chunk
	// the first query's eight scores, then the second's (VHADDPS has no EVEX form, so its
	// accumulators come down to Y0-Y7 first)
	HSUM8
	VMOVUPS    Y1, (DX)
	VMOVAPS Y16, Y0
	VMOVAPS Y17, Y1
	VMOVAPS Y18, Y2
	VMOVAPS Y19, Y3
	VMOVAPS Y20, Y4
	VMOVAPS Y21, Y5
	VMOVAPS Y22, Y6
	VMOVAPS Y23, Y7
	HSUM8
	VMOVUPS    Y1, (R12)
	ADDQ $32, DX
	ADDQ $32, R12
	LEAQ (DI)(R8*8), DI
	SUBQ $8, CX
	JMP  bq8rows

bqone:
	TESTQ CX, CX
	JEQ   bqdone

bqrow:
	VXORPS Y0, Y0, Y0
	VXORPS Y2, Y2, Y2
	XORQ   AX, AX

bqrowchunk:
	VPMOVZXWD   (DI)(AX*1), Y5
	VPSLLD      $16, Y5, Y5
	VMOVUPS     (SI)(AX*2), Y4
	VFMADD231PS Y5, Y4, Y0
	VMOVUPS     (R11)(AX*2), Y6
	VFMADD231PS Y5, Y6, Y2
	ADDQ        $16, AX
	CMPQ        AX, R9
	JLT         bqrowchunk
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	MOVSS        X0, (DX)
	VEXTRACTF128 $1, Y2, X3
	VADDPS       X3, X2, X2
	VHADDPS      X2, X2, X2
	VHADDPS      X2, X2, X2
	MOVSS        X2, (R12)
	ADDQ         $4, DX
	ADDQ         $4, R12
	ADDQ         R8, DI
	DECQ         CX
	JNZ          bqrow

bqdone:
	VZEROUPPER
	RET

// func axpys2BF16AVX2(p0, p1 *float32, v *uint16, stride, n, hd int, o0, o1 *float32)
// axpysBF16AVX2 for two weightings at once: each bfloat16 value vector is widened once for
// both; bit-identical to two single calls. AX walks the values (2 bytes an element) and,
// scaled by 2, the outputs.
TEXT ·axpys2BF16AVX2(SB), NOSPLIT, $0-64
	MOVQ p0+0(FP), SI
	MOVQ p1+8(FP), R13
	MOVQ v+16(FP), DI
	MOVQ stride+24(FP), R8
	SHLQ $1, R8
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), R9
	SHLQ $1, R9 // value bytes per head
	MOVQ o0+48(FP), DX
	MOVQ o1+56(FP), R12
	TESTQ CX, CX
	JEQ  bpxdone
	XORQ AX, AX

bpx32:
	MOVQ R9, BX
	SUBQ AX, BX
	CMPQ BX, $64
	JLT  bpx8
	VMOVUPS 0(DX)(AX*2), Y0
	VMOVUPS 32(DX)(AX*2), Y1
	VMOVUPS 64(DX)(AX*2), Y2
	VMOVUPS 96(DX)(AX*2), Y3
	VMOVUPS 0(R12)(AX*2), Y4
	VMOVUPS 32(R12)(AX*2), Y5
	VMOVUPS 64(R12)(AX*2), Y6
	VMOVUPS 96(R12)(AX*2), Y7
	MOVQ    DI, R10
	MOVQ    SI, R11
	MOVQ    R13, R14
	MOVQ    CX, BX

bpx32row:
	VBROADCASTSS (R11), Y8
	VBROADCASTSS (R14), Y9
	VPMOVZXWD    0(R10)(AX*1), Y10
	VPSLLD       $16, Y10, Y10
	VPMOVZXWD    16(R10)(AX*1), Y11
	VPSLLD       $16, Y11, Y11
	VPMOVZXWD    32(R10)(AX*1), Y12
	VPSLLD       $16, Y12, Y12
	VPMOVZXWD    48(R10)(AX*1), Y13
	VPSLLD       $16, Y13, Y13
	VFMADD231PS  Y10, Y8, Y0
	VFMADD231PS  Y11, Y8, Y1
	VFMADD231PS  Y12, Y8, Y2
	VFMADD231PS  Y13, Y8, Y3
	VFMADD231PS  Y10, Y9, Y4
	VFMADD231PS  Y11, Y9, Y5
	VFMADD231PS  Y12, Y9, Y6
	VFMADD231PS  Y13, Y9, Y7
	ADDQ         R8, R10
	ADDQ         $4, R11
	ADDQ         $4, R14
	DECQ         BX
	JNZ          bpx32row
	VMOVUPS      Y0, 0(DX)(AX*2)
	VMOVUPS      Y1, 32(DX)(AX*2)
	VMOVUPS      Y2, 64(DX)(AX*2)
	VMOVUPS      Y3, 96(DX)(AX*2)
	VMOVUPS      Y4, 0(R12)(AX*2)
	VMOVUPS      Y5, 32(R12)(AX*2)
	VMOVUPS      Y6, 64(R12)(AX*2)
	VMOVUPS      Y7, 96(R12)(AX*2)
	ADDQ         $64, AX
	JMP          bpx32

bpx8:
	CMPQ AX, R9
	JGE  bpxdone
	VMOVUPS (DX)(AX*2), Y0
	VMOVUPS (R12)(AX*2), Y1
	MOVQ    DI, R10
	MOVQ    SI, R11
	MOVQ    R13, R14
	MOVQ    CX, BX

bpx8row:
	VBROADCASTSS (R11), Y8
	VBROADCASTSS (R14), Y9
	VPMOVZXWD    (R10)(AX*1), Y10
	VPSLLD       $16, Y10, Y10
	VFMADD231PS  Y10, Y8, Y0
	VFMADD231PS  Y10, Y9, Y1
	ADDQ         R8, R10
	ADDQ         $4, R11
	ADDQ         $4, R14
	DECQ         BX
	JNZ          bpx8row
	VMOVUPS      Y0, (DX)(AX*2)
	VMOVUPS      Y1, (R12)(AX*2)
	ADDQ         $16, AX
	JMP          bpx8

bpxdone:
	VZEROUPPER
	RET

// func axpys2F32AVX512(p0, p1, v *float32, stride, n, hd int, o0, o1 *float32)
// axpys2F32AVX2 with sixteen lanes: a head of 128 stays in sixteen registers (eight per
// query) while every value row is read once. Each output lane gets the same FMAs in the same
// order as in axpys2F32AVX2 and two single calls (bit-identical); hd is a multiple of 16.
TEXT ·axpys2F32AVX512(SB), NOSPLIT, $0-64
	MOVQ p0+0(FP), SI
	MOVQ p1+8(FP), R13
	MOVQ v+16(FP), DI
	MOVQ stride+24(FP), R8
	SHLQ $2, R8
	MOVQ n+32(FP), CX
	MOVQ hd+40(FP), R9
	SHLQ $2, R9 // bytes per head
	MOVQ o0+48(FP), DX
	MOVQ o1+56(FP), R12
	TESTQ CX, CX
	JEQ  qxdone
	XORQ AX, AX

qx128:
	MOVQ R9, BX
	SUBQ AX, BX
	CMPQ BX, $512
	JLT  qx16
	VMOVUPS 0(DX)(AX*1), Z0
	VMOVUPS 64(DX)(AX*1), Z1
	VMOVUPS 128(DX)(AX*1), Z2
	VMOVUPS 192(DX)(AX*1), Z3
	VMOVUPS 256(DX)(AX*1), Z4
	VMOVUPS 320(DX)(AX*1), Z5
	VMOVUPS 384(DX)(AX*1), Z6
	VMOVUPS 448(DX)(AX*1), Z7
	VMOVUPS 0(R12)(AX*1), Z8
	VMOVUPS 64(R12)(AX*1), Z9
	VMOVUPS 128(R12)(AX*1), Z10
	VMOVUPS 192(R12)(AX*1), Z11
	VMOVUPS 256(R12)(AX*1), Z12
	VMOVUPS 320(R12)(AX*1), Z13
	VMOVUPS 384(R12)(AX*1), Z14
	VMOVUPS 448(R12)(AX*1), Z15
	MOVQ    DI, R10
	MOVQ    SI, R11
	MOVQ    R13, R14
	MOVQ    CX, BX

qx128row:
	VBROADCASTSS (R11), Z16
	VBROADCASTSS (R14), Z17
	VMOVUPS      0(R10)(AX*1), Z18
	VMOVUPS      64(R10)(AX*1), Z19
	VMOVUPS      128(R10)(AX*1), Z20
	VMOVUPS      192(R10)(AX*1), Z21
	VMOVUPS      256(R10)(AX*1), Z22
	VMOVUPS      320(R10)(AX*1), Z23
	VMOVUPS      384(R10)(AX*1), Z24
	VMOVUPS      448(R10)(AX*1), Z25
	VFMADD231PS  Z18, Z16, Z0
	VFMADD231PS  Z19, Z16, Z1
	VFMADD231PS  Z20, Z16, Z2
	VFMADD231PS  Z21, Z16, Z3
	VFMADD231PS  Z22, Z16, Z4
	VFMADD231PS  Z23, Z16, Z5
	VFMADD231PS  Z24, Z16, Z6
	VFMADD231PS  Z25, Z16, Z7
	VFMADD231PS  Z18, Z17, Z8
	VFMADD231PS  Z19, Z17, Z9
	VFMADD231PS  Z20, Z17, Z10
	VFMADD231PS  Z21, Z17, Z11
	VFMADD231PS  Z22, Z17, Z12
	VFMADD231PS  Z23, Z17, Z13
	VFMADD231PS  Z24, Z17, Z14
	VFMADD231PS  Z25, Z17, Z15
	ADDQ         R8, R10
	ADDQ         $4, R11
	ADDQ         $4, R14
	DECQ         BX
	JNZ          qx128row
	VMOVUPS      Z0, 0(DX)(AX*1)
	VMOVUPS      Z1, 64(DX)(AX*1)
	VMOVUPS      Z2, 128(DX)(AX*1)
	VMOVUPS      Z3, 192(DX)(AX*1)
	VMOVUPS      Z4, 256(DX)(AX*1)
	VMOVUPS      Z5, 320(DX)(AX*1)
	VMOVUPS      Z6, 384(DX)(AX*1)
	VMOVUPS      Z7, 448(DX)(AX*1)
	VMOVUPS      Z8, 0(R12)(AX*1)
	VMOVUPS      Z9, 64(R12)(AX*1)
	VMOVUPS      Z10, 128(R12)(AX*1)
	VMOVUPS      Z11, 192(R12)(AX*1)
	VMOVUPS      Z12, 256(R12)(AX*1)
	VMOVUPS      Z13, 320(R12)(AX*1)
	VMOVUPS      Z14, 384(R12)(AX*1)
	VMOVUPS      Z15, 448(R12)(AX*1)
	ADDQ         $512, AX
	JMP          qx128

qx16:
	CMPQ AX, R9
	JGE  qxdone
	VMOVUPS (DX)(AX*1), Z0
	VMOVUPS (R12)(AX*1), Z1
	MOVQ    DI, R10
	MOVQ    SI, R11
	MOVQ    R13, R14
	MOVQ    CX, BX

qx16row:
	VBROADCASTSS (R11), Z16
	VBROADCASTSS (R14), Z17
	VMOVUPS      (R10)(AX*1), Z18
	VFMADD231PS  Z18, Z16, Z0
	VFMADD231PS  Z18, Z17, Z1
	ADDQ         R8, R10
	ADDQ         $4, R11
	ADDQ         $4, R14
	DECQ         BX
	JNZ          qx16row
	VMOVUPS      Z0, (DX)(AX*1)
	VMOVUPS      Z1, (R12)(AX*1)
	ADDQ         $64, AX
	JMP          qx16

qxdone:
	VZEROUPPER
	RET
