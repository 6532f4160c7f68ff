package hugepage

import "golang.org/x/sys/unix"

// advise marks b for huge pages (later faults get them) and collapses what is already
// mapped (MADV_COLLAPSE, Linux 6.1 and later; older kernels refuse it and keep small pages).
func advise(b []byte) {
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	_ = unix.Madvise(b, unix.MADV_COLLAPSE)
}
