package kernels

import (
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// prefetchTuner decides whether the AMX kernel prefetches the next block of weight rows into
// L2 while it works on the current one. Measured, that made the output layer about a quarter
// faster on an Emerald Rapids VM and 5–30 % slower on a Granite Rapids-class one, whose own
// prefetchers keep up and which the extra requests only crowd; nothing in CPUID tells the two
// apart. So large matmuls (weights of at least tuneMinBytes, which come from memory) take
// turns with and without it, shape by shape, and once tuneRounds pairs of the same shapes
// are timed, the faster way stays for the rest of the process. One row (decoding a single
// sequence, bound by memory) and several (bound more by the tiles) decide apart, and each
// shape's first calls are left out: a prefill meets every weight cold, and the first pass of
// a mapped checkpoint faults its pages in. Prefetching does not change a single result, only
// how soon the weights arrive. STRATA_AMX_PREFETCH=1 or 0 fixes the choice instead.
type prefetchTuner struct {
	regimes [2]tuneRegime // one row, several
}

type tuneRegime struct {
	state atomic.Int32 // tuneMeasuring, tuneOff or tuneOn
	mu    sync.Mutex
	seen  map[[3]int]*tuneShape
	pairs int
}

const (
	tuneMeasuring = iota
	tuneOff
	tuneOn
)

const (
	tuneMinBytes = 4 << 20
	tuneRounds   = 24
	tuneWarmup   = 2   // calls of a shape left out before its timed ones
	tuneShapes   = 256 // shapes seen without a decision: then not prefetching stays
)

type tuneShape struct {
	calls int          // calls so far, timed or not
	ns    [2][]float64 // per timed call without and with prefetching
	next  int          // the mode its next timed call takes
}

var amxTune = newPrefetchTuner(os.Getenv("STRATA_AMX_PREFETCH"))

func newPrefetchTuner(env string) *prefetchTuner {
	t := &prefetchTuner{}
	for i := range t.regimes {
		r := &t.regimes[i]
		r.seen = map[[3]int]*tuneShape{}
		switch env {
		case "0":
			r.state.Store(tuneOff)
		case "1":
			r.state.Store(tuneOn)
		}
	}
	return t
}

func (t *prefetchTuner) regime(n int) *tuneRegime { return &t.regimes[min(n, 2)-1] }

// pick says whether a matmul of out×in weights against n rows prefetches, and whether to time
// it for the tuner (then pass the result to done).
func (t *prefetchTuner) pick(out, in, n int) (prefetch, timed bool) {
	r := t.regime(n)
	switch r.state.Load() {
	case tuneOff:
		return false, false
	case tuneOn:
		return true, false
	}
	if 2*out*in < tuneMinBytes {
		return false, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.state.Load(); st != tuneMeasuring { // decided while this call waited
		return st == tuneOn, false
	}
	s := r.seen[[3]int{out, in, n}]
	if s == nil {
		if len(r.seen) >= tuneShapes { // shapes that never come back: stop measuring
			r.state.Store(tuneOff)
			r.seen = nil
			return false, false
		}
		s = &tuneShape{}
		r.seen[[3]int{out, in, n}] = s
	}
	if s.calls++; s.calls <= tuneWarmup {
		return false, false
	}
	on := s.next == 1
	s.next ^= 1
	return on, true
}

// done records a timed call of pick's, begun at start, and decides once enough calls are in.
func (t *prefetchTuner) done(out, in, n int, prefetch bool, start time.Time) {
	d := time.Since(start)
	r := t.regime(n)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.Load() != tuneMeasuring {
		return
	}
	s := r.seen[[3]int{out, in, n}]
	m := 0
	if prefetch {
		m = 1
	}
	s.ns[m] = append(s.ns[m], float64(d))
	if len(s.ns[m]) <= len(s.ns[1-m]) {
		r.pairs++
	}
	if r.pairs < tuneRounds {
		return
	}
	// the geometric mean over shapes of the ratio of median times, each shape weighted by
	// its pairs: shapes differ in speed, so only like is compared with like
	var logSum, weight float64
	for _, s := range r.seen {
		k := min(len(s.ns[0]), len(s.ns[1]))
		if k == 0 {
			continue
		}
		logSum += float64(k) * math.Log(median(s.ns[1])/median(s.ns[0]))
		weight += float64(k)
	}
	if logSum/weight < 0 {
		r.state.Store(tuneOn)
	} else {
		r.state.Store(tuneOff)
	}
	r.seen = nil
}

// String reports the tuner's choices for one row and for several: "on", "off", or
// "measuring" each, as "one row: off, several: on".
func (t *prefetchTuner) String() string {
	names := [...]string{"measuring", "off", "on"}
	return "one row: " + names[t.regimes[0].state.Load()] + ", several: " + names[t.regimes[1].state.Load()]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
