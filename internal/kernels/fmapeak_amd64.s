#include "textflag.h"

// FMA12 is twelve independent multiply-adds into X0-X11 (as Y or Z registers) of src1·src2:
// with four-cycle latency and two FMA pipes, twelve chains keep every pipe busy.
#define FMA12(R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, R11, A, B) \
	VFMADD231PS A, B, R0; \
	VFMADD231PS A, B, R1; \
	VFMADD231PS A, B, R2; \
	VFMADD231PS A, B, R3; \
	VFMADD231PS A, B, R4; \
	VFMADD231PS A, B, R5; \
	VFMADD231PS A, B, R6; \
	VFMADD231PS A, B, R7; \
	VFMADD231PS A, B, R8; \
	VFMADD231PS A, B, R9; \
	VFMADD231PS A, B, R10; \
	VFMADD231PS A, B, R11

// ZERO_ACC zeroes the twelve accumulators: a VEX-encoded VXORPS on Y clears the whole Z
// register too, so both loops use it.
#define ZERO_ACC \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	VXORPS Y4, Y4, Y4 \
	VXORPS Y5, Y5, Y5 \
	VXORPS Y6, Y6, Y6 \
	VXORPS Y7, Y7, Y7 \
	VXORPS Y8, Y8, Y8 \
	VXORPS Y9, Y9, Y9 \
	VXORPS Y10, Y10, Y10 \
	VXORPS Y11, Y11, Y11

// func fmaLoopAVX2(n int) float32
// n rounds of twelve 8-lane FMAs of 1·1; returns lane 0 of the first accumulator (n).
TEXT ·fmaLoopAVX2(SB), NOSPLIT, $0-12
	MOVQ n+0(FP), CX
	MOVL $0x3f800000, AX
	MOVD AX, X14
	VBROADCASTSS X14, Y14
	VMOVAPS Y14, Y15
	ZERO_ACC
	TESTQ CX, CX
	JLE done2
loop2:
	FMA12(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y14, Y15)
	DECQ CX
	JNZ  loop2
done2:
	MOVSS X0, ret+8(FP)
	VZEROUPPER
	RET

// func fmaLoopAVX512(n int) float32
// fmaLoopAVX2 with 16-lane FMAs.
TEXT ·fmaLoopAVX512(SB), NOSPLIT, $0-12
	MOVQ n+0(FP), CX
	MOVL $0x3f800000, AX
	VPBROADCASTD AX, Z14
	VMOVAPS Z14, Z15
	ZERO_ACC
	TESTQ CX, CX
	JLE done5
loop5:
	FMA12(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z14, Z15)
	DECQ CX
	JNZ  loop5
done5:
	MOVSS X0, ret+8(FP)
	VZEROUPPER
	RET
