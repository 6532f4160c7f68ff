package kernels

import (
	"sync"
	"time"
)

// FMAPeak measures the float32 multiply-add rate of all procs cores together, in GFLOP/s (two
// per multiply-add), with the widest vectors the matmul kernels use: a loop of independent
// FMAs on registers alone, so neither memory nor caches take part. It is the ceiling of any
// float32 matmul here, as Bandwidth is decode's at batch 1: a batch whose weights are read
// once for many tokens cannot run faster than this divided by its multiply-adds. Best of
// five passes of about 20 ms a core. 0 where no vector kernel runs (the portable build).
func FMAPeak(procs int) float64 {
	loop, lanes := fmaLoopFor()
	if loop == nil {
		return 0
	}
	procs = max(procs, 1)
	// rounds for about 20 ms at a few GHz (two FMAs a cycle, twelve a round)
	const rounds = 1 << 22
	loop(1 << 10) // wake the vector units before timing
	best := 0.0
	for range 5 {
		var wg sync.WaitGroup
		t0 := time.Now()
		for range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				loop(rounds)
			}()
		}
		wg.Wait()
		flops := float64(procs) * rounds * 12 * float64(lanes) * 2
		best = max(best, flops/time.Since(t0).Seconds()/1e9)
	}
	return best
}
