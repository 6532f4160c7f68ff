package enginebench

import (
	"math"
	"os"
	"testing"

	"github.com/strata-ai/strata/internal/model/qwen3"
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
		ok   bool
	}{
		{cpuTimes{steal: 110, total: 1100}, 0.1, true},
		{cpuTimes{steal: 100, total: 1200}, 0, true},
		{cpuTimes{steal: 150, total: 1000}, 0, false}, // no time passed: nothing to divide by
		{cpuTimes{steal: 90, total: 1100}, 0, false},  // a counter went back (a reset): no claim
	} {
		got, ok := stealFraction(a, c.b)
		if ok != c.ok || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("stealFraction(%+v, %+v) = %v, %v; want %v, %v", a, c.b, got, ok, c.want, c.ok)
		}
	}
}

// TestRunReportsSteal: each batch's reported pass carries the steal between the counters read
// around it, and none where the counters say nothing.
func TestRunReportsSteal(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/models/qwen3-dense-tiny/config.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := qwen3.ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	m, err := qwen3.Random(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer func(f func() (cpuTimes, bool)) { readCPU = f }(readCPU)
	o := Options{PromptLen: 4, ContextLen: 4, DecodeSteps: 1, Batches: []int{1, 2}, Repeats: 2}
	// every read: 100 more ticks, 7 of them stolen
	var now cpuTimes
	readCPU = func() (cpuTimes, bool) {
		now.total += 100
		now.steal += 7
		return now, true
	}
	res, err := Run(m, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Decode {
		if d.CPUStealFraction == nil || math.Abs(*d.CPUStealFraction-0.07) > 1e-12 {
			t.Errorf("batch %d: steal %v, want 0.07", d.Batch, d.CPUStealFraction)
		}
	}
	// counters that do not move (or cannot be read) give no steal at all
	for _, read := range []func() (cpuTimes, bool){
		func() (cpuTimes, bool) { return cpuTimes{steal: 5, total: 50}, true },
		func() (cpuTimes, bool) { return cpuTimes{}, false },
	} {
		readCPU = read
		res, err := Run(m, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range res.Decode {
			if d.CPUStealFraction != nil {
				t.Errorf("batch %d: steal %v from counters that say nothing", d.Batch, *d.CPUStealFraction)
			}
		}
	}
}
