package kernels

import (
	"runtime"
	"sync/atomic"
)

var maxThreads atomic.Int32

// SetThreads caps the goroutines one kernel call spreads over (0: GOMAXPROCS). A process
// running several ranks at once (tensor-parallel ranks and pipeline stages of emulated nodes)
// gives each its share of the cores instead of letting all of them fan out over all cores.
func SetThreads(n int) { maxThreads.Store(int32(max(n, 0))) }

// Threads is how many goroutines a kernel call may use.
func Threads() int {
	p := runtime.GOMAXPROCS(0)
	if n := int(maxThreads.Load()); n > 0 {
		return min(n, p)
	}
	return p
}

// GrainFor is the number of items to hand a core at least, when each costs about cost
// elements of work: below roughly 8k elements (a few microseconds) a piece costs less than
// handing it to a polling helper. Within a forward pass the helpers poll between regions
// (pool.go), so the hand-off is that cheap; a larger grain left the second core idle while
// one core packed a batch's activations or normalised its rows (measured: a batch-32 decode
// step of Qwen3-0.6B's shape 2–5 % faster at 8k than at 32k).
func GrainFor(cost int) int { return max(1, (8<<10)/max(cost, 1)) }

// ParallelFor calls f(lo, hi) over [0, n) in pieces of at least grain items spread across the
// machine's cores, and returns when all are done. Pieces go out from a counter, so a core the
// host slows down takes fewer of them. Small n runs inline.
func ParallelFor(n, grain int, f func(lo, hi int)) {
	grain = max(grain, 1)
	workers := min(Threads(), (n+grain-1)/grain)
	if workers <= 1 {
		if n > 0 {
			f(0, n)
		}
		return
	}
	// Four pieces per worker balance load without making the counter hot.
	piece := max(grain, (n+4*workers-1)/(4*workers))
	var next atomic.Int64
	runOn(workers, func() {
		for {
			lo := int(next.Add(int64(piece))) - piece
			if lo >= n {
				return
			}
			f(lo, min(lo+piece, n))
		}
	})
}

// Path names the matmul kernels this process runs over bfloat16 weights, for benchmark
// reports: "amx", "avx512-bf16", "avx512", "avx2" or "portable".
func Path() string {
	switch {
	case hasAMX:
		return "amx"
	case hasAVX512BF16:
		return "avx512-bf16"
	case hasAVX512:
		return "avx512"
	case hasAVX2FMA:
		return "avx2"
	}
	return "portable"
}
