// Package evex encodes the AVX-512 instructions Go's assembler does not know (VDPBF16PS,
// VCVTNEPS2BF16) as BYTE directives, for the kernels' assembly generators: one checked place
// for the EVEX encoding instead of one copy per generator.
package evex

import "fmt"

func inv(b int) int { return (^b) & 1 }

// VDPBF16PS encodes VDPBF16PS zmm(dst), zmm(src1), zmm(src2): dst += pairwise bf16 products
// of src1 and src2 (EVEX.512.F3.0F38.W0 52 /r, register form).
func VDPBF16PS(dst, src1, src2 int) string {
	p0 := inv(dst>>3)<<7 | inv(src2>>4)<<6 | inv(src2>>3&1)<<5 | inv(dst>>4)<<4 | 0b0010
	p1 := ((^src1)&0xF)<<3 | 1<<2 | 0b10
	p2 := 0b10<<5 | inv(src1>>4)<<3
	modrm := 0xC0 | (dst&7)<<3 | src2&7
	return fmt.Sprintf("BYTE $0x62; BYTE $0x%02X; BYTE $0x%02X; BYTE $0x%02X; BYTE $0x52; BYTE $0x%02X // VDPBF16PS Z%d, Z%d, Z%d",
		p0, p1, p2, modrm, src2, src1, dst)
}

// VCVTNEPS2BF16 encodes VCVTNEPS2BF16 ymm(dst), zmm(src): sixteen float32 rounded to bfloat16
// to nearest even, NaN kept quiet (EVEX.512.F3.0F38.W0 72 /r, register form).
func VCVTNEPS2BF16(dst, src int) string {
	p0 := inv(dst>>3)<<7 | inv(src>>4)<<6 | inv(src>>3&1)<<5 | inv(dst>>4)<<4 | 0b0010
	modrm := 0xC0 | (dst&7)<<3 | src&7
	return fmt.Sprintf("BYTE $0x62; BYTE $0x%02X; BYTE $0x7E; BYTE $0x48; BYTE $0x72; BYTE $0x%02X // VCVTNEPS2BF16 Z%d, Y%d",
		p0, modrm, src, dst)
}
