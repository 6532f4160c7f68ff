package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runItems hands n items out from a counter across up to procs goroutines and returns how
// many times each item ran.
func runItems(procs, n int) []int32 {
	seen := make([]int32, n)
	var next atomic.Int64
	runOn(procs, func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			atomic.AddInt32(&seen[i], 1)
		}
	})
	return seen
}

func checkOnce(t *testing.T, seen []int32) {
	t.Helper()
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("item %d ran %d times, want once", i, c)
		}
	}
}

// TestRunOnEveryItemOnce: with spinning helpers and with helpers that park at once, every
// item of every region runs exactly once, across many regions in a row (the helpers are
// reused) and with more goroutines asked for than there are helpers.
func TestRunOnEveryItemOnce(t *testing.T) {
	defer SetSpin(time.Duration(spinNanos.Load()))
	for _, spin := range []time.Duration{100 * time.Microsecond, 0} {
		SetSpin(spin)
		for round := range 200 {
			checkOnce(t, runItems(1+round%5, round*7))
		}
	}
}

// TestRunOnConcurrentCallers: callers that share the helpers (as the ranks of an emulated
// node do) each get all their items done, whichever of them wins the helpers.
func TestRunOnConcurrentCallers(t *testing.T) {
	defer SetSpin(time.Duration(spinNanos.Load()))
	for _, spin := range []time.Duration{50 * time.Microsecond, 0} {
		SetSpin(spin)
		var wg sync.WaitGroup
		errs := make(chan []int32, 8)
		for c := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range 50 {
					seen := runItems(Threads(), 100+c+round)
					for _, n := range seen {
						if n != 1 {
							errs <- seen
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for seen := range errs {
			checkOnce(t, seen)
		}
	}
}

// TestRunOnHelperJoins: a region asked to run on two goroutines does run on two (a helper
// joins the caller), whether the helper was polling or parked: work that needs two
// participants at once would otherwise wait out its deadline.
func TestRunOnHelperJoins(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("GOMAXPROCS is 1: there are no helpers to join")
	}
	defer SetSpin(time.Duration(spinNanos.Load()))
	for _, spin := range []time.Duration{100 * time.Microsecond, 0} {
		SetSpin(spin)
		for range 20 {
			var in atomic.Int32
			both := make(chan struct{})
			runOn(2, func() {
				if in.Add(1) == 2 {
					close(both)
				}
				select {
				case <-both:
				case <-time.After(10 * time.Second):
					t.Errorf("spin %v: no second goroutine joined the region within 10 s", spin)
				}
			})
		}
	}
}
