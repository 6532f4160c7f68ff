// Package commbench is strata's twin of nccl-tests (all_reduce_perf and friends): it sweeps
// message sizes for one collective, times out-of-place and in-place runs on every rank, checks
// every element against an exact reference, and prints nccl-tests' table.
package commbench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/strata-ai/strata/internal/comm"
	"github.com/strata-ai/strata/internal/tensor"
)

// Options mirror nccl-tests' flags.
type Options struct {
	MinBytes   int64   // -b
	MaxBytes   int64   // -e
	StepFactor float64 // -f (used when StepBytes is 0)
	StepBytes  int64   // -i
	Iters      int     // -n
	Warmup     int     // -w
	Check      bool    // -c
	Ops        []comm.Op
	Types      []comm.DataType
	Algo       comm.Algo // -a
	Collective comm.Collective
	Root       int // -r
}

// Result is one column group of a row: out-of-place or in-place.
type Result struct {
	TimeUs float64 `json:"time_us"`
	AlgBW  float64 `json:"algbw_gb_s"`
	BusBW  float64 `json:"busbw_gb_s"`
	Wrong  int64   `json:"wrong"` // -1 when not checked
	Algo   string  `json:"algo"`
}

// Row is one size × type × op.
type Row struct {
	Size       int64  `json:"size"`
	Count      int64  `json:"count"`
	Type       string `json:"type"`
	Op         string `json:"redop"`
	Root       int    `json:"root"`
	OutOfPlace Result `json:"out_of_place"`
	InPlace    Result `json:"in_place"`
}

// Report is everything one run measured.
type Report struct {
	Collective   string  `json:"collective"`
	NNodes       int     `json:"nnodes"`
	RanksPerNode int     `json:"ranks_per_node"`
	Algo         string  `json:"algo"`
	Rows         []Row   `json:"rows"`
	AvgBusBW     float64 `json:"avg_busbw_gb_s"`
	Wrong        int64   `json:"wrong"`
}

// BusFactor is nccl-tests' ratio of bus bandwidth to algorithm bandwidth for P ranks.
func BusFactor(c comm.Collective, P int) float64 {
	switch c {
	case comm.CollAllReduce:
		return 2 * float64(P-1) / float64(P)
	case comm.CollReduceScatter, comm.CollAllGather, comm.CollAllToAll:
		return float64(P-1) / float64(P)
	}
	return 1
}

// Sizes lists the message sizes of a sweep.
func (o *Options) Sizes() []int64 {
	var out []int64
	for s := o.MinBytes; s <= o.MaxBytes; {
		out = append(out, s)
		next := s + o.StepBytes
		if o.StepBytes == 0 {
			next = int64(math.Ceil(float64(s) * o.StepFactor))
		}
		if next <= s {
			break
		}
		s = next
	}
	return out
}

// counts converts a nccl-tests size into (elements per call, bytes reported): sizes round
// down so that collectives with per-rank blocks divide evenly, as nccl-tests does.
func counts(c comm.Collective, size int64, esz, P int) (count, reported int64) {
	elems := size / int64(esz)
	switch c {
	case comm.CollReduceScatter, comm.CollAllGather:
		per := elems / int64(P)
		return per, per * int64(P) * int64(esz)
	case comm.CollAllToAll:
		per := elems / int64(P) // nccl-tests reports the count each peer receives
		return per, per * int64(P) * int64(esz)
	}
	return elems, elems * int64(esz)
}

// Printer receives rows as they complete (only global rank 0 prints).
type Printer interface {
	Header(r *Report, o *Options)
	Row(row Row)
	Footer(r *Report)
}

// Run drives the benchmark on this process's ranks (one node's, or every node's when all
// nodes share the process). Every process of the job must call Run with the same options.
// p may be nil on processes that do not hold rank 0.
func Run(ctx context.Context, comms []*comm.Comm, o Options, p Printer) (*Report, error) {
	if len(comms) == 0 {
		return nil, fmt.Errorf("commbench: no ranks")
	}
	c0 := comms[0]
	rep := &Report{Collective: o.Collective.String(), NNodes: c0.NNodes(), RanksPerNode: c0.LocalSize(), Algo: o.Algo.String()}
	hasRank0 := c0.Rank() == 0
	if hasRank0 && p != nil {
		p.Header(rep, &o)
	}
	if o.Root < 0 || o.Root >= c0.Size() {
		return nil, fmt.Errorf("commbench: root %d is not a rank (0..%d)", o.Root, c0.Size()-1)
	}
	rows := make(chan Row)
	errc := make(chan error, len(comms))
	var wg sync.WaitGroup
	for _, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runRank(ctx, c, o, rows); err != nil {
				errc <- fmt.Errorf("rank %d: %w", c.Rank(), err)
				c.Abort(err)
			}
		}()
	}
	go func() { wg.Wait(); close(rows) }()
	var sum float64
	var nbw int
	for row := range rows {
		rep.Rows = append(rep.Rows, row)
		rep.Wrong += max(row.OutOfPlace.Wrong, 0) + max(row.InPlace.Wrong, 0)
		sum += row.OutOfPlace.BusBW + row.InPlace.BusBW
		nbw += 2
		if p != nil {
			p.Row(row)
		}
	}
	close(errc)
	var firstErr error
	for err := range errc {
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return rep, firstErr
	}
	if nbw > 0 {
		rep.AvgBusBW = sum / float64(nbw)
	}
	if hasRank0 && p != nil {
		p.Footer(rep)
	}
	return rep, nil
}

type bufs struct {
	send, recv []byte
}

// runRank is one rank's whole sweep. Rank 0 sends finished rows to out.
func runRank(ctx context.Context, c *comm.Comm, o Options, out chan<- Row) error {
	P := c.Size()
	sizes := o.Sizes()
	for _, dt := range o.Types {
		esz := dt.Size()
		maxCount, _ := counts(o.Collective, o.MaxBytes, esz, P)
		sendLen, recvLen := bufLens(o.Collective, maxCount, esz, P)
		b := bufs{send: make([]byte, sendLen), recv: make([]byte, recvLen)}
		ops := o.Ops
		if !reduces(o.Collective) {
			ops = []comm.Op{comm.Sum}
		}
		for _, op := range ops {
			for _, size := range sizes {
				count, reported := counts(o.Collective, size, esz, P)
				row := Row{Size: reported, Count: count, Type: dt.String(), Op: op.String(), Root: -1}
				if !reduces(o.Collective) {
					row.Op = "none"
				}
				if o.Collective == comm.CollBroadcast || o.Collective == comm.CollReduce {
					row.Root = o.Root
				}
				for _, inPlace := range []bool{false, true} {
					res, err := measure(ctx, c, o, b, dt, op, int(count), inPlace)
					if err != nil {
						return fmt.Errorf("%s %s %s size %d (in-place %v): %w", o.Collective, dt, op, reported, inPlace, err)
					}
					res.AlgBW = float64(reported) / (res.TimeUs * 1e-6) / 1e9
					if res.TimeUs == 0 {
						res.AlgBW = 0
					}
					res.BusBW = res.AlgBW * BusFactor(o.Collective, P)
					res.Algo = c.Choose(o.Collective, dt, int(reported)).String()
					if o.Algo != comm.AlgoAuto {
						res.Algo = comm.EffectiveAlgo(o.Collective, o.Algo).String()
					}
					if inPlace {
						row.InPlace = res
					} else {
						row.OutOfPlace = res
					}
				}
				if c.Rank() == 0 {
					select {
					case out <- row:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
		}
	}
	return nil
}

func reduces(c comm.Collective) bool {
	switch c {
	case comm.CollAllReduce, comm.CollReduceScatter, comm.CollReduce:
		return true
	}
	return false
}

// BytesPerRank is the most memory one rank's buffers take in a sweep over P ranks: the send
// and receive buffers at -e, and the reference a check builds, for the widest type.
func (o Options) BytesPerRank(P int) int64 {
	var most int64
	for _, dt := range o.Types {
		maxCount, _ := counts(o.Collective, o.MaxBytes, dt.Size(), P)
		send, recv := bufLens(o.Collective, maxCount, dt.Size(), P)
		most = max(most, int64(send)+2*int64(recv))
	}
	return most
}

func bufLens(c comm.Collective, count int64, esz, P int) (send, recv int) {
	n := int(count) * esz
	switch c {
	case comm.CollReduceScatter:
		return n * P, n
	case comm.CollAllGather:
		return n, n * P
	case comm.CollAllToAll:
		return n * P, n * P
	}
	return n, n
}

// call runs the collective once on views of b sized for count elements.
func call(ctx context.Context, c *comm.Comm, o Options, b bufs, dt comm.DataType, op comm.Op, count int, inPlace bool) error {
	esz := dt.Size()
	P, r := c.Size(), c.Rank()
	n := count * esz
	switch o.Collective {
	case comm.CollAllReduce:
		send, recv := b.send[:n], b.recv[:n]
		if inPlace {
			send = nil
		}
		return c.AllReduceWith(ctx, o.Algo, send, recv, dt, op)
	case comm.CollReduceScatter:
		send, recv := b.send[:n*P], b.recv[:n]
		if inPlace {
			recv = send[r*n : (r+1)*n]
		}
		return c.ReduceScatterWith(ctx, o.Algo, send, recv, dt, op)
	case comm.CollAllGather:
		send, recv := b.send[:n], b.recv[:n*P]
		if inPlace {
			send = recv[r*n : (r+1)*n]
		}
		return c.AllGatherWith(ctx, o.Algo, send, recv, dt)
	case comm.CollBroadcast:
		send, recv := b.send[:n], b.recv[:n]
		if inPlace {
			send = nil
		}
		return c.BroadcastWith(ctx, o.Algo, send, recv, dt, o.Root)
	case comm.CollReduce:
		send, recv := b.send[:n], b.recv[:n]
		if inPlace {
			recv = send
		}
		return c.ReduceWith(ctx, o.Algo, send, recv, dt, op, o.Root)
	case comm.CollAllToAll:
		// no in-place form: both columns run out of place
		return c.AllToAll(ctx, b.send[:n*P], b.recv[:n*P], dt)
	case comm.CollSendRecv:
		// no in-place form either: both columns run out of place
		return c.SendRecv(ctx, b.send[:n], dt, (r+1)%P, b.recv[:n], (r+P-1)%P)
	}
	return fmt.Errorf("commbench: unsupported collective %s", o.Collective)
}

// measure times Iters calls after Warmup calls and returns the mean over ranks of each
// rank's mean time per call, like nccl-tests' default; with Check it then verifies one call.
func measure(ctx context.Context, c *comm.Comm, o Options, b bufs, dt comm.DataType, op comm.Op, count int, inPlace bool) (Result, error) {
	for range o.Warmup {
		if err := call(ctx, c, o, b, dt, op, count, inPlace); err != nil {
			return Result{}, err
		}
	}
	if err := c.Barrier(ctx); err != nil {
		return Result{}, err
	}
	t0 := time.Now()
	for range o.Iters {
		if err := call(ctx, c, o, b, dt, op, count, inPlace); err != nil {
			return Result{}, err
		}
	}
	el := time.Since(t0).Seconds() / float64(max(o.Iters, 1))
	wrong := int64(-1)
	if o.Check {
		fill(c, o, b, dt, op, count, inPlace)
		if err := call(ctx, c, o, b, dt, op, count, inPlace); err != nil {
			return Result{}, err
		}
		wrong = verify(c, o, b, dt, op, count, inPlace)
	}
	agg := make([]float64, 2)
	agg[0], agg[1] = el, float64(max(wrong, 0))
	if err := c.AllReduceWith(ctx, comm.AlgoAuto, nil, comm.Bytes(agg), comm.Float64, comm.Sum); err != nil {
		return Result{}, err
	}
	res := Result{TimeUs: agg[0] / float64(c.Size()) * 1e6, Wrong: int64(agg[1])}
	if !o.Check {
		res.Wrong = -1
	}
	return res, nil
}

// The check data: small integers whose reductions are exact in every type and order.
func datum(op comm.Op, r, i int) float64 {
	if op == comm.Prod {
		return []float64{1, 2, -1}[(r+i)%3]
	}
	return float64((r*7+i*3)%11 - 5)
}

const period = 33 // datum repeats every 33 elements for every rank and op

func encode(dt comm.DataType, b []byte, i int, v float64) {
	switch dt {
	case comm.Float32:
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(v)))
	case comm.Float64:
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	case comm.Int32:
		binary.LittleEndian.PutUint32(b[4*i:], uint32(int32(v)))
	case comm.Int64:
		binary.LittleEndian.PutUint64(b[8*i:], uint64(int64(v)))
	case comm.BFloat16:
		binary.LittleEndian.PutUint16(b[2*i:], tensor.F32ToBF16(float32(v)))
	case comm.Float16:
		binary.LittleEndian.PutUint16(b[2*i:], tensor.F32ToF16(float32(v)))
	}
}

// pattern fills b (count elements starting at element offset) with f(i) for i mod period.
func pattern(dt comm.DataType, b []byte, offset int, f func(i int) float64) {
	esz := dt.Size()
	one := make([]byte, period*esz)
	for k := range period {
		encode(dt, one, k, f(k))
	}
	n := len(b) / esz
	for i := 0; i < n; {
		k := (offset + i) % period
		m := min(period-k, n-i)
		copy(b[i*esz:(i+m)*esz], one[k*esz:(k+m)*esz])
		i += m
	}
}

func reduceRef(dt comm.DataType, op comm.Op, P, i int) float64 {
	acc := datum(op, 0, i)
	for r := 1; r < P; r++ {
		v := datum(op, r, i)
		switch op {
		case comm.Sum, comm.Avg:
			acc += v
		case comm.Prod:
			acc *= v
		case comm.Min:
			acc = math.Min(acc, v)
		case comm.Max:
			acc = math.Max(acc, v)
		}
	}
	if op == comm.Avg {
		if dt == comm.Int32 || dt == comm.Int64 {
			return float64(int64(acc) / int64(P))
		}
		return acc / float64(P)
	}
	return acc
}

// fill writes this rank's check data into the buffers the next call reads.
func fill(c *comm.Comm, o Options, b bufs, dt comm.DataType, op comm.Op, count int, inPlace bool) {
	esz := dt.Size()
	P, r := c.Size(), c.Rank()
	n := count * esz
	mine := func(i int) float64 { return datum(op, r, i) }
	switch o.Collective {
	case comm.CollAllReduce, comm.CollBroadcast, comm.CollReduce, comm.CollSendRecv:
		if inPlace && (o.Collective == comm.CollAllReduce || o.Collective == comm.CollBroadcast) {
			pattern(dt, b.recv[:n], 0, mine)
		} else {
			pattern(dt, b.send[:n], 0, mine)
		}
	case comm.CollReduceScatter:
		pattern(dt, b.send[:n*P], 0, mine)
	case comm.CollAllGather:
		if inPlace {
			pattern(dt, b.recv[r*n:(r+1)*n], 0, mine)
		} else {
			pattern(dt, b.send[:n], 0, mine)
		}
	case comm.CollAllToAll:
		for j := range P {
			pattern(dt, b.send[j*n:(j+1)*n], 0, func(i int) float64 { return datum(op, r*P+j, i) })
		}
	}
}

// verify counts the elements of this rank's result that differ from the exact reference.
func verify(c *comm.Comm, o Options, b bufs, dt comm.DataType, op comm.Op, count int, inPlace bool) int64 {
	esz := dt.Size()
	P, r := c.Size(), c.Rank()
	n := count * esz
	var got, want []byte
	switch o.Collective {
	case comm.CollAllReduce:
		got = b.recv[:n]
		want = make([]byte, n)
		pattern(dt, want, 0, func(i int) float64 { return reduceRef(dt, op, P, i) })
	case comm.CollReduceScatter:
		got = b.recv[:n]
		if inPlace {
			got = b.send[r*n : (r+1)*n]
		}
		want = make([]byte, n)
		pattern(dt, want, r*count, func(i int) float64 { return reduceRef(dt, op, P, i) })
	case comm.CollAllGather:
		got = b.recv[:n*P]
		want = make([]byte, n*P)
		for q := range P {
			pattern(dt, want[q*n:(q+1)*n], 0, func(i int) float64 { return datum(op, q, i) })
		}
	case comm.CollBroadcast:
		got = b.recv[:n]
		want = make([]byte, n)
		pattern(dt, want, 0, func(i int) float64 { return datum(op, o.Root, i) })
	case comm.CollReduce:
		if r != o.Root {
			return 0
		}
		got = b.recv[:n]
		if inPlace {
			got = b.send[:n]
		}
		want = make([]byte, n)
		pattern(dt, want, 0, func(i int) float64 { return reduceRef(dt, op, P, i) })
	case comm.CollAllToAll:
		got = b.recv[:n*P]
		want = make([]byte, n*P)
		for q := range P {
			pattern(dt, want[q*n:(q+1)*n], 0, func(i int) float64 { return datum(op, q*P+r, i) })
		}
	case comm.CollSendRecv:
		got = b.recv[:n]
		want = make([]byte, n)
		pattern(dt, want, 0, func(i int) float64 { return datum(op, (r+P-1)%P, i) })
	}
	if bytes.Equal(got, want) {
		return 0
	}
	var wrong int64
	for i := 0; i < len(got); i += esz {
		if !bytes.Equal(got[i:i+esz], want[i:i+esz]) {
			wrong++
		}
	}
	return wrong
}

// TablePrinter prints nccl-tests' table.
type TablePrinter struct {
	W io.Writer
}

// Header implements Printer.
func (t *TablePrinter) Header(r *Report, o *Options) {
	fmt.Fprintf(t.W, "#\n")
	fmt.Fprintf(t.W, "#                                                              out-of-place                       in-place          \n")
	fmt.Fprintf(t.W, "#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong\n")
	fmt.Fprintf(t.W, "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       \n")
}

func fmtTime(us float64) string {
	switch {
	case us >= 1e5:
		return fmt.Sprintf("%7.0f", us)
	case us >= 1e4:
		return fmt.Sprintf("%7.1f", us)
	}
	return fmt.Sprintf("%7.2f", us)
}

func fmtWrong(w int64) string {
	if w < 0 {
		return "  N/A"
	}
	return fmt.Sprintf("%5d", w)
}

// Row implements Printer.
func (t *TablePrinter) Row(row Row) {
	fmt.Fprintf(t.W, "%12d  %12d  %8s  %6s  %6d  %s  %6.2f  %6.2f  %s  %s  %6.2f  %6.2f  %s\n",
		row.Size, row.Count, row.Type, row.Op, row.Root,
		fmtTime(row.OutOfPlace.TimeUs), row.OutOfPlace.AlgBW, row.OutOfPlace.BusBW, fmtWrong(row.OutOfPlace.Wrong),
		fmtTime(row.InPlace.TimeUs), row.InPlace.AlgBW, row.InPlace.BusBW, fmtWrong(row.InPlace.Wrong))
}

// Footer implements Printer.
func (t *TablePrinter) Footer(r *Report) {
	status := "OK"
	if r.Wrong > 0 {
		status = "FAILED"
	}
	if r.Algo == "auto" && len(r.Rows) > 0 {
		fmt.Fprintf(t.W, "# auto chose: %s\n", autoRuns(r.Rows))
	}
	fmt.Fprintf(t.W, "# Out of bounds values : %d %s\n", r.Wrong, status)
	fmt.Fprintf(t.W, "# Avg bus bandwidth    : %g \n", math.Round(r.AvgBusBW*1e4)/1e4)
	fmt.Fprintf(t.W, "#\n")
}

// autoRuns summarises which algorithm auto used over the sweep: "tree 8..262144, hier 524288..".
func autoRuns(rows []Row) string {
	var parts []string
	start := 0
	for i := 1; i <= len(rows); i++ {
		if i < len(rows) && rows[i].OutOfPlace.Algo == rows[start].OutOfPlace.Algo {
			continue
		}
		a, b := rows[start].Size, rows[i-1].Size
		if a == b {
			parts = append(parts, fmt.Sprintf("%s at %d B", rows[start].OutOfPlace.Algo, a))
		} else {
			parts = append(parts, fmt.Sprintf("%s for %d..%d B", rows[start].OutOfPlace.Algo, a, b))
		}
		start = i
	}
	return strings.Join(parts, ", ")
}
