package tensor

import (
	"math"
	"testing"
)

func TestF16KnownValues(t *testing.T) {
	cases := []struct {
		f    float32
		bits uint16
	}{
		{0, 0x0000}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {0.5, 0x3800},
		{float32(math.Ldexp(1, -14)), 0x0400}, // smallest normal
		{float32(math.Ldexp(1, -24)), 0x0001}, // smallest subnormal
		{float32(math.Inf(1)), 0x7c00}, {float32(math.Inf(-1)), 0xfc00},
		{70000, 0x7c00},        // overflow rounds to infinity
		{1 + 1.0/2048, 0x3c00}, // a tie rounds to even
		{1 + 3.0/2048, 0x3c02},
	}
	for _, c := range cases {
		if got := F32ToF16(c.f); got != c.bits {
			t.Errorf("F32ToF16(%v) = %#04x, want %#04x", c.f, got, c.bits)
		}
	}
	// every non-NaN binary16 value survives the round trip exactly
	for b := 0; b < 1<<16; b++ {
		h := uint16(b)
		f := F16ToF32(h)
		if f != f {
			if F32ToF16(f)&0x7c00 != 0x7c00 || F32ToF16(f)&0x3ff == 0 {
				t.Fatalf("NaN %#04x did not stay NaN", h)
			}
			continue
		}
		if back := F32ToF16(f); back != h {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, back)
		}
	}
}

func TestBF16(t *testing.T) {
	for b := 0; b < 1<<16; b++ {
		h := uint16(b)
		f := BF16ToF32(h)
		if f != f {
			continue
		}
		if back := F32ToBF16(f); back != h {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, back)
		}
	}
	if got := F32ToBF16(1 + 1.0/256); got != 0x3f80 { // tie to even
		t.Errorf("tie: got %#04x", got)
	}
	if got := F32ToBF16(1 + 3.0/256); got != 0x3f82 {
		t.Errorf("tie up: got %#04x", got)
	}
	if got := F32ToBF16(float32(math.NaN())); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Errorf("NaN became %#04x", got)
	}
}
