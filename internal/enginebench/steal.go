package enginebench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// cpuTimes is the machine's CPU time so far, from the first line of /proc/stat: total counts
// every state (idle included), steal the time the hypervisor ran something else while one
// of this machine's virtual CPUs had work.
type cpuTimes struct {
	steal, total uint64
}

// readCPU is readCPUTimes, or a test's stand-in.
var readCPU = readCPUTimes

// readCPUTimes reads /proc/stat; ok is false where there is none (off Linux) or it cannot be
// parsed, and the run then reports no steal.
func readCPUTimes() (cpuTimes, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	t, err := parseCPUStat(b)
	return t, err == nil
}

// parseCPUStat reads the aggregate "cpu" line: user nice system idle iowait irq softirq
// steal [guest guest_nice]. Guest time is already counted in user and nice, so it is left
// out of the total. Kernels before 2.6.11 have no steal column; such a line is an error.
func parseCPUStat(b []byte) (cpuTimes, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return cpuTimes{}, fmt.Errorf("enginebench: /proc/stat's first line is %q, not \"cpu\" and eight or more counters", line)
	}
	var t cpuTimes
	for i := 1; i <= 8; i++ {
		v, err := strconv.ParseUint(string(f[i]), 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("enginebench: /proc/stat counter %d: %w", i, err)
		}
		t.total += v
		if i == 8 {
			t.steal = v
		}
	}
	return t, nil
}

// stealFraction is the share of the CPU time between a and b that the hypervisor took; ok is
// false where no time passed or a counter went back (a reset), which say nothing.
func stealFraction(a, b cpuTimes) (float64, bool) {
	if b.total <= a.total || b.steal < a.steal {
		return 0, false
	}
	return float64(b.steal-a.steal) / float64(b.total-a.total), true
}
