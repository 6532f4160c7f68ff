package kernels

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasAMX says the CPU has AMX tiles with bfloat16 products (Intel Sapphire Rapids and later)
// and Linux let this process use them. The tile data (8 KB per thread) is off by default:
// a process asks once with arch_prctl(ARCH_REQ_XCOMP_PERM), after which the kernel saves it
// on context switches and signals like any other register state. A kernel that is too old,
// or a sandbox that filters arch_prctl, says no and the matmuls stay on AVX-512.
//
// STRATA_NO_AMX=1 in the environment leaves AMX alone (to compare paths, or where a
// hypervisor's AMX misbehaves).
var hasAMX = cpu.X86.HasAMXTile && cpu.X86.HasAMXBF16 && hasAVX512BF16 && os.Getenv("STRATA_NO_AMX") == "" && amxPermit()

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
