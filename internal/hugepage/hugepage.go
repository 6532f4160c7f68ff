// Package hugepage asks the kernel to back large, long-lived buffers (weights, the KV cache)
// with transparent huge pages.
package hugepage

import (
	"os"
	"unsafe"
)

// minSize is the smallest buffer worth asking for: one 2 MiB huge page.
const minSize = 2 << 20

// Advise asks for huge pages under b, best effort: where the kernel offers none (another
// OS, THP off, no memory to compact) nothing changes.
func Advise(b []byte) {
	if len(b) < minSize {
		return
	}
	page := uintptr(os.Getpagesize()) // madvise wants page-aligned ranges
	p := uintptr(unsafe.Pointer(&b[0]))
	start := (p + page - 1) &^ (page - 1)
	end := (p + uintptr(len(b))) &^ (page - 1)
	if end <= start {
		return
	}
	advise(b[start-p : end-p])
}

// Floats is Advise for a float32 buffer.
func Floats(f []float32) {
	if len(f) > 0 {
		Advise(unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f)))
	}
}

// Words is Advise for a buffer of 16-bit values.
func Words(w []uint16) {
	if len(w) > 0 {
		Advise(unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 2*len(w)))
	}
}
