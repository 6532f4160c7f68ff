// Package pipeline runs a model split across ranks and nodes and offers it to the engine as
// one forward pass: tensor parallel over the ranks of a node (goroutines sharing memory, with
// comm's collectives), pipeline stages across nodes (one stage per node, activations sent over
// comm). The scheduler lives on global rank 0 (node 0, local rank 0), which drives every step:
// it broadcasts the step's plan, runs its own share, and gets the logits back from the last
// stage.
package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/strata-ai/strata/internal/comm"
	"github.com/strata-ai/strata/internal/model/qwen3"
)

// Layout is how the model is split: Nodes pipeline stages of TP ranks each; with
// ExpertParallel, a MoE model's experts are placed whole on the ranks of a node rather than
// sliced across them.
type Layout struct {
	Nodes, TP      int
	ExpertParallel bool
}

// Ranks is the number of ranks in the job.
func (l Layout) Ranks() int { return l.Nodes * l.TP }

// Rank is one rank's share: its shard of the model, its KV cache and its links.
type Rank struct {
	Layout
	Stage, Local int
	Model        *qwen3.Model
	KV           *qwen3.PagedKV
	global       *comm.Comm // every rank of every node
	tpc          *comm.Comm // this node's ranks (nil with TP 1)
	timeout      time.Duration
}

// waitFactor stretches the deadline of waits that include other ranks' compute (the next
// micro-batch from the previous stage, logits from the last one): a long prefill chunk on a
// CPU may take longer than one link timeout. Dead nodes are found sooner by the driver's
// round-trip heartbeat and by broken connections.
const waitFactor = 10

// NewRank binds a loaded shard to its links. global spans the job (node-major rank order);
// tpc spans the ranks of this node and may be nil when TP is 1.
func NewRank(l Layout, m *qwen3.Model, numBlocks, blockSize int, global, tpc *comm.Comm, timeout time.Duration) *Rank {
	return &Rank{Layout: l, Stage: global.Node(), Local: global.LocalRank(), Model: m, KV: m.NewPagedKV(numBlocks, blockSize), global: global, tpc: tpc, timeout: timeout}
}

// TPComm adapts a node's comm.Comm to what a tensor-parallel shard needs.
type TPComm struct {
	C       *comm.Comm
	Timeout time.Duration
}

func (t TPComm) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), t.Timeout)
}

// AllReduceSum sums buf across the node's ranks, in place.
func (t TPComm) AllReduceSum(buf []float32) error {
	ctx, cancel := t.ctx()
	defer cancel()
	b := f32bytes(buf)
	return t.C.AllReduce(ctx, b, b, comm.Float32, comm.Sum)
}

// AllReduceMax takes the element-wise maximum of buf across the node's ranks, in place.
func (t TPComm) AllReduceMax(buf []float32) error {
	ctx, cancel := t.ctx()
	defer cancel()
	b := f32bytes(buf)
	return t.C.AllReduce(ctx, b, b, comm.Float32, comm.Max)
}

// AllToAll sends block j of send to rank j, which stores it as block r of recv.
func (t TPComm) AllToAll(send, recv []float32) error {
	ctx, cancel := t.ctx()
	defer cancel()
	return t.C.AllToAll(ctx, f32bytes(send), f32bytes(recv), comm.Float32)
}

// AllGather concatenates every rank's send into recv, in rank order.
func (t TPComm) AllGather(send, recv []float32) error {
	ctx, cancel := t.ctx()
	defer cancel()
	return t.C.AllGather(ctx, f32bytes(send), f32bytes(recv), comm.Float32)
}

func f32bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// ErrStopped is returned by a worker loop that was told to stop.
var ErrStopped = errors.New("pipeline: stopped by the driver")

const (
	msgStep = 1
	msgStop = 2
	msgPing = 3 // an idle driver's heartbeat: keeps workers' waits within their deadline and finds dead nodes
)

// encodePlan writes a step's items: count, then per item start, logits flags (1: the last
// token's, 2: every token's, TopK in the bits above), len(tokens), tokens, len(table), table.
func encodePlan(items []qwen3.BatchItem) []byte {
	var b []byte
	put := func(v int64) { b = binary.LittleEndian.AppendUint64(b, uint64(v)) }
	put(int64(len(items)))
	for _, it := range items {
		put(int64(it.Start))
		w := int64(0)
		if it.WantLogits {
			w |= 1
		}
		if it.AllLogits {
			w |= 2
		}
		w |= int64(it.TopK) << 2
		put(w)
		put(int64(len(it.Tokens)))
		for _, t := range it.Tokens {
			put(int64(t))
		}
		put(int64(len(it.Table)))
		for _, t := range it.Table {
			put(int64(t))
		}
	}
	return b
}

// maxTopK bounds a plan's TopK: samplers read at most a few hundred of a row's largest logits.
const maxTopK = 1 << 16

func decodePlan(b []byte) ([]qwen3.BatchItem, error) {
	off := 0
	get := func() (int64, error) {
		if off+8 > len(b) {
			return 0, errors.New("pipeline: truncated step plan")
		}
		v := int64(binary.LittleEndian.Uint64(b[off:]))
		off += 8
		return v, nil
	}
	n, err := get()
	if err != nil || n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("pipeline: bad step plan (%d items, %v)", n, err)
	}
	items := make([]qwen3.BatchItem, n)
	for i := range items {
		var v [3]int64
		for k := range v {
			if v[k], err = get(); err != nil {
				return nil, err
			}
		}
		if v[1] < 0 || v[1]>>2 > maxTopK {
			return nil, errors.New("pipeline: bad step plan (logits flags)")
		}
		it := qwen3.BatchItem{Start: int(v[0]), WantLogits: v[1]&1 != 0, AllLogits: v[1]&2 != 0, TopK: int(v[1] >> 2)}
		if v[2] < 0 || v[2] > int64(len(b)) {
			return nil, errors.New("pipeline: bad step plan")
		}
		it.Tokens = make([]int, v[2])
		for k := range it.Tokens {
			t, err := get()
			if err != nil {
				return nil, err
			}
			it.Tokens[k] = int(t)
		}
		nt, err := get()
		if err != nil || nt < 0 || nt > int64(len(b)) {
			return nil, errors.New("pipeline: bad step plan")
		}
		it.Table = make([]int32, nt)
		for k := range it.Table {
			t, err := get()
			if err != nil {
				return nil, err
			}
			it.Table[k] = int32(t)
		}
		items[i] = it
	}
	return items, nil
}

func (r *Rank) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.timeout)
}

// waitCtx is the deadline of a wait that includes other stages' compute.
func (r *Rank) waitCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), waitFactor*r.timeout)
}

func stageLeader(stage, tp int) int { return stage * tp }

// msg is what travels down the pipeline for one micro-batch: its kind, the plan, and the
// activations of the stage before (nil into stage 0).
type msg struct {
	kind int64
	plan []byte
	acts []float32
}

// rowsOf counts a plan's token rows and the logits rows it wants back.
func rowsOf(plan []qwen3.BatchItem) (rows, wanted int) {
	for _, it := range plan {
		rows += len(it.Tokens)
		wanted += logitRows(it)
	}
	return rows, wanted
}

// logitRows is how many rows of logits an item wants: every token's, the last one's, or none.
func logitRows(it qwen3.BatchItem) int {
	switch {
	case it.AllLogits:
		return len(it.Tokens)
	case it.WantLogits:
		return 1
	}
	return 0
}

// tpShare gives the node's other ranks what local rank 0 has: header, plan and activations
// (node-local broadcasts over shared memory).
func (r *Rank) tpShare(m *msg, withActs bool) error {
	if r.tpc == nil {
		return nil
	}
	ctx, cancel := r.waitCtx()
	defer cancel()
	head := make([]byte, 16)
	if r.Local == 0 {
		binary.LittleEndian.PutUint64(head, uint64(m.kind))
		binary.LittleEndian.PutUint64(head[8:], uint64(len(m.plan)))
	}
	if err := r.tpc.Broadcast(ctx, head, head, comm.Int64, 0); err != nil {
		return fmt.Errorf("pipeline: step within node %d: %w", r.Stage, err)
	}
	m.kind = int64(binary.LittleEndian.Uint64(head))
	n := int(binary.LittleEndian.Uint64(head[8:]))
	if n < 0 || n > 1<<30 || n%8 != 0 {
		return fmt.Errorf("pipeline: step plan of %d bytes", n)
	}
	if r.Local != 0 {
		m.plan = make([]byte, n)
	}
	if n > 0 {
		if err := r.tpc.Broadcast(ctx, m.plan, m.plan, comm.Int64, 0); err != nil {
			return fmt.Errorf("pipeline: step plan within node %d: %w", r.Stage, err)
		}
	}
	if !withActs || m.kind != msgStep {
		return nil
	}
	items, err := decodePlan(m.plan)
	if err != nil {
		return err
	}
	rows, _ := rowsOf(items)
	if r.Local != 0 {
		m.acts = make([]float32, rows*r.Model.Full.Hidden)
	}
	if err := r.tpc.Broadcast(ctx, f32bytes(m.acts), f32bytes(m.acts), comm.Float32, 0); err != nil {
		return fmt.Errorf("pipeline: activations within node %d: %w", r.Stage, err)
	}
	return nil
}

// recvPrev takes the next message from the previous stage's leader.
func (r *Rank) recvPrev(idle bool) (*msg, error) {
	prev := stageLeader(r.Stage-1, r.TP)
	ctx, cancel := r.waitCtx()
	defer cancel()
	head := make([]byte, 16)
	if err := r.global.Recv(ctx, head, comm.Int64, prev); err != nil {
		if idle {
			return nil, fmt.Errorf("pipeline: waiting for the next step from node %d: %w", r.Stage-1, err)
		}
		return nil, fmt.Errorf("pipeline: step from node %d: %w", r.Stage-1, err)
	}
	m := &msg{kind: int64(binary.LittleEndian.Uint64(head))}
	n := int(binary.LittleEndian.Uint64(head[8:]))
	if n < 0 || n > 1<<30 || n%8 != 0 {
		return nil, fmt.Errorf("pipeline: step plan of %d bytes from node %d", n, r.Stage-1)
	}
	m.plan = make([]byte, n)
	if n > 0 {
		if err := r.global.Recv(ctx, m.plan, comm.Int64, prev); err != nil {
			return nil, fmt.Errorf("pipeline: step plan from node %d: %w", r.Stage-1, err)
		}
	}
	if m.kind != msgStep {
		return m, nil
	}
	items, err := decodePlan(m.plan)
	if err != nil {
		return nil, err
	}
	rows, _ := rowsOf(items)
	m.acts = make([]float32, rows*r.Model.Full.Hidden)
	if err := r.global.Recv(ctx, f32bytes(m.acts), comm.Float32, prev); err != nil {
		return nil, fmt.Errorf("pipeline: activations from stage %d (node %d): %w", r.Stage-1, r.Stage-1, err)
	}
	return m, nil
}

// sendNext hands a message to the next stage's leader.
func (r *Rank) sendNext(m *msg) error {
	next := stageLeader(r.Stage+1, r.TP)
	ctx, cancel := r.ctx()
	defer cancel()
	head := make([]byte, 16)
	binary.LittleEndian.PutUint64(head, uint64(m.kind))
	binary.LittleEndian.PutUint64(head[8:], uint64(len(m.plan)))
	if err := r.global.Send(ctx, head, comm.Int64, next); err != nil {
		return fmt.Errorf("pipeline: step to node %d: %w", r.Stage+1, err)
	}
	if len(m.plan) > 0 {
		if err := r.global.Send(ctx, m.plan, comm.Int64, next); err != nil {
			return fmt.Errorf("pipeline: step plan to node %d: %w", r.Stage+1, err)
		}
	}
	if m.kind == msgStep {
		if err := r.global.Send(ctx, f32bytes(m.acts), comm.Float32, next); err != nil {
			return fmt.Errorf("pipeline: activations to stage %d (node %d): %w", r.Stage+1, r.Stage+1, err)
		}
	}
	return nil
}

// compute runs this rank's layers on a step; the stage's output (activations for the next
// stage, or logits on the last) comes back on every rank.
func (r *Rank) compute(m *msg) (items []qwen3.BatchItem, hOut, logits [][]float32, err error) {
	items, err = decodePlan(m.plan)
	if err != nil {
		return nil, nil, nil, err
	}
	var hIn [][]float32
	if r.Stage > 0 {
		H := r.Model.Full.Hidden
		hIn = make([][]float32, len(m.acts)/H)
		for i := range hIn {
			hIn[i] = m.acts[i*H : (i+1)*H : (i+1)*H]
		}
	}
	hOut, logits, err = r.Model.ForwardStage(r.KV, items, hIn)
	return items, hOut, logits, err
}

// forward passes a computed step on: activations to the next stage, or (last stage, several
// stages) the wanted logits back to the driver.
func (r *Rank) forward(m *msg, items []qwen3.BatchItem, hOut, logits [][]float32) error {
	if r.Local != 0 {
		return nil
	}
	if r.Stage < r.Nodes-1 {
		H := r.Model.Full.Hidden
		acts := make([]float32, len(hOut)*H)
		for i, h := range hOut {
			copy(acts[i*H:], h)
		}
		return r.sendNext(&msg{kind: msgStep, plan: m.plan, acts: acts})
	}
	if r.Nodes == 1 {
		return nil
	}
	_, wanted := rowsOf(items)
	if wanted == 0 {
		// a step without logits (a prefill chunk) is still acknowledged, so the driver knows
		// when every step has left the pipeline
		ctx, cancel := r.ctx()
		defer cancel()
		if err := r.global.Send(ctx, make([]byte, 8), comm.Int64, 0); err != nil {
			return fmt.Errorf("pipeline: step acknowledgement to node 0: %w", err)
		}
		return nil
	}
	V := r.Model.Full.Vocab
	buf := make([]float32, wanted*V)
	k := 0
	for _, l := range logits {
		k += copy(buf[k:], l) // one row, or every row of an AllLogits item
	}
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.global.Send(ctx, f32bytes(buf), comm.Float32, 0); err != nil {
		return fmt.Errorf("pipeline: logits to node 0: %w", err)
	}
	return nil
}

// pong answers a ping from the last stage to the driver, in order with the logits.
func (r *Rank) pong() error {
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.global.Send(ctx, make([]byte, 8), comm.Int64, 0); err != nil {
		return fmt.Errorf("pipeline: heartbeat answer to node 0: %w", err)
	}
	return nil
}

// Serve is the loop of every rank but global rank 0: take the next micro-batch (from the
// previous stage, or from the node's leader), run its share, pass it on; until the driver
// stops the job (ErrStopped) or a link fails.
func (r *Rank) Serve() error {
	if r.global.Rank() == 0 {
		return errors.New("pipeline: rank 0 drives; it does not serve")
	}
	for {
		m := &msg{}
		if r.Local == 0 { // a stage leader (stage > 0): the step comes from the previous stage
			var err error
			if m, err = r.recvPrev(true); err != nil {
				return err
			}
		}
		if err := r.tpShare(m, r.Stage > 0); err != nil {
			return err
		}
		if m.kind != msgStep {
			if r.Local == 0 && r.Stage < r.Nodes-1 {
				if err := r.sendNext(m); err != nil {
					return err
				}
			}
			if m.kind == msgPing && r.Local == 0 && r.Stage == r.Nodes-1 {
				if err := r.pong(); err != nil {
					return err
				}
			}
			if m.kind == msgStop {
				return ErrStopped
			}
			continue
		}
		items, hOut, logits, err := r.compute(m)
		if err != nil {
			return err
		}
		if err := r.forward(m, items, hOut, logits); err != nil {
			return err
		}
	}
}

// Driver is global rank 0: the engine's (pipelined) Executor. It runs stage 0's share of a
// micro-batch itself and hands the rest down the pipeline; with several stages, a receiver
// takes the logits back in order, so the next micro-batch can start while the last is in
// later stages.
type Driver struct {
	r        *Rank
	mu       sync.Mutex // orders what the driver sends: steps, pings, the stop
	done     bool
	err      atomic.Pointer[error] // the job's failure: every later step fails with it
	abort    func(error)           // aborts this process's links (releases every wait)
	last     time.Time
	stopOnce sync.Once
	stopErr  error
	stopBeat chan struct{}
	beatDone chan struct{}
	expect   chan expected // logits (or heartbeat answers) the receiver fetches, in order
	recvDone chan struct{}
	// heartbeat round trips (several stages): when the oldest unanswered ping was sent
	pingSent atomic.Int64 // unix nanoseconds; 0 when none is outstanding
	inflight atomic.Int64 // steps submitted and not yet back from the last stage
	progress atomic.Int64 // unix nanoseconds of the last step or answer back
}

type expected struct {
	wanted int // logits rows to fetch; -1 for a heartbeat answer
	items  []qwen3.BatchItem
	out    chan result
}

type result struct {
	logits [][]float32
	err    error
}

// NewDriver wraps global rank 0 and starts its heartbeat: with no step for interval, it
// pings down the pipeline and the last stage answers, so an idle job notices a dead node or
// a cut link within about a link timeout. abort, when not nil, releases every link of this
// process once the job has failed.
func NewDriver(r *Rank, interval time.Duration, abort func(error)) (*Driver, error) {
	if r.global.Rank() != 0 {
		return nil, fmt.Errorf("pipeline: the driver is global rank 0, not %d", r.global.Rank())
	}
	d := &Driver{r: r, abort: abort, last: time.Now(), stopBeat: make(chan struct{}), beatDone: make(chan struct{}),
		expect: make(chan expected, 64), recvDone: make(chan struct{})}
	go d.heartbeat(interval)
	go d.receive()
	return d, nil
}

// fail records the job's failure (the first one wins) and releases every wait on its links.
func (d *Driver) fail(err error) {
	if d.err.CompareAndSwap(nil, &err) && d.abort != nil {
		d.abort(err)
	}
}

// receive fetches each submitted micro-batch's logits (or a heartbeat's answer) from the
// last stage, in order.
func (d *Driver) receive() {
	defer close(d.recvDone)
	r := d.r
	V := r.Model.Full.Vocab
	from := stageLeader(r.Nodes-1, r.TP)
	for e := range d.expect {
		if e.wanted < 0 {
			ctx, cancel := r.waitCtx()
			err := r.global.Recv(ctx, make([]byte, 8), comm.Int64, from)
			cancel()
			if err != nil {
				d.fail(fmt.Errorf("pipeline: heartbeat from the last stage (node %d): %w", r.Nodes-1, err))
			} else {
				d.pingSent.Store(0)
				d.progress.Store(time.Now().UnixNano())
			}
			continue
		}
		out := make([][]float32, len(e.items))
		if e.wanted == 0 {
			ctx, cancel := r.waitCtx()
			err := r.global.Recv(ctx, make([]byte, 8), comm.Int64, from)
			cancel()
			d.inflight.Add(-1)
			d.progress.Store(time.Now().UnixNano())
			if err != nil {
				e.out <- result{err: fmt.Errorf("pipeline: step acknowledgement from the last stage (node %d): %w", r.Nodes-1, err)}
				continue
			}
		}
		if e.wanted > 0 {
			buf := make([]float32, e.wanted*V)
			ctx, cancel := r.waitCtx()
			err := r.global.Recv(ctx, f32bytes(buf), comm.Float32, from)
			cancel()
			d.inflight.Add(-1)
			d.progress.Store(time.Now().UnixNano())
			if err != nil {
				e.out <- result{err: fmt.Errorf("pipeline: logits from the last stage (node %d): %w", r.Nodes-1, err)}
				continue
			}
			k := 0
			for i, it := range e.items {
				if n := logitRows(it); n > 0 {
					out[i] = buf[k*V : (k+n)*V]
					k += n
				}
			}
		}
		e.out <- result{logits: out}
	}
}

func (d *Driver) heartbeat(interval time.Duration) {
	defer close(d.beatDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-d.stopBeat:
			return
		case <-t.C:
		}
		// An unanswered ping with nothing coming back for a link timeout: a stage is gone or
		// cut off. While steps are still in the pipeline the answer queues behind them, and a
		// step may compute for longer, so then the limit is that of a compute wait.
		if sent := d.pingSent.Load(); sent != 0 {
			ref := max(sent, d.progress.Load())
			limit := d.r.timeout
			if d.inflight.Load() > 0 {
				limit = waitFactor * d.r.timeout
			}
			if time.Since(time.Unix(0, ref)) > limit {
				d.fail(fmt.Errorf("pipeline: no heartbeat answer from the last stage (node %d) within %v: a node or link is down", d.r.Nodes-1, limit))
			}
		}
		d.mu.Lock()
		if !d.done && d.Err() == nil && time.Since(d.last) >= interval && d.pingSent.Load() == 0 {
			if d.r.Nodes > 1 {
				d.pingSent.Store(time.Now().UnixNano())
			}
			if err := d.send(&msg{kind: msgPing}); err != nil {
				d.fail(err)
			} else if d.r.Nodes > 1 {
				d.expect <- expected{wanted: -1}
			}
			d.last = time.Now()
		}
		d.mu.Unlock()
	}
}

// send starts a message on stage 0: the node's other ranks get it, and with more stages it
// goes on to node 1 (a step after stage 0 has run on it). Called with d.mu held.
func (d *Driver) send(m *msg) error {
	r := d.r
	if err := r.tpShare(m, false); err != nil {
		return err
	}
	if m.kind == msgStep || r.Nodes == 1 {
		return nil
	}
	return r.sendNext(m)
}

// Err is the failure that broke the job, or nil. It never waits for a step.
func (d *Driver) Err() error {
	if p := d.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Depth is how many micro-batches the pipeline keeps in flight: one per stage.
func (d *Driver) Depth() int { return d.r.Nodes }

// AllLogits says the driver honours qwen3.BatchItem.AllLogits (engine.AllLogitsExecutor): the
// last stage sends every row such an item wants.
func (d *Driver) AllLogits() {}

// Forward runs one step and waits for it.
func (d *Driver) Forward(items []qwen3.BatchItem) ([][]float32, error) {
	wait, err := d.Submit(items)
	if err != nil {
		return nil, err
	}
	return wait()
}

// Submit runs stage 0's share of a micro-batch and sends it down the pipeline; wait returns
// its logits. With one stage the logits are ready when Submit returns (and are valid until
// the next Submit).
func (d *Driver) Submit(items []qwen3.BatchItem) (func() ([][]float32, error), error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return nil, errors.New("pipeline: stopped")
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	d.last = time.Now()
	r := d.r
	m := &msg{kind: msgStep, plan: encodePlan(items)}
	failed := func(err error) (func() ([][]float32, error), error) {
		if isLinkError(err) {
			d.fail(err)
		}
		return nil, err
	}
	if err := d.send(m); err != nil {
		return failed(err)
	}
	_, hOut, logits, err := r.compute(m)
	if err != nil {
		return failed(err)
	}
	if r.Nodes == 1 {
		return func() ([][]float32, error) { return logits, nil }, nil
	}
	_, wanted := rowsOf(items)
	out := make(chan result, 1)
	d.inflight.Add(1)
	d.expect <- expected{wanted: wanted, items: items, out: out}
	if err := r.forward(m, items, hOut, nil); err != nil {
		return failed(err)
	}
	d.last = time.Now() // the heartbeat waits an interval from the end of this step's share
	return func() ([][]float32, error) {
		res := <-out
		if res.err != nil && isLinkError(res.err) {
			d.fail(res.err)
		}
		return res.logits, res.err
	}, nil
}

// isLinkError says whether err came from comm (a node or link is gone) rather than from the
// step's input.
func isLinkError(err error) bool {
	for _, e := range []error{comm.ErrAborted, comm.ErrTimeout, comm.ErrPeerDown, comm.ErrMismatch, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	var pe *comm.PeerError
	return errors.As(err, &pe)
}

// Stop ends the heartbeat and, unless the job already failed, tells every other rank to
// leave its loop. Calling it again does nothing.
func (d *Driver) Stop() error {
	d.stopOnce.Do(func() {
		close(d.stopBeat)
		<-d.beatDone
		d.mu.Lock()
		d.done = true
		close(d.expect)
		if err := d.Err(); err != nil {
			d.stopErr = err
		} else {
			d.stopErr = d.send(&msg{kind: msgStop})
		}
		d.mu.Unlock()
		// the receiver ends once what it still expects arrives or its links fail
		if d.Err() == nil {
			select {
			case <-d.recvDone:
			case <-time.After(d.r.timeout):
			}
		}
	})
	return d.stopErr
}
