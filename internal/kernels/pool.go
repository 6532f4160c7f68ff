package kernels

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A forward pass is a chain of short parallel regions (a matmul, the attention, a norm) with
// a little serial work between them. Starting a goroutine per region wakes a parked thread
// each time, and on a virtual machine that wake takes 50–150 µs (measured on a 2-vCPU EPYC:
// the second core joined a region 60–120 µs after the first), longer than many regions last.
// So kernels hand regions to helpers that stay: after a region a helper polls for the next
// one for a short while (yielding the processor between polls, so other goroutines still
// run) before it parks. OpenMP runtimes do the same (GOMP_SPINCOUNT, KMP_BLOCKTIME).

// helper is one goroutine that runs other callers' regions.
type helper struct {
	state  atomic.Int32 // helperIdle, or helperClaimed from a caller's claim until the region is done
	job    atomic.Pointer[region]
	parked atomic.Bool
	wake   chan struct{} // buffered 1: a token means "look at job again"
}

const (
	helperIdle int32 = iota
	helperClaimed
)

// region is one call's work and the count of helpers still in it.
type region struct {
	work func()
	left atomic.Int32
	done chan struct{} // buffered 1: the last helper out puts a token
}

var (
	helpersMu sync.Mutex
	helpers   atomic.Pointer[[]*helper]
	regions   = sync.Pool{New: func() any { return &region{done: make(chan struct{}, 1)} }}
	spinNanos atomic.Int64
)

func init() {
	spin := 100 * time.Microsecond
	// STRATA_SPIN_US is the one knob for polling before sleeping, in comm and here.
	if v, err := strconv.Atoi(os.Getenv("STRATA_SPIN_US")); err == nil && v >= 0 {
		spin = time.Duration(v) * time.Microsecond
	}
	spinNanos.Store(int64(spin))
}

// SetSpin sets how long an idle helper, or a caller waiting for its helpers, polls before it
// sleeps (0: sleep at once). A process with more busy goroutines than cores wants 0, so a
// poller never holds a core that other work could use.
func SetSpin(d time.Duration) { spinNanos.Store(int64(max(d, 0))) }

// poolHelpers returns at least n helpers where the machine has the cores for them.
func poolHelpers(n int) []*helper {
	if hs := helpers.Load(); hs != nil && len(*hs) >= n {
		return *hs
	}
	helpersMu.Lock()
	defer helpersMu.Unlock()
	var hs []*helper
	if p := helpers.Load(); p != nil {
		hs = *p
	}
	n = min(n, max(runtime.GOMAXPROCS(0)-1, 0))
	for len(hs) < n {
		h := &helper{wake: make(chan struct{}, 1)}
		go h.loop()
		hs = append(hs[:len(hs):len(hs)], h)
	}
	helpers.Store(&hs)
	return hs
}

// spinUntil polls cond, yielding between polls, until it holds or the spin time is up; it
// reports whether cond held.
func spinUntil(cond func() bool) bool {
	limit := spinNanos.Load()
	if limit <= 0 {
		return cond()
	}
	start := time.Now()
	for i := 0; ; i++ {
		if cond() {
			return true
		}
		if i&15 == 15 && time.Since(start).Nanoseconds() > limit {
			return false
		}
		runtime.Gosched()
	}
}

func (h *helper) loop() {
	hasJob := func() bool { return h.job.Load() != nil }
	for {
		if !spinUntil(hasJob) {
			h.parked.Store(true)
			// A caller that stored its job before seeing parked sends no token: look again.
			if !hasJob() {
				<-h.wake
			}
			h.parked.Store(false)
			continue
		}
		r := h.job.Swap(nil)
		r.work()
		// Free for a new claim before the region's caller can return: the caller then
		// finds this helper idle for its next region.
		h.state.Store(helperIdle)
		if r.left.Add(-1) == 0 {
			r.done <- struct{}{}
		}
	}
}

// runOn runs work on up to n goroutines, the caller being one of them, and returns when all
// have returned. work takes its items from a shared counter, so it must be correct however
// many goroutines run it, and on however few: the caller alone finishes it if no helper is
// free (other callers, such as the ranks of an emulated node, have them all).
func runOn(n int, work func()) {
	if n <= 1 {
		work()
		return
	}
	hs := poolHelpers(n - 1)
	r := regions.Get().(*region)
	r.work = work
	claimed := 0
	for _, h := range hs {
		if claimed == n-1 {
			break
		}
		if !h.state.CompareAndSwap(helperIdle, helperClaimed) {
			continue
		}
		claimed++
		r.left.Add(1)
		h.job.Store(r)
		if h.parked.Load() {
			select {
			case h.wake <- struct{}{}:
			default:
			}
		}
	}
	work()
	if claimed > 0 {
		spinUntil(func() bool { return r.left.Load() == 0 })
		<-r.done
	}
	r.work = nil
	regions.Put(r)
}

// Run runs work on up to n goroutines (the caller one of them) from the kernels' helpers;
// work must take its pieces from a shared counter. For callers outside this package with a
// parallel loop of their own shape (attention units, experts).
func Run(n int, work func()) { runOn(min(n, Threads()), work) }

// HelperFunc names the function the kernels' helper goroutines run, for leak checkers
// (goleak.IgnoreAnyFunction): the helpers stay for the life of the process by design.
const HelperFunc = "github.com/strata-ai/strata/internal/kernels.(*helper).loop"
