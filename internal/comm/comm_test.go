package comm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(closeShared{m})
}

// closeShared closes the cluster the fuzz targets share before goleak looks for leftovers.
type closeShared struct{ m *testing.M }

func (c closeShared) Run() int {
	code := c.m.Run()
	if fuzzCluster != nil {
		_ = fuzzCluster.Close()
	}
	return code
}

var layouts = []struct{ nodes, L int }{{1, 1}, {1, 3}, {2, 1}, {2, 2}, {3, 2}, {4, 1}}

// TestCollectivesMatrix checks every collective × algorithm × op on several layouts and
// sizes (0, 1, uneven, larger than a piece) over the in-memory transport, against the
// sequential reference.
func TestCollectivesMatrix(t *testing.T) {
	counts := []int{0, 1, 5, 1031, 9000}
	for _, lay := range layouts {
		t.Run(fmt.Sprintf("%dx%d", lay.nodes, lay.L), func(t *testing.T) {
			lc := newInmem(t, lay.nodes, lay.L, testConfig())
			comms := lc.Comms()
			for _, coll := range AllCollectives {
				for _, algo := range []Algo{AlgoRing, AlgoTree, AlgoHier, AlgoAuto} {
					ops := []Op{Sum}
					switch coll {
					case CollAllReduce, CollReduceScatter, CollReduce:
						ops = AllOps
					}
					for _, op := range ops {
						for _, count := range counts {
							for _, inPlace := range []bool{false, true} {
								if coll == CollAllToAll || coll == CollSendRecv {
									if algo != AlgoAuto || inPlace {
										continue
									}
								}
								runCollective(t, comms, coll, algo, Float32, op, count, inPlace)
							}
						}
					}
				}
			}
		})
	}
}

// TestDataTypes runs every type through every collective and algorithm, with every op where
// the collective reduces.
func TestDataTypes(t *testing.T) {
	lc := newInmem(t, 2, 2, testConfig())
	comms := lc.Comms()
	for _, dt := range AllDataTypes {
		for _, coll := range AllCollectives {
			ops := []Op{Sum}
			switch coll {
			case CollAllReduce, CollReduceScatter, CollReduce:
				ops = AllOps
			}
			for _, op := range ops {
				for _, algo := range AllAlgos {
					if (coll == CollAllToAll || coll == CollSendRecv) && algo != AlgoRing {
						continue
					}
					runCollective(t, comms, coll, algo, dt, op, 3001, false)
					runCollective(t, comms, coll, algo, dt, op, 17, true)
				}
			}
		}
	}
}

// TestLarge moves hundreds of MiB through allreduce on every algorithm.
func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 128 MiB allreduce")
	}
	lc := newTCP(t, 2, 2, testConfig())
	for _, algo := range AllAlgos {
		runCollective(t, lc.Comms(), CollAllReduce, algo, Float32, Sum, 32<<20+3, algo == AlgoHier)
	}
}

// TestTCPLoopback runs the collectives over real sockets between nodes in one process.
func TestTCPLoopback(t *testing.T) {
	cfg := testConfig()
	cfg.Channels = 3
	lc := newTCP(t, 2, 2, cfg)
	comms := lc.Comms()
	for _, coll := range AllCollectives {
		for _, algo := range []Algo{AlgoRing, AlgoTree, AlgoHier, AlgoAuto} {
			for _, count := range []int{0, 3, 70001} {
				runCollective(t, comms, coll, algo, Float32, Sum, count, false)
				runCollective(t, comms, coll, algo, BFloat16, Avg, count, true)
			}
		}
	}
	mustAll(t, comms, func(c *Comm) error { return c.Barrier(context.Background()) })
}

// TestMismatchFailsEveryRank: a rank calling with another count makes every rank fail with
// an error that says what differs.
func TestMismatchFailsEveryRank(t *testing.T) {
	for _, algo := range AllAlgos {
		t.Run(algo.String(), func(t *testing.T) {
			lc := newInmem(t, 2, 2, testConfig())
			errs := onAll(lc.Comms(), func(c *Comm) error {
				n := 1024
				if c.Rank() == 3 {
					n = 2048
				}
				buf := make([]byte, n*4)
				return c.AllReduceWith(context.Background(), algo, nil, buf, Float32, Sum)
			})
			for r, err := range errs {
				if err == nil {
					t.Fatalf("rank %d: no error", r)
				}
				if !strings.Contains(err.Error(), "count") {
					t.Errorf("rank %d: error does not say the count differs: %v", r, err)
				}
			}
		})
	}
}

// TestMismatchOp: differing ops are named.
func TestMismatchOp(t *testing.T) {
	lc := newInmem(t, 2, 1, testConfig())
	errs := onAll(lc.Comms(), func(c *Comm) error {
		op := Sum
		if c.Rank() == 1 {
			op = Max
		}
		return c.AllReduce(context.Background(), nil, make([]byte, 64), Float32, op)
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "op sum vs max") && !strings.Contains(err.Error(), "op max vs sum") {
			t.Errorf("rank %d: want an op mismatch error, got %v", r, err)
		}
	}
}

// TestAbortFromAnyGoroutine: Abort ends pending calls on every rank with the reason.
func TestAbortFromAnyGoroutine(t *testing.T) {
	lc := newInmem(t, 2, 2, testConfig())
	comms := lc.Comms()
	started := make(chan struct{})
	done := make(chan []error)
	go func() {
		done <- onAll(comms[:3], func(c *Comm) error { // rank 3 never joins: the rest wait
			if c.Rank() == 0 {
				close(started)
			}
			return c.AllReduce(context.Background(), nil, make([]byte, 4096), Float32, Sum)
		})
	}()
	<-started
	comms[3].Abort(errors.New("operator pressed stop"))
	for r, err := range <-done {
		if err == nil || !strings.Contains(err.Error(), "operator pressed stop") {
			t.Errorf("rank %d: want the abort reason, got %v", r, err)
		}
	}
	if err := comms[1].Barrier(context.Background()); !errors.Is(err, ErrAborted) {
		t.Errorf("call after abort: want ErrAborted, got %v", err)
	}
}

func TestBadArguments(t *testing.T) {
	lc := newInmem(t, 1, 1, testConfig())
	c := lc.Comms()[0]
	ctx := context.Background()
	cases := []struct {
		name string
		err  error
	}{
		{"uneven bytes", c.AllReduce(ctx, nil, make([]byte, 5), Float32, Sum)},
		{"send/recv sizes", c.AllReduce(ctx, make([]byte, 8), make([]byte, 16), Float32, Sum)},
		{"bad type", c.AllReduce(ctx, nil, make([]byte, 8), DataType(99), Sum)},
		{"bad op", c.AllReduce(ctx, nil, make([]byte, 8), Float32, Op(42))},
		{"root", c.Broadcast(ctx, nil, make([]byte, 8), Float32, 3)},
		{"rs sizes", c.ReduceScatter(ctx, make([]byte, 12), make([]byte, 8), Float32, Sum)},
		{"peer", c.Send(ctx, make([]byte, 4), Float32, 9)},
	}
	for _, tc := range cases {
		if !errors.Is(tc.err, ErrBadArgument) {
			t.Errorf("%s: want ErrBadArgument, got %v", tc.name, tc.err)
		}
	}
	// a bad argument is local: the communicator still works
	if err := c.AllReduce(ctx, nil, make([]byte, 8), Float32, Sum); err != nil {
		t.Fatalf("after bad arguments: %v", err)
	}
}

func TestSendRecvOrdering(t *testing.T) {
	lc := newInmem(t, 2, 2, testConfig())
	comms := lc.Comms()
	mustAll(t, comms, func(c *Comm) error {
		ctx := context.Background()
		P := c.Size()
		for k := range 5 {
			send := make([]byte, 4*(100+k))
			fillRank(Int32, Sum, send, c.Rank()*10+k, 0)
			recv := make([]byte, len(send))
			if err := c.SendRecv(ctx, send, Int32, (c.Rank()+2)%P, recv, (c.Rank()+P-2)%P); err != nil {
				return err
			}
			if err := checkBuf(Int32, recv, func(i int) float64 { return value(Sum, ((c.Rank()+P-2)%P)*10+k, i) }); err != nil {
				return fmt.Errorf("message %d: %w", k, err)
			}
		}
		return nil
	})
}

// TestAlgorithmMismatchAcrossNodes: nodes that pick different algorithms (say STRATA_ALGO set
// on one node only) use different streams; they must still fail fast, naming the algorithms.
func TestAlgorithmMismatchAcrossNodes(t *testing.T) {
	lc := newInmem(t, 2, 2, testConfig())
	errs := onAll(lc.Comms(), func(c *Comm) error {
		algo := AlgoTree
		if c.Node() == 1 {
			algo = AlgoHier
		}
		return c.AllReduceWith(context.Background(), algo, nil, make([]byte, 1<<16), Float32, Sum)
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "algorithm") {
			t.Errorf("rank %d: want an algorithm mismatch, got %v", r, err)
		}
	}
}

// TestSetupFailureSeenAsAbort: when the last rank to join finds the call mismatched, it
// closes ready and aborts the node. A rank still on its way into the wait then sees both,
// and may take the abort; it must still return (it once waited forever at the exit barrier,
// which ranks skip when setup failed). The hook holds the first rank there until the abort,
// so each round the second select picks between the two at random.
func TestSetupFailureSeenAsAbort(t *testing.T) {
	testHookJoinWait = func(n *node) {
		select {
		case <-n.abortCh:
		case <-time.After(10 * time.Second):
		}
	}
	defer func() { testHookJoinWait = nil }()
	for round := range 16 {
		lc := newInmem(t, 1, 2, testConfig())
		done := make(chan []error, 1)
		go func() {
			done <- onAll(lc.Comms(), func(c *Comm) error {
				n := 1 << 20 // past the spin-wait size, so the waiter parks in the select
				if c.Rank() == 1 {
					n *= 2
				}
				return c.AllReduce(context.Background(), nil, make([]byte, n), Float32, Sum)
			})
		}()
		select {
		case errs := <-done:
			for r, err := range errs {
				if !errors.Is(err, ErrMismatch) {
					t.Fatalf("round %d: rank %d: want a mismatch, got %v", round, r, err)
				}
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: a rank did not return from a collective whose setup failed", round)
		}
	}
}
