package enginebench

import (
	"math"
	"testing"
)

func TestParseCPUStat(t *testing.T) {
	for _, c := range []struct {
		name         string
		in           string
		steal, total uint64
		bad          bool
	}{
		{name: "ten counters", in: "cpu  100 5 20 800 3 0 2 70 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n", steal: 70, total: 1000},
		{name: "eight counters", in: "cpu 1 2 3 4 5 6 7 8\n", steal: 8, total: 36},
		{name: "no steal column", in: "cpu 1 2 3 4 5 6 7\n", bad: true},
		{name: "not the cpu line", in: "intr 1 2 3 4 5 6 7 8 9\n", bad: true},
		{name: "per-cpu line first", in: "cpu0 1 2 3 4 5 6 7 8\n", bad: true},
		{name: "not a number", in: "cpu 1 2 3 x 5 6 7 8\n", bad: true},
		{name: "empty", in: "", bad: true},
	} {
		got, err := parseCPUStat([]byte(c.in))
		if c.bad {
			if err == nil {
				t.Errorf("%s: parsed %+v, want an error", c.name, got)
			}
			continue
		}
		if err != nil || got.steal != c.steal || got.total != c.total {
			t.Errorf("%s: got %+v, %v; want steal %d total %d", c.name, got, err, c.steal, c.total)
		}
	}
}

func TestStealFraction(t *testing.T) {
	a := cpuTimes{steal: 100, total: 1000}
	for _, c := range []struct {
		b    cpuTimes
		want float64
	}{
		{cpuTimes{steal: 110, total: 1100}, 0.1},
		{cpuTimes{steal: 100, total: 1200}, 0},
		{cpuTimes{steal: 150, total: 1000}, 0}, // no time passed: nothing to divide by
		{cpuTimes{steal: 90, total: 1100}, 0},  // a counter went back (a reset): no claim
	} {
		if got := stealFraction(a, c.b); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("stealFraction(%+v, %+v) = %v, want %v", a, c.b, got, c.want)
		}
	}
}
