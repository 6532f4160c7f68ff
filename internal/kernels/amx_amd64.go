package kernels

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasAMX says the CPU has AMX tiles with bfloat16 products (Intel Sapphire Rapids and later)
// and Linux let this process use them. The tile data (8 KB per thread) is off by default:
// a process asks once with arch_prctl(ARCH_REQ_XCOMP_PERM), after which the kernel saves it
// on context switches and signals like any other register state. A kernel that is too old,
// or a sandbox that filters arch_prctl, says no and the matmuls stay on AVX-512.
var hasAMX = cpu.X86.HasAMXTile && cpu.X86.HasAMXBF16 && hasAVX512BF16 && amxPermit()

func amxPermit() bool {
	const (
		archGetXcompSupp  = 0x1021
		archReqXcompPerm  = 0x1023
		xfeatureXtiledata = 18
	)
	var supp uint64
	if _, _, e := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archGetXcompSupp, uintptr(unsafe.Pointer(&supp)), 0); e != 0 || supp&(1<<xfeatureXtiledata) == 0 {
		return false
	}
	_, _, e := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXtiledata, 0)
	return e == 0
}

// amxMatBF16 runs nblk blocks of 32 weight rows (16 if flags&1 is 0), each wstride bytes
// apart from the next, against one or two (flags&2) groups of 16 packed activation rows,
// over kchunks chunks of 32 columns. The activations are B tiles (see amxPack): chunk c's
// tile for group g at x + c·xcstride + g·1024 bytes, and if flags&4 the low halves lo bytes
// further on, added into the same sums. Each block stores four 16×16 float32 tiles at out
// (weight-row half a, group b at (2a+b)·1024 bytes, row-major: weight row, then activation
// row) and the next block's 4096 bytes further on. cfg is the tile configuration: eight tiles
// of 16 rows × 64 bytes. The tiles are released before it returns, so no AMX state outlives
// the call (a goroutine may move to another thread between calls).
//
//go:noescape
func amxMatBF16(cfg *[64]byte, w *uint16, wstride int, x *uint16, xcstride int, kchunks int, lo int, out *float32, nblk int, flags int)
