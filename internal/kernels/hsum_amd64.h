// Horizontal sums shared by the attention kernels. Each is one fixed tree of additions, so
// every kernel that uses it forms a score in the same order (the pair kernels rely on that to
// be bit-identical to the single ones).

// HSUM8 leaves in Y1 the eight sums of Y0..Y7 (lane i of Y1 is the sum of Yi's eight lanes):
// adjacent pairs, then pairs of pairs, then the two 128-bit halves. Clobbers Y0, Y2, Y4.
#define HSUM8 \
	VHADDPS    Y1, Y0, Y0; \
	VHADDPS    Y3, Y2, Y2; \
	VHADDPS    Y5, Y4, Y4; \
	VHADDPS    Y7, Y6, Y6; \
	VHADDPS    Y2, Y0, Y0; \
	VHADDPS    Y6, Y4, Y4; \
	VPERM2F128 $0x20, Y4, Y0, Y1; \
	VPERM2F128 $0x31, Y4, Y0, Y2; \
	VADDPS     Y2, Y1, Y1

// HMAX4 leaves in X0's low lane the largest of Y0..Y3's lanes (numbers: VMAXPS passes a NaN
// through only from its second operand). Clobbers Y1, Y2, Y3.
#define HMAX4 \
	VMAXPS       Y1, Y0, Y0; \
	VMAXPS       Y3, Y2, Y2; \
	VMAXPS       Y2, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VMAXPS       X1, X0, X0; \
	VPERMILPS    $0x4E, X0, X1; \
	VMAXPS       X1, X0, X0; \
	VPERMILPS    $0xB1, X0, X1; \
	VMAXSS       X1, X0, X0
