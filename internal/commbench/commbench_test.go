package commbench

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/strata-ai/strata/internal/comm"
)

func TestSizesAndCounts(t *testing.T) {
	o := Options{MinBytes: 8, MaxBytes: 64, StepFactor: 2}
	if got := o.Sizes(); len(got) != 4 || got[0] != 8 || got[3] != 64 {
		t.Fatalf("sizes %v", got)
	}
	o = Options{MinBytes: 100, MaxBytes: 350, StepBytes: 100}
	if got := o.Sizes(); len(got) != 3 || got[2] != 300 {
		t.Fatalf("stepped sizes %v", got)
	}
	// nccl-tests: all_gather and reduce_scatter counts are per rank, sizes round down
	if c, r := counts(comm.CollAllGather, 100, 4, 3); c != 8 || r != 96 {
		t.Fatalf("all_gather 100 B over 3 ranks: count %d size %d", c, r)
	}
	if c, r := counts(comm.CollAllReduce, 100, 4, 3); c != 25 || r != 100 {
		t.Fatalf("all_reduce: count %d size %d", c, r)
	}
	if f := BusFactor(comm.CollAllReduce, 8); f != 1.75 {
		t.Fatalf("all_reduce bus factor %v", f)
	}
	if f := BusFactor(comm.CollAllGather, 4); f != 0.75 {
		t.Fatalf("all_gather bus factor %v", f)
	}
}

// TestRunChecksEveryCollective runs the benchmark loop with checking on for every collective
// on a 2 × 2 in-process cluster and requires a table with no wrong elements.
func TestRunChecksEveryCollective(t *testing.T) {
	cfg := comm.DefaultConfig()
	cfg.SkipCalibration = true
	w := comm.NewInmemNetwork()
	lc, err := comm.NewLocal(context.Background(), 2, 2, cfg, func(int) comm.Transport { return w.Transport() })
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	for _, coll := range comm.AllCollectives {
		var out bytes.Buffer
		o := Options{MinBytes: 96, MaxBytes: 96 << 10, StepFactor: 32, Iters: 2, Warmup: 1, Check: true,
			Ops: comm.AllOps, Types: []comm.DataType{comm.BFloat16, comm.Int32}, Collective: coll, Root: 1}
		rep, err := Run(context.Background(), lc.Comms(), o, &TablePrinter{W: &out})
		if err != nil {
			t.Fatalf("%s: %v", coll, err)
		}
		if rep.Wrong != 0 || len(rep.Rows) == 0 {
			t.Fatalf("%s: %d rows, %d wrong\n%s", coll, len(rep.Rows), rep.Wrong, out.String())
		}
		if !strings.Contains(out.String(), "# Avg bus bandwidth") || !strings.Contains(out.String(), "Out of bounds values : 0 OK") {
			t.Fatalf("%s: table lacks nccl-tests' footer:\n%s", coll, out.String())
		}
	}
}
