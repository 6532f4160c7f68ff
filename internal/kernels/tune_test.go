package kernels

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestPrefetchTuner drives the tuner with made-up times: it leaves small matmuls and each
// shape's first calls alone, then alternates the two ways shape by shape, compares only like
// shapes, and settles on the faster way after tuneRounds pairs, for several rows apart from
// one; STRATA_AMX_PREFETCH fixes the choice.
func TestPrefetchTuner(t *testing.T) {
	big := [2]int{151936, 1024}
	small := [2]int{1024, 1024} // 2 MB: below tuneMinBytes
	for _, c := range []struct {
		name string
		env  string
		// ns returns the time of a call of shape i (0 or 1) with or without prefetching
		ns   func(shape int, prefetch bool) time.Duration
		want string
	}{
		{"prefetching faster", "", func(_ int, p bool) time.Duration { return map[bool]time.Duration{true: 90, false: 100}[p] }, "on"},
		{"prefetching slower", "", func(_ int, p bool) time.Duration { return map[bool]time.Duration{true: 110, false: 100}[p] }, "off"},
		// one shape three times as slow as the other: alternating across shapes would make
		// whichever way the slow shape met first look slower; per shape, on wins
		{"shapes of different speed", "", func(s int, p bool) time.Duration {
			base := time.Duration(100 + 200*s)
			if p {
				return base * 95 / 100
			}
			return base
		}, "on"},
		{"forced off", "0", func(_ int, p bool) time.Duration { return map[bool]time.Duration{true: 1, false: 100}[p] }, "off"},
		{"forced on", "1", func(_ int, p bool) time.Duration { return map[bool]time.Duration{true: 100, false: 1}[p] }, "on"},
	} {
		tu := newPrefetchTuner(c.env)
		several := &tu.regimes[1]
		shapes := [][2]int{big, {6144, 1024}}
		lastMode := map[int]bool{}
		calls := map[int]int{}
		for call := 0; several.state.Load() == tuneMeasuring && call < 1000; call++ {
			if p, timed := tu.pick(small[0], small[1], 1); p || timed {
				t.Fatalf("%s: a 2 MB matmul was timed (%v) or prefetched (%v) while measuring", c.name, timed, p)
			}
			si := call % 2
			if call%5 == 0 {
				si = 1 - si // an uneven order of shapes
			}
			sh := shapes[si]
			p, timed := tu.pick(sh[0], sh[1], 32)
			if calls[si]++; calls[si] <= tuneWarmup {
				if timed || p {
					t.Fatalf("%s: warm-up call %d of shape %d timed (%v) or prefetched (%v)", c.name, calls[si], si, timed, p)
				}
				continue
			}
			if !timed {
				t.Fatalf("%s: call %d of a large shape not timed while measuring", c.name, call)
			}
			if prev, ok := lastMode[si]; ok && prev == p {
				t.Fatalf("%s: shape %d took the same way twice running while measuring", c.name, si)
			}
			lastMode[si] = p
			tu.done(sh[0], sh[1], 32, p, time.Now().Add(-c.ns(si, p)))
			if call > 4*tuneRounds+4*tuneWarmup {
				t.Fatalf("%s: undecided after %d calls", c.name, call)
			}
		}
		if got := [...]string{"measuring", "off", "on"}[several.state.Load()]; got != c.want {
			t.Errorf("%s: decided %q, want %q", c.name, got, c.want)
		}
		for _, sh := range append(shapes, small) {
			if p, timed := tu.pick(sh[0], sh[1], 8); timed || p != (c.want == "on") {
				t.Errorf("%s: after deciding, %v picks prefetch %v (timed %v)", c.name, sh, p, timed)
			}
		}
		if c.env == "" && tu.regimes[0].state.Load() != tuneMeasuring {
			t.Errorf("%s: one row decided (%v) from calls of 32 rows", c.name, tu)
		}
	}
}

// TestPrefetchTunerRegimes: one row and several rows decide apart, each from its own calls.
func TestPrefetchTunerRegimes(t *testing.T) {
	tu := newPrefetchTuner("")
	for call := 0; call < 200; call++ {
		for _, n := range []int{1, 16} {
			p, timed := tu.pick(151936, 1024, n)
			if timed {
				d := map[bool]time.Duration{true: 80, false: 100}[p] // one row: prefetching wins
				if n > 1 {
					d = map[bool]time.Duration{true: 120, false: 100}[p]
				}
				tu.done(151936, 1024, n, p, time.Now().Add(-d))
			}
		}
	}
	if got := tu.String(); got != "one row: on, several: off" {
		t.Fatalf("decided %q", got)
	}
}

// TestPrefetchTunerShapesNeverRepeat: a run whose shapes never come back stops measuring
// (not prefetching) instead of keeping a record of every shape.
func TestPrefetchTunerShapesNeverRepeat(t *testing.T) {
	tu := newPrefetchTuner("")
	for n := 2; n < 2+2*tuneShapes; n++ {
		if p, timed := tu.pick(8192, 1024, n); timed || p {
			t.Fatalf("the first call of a shape (n %d) was timed (%v) or prefetched (%v)", n, timed, p)
		}
	}
	if r := &tu.regimes[1]; r.state.Load() != tuneOff || r.seen != nil {
		t.Fatalf("after %d shapes seen once: %v, %d shapes held", 2*tuneShapes, tu, len(r.seen))
	}
}

// TestPrefetchTunerConcurrent: matmuls on several goroutines (ranks in one process, MoE
// experts) pick and report while the tuner decides; nothing may race or panic (run with
// -race).
func TestPrefetchTunerConcurrent(t *testing.T) {
	tu := newPrefetchTuner("")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				p, timed := tu.pick(8192, 1024, g+1)
				if timed {
					tu.done(8192, 1024, g+1, p, time.Now().Add(-time.Microsecond))
				}
			}
		}()
	}
	wg.Wait()
	if tu.regimes[1].state.Load() == tuneMeasuring {
		t.Fatalf("600 calls of three shapes and still measuring: %v", tu)
	}
}

// TestPrefetchKeepsResults: prefetching moves only when weights arrive; the sums are the same
// bits either way.
func TestPrefetchKeepsResults(t *testing.T) {
	if !hasAMX {
		t.Skip("this CPU, or its kernel, offers no AMX-BF16 tiles")
	}
	defer func(s0, s1 int32) { amxTune.regimes[0].state.Store(s0); amxTune.regimes[1].state.Store(s1) }(amxTune.regimes[0].state.Load(), amxTune.regimes[1].state.Load())
	r := rand.New(rand.NewPCG(31, 32))
	const out, in = 4096, 1024 // 8 MB: a shape the tuner times
	w := randBF16(r, out*in)
	for _, n := range []int{1, 7, 32} {
		var got [2][][]float32
		for m, state := range []int32{tuneOff, tuneOn} {
			amxTune.regimes[0].state.Store(state)
			amxTune.regimes[1].state.Store(state)
			xs, ys := batchRows(rand.New(rand.NewPCG(33, 34)), n, in, out)
			MatBF16(w, out, in, xs, ys, Float32)
			got[m] = ys
		}
		for ti := range got[0] {
			for o := range got[0][ti] {
				if got[0][ti][o] != got[1][ti][o] {
					t.Fatalf("%d rows, row %d result %d: %v without prefetching, %v with", n, ti, o, got[0][ti][o], got[1][ti][o])
				}
			}
		}
	}
}
