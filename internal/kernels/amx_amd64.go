package kernels

// amxMatBF16 runs nblk blocks of 32 weight rows (16 if flags&1 is 0), each wstride bytes
// apart from the next, against one or two (flags&2) groups of 16 packed activation rows,
// over kchunks chunks of 32 columns. The activations are B tiles (laid out by matBF16AMX): chunk c's
// tile for group g at x + c·xcstride + g·1024 bytes, and if flags&4 the low halves lo bytes
// further on, added into the same sums. Each block stores four 16×16 float32 tiles at out
// (weight-row half a, group b at (2a+b)·1024 bytes, row-major: weight row, then activation
// row) and the next block's 4096 bytes further on. cfg is the tile configuration: amxCfg's
// eight tiles of 16 rows × 64 bytes, with bstride 64 (the activation tiles' and the stored
// sums' row stride); or amxCfg1's one-column activation and sum tiles for one activation
// row, with bstride 4. The tiles are released before it returns, so no AMX state outlives
// the call (a goroutine may move to another thread between calls).
//
//go:noescape
func amxMatBF16(cfg *[64]byte, w *uint16, wstride int, x *uint16, xcstride int, kchunks int, lo int, out *float32, nblk int, flags int, bstride int)

// transpose16x16 reads rows i < srcRows of 16 32-bit elements, srcStride bytes apart (the
// others count as zeros), and writes column j as a row of 16 to dst[j] for j < dstRows
// (AVX-512; see gen_transpose.go).
//
//go:noescape
func transpose16x16(src *uint32, srcStride int, srcRows int, dst *[16]*uint32, dstRows int)
