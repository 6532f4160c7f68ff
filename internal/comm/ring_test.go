package comm

import (
	"fmt"
	"testing"
)

// TestRingSchedules runs the ring step schedules as a pure simulation, with no I/O: each
// participant holds one number per part, and at every step each sends the part its schedule
// names to the next participant, which reduces or copies it as its schedule says. The
// schedules must produce an allreduce, a reduce-scatter leaving part i on participant i,
// and an all-gather, for every ring size, and each step must forward what the previous
// step received (the pipelining relies on it).
func TestRingSchedules(t *testing.T) {
	for S := 1; S <= 9; S++ {
		for _, mode := range []ringMode{ringAllReduce, ringReduceScatter, ringAllGather} {
			t.Run(fmt.Sprintf("S=%d/mode=%d", S, mode), func(t *testing.T) {
				// data[p][part]: participant p's contribution is 1<<p in every part, so a
				// complete sum is 2^S - 1 and a partial sum shows who is missing
				data := make([][]int, S)
				sched := make([][]ringStep, S)
				for p := range S {
					data[p] = make([]int, S)
					for q := range S {
						if mode == ringAllGather {
							if q == p {
								data[p][q] = 100 + p
							}
						} else {
							data[p][q] = 1 << p
						}
					}
					g := &ring{idx: p, size: S}
					sched[p], _ = g.steps(mode)
				}
				steps := len(sched[0])
				for st := range steps {
					msgs := make([]int, S)
					for p := range S {
						if st > 0 && sched[p][st].send != sched[p][st-1].recv {
							t.Fatalf("participant %d step %d sends part %d but received part %d before", p, st, sched[p][st].send, sched[p][st-1].recv)
						}
						msgs[(p+1)%S] = data[p][sched[p][st].send]
					}
					for p := range S {
						s := sched[p][st]
						if s.reduce {
							data[p][s.recv] += msgs[p]
						} else {
							data[p][s.recv] = msgs[p]
						}
					}
				}
				full := 1<<S - 1
				for p := range S {
					for q := range S {
						switch mode {
						case ringAllReduce:
							if data[p][q] != full {
								t.Fatalf("allreduce: participant %d part %d = %b, want %b", p, q, data[p][q], full)
							}
						case ringReduceScatter:
							if q == p && data[p][q] != full {
								t.Fatalf("reduce-scatter: participant %d own part = %b, want %b", p, data[p][q], full)
							}
						case ringAllGather:
							if data[p][q] != 100+q {
								t.Fatalf("all-gather: participant %d part %d = %d, want %d", p, q, data[p][q], 100+q)
							}
						}
					}
				}
			})
		}
	}
}
