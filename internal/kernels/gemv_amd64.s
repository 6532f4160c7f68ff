#include "textflag.h"

// func gemvBF16AVX512(w *uint16, rows int, in int, x *float32, out *float32)
// out[r] = Σ_k w[r·in+k]·x[k] for rows bfloat16 weight rows of in elements (a multiple of 32),
// with x packed by packEvenOdd: each 32-element block as its 16 even-indexed elements, then its
// 16 odd-indexed ones. A 64-byte load of weights then widens in two instructions, each lane's
// low bfloat16 by a shift and its high one by a mask, with no shuffles; four rows share every
// load of x, with two sums each (even and odd) so eight FMA chains run at once.
TEXT ·gemvBF16AVX512(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ rows+8(FP), R8
	MOVQ in+16(FP), R9
	SHLQ $1, R9 // bytes per weight row
	MOVQ x+24(FP), DI
	MOVQ out+32(FP), DX
	MOVL $0xffff0000, AX
	VPBROADCASTD AX, Z31

four:
	CMPQ R8, $4
	JLT  one
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
	LEAQ (SI)(R9*1), R10
	LEAQ (R10)(R9*1), R11
	LEAQ (R11)(R9*1), R12
	XORQ AX, AX // byte offset in the rows
	MOVQ DI, BX
	// While these four rows stream in, ask for the next four: each step of 64 bytes along
	// a row asks for the next 256 bytes of the next group (whose rows lie end to end), so
	// that group is on its way before its loads start. The hardware prefetchers alone
	// restart at every group and left a batch-1 decode step 10-15 % slower.
	LEAQ (SI)(R9*4), R13

fourk:
	PREFETCHT0 (R13)(AX*4)
	PREFETCHT0 64(R13)(AX*4)
	PREFETCHT0 128(R13)(AX*4)
	PREFETCHT0 192(R13)(AX*4)
	VMOVUPS (BX), Z8    // x, even elements
	VMOVUPS 64(BX), Z9  // x, odd elements
	VMOVDQU32 (SI)(AX*1), Z10
	VMOVDQU32 (R10)(AX*1), Z11
	VMOVDQU32 (R11)(AX*1), Z12
	VMOVDQU32 (R12)(AX*1), Z13
	VPSLLD $16, Z10, Z14
	VPANDD Z31, Z10, Z10
	VFMADD231PS Z14, Z8, Z0
	VFMADD231PS Z10, Z9, Z1
	VPSLLD $16, Z11, Z15
	VPANDD Z31, Z11, Z11
	VFMADD231PS Z15, Z8, Z2
	VFMADD231PS Z11, Z9, Z3
	VPSLLD $16, Z12, Z16
	VPANDD Z31, Z12, Z12
	VFMADD231PS Z16, Z8, Z4
	VFMADD231PS Z12, Z9, Z5
	VPSLLD $16, Z13, Z17
	VPANDD Z31, Z13, Z13
	VFMADD231PS Z17, Z8, Z6
	VFMADD231PS Z13, Z9, Z7
	ADDQ $128, BX
	ADDQ $64, AX
	CMPQ AX, R9
	JLT  fourk

	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z5, Z4, Z4
	VADDPS Z7, Z6, Z6
	// four horizontal sums at once: fold 512 -> 256 -> 128 bits, then transpose-add
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF64X4 $1, Z2, Y3
	VADDPS Y3, Y2, Y2
	VEXTRACTF64X4 $1, Z4, Y5
	VADDPS Y5, Y4, Y4
	VEXTRACTF64X4 $1, Z6, Y7
	VADDPS Y7, Y6, Y6
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VEXTRACTF128 $1, Y2, X3
	VADDPS X3, X2, X2
	VEXTRACTF128 $1, Y4, X5
	VADDPS X5, X4, X4
	VEXTRACTF128 $1, Y6, X7
	VADDPS X7, X6, X6
	VHADDPS X2, X0, X0 // r0 lanes 0+1, 2+3, r1 lanes 0+1, 2+3
	VHADDPS X6, X4, X4
	VHADDPS X4, X0, X0 // r0, r1, r2, r3
	VMOVUPS X0, (DX)
	ADDQ $16, DX
	LEAQ (R12)(R9*1), SI
	SUBQ $4, R8
	JMP  four

one:
	TESTQ R8, R8
	JEQ   done
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	XORQ AX, AX
	MOVQ DI, BX

onek:
	VMOVDQU32 (SI)(AX*1), Z10
	VPSLLD $16, Z10, Z14
	VPANDD Z31, Z10, Z10
	VFMADD231PS (BX), Z14, Z0
	VFMADD231PS 64(BX), Z10, Z1
	ADDQ $128, BX
	ADDQ $64, AX
	CMPQ AX, R9
	JLT  onek
	VADDPS Z1, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R9, SI
	DECQ R8
	JMP  one

done:
	VZEROUPPER
	RET

// func gemvBF16AVX2(w *uint16, rows int, in int, x *float32, out *float32)
// gemvBF16AVX512 with eight lanes: in is a multiple of 16 and x is packed in blocks of 16 (8
// even-indexed elements, then 8 odd-indexed ones).
TEXT ·gemvBF16AVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ rows+8(FP), R8
	MOVQ in+16(FP), R9
	SHLQ $1, R9 // bytes per weight row
	MOVQ x+24(FP), DI
	MOVQ out+32(FP), DX
	MOVL $0xffff0000, AX
	MOVQ AX, X15
	VPBROADCASTD X15, Y15

four2:
	CMPQ R8, $4
	JLT  one2
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	LEAQ (SI)(R9*1), R10
	LEAQ (R10)(R9*1), R11
	LEAQ (R11)(R9*1), R12
	XORQ AX, AX
	MOVQ DI, BX
	LEAQ (SI)(R9*4), R13 // the next four rows, asked for as in gemvBF16AVX512

fourk2:
	PREFETCHT0 (R13)(AX*4)
	PREFETCHT0 64(R13)(AX*4)
	VMOVUPS (BX), Y8    // x, even elements
	VMOVUPS 32(BX), Y9  // x, odd elements
	VMOVDQU (SI)(AX*1), Y10
	VPSLLD $16, Y10, Y11
	VPAND Y15, Y10, Y10
	VFMADD231PS Y11, Y8, Y0
	VFMADD231PS Y10, Y9, Y1
	VMOVDQU (R10)(AX*1), Y10
	VPSLLD $16, Y10, Y11
	VPAND Y15, Y10, Y10
	VFMADD231PS Y11, Y8, Y2
	VFMADD231PS Y10, Y9, Y3
	VMOVDQU (R11)(AX*1), Y10
	VPSLLD $16, Y10, Y11
	VPAND Y15, Y10, Y10
	VFMADD231PS Y11, Y8, Y4
	VFMADD231PS Y10, Y9, Y5
	VMOVDQU (R12)(AX*1), Y10
	VPSLLD $16, Y10, Y11
	VPAND Y15, Y10, Y10
	VFMADD231PS Y11, Y8, Y6
	VFMADD231PS Y10, Y9, Y7
	ADDQ $64, BX
	ADDQ $32, AX
	CMPQ AX, R9
	JLT  fourk2

	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y5, Y4, Y4
	VADDPS Y7, Y6, Y6
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VEXTRACTF128 $1, Y2, X3
	VADDPS X3, X2, X2
	VEXTRACTF128 $1, Y4, X5
	VADDPS X5, X4, X4
	VEXTRACTF128 $1, Y6, X7
	VADDPS X7, X6, X6
	VHADDPS X2, X0, X0
	VHADDPS X6, X4, X4
	VHADDPS X4, X0, X0
	VMOVUPS X0, (DX)
	ADDQ $16, DX
	LEAQ (R12)(R9*1), SI
	SUBQ $4, R8
	JMP  four2

one2:
	TESTQ R8, R8
	JEQ   done2
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	XORQ AX, AX
	MOVQ DI, BX

onek2:
	VMOVDQU (SI)(AX*1), Y10
	VPSLLD $16, Y10, Y11
	VPAND Y15, Y10, Y10
	VFMADD231PS (BX), Y11, Y0
	VFMADD231PS 32(BX), Y10, Y1
	ADDQ $64, BX
	ADDQ $32, AX
	CMPQ AX, R9
	JLT  onek2
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R9, SI
	DECQ R8
	JMP  one2

done2:
	VZEROUPPER
	RET

// func gemv1BF16AVX512(w *uint16, rows int, in int, x *float32, out *float32)
// gemvBF16AVX512 one weight row at a time, so that a core reads its rows as one sequential
// run instead of four runs in step: on a 2-vCPU AMD EPYC (Zen 5) four rows in step read
// memory at about half the rate of one run, the hardware prefetchers following one stream
// far better than four. x is loaded again for every row (from L1). Two 64-byte lines per
// iteration feed four sums (even and odd elements of each line); a last odd line goes into
// the first two. PREFETCHT0 asks for the line 4 KB ahead, which keeps the stream going
// across the chunks the cores take in turn.
TEXT ·gemv1BF16AVX512(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ rows+8(FP), R8
	MOVQ in+16(FP), R9
	SHLQ $1, R9 // bytes per weight row
	MOVQ x+24(FP), DI
	MOVQ out+32(FP), DX
	MOVL $0xffff0000, AX
	VPBROADCASTD AX, Z31
	LEAQ -64(R9), R10 // the last offset at which two lines remain

row1:
	TESTQ R8, R8
	JEQ  done1
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	XORQ AX, AX
	MOVQ DI, BX
	CMPQ AX, R10
	JGE  tail1

pair1:
	PREFETCHT0 4096(SI)(AX*1)
	PREFETCHT0 4160(SI)(AX*1)
	VMOVDQU32 (SI)(AX*1), Z10
	VMOVDQU32 64(SI)(AX*1), Z11
	VPSLLD $16, Z10, Z14
	VPANDD Z31, Z10, Z10
	VFMADD231PS (BX), Z14, Z0
	VFMADD231PS 64(BX), Z10, Z1
	VPSLLD $16, Z11, Z15
	VPANDD Z31, Z11, Z11
	VFMADD231PS 128(BX), Z15, Z2
	VFMADD231PS 192(BX), Z11, Z3
	ADDQ $256, BX
	ADDQ $128, AX
	CMPQ AX, R10
	JLT  pair1

tail1:
	CMPQ AX, R9
	JGE  sum1
	PREFETCHT0 4096(SI)(AX*1)
	VMOVDQU32 (SI)(AX*1), Z10
	VPSLLD $16, Z10, Z14
	VPANDD Z31, Z10, Z10
	VFMADD231PS (BX), Z14, Z0
	VFMADD231PS 64(BX), Z10, Z1

sum1:
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R9, SI
	DECQ R8
	JMP  row1

done1:
	VZEROUPPER
	RET

// func gemv1BF16AVX2(w *uint16, rows int, in int, x *float32, out *float32)
// gemv1BF16AVX512 with eight lanes: one weight row at a time, x packed by packEvenOdd in
// blocks of 16 (in a multiple of 16). A 64-byte line per iteration feeds four sums (even and
// odd elements of each half); a last half line goes into the first two.
TEXT ·gemv1BF16AVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), SI
	MOVQ rows+8(FP), R8
	MOVQ in+16(FP), R9
	SHLQ $1, R9 // bytes per weight row
	MOVQ x+24(FP), DI
	MOVQ out+32(FP), DX
	MOVL $0xffff0000, AX
	MOVQ AX, X15
	VPBROADCASTD X15, Y15
	LEAQ -32(R9), R10 // the last offset at which a whole line remains

r2row:
	TESTQ R8, R8
	JEQ  r2done
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ AX, AX
	MOVQ DI, BX
	CMPQ AX, R10
	JGE  r2tail

r2line:
	PREFETCHT0 4096(SI)(AX*1)
	VMOVDQU (SI)(AX*1), Y10
	VPSLLD $16, Y10, Y11
	VPAND Y15, Y10, Y10
	VFMADD231PS (BX), Y11, Y0
	VFMADD231PS 32(BX), Y10, Y1
	VMOVDQU 32(SI)(AX*1), Y12
	VPSLLD $16, Y12, Y13
	VPAND Y15, Y12, Y12
	VFMADD231PS 64(BX), Y13, Y2
	VFMADD231PS 96(BX), Y12, Y3
	ADDQ $128, BX
	ADDQ $64, AX
	CMPQ AX, R10
	JLT  r2line

r2tail:
	CMPQ AX, R9
	JGE  r2sum
	VMOVDQU (SI)(AX*1), Y10
	VPSLLD $16, Y10, Y11
	VPAND Y15, Y10, Y10
	VFMADD231PS (BX), Y11, Y0
	VFMADD231PS 32(BX), Y10, Y1

r2sum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R9, SI
	DECQ R8
	JMP  r2row

r2done:
	VZEROUPPER
	RET

// func cpuVendorAMD() bool
// CPUID leaf 0: the vendor string is "AuthenticAMD" (EBX "Auth", EDX "enti", ECX "cAMD").
TEXT ·cpuVendorAMD(SB), NOSPLIT, $0-1
	XORL AX, AX
	CPUID
	CMPL BX, $0x68747541
	JNE  notamd
	CMPL DX, $0x69746e65
	JNE  notamd
	CMPL CX, $0x444d4163
	JNE  notamd
	MOVB $1, ret+0(FP)
	RET
notamd:
	MOVB $0, ret+0(FP)
	RET
