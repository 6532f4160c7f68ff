#include "textflag.h"

// AMX instructions, which the Go assembler does not know, as bytes (encodings checked
// against GNU as 2.40). Registers: A tiles (weights) in TMM4/TMM5, B tiles (activations) in
// TMM6/TMM7, sums in TMM0-TMM3; SI/R13 point at the two weight blocks, DX is the weight row
// stride, DI/R10 at the activations' high and low tiles, BX their row stride (and the sums'), R11
// at the output.
#define LDTILECFG_AX BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0x00
#define TILERELEASE BYTE $0xc4; BYTE $0xe2; BYTE $0x78; BYTE $0x49; BYTE $0xc0
#define TILEZERO_0 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc0
#define TILEZERO_1 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xc8
#define TILEZERO_2 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xd0
#define TILEZERO_3 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x49; BYTE $0xd8
// TILELOADD TMM4, (SI)(DX*1)
#define LOAD_A0 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x24; BYTE $0x16
// TILELOADD TMM5, 0(R13)(DX*1)
#define LOAD_A1 BYTE $0xc4; BYTE $0xc2; BYTE $0x7b; BYTE $0x4b; BYTE $0x6c; BYTE $0x15; BYTE $0x00
// TILELOADD TMM6, (DI)(BX*1)
#define LOAD_B0 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0x34; BYTE $0x1f
// TILELOADD TMM7, 1024(DI)(BX*1)
#define LOAD_B1 BYTE $0xc4; BYTE $0xe2; BYTE $0x7b; BYTE $0x4b; BYTE $0xbc; BYTE $0x1f; BYTE $0x00; BYTE $0x04; BYTE $0x00; BYTE $0x00
// TILELOADD TMM6, (R10)(BX*1)
#define LOAD_B0LO BYTE $0xc4; BYTE $0xc2; BYTE $0x7b; BYTE $0x4b; BYTE $0x34; BYTE $0x1a
// TILELOADD TMM7, 1024(R10)(BX*1)
#define LOAD_B1LO BYTE $0xc4; BYTE $0xc2; BYTE $0x7b; BYTE $0x4b; BYTE $0xbc; BYTE $0x1a; BYTE $0x00; BYTE $0x04; BYTE $0x00; BYTE $0x00
// TDPBF16PS TMMc, TMMa, TMMb: c += a·b
#define DP_0_4_6 BYTE $0xc4; BYTE $0xe2; BYTE $0x4a; BYTE $0x5c; BYTE $0xc4
#define DP_1_4_7 BYTE $0xc4; BYTE $0xe2; BYTE $0x42; BYTE $0x5c; BYTE $0xcc
#define DP_2_5_6 BYTE $0xc4; BYTE $0xe2; BYTE $0x4a; BYTE $0x5c; BYTE $0xd5
#define DP_3_5_7 BYTE $0xc4; BYTE $0xe2; BYTE $0x42; BYTE $0x5c; BYTE $0xdd
// TILESTORED k·1024(R11)(BX*1), TMMk
#define STORE_0 BYTE $0xc4; BYTE $0xc2; BYTE $0x7a; BYTE $0x4b; BYTE $0x04; BYTE $0x1b
#define STORE_1 BYTE $0xc4; BYTE $0xc2; BYTE $0x7a; BYTE $0x4b; BYTE $0x8c; BYTE $0x1b; BYTE $0x00; BYTE $0x04; BYTE $0x00; BYTE $0x00
#define STORE_2 BYTE $0xc4; BYTE $0xc2; BYTE $0x7a; BYTE $0x4b; BYTE $0x94; BYTE $0x1b; BYTE $0x00; BYTE $0x08; BYTE $0x00; BYTE $0x00
#define STORE_3 BYTE $0xc4; BYTE $0xc2; BYTE $0x7a; BYTE $0x4b; BYTE $0x9c; BYTE $0x1b; BYTE $0x00; BYTE $0x0c; BYTE $0x00; BYTE $0x00

// func amxMatBF16(cfg *[64]byte, w *uint16, wstride int, x *uint16, xcstride int, kchunks int, lo int, out *float32, nblk int, flags int, bstride int)
TEXT ·amxMatBF16(SB), NOSPLIT, $0-88
	MOVQ cfg+0(FP), AX
	LDTILECFG_AX
	MOVQ w+8(FP), R8
	MOVQ wstride+16(FP), DX
	MOVQ xcstride+32(FP), R9
	MOVQ out+56(FP), R11
	MOVQ flags+72(FP), AX
	MOVQ bstride+80(FP), BX

block:
	TILEZERO_0
	TILEZERO_1
	TILEZERO_2
	TILEZERO_3
	MOVQ R8, SI
	MOVQ DX, R13
	SHLQ $4, R13
	ADDQ R8, R13
	MOVQ x+24(FP), DI
	MOVQ DI, R10
	ADDQ lo+48(FP), R10
	MOVQ kchunks+40(FP), CX
	MOVQ DX, R12
	SHLQ $5, R12
	ADDQ R8, R12

chunk:
	LOAD_A0
	LOAD_B0
	DP_0_4_6
	TESTQ $2, AX
	JZ oneb
	LOAD_B1
	DP_1_4_7

oneb:
	TESTQ $1, AX
	JZ lohalf
	LOAD_A1
	DP_2_5_6
	TESTQ $2, AX
	JZ lohalf
	DP_3_5_7

lohalf:
	TESTQ $4, AX
	JZ advance
	LOAD_B0LO
	DP_0_4_6
	TESTQ $1, AX
	JZ lob1
	DP_2_5_6

lob1:
	TESTQ $2, AX
	JZ advance
	LOAD_B1LO
	DP_1_4_7
	TESTQ $1, AX
	JZ advance
	DP_3_5_7

advance:
	// Stream the next block in under this one: 2 KB (a 32nd of it) per chunk, into L2
	// (unless flags&8).
	TESTQ $8, AX
	JNZ   nopf
	PREFETCHT1 (R12)
	PREFETCHT1 64(R12)
	PREFETCHT1 128(R12)
	PREFETCHT1 192(R12)
	PREFETCHT1 256(R12)
	PREFETCHT1 320(R12)
	PREFETCHT1 384(R12)
	PREFETCHT1 448(R12)
	PREFETCHT1 512(R12)
	PREFETCHT1 576(R12)
	PREFETCHT1 640(R12)
	PREFETCHT1 704(R12)
	PREFETCHT1 768(R12)
	PREFETCHT1 832(R12)
	PREFETCHT1 896(R12)
	PREFETCHT1 960(R12)
	PREFETCHT1 1024(R12)
	PREFETCHT1 1088(R12)
	PREFETCHT1 1152(R12)
	PREFETCHT1 1216(R12)
	PREFETCHT1 1280(R12)
	PREFETCHT1 1344(R12)
	PREFETCHT1 1408(R12)
	PREFETCHT1 1472(R12)
	PREFETCHT1 1536(R12)
	PREFETCHT1 1600(R12)
	PREFETCHT1 1664(R12)
	PREFETCHT1 1728(R12)
	PREFETCHT1 1792(R12)
	PREFETCHT1 1856(R12)
	PREFETCHT1 1920(R12)
	PREFETCHT1 1984(R12)

nopf:
	ADDQ $2048, R12
	ADDQ $64, SI
	ADDQ $64, R13
	ADDQ R9, DI
	ADDQ R9, R10
	DECQ CX
	JNZ chunk

	STORE_0
	STORE_1
	STORE_2
	STORE_3
	ADDQ $4096, R11
	MOVQ DX, CX
	SHLQ $5, CX
	ADDQ CX, R8
	DECQ nblk+64(FP)
	JNZ block

	TILERELEASE
	RET
