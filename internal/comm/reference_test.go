package comm

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/strata-ai/strata/internal/tensor"
)

// This file holds the sequential reference the collectives are checked against: values are
// computed element by element in float64 (exact for the small integers the tests use) and
// only then rounded to the element type, independently of the reduction kernels.

// value is the test datum of rank r at element i for an op: small integers whose sums and
// products are exact in every type (bfloat16 holds integers up to 256 exactly).
func value(op Op, r, i int) float64 {
	if op == Prod {
		return []float64{1, 2, -1}[(r+i)%3]
	}
	return float64((r*7+i*3)%11 - 5)
}

func encode(dt DataType, b []byte, i int, v float64) {
	switch dt {
	case Float32:
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(v)))
	case Float64:
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	case Int32:
		binary.LittleEndian.PutUint32(b[4*i:], uint32(int32(v)))
	case Int64:
		binary.LittleEndian.PutUint64(b[8*i:], uint64(int64(v)))
	case BFloat16:
		binary.LittleEndian.PutUint16(b[2*i:], tensor.F32ToBF16(float32(v)))
	case Float16:
		binary.LittleEndian.PutUint16(b[2*i:], tensor.F32ToF16(float32(v)))
	}
}

func decode(dt DataType, b []byte, i int) float64 {
	switch dt {
	case Float32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
	case Float64:
		return math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	case Int32:
		return float64(int32(binary.LittleEndian.Uint32(b[4*i:])))
	case Int64:
		return float64(int64(binary.LittleEndian.Uint64(b[8*i:])))
	case BFloat16:
		return float64(tensor.BF16ToF32(binary.LittleEndian.Uint16(b[2*i:])))
	case Float16:
		return float64(tensor.F16ToF32(binary.LittleEndian.Uint16(b[2*i:])))
	}
	return math.NaN()
}

// refReduce reduces the values of ranks 0..P-1 at element i (with an element offset) the way
// the op defines it, in float64, then rounds like the collective's final step.
func refReduce(dt DataType, op Op, P, i int) float64 {
	acc := value(op, 0, i)
	for r := 1; r < P; r++ {
		v := value(op, r, i)
		switch op {
		case Sum, Avg:
			acc += v
		case Prod:
			acc *= v
		case Min:
			acc = math.Min(acc, v)
		case Max:
			acc = math.Max(acc, v)
		}
	}
	if op == Avg {
		switch dt {
		case Int32, Int64:
			acc = float64(int64(acc) / int64(P))
		default:
			acc = acc / float64(P)
		}
	}
	b := make([]byte, 8)
	encode(dt, b, 0, acc)
	return decode(dt, b, 0)
}

func fillRank(dt DataType, op Op, b []byte, r, offset int) {
	for i := range len(b) / dt.Size() {
		encode(dt, b, i, value(op, r, offset+i))
	}
}

// onAll runs f on every rank concurrently and returns the errors by rank.
func onAll(comms []*Comm, f func(c *Comm) error) []error {
	errs := make([]error, len(comms))
	var wg sync.WaitGroup
	for i, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(c)
		}()
	}
	wg.Wait()
	return errs
}

func mustAll(t *testing.T, comms []*Comm, f func(c *Comm) error) {
	t.Helper()
	for r, err := range onAll(comms, f) {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Timeout = 20 * time.Second
	cfg.PieceBytes = 4 << 10 // small pieces so modest sizes exercise pipelining
	cfg.SkipCalibration = true
	cfg.Channels = 2
	return cfg
}

func newInmem(t testing.TB, nodes, L int, cfg Config) *Local {
	t.Helper()
	w := NewInmemNetwork()
	lc, err := NewLocal(context.Background(), nodes, L, cfg, func(int) Transport { return w.Transport() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	return lc
}

func newTCP(t testing.TB, nodes, L int, cfg Config) *Local {
	t.Helper()
	lc, err := NewLocal(context.Background(), nodes, L, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lc.Close() })
	return lc
}

// checkBuf compares a result buffer against want(i) element by element.
func checkBuf(dt DataType, got []byte, want func(i int) float64) error {
	for i := range len(got) / dt.Size() {
		g, w := decode(dt, got, i), want(i)
		if g != w && !(math.IsNaN(g) && math.IsNaN(w)) {
			return fmt.Errorf("element %d: got %v, want %v", i, g, w)
		}
	}
	return nil
}

// runCollective runs one collective on every rank with reference data and checks every
// rank's output.
func runCollective(t *testing.T, comms []*Comm, coll Collective, algo Algo, dt DataType, op Op, count int, inPlace bool) {
	t.Helper()
	P := len(comms)
	esz := dt.Size()
	root := (count + 1) % P
	errs := onAll(comms, func(c *Comm) error {
		ctx := context.Background()
		r := c.Rank()
		switch coll {
		case CollAllReduce:
			recv := make([]byte, count*esz)
			send := make([]byte, count*esz)
			fillRank(dt, op, send, r, 0)
			if inPlace {
				copy(recv, send)
				send = nil
			}
			if err := c.AllReduceWith(ctx, algo, send, recv, dt, op); err != nil {
				return err
			}
			return checkBuf(dt, recv, periodic(func(i int) float64 { return refReduce(dt, op, P, i) }))
		case CollReduceScatter:
			send := make([]byte, P*count*esz)
			fillRank(dt, op, send, r, 0)
			recv := make([]byte, count*esz)
			if inPlace {
				recv = send[r*count*esz : (r+1)*count*esz]
			}
			if err := c.ReduceScatterWith(ctx, algo, send, recv, dt, op); err != nil {
				return err
			}
			return checkBuf(dt, recv, periodic(func(i int) float64 { return refReduce(dt, op, P, r*count+i) }))
		case CollAllGather:
			recv := make([]byte, P*count*esz)
			send := make([]byte, count*esz)
			if inPlace {
				send = recv[r*count*esz : (r+1)*count*esz]
			}
			fillRank(dt, op, send, r, 0)
			if err := c.AllGatherWith(ctx, algo, send, recv, dt); err != nil {
				return err
			}
			return checkBuf(dt, recv, func(i int) float64 { return refValue(dt, op, i/max(count, 1), i%max(count, 1)) })
		case CollBroadcast:
			recv := make([]byte, count*esz)
			var send []byte
			if r == root {
				send = make([]byte, count*esz)
				fillRank(dt, op, send, r, 0)
				if inPlace {
					copy(recv, send)
					send = nil
				}
			}
			if err := c.BroadcastWith(ctx, algo, send, recv, dt, root); err != nil {
				return err
			}
			return checkBuf(dt, recv, func(i int) float64 { return refValue(dt, op, root, i) })
		case CollReduce:
			send := make([]byte, count*esz)
			fillRank(dt, op, send, r, 0)
			var recv []byte
			if r == root {
				recv = make([]byte, count*esz)
				if inPlace {
					copy(recv, send)
					send = recv
				}
			}
			if err := c.ReduceWith(ctx, algo, send, recv, dt, op, root); err != nil {
				return err
			}
			if r != root {
				return nil
			}
			return checkBuf(dt, recv, func(i int) float64 { return refReduce(dt, op, P, i) })
		case CollAllToAll:
			send := make([]byte, P*count*esz)
			for j := range P {
				fillRank(dt, op, send[j*count*esz:(j+1)*count*esz], r*P+j, 0)
			}
			recv := make([]byte, P*count*esz)
			if err := c.AllToAll(ctx, send, recv, dt); err != nil {
				return err
			}
			return checkBuf(dt, recv, func(i int) float64 { q := i / max(count, 1); return refValue(dt, op, q*P+r, i%max(count, 1)) })
		case CollSendRecv:
			send := make([]byte, count*esz)
			fillRank(dt, op, send, r, 0)
			recv := make([]byte, count*esz)
			if err := c.SendRecv(ctx, send, dt, (r+1)%P, recv, (r+P-1)%P); err != nil {
				return err
			}
			return checkBuf(dt, recv, func(i int) float64 { return refValue(dt, op, (r+P-1)%P, i) })
		}
		return fmt.Errorf("unknown collective %v", coll)
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("%s algo=%s %s %s count=%d inplace=%v: rank %d: %v", coll, algo, dt, op, count, inPlace, r, err)
		}
	}
}

// refValue is rank r's datum at element i after rounding to dt.
func refValue(dt DataType, op Op, r, i int) float64 {
	b := make([]byte, 8)
	encode(dt, b, 0, value(op, r, i))
	return decode(dt, b, 0)
}

// periodic memoises a reference that depends on the element index only modulo 33, which holds
// for value's data (period 11 for sums, 3 for products), so large buffers check quickly.
func periodic(f func(i int) float64) func(i int) float64 {
	var memo [33]float64
	for k := range memo {
		memo[k] = f(k)
	}
	return func(i int) float64 { return memo[i%33] }
}
