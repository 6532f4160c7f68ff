// Package comm is strata's collective communication library: AllReduce, ReduceScatter,
// AllGather, Broadcast, Reduce, AllToAll, Send/Recv and Barrier over P ranks on N nodes.
//
// Ranks of one node are goroutines of one process and reduce straight out of each other's
// buffers; nodes talk over TCP (or any net.Conn transport). Three algorithms move the data:
// a flat multi-channel ring, a latency-bound tree, and "hier", the hierarchical ring
// allreduce of the patent in ../../shared/seeds (intra-node reduce, a two-way ring between
// nodes carried by each node's first and last rank, intra-node broadcast, pipelined). "auto"
// chooses per call from an α-β cost model fed with link figures measured at start-up.
//
// Every call takes a context; without a deadline the communicator's timeout applies. Any
// failure (a dead peer, a timeout, arguments that differ across ranks) aborts the whole
// communicator: every rank's pending and later calls return an error naming the cause.
package comm

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Comm is one rank's handle. Each rank calls collectives from its own goroutine, in the
// same order on every rank.
type Comm struct {
	n     *node
	rank  int
	local int
	work  []byte // per-rank working buffer for the flat ring's reduce-scatter

	p2pMu   sync.Mutex
	sendSeq map[int]uint64
	recvSeq map[int]uint64
}

// Rank is this rank's global index, node*ranksPerNode + localRank.
func (c *Comm) Rank() int { return c.rank }

// Size is the number of ranks.
func (c *Comm) Size() int { return c.n.P }

// Node is this rank's node index.
func (c *Comm) Node() int { return c.n.id }

// NNodes is the number of nodes.
func (c *Comm) NNodes() int { return c.n.nnodes }

// LocalRank is this rank's index inside its node.
func (c *Comm) LocalRank() int { return c.local }

// LocalSize is the number of ranks per node.
func (c *Comm) LocalSize() int { return c.n.L }

// Abort ends the communicator from any goroutine: every rank's pending and later calls fail
// with err, and peers on other nodes are told.
func (c *Comm) Abort(err error) { c.n.abort(err) }

// Err returns the error that aborted the communicator, or nil while it is healthy.
func (c *Comm) Err() error {
	if c.n.aborted() {
		return c.n.abortError()
	}
	return nil
}

// CostModel returns the link figures and algorithm choices this communicator uses.
func (c *Comm) CostModel() CostModel { return c.n.model.public() }

// Choose reports which algorithm auto would use for a call.
func (c *Comm) Choose(coll Collective, dt DataType, bytes int) Algo {
	return c.n.model.choose(coll, bytes, c.n.nnodes, c.n.L, c.n.cfg.Channels)
}

type slot struct {
	send, recv []byte
}

// collOp is one collective as the local ranks of a node see it. The last rank to join sets it
// up and releases the others; every rank then runs its part of the algorithm.
type collOp struct {
	d       desc
	descs   []desc
	slots   []slot
	joined  []bool
	arrived int
	ready   chan struct{}
	err     error
	ctx     context.Context // for helper goroutines (only algorithms that start them set it)
	cancel  context.CancelFunc
	exit    *event // every local rank is done reading peers' buffers
	noExit  bool   // the algorithm reads no peer buffer after its last event: skip the exit barrier
	state   any
}

func (c *Comm) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	ctx, cancel := context.WithTimeout(ctx, c.n.cfg.Timeout)
	return context.WithValue(ctx, timeoutKey{}, c.n.cfg.Timeout), cancel
}

// run joins the node's local ranks for one collective and runs this rank's part.
func (c *Comm) run(ctx context.Context, d desc, s slot) error {
	n := c.n
	if n.aborted() {
		return n.abortError()
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	if d.algo == AlgoAuto {
		d.algo = n.cfg.Algo
	}

	small := int(d.count)*d.dtype.Size() <= spinMaxBytes*4
	n.mu.Lock()
	op := n.pending
	if op == nil {
		op = &collOp{d: d, descs: make([]desc, n.L), slots: make([]slot, n.L), joined: make([]bool, n.L),
			ready: make(chan struct{}), exit: newSpinEvent(n.L, small)}
		op.d.seq = n.seq
		n.seq++
		n.pending = op
	}
	if op.joined[c.local] {
		n.mu.Unlock()
		err := fmt.Errorf("comm: rank %d started %s while its previous collective on this node is still gathering: call collectives from one goroutine per rank, in order: %w", c.rank, d.coll, ErrBadArgument)
		n.abort(err)
		return err
	}
	d.seq = op.d.seq
	op.joined[c.local] = true
	op.descs[c.local] = d
	op.slots[c.local] = s
	op.arrived++
	last := op.arrived == n.L
	if last {
		n.pending = nil
	}
	n.mu.Unlock()

	if last {
		c.setup(op)
		close(op.ready)
		if op.err != nil {
			n.abort(op.err)
		}
	}
	if small && !last && n.cfg.SpinWait > 0 {
		deadline := time.Now().Add(n.cfg.SpinWait)
		for time.Now().Before(deadline) && !isClosed(op.ready) {
			runtime.Gosched()
		}
	}
	var err error
	select {
	case <-op.ready:
	default:
		if testHookJoinWait != nil {
			testHookJoinWait(n)
		}
		select {
		case <-op.ready:
		case <-n.abortCh:
			err = n.abortError()
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		what := c.missing(op)
		n.mu.Lock()
		if n.pending == op {
			// not every rank has joined, so nobody runs this collective: withdraw and leave
			op.joined[c.local] = false
			op.arrived--
			op.slots[c.local] = slot{}
			n.mu.Unlock()
			if ctx.Err() != nil {
				return n.ctxFailed(ctx, what)
			}
			return err
		}
		n.mu.Unlock()
		// everyone joined just now and the collective holds our buffers: fail it for all,
		// then leave through the exit barrier like everyone else
		if ctx.Err() != nil {
			err = n.ctxFailed(ctx, what)
		}
		<-op.ready
		if op.err != nil {
			// setup failed (and aborted the node, which is the abort we saw): nobody runs
			// this collective and every other rank returns op.err without the exit
			// barrier, so waiting there would wait forever. The window: the last rank
			// closed ready and aborted between this rank's two selects above, and the
			// second picked the abort.
			return op.err
		}
	} else if op.err != nil {
		return op.err
	} else {
		err = c.dispatch(ctx, op)
		if err != nil {
			n.abort(err)
		}
	}
	return c.leave(ctx, op, err)
}

// testHookJoinWait, when set (by tests), runs where a rank that joined before the last one
// starts to wait for it, so a test can hold it there while the last one finishes setup.
var testHookJoinWait func(n *node)

// leave is every rank's way out of a collective once it ran (or failed) with everyone
// joined. A rank whose algorithm may still be read by local peers (or that failed, when a
// peer may be mid-way through its buffers) waits until every local rank is out: after an
// abort every rank leaves its algorithm quickly, so that wait is short and needs no deadline.
func (c *Comm) leave(ctx context.Context, op *collOp, err error) error {
	n := c.n
	last := op.exit.arrive()
	if n.L > 1 && (err != nil || !op.noExit) {
		if err == nil {
			err = n.waitEvent(ctx, op.exit, fmt.Sprintf("the other ranks of node %d to finish %s", n.id, op.d))
		}
		if err != nil {
			<-op.exit.ch
		}
	}
	if last && op.cancel != nil {
		op.cancel()
	}
	return err
}

// missing names the local ranks that have not joined op yet.
func (c *Comm) missing(op *collOp) string {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	var ranks []int
	for l, j := range op.joined {
		if !j {
			ranks = append(ranks, c.n.id*c.n.L+l)
		}
	}
	return fmt.Sprintf("ranks %v of node %d to call %s", ranks, c.n.id, op.descs[c.local].coll)
}

// setup runs on the last rank to join: checks that every local rank made the same call,
// resolves auto, and prepares the algorithm's shared state.
func (c *Comm) setup(op *collOp) {
	n := c.n
	for l, d := range op.descs {
		if d != op.descs[0] {
			op.err = fmt.Errorf("comm: %w: rank %d called %s but rank %d called %s: %s differ",
				ErrMismatch, n.id*n.L+l, d, n.id*n.L, op.descs[0], d.diff(op.descs[0]))
			return
		}
	}
	op.d = op.descs[0]
	if op.d.algo == AlgoAuto {
		op.d.algo = n.model.choose(op.d.coll, int(op.d.count)*op.d.dtype.Size()*collBytesFactor(op.d.coll, n.P), n.nnodes, n.L, n.cfg.Channels)
	}
	op.d.algo = normalizeAlgo(op.d.coll, op.d.algo)
	n.mu.Lock()
	n.cur = op.d
	n.mu.Unlock()
	if err := n.scanEarly(op.d); err != nil {
		op.err = err
		return
	}
	op.cancel = func() {}
	if err := c.prepare(op); err != nil {
		op.err = err
	}
}

// collBytesFactor converts a descriptor's count into the bytes the cost model reasons about
// (the full buffer for reduce-scatter and all-gather).
func collBytesFactor(coll Collective, p int) int {
	switch coll {
	case CollReduceScatter, CollAllGather:
		return p
	}
	return 1
}

func sameStart(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == 0 && len(b) == 0
	}
	return unsafe.Pointer(&a[0]) == unsafe.Pointer(&b[0])
}

func overlaps(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, b0 := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&b[0]))
	return a0 < b0+uintptr(len(b)) && b0 < a0+uintptr(len(a))
}

func (c *Comm) badArg(format string, args ...any) error {
	return fmt.Errorf("comm: rank %d: %w: %s", c.rank, ErrBadArgument, fmt.Sprintf(format, args...))
}

func (c *Comm) checkTypes(dt DataType, op Op, needOp bool) error {
	if !dt.valid() {
		return c.badArg("unknown data type %d", dt)
	}
	if needOp && !op.valid() {
		return c.badArg("unknown reduction op %d", op)
	}
	return nil
}

func (c *Comm) checkLen(name string, b []byte, dt DataType) error {
	if len(b)%dt.Size() != 0 {
		return c.badArg("%s buffer is %d bytes, not a whole number of %s elements (%d bytes each)", name, len(b), dt, dt.Size())
	}
	return nil
}

// AllReduce reduces send across all ranks into recv on every rank. send == nil (or the same
// slice as recv) reduces in place. count = len(recv) / dt.Size().
func (c *Comm) AllReduce(ctx context.Context, send, recv []byte, dt DataType, op Op) error {
	return c.AllReduceWith(ctx, AlgoAuto, send, recv, dt, op)
}

// AllReduceWith is AllReduce with the algorithm forced for this call (AlgoAuto: the
// communicator's setting). Every rank must pass the same algorithm.
func (c *Comm) AllReduceWith(ctx context.Context, algo Algo, send, recv []byte, dt DataType, op Op) error {
	if err := c.checkTypes(dt, op, true); err != nil {
		return err
	}
	if send == nil {
		send = recv
	}
	if err := c.checkLen("recv", recv, dt); err != nil {
		return err
	}
	if len(send) != len(recv) {
		return c.badArg("all_reduce send buffer is %d bytes but recv is %d: they must be equal", len(send), len(recv))
	}
	if !sameStart(send, recv) && overlaps(send, recv) {
		return c.badArg("all_reduce send and recv buffers overlap without being the same buffer")
	}
	return c.run(ctx, desc{coll: CollAllReduce, dtype: dt, op: op, algo: algo, count: uint64(len(recv) / dt.Size())}, slot{send, recv})
}

// ReduceScatter reduces send (P blocks of len(recv) bytes) across ranks; rank r receives
// block r. In place: recv is rank's block inside send.
func (c *Comm) ReduceScatter(ctx context.Context, send, recv []byte, dt DataType, op Op) error {
	return c.ReduceScatterWith(ctx, AlgoAuto, send, recv, dt, op)
}

// ReduceScatterWith is ReduceScatter with a forced algorithm.
func (c *Comm) ReduceScatterWith(ctx context.Context, algo Algo, send, recv []byte, dt DataType, op Op) error {
	if err := c.checkTypes(dt, op, true); err != nil {
		return err
	}
	if err := c.checkLen("recv", recv, dt); err != nil {
		return err
	}
	if len(send) != len(recv)*c.n.P {
		return c.badArg("reduce_scatter send buffer is %d bytes; it must be %d ranks × %d recv bytes", len(send), c.n.P, len(recv))
	}
	if overlaps(send, recv) && !sameStart(send[c.rank*len(recv):], recv) {
		return c.badArg("reduce_scatter recv overlaps send but is not rank %d's block of it", c.rank)
	}
	return c.run(ctx, desc{coll: CollReduceScatter, dtype: dt, op: op, algo: algo, count: uint64(len(recv) / dt.Size())}, slot{send, recv})
}

// AllGather gathers every rank's send into recv (P blocks of len(send) bytes, in rank order).
// In place: send is rank's block inside recv.
func (c *Comm) AllGather(ctx context.Context, send, recv []byte, dt DataType) error {
	return c.AllGatherWith(ctx, AlgoAuto, send, recv, dt)
}

// AllGatherWith is AllGather with a forced algorithm.
func (c *Comm) AllGatherWith(ctx context.Context, algo Algo, send, recv []byte, dt DataType) error {
	if err := c.checkTypes(dt, 0, false); err != nil {
		return err
	}
	if err := c.checkLen("send", send, dt); err != nil {
		return err
	}
	if len(recv) != len(send)*c.n.P {
		return c.badArg("all_gather recv buffer is %d bytes; it must be %d ranks × %d send bytes", len(recv), c.n.P, len(send))
	}
	if overlaps(send, recv) && !sameStart(recv[c.rank*len(send):], send) {
		return c.badArg("all_gather send overlaps recv but is not rank %d's block of it", c.rank)
	}
	return c.run(ctx, desc{coll: CollAllGather, dtype: dt, algo: algo, count: uint64(len(send) / dt.Size())}, slot{send, recv})
}

// Broadcast copies root's send into every rank's recv. send matters only on root; nil there
// means recv already holds the data.
func (c *Comm) Broadcast(ctx context.Context, send, recv []byte, dt DataType, root int) error {
	return c.BroadcastWith(ctx, AlgoAuto, send, recv, dt, root)
}

// BroadcastWith is Broadcast with a forced algorithm.
func (c *Comm) BroadcastWith(ctx context.Context, algo Algo, send, recv []byte, dt DataType, root int) error {
	if err := c.checkTypes(dt, 0, false); err != nil {
		return err
	}
	if root < 0 || root >= c.n.P {
		return c.badArg("broadcast root %d is not a rank (0..%d)", root, c.n.P-1)
	}
	if err := c.checkLen("recv", recv, dt); err != nil {
		return err
	}
	if c.rank == root {
		if send == nil {
			send = recv
		}
		if len(send) != len(recv) {
			return c.badArg("broadcast send buffer is %d bytes but recv is %d", len(send), len(recv))
		}
	} else {
		send = nil
	}
	return c.run(ctx, desc{coll: CollBroadcast, dtype: dt, algo: algo, root: int32(root), count: uint64(len(recv) / dt.Size())}, slot{send, recv})
}

// Reduce reduces send across ranks into root's recv. recv matters only on root.
func (c *Comm) Reduce(ctx context.Context, send, recv []byte, dt DataType, op Op, root int) error {
	return c.ReduceWith(ctx, AlgoAuto, send, recv, dt, op, root)
}

// ReduceWith is Reduce with a forced algorithm.
func (c *Comm) ReduceWith(ctx context.Context, algo Algo, send, recv []byte, dt DataType, op Op, root int) error {
	if err := c.checkTypes(dt, op, true); err != nil {
		return err
	}
	if root < 0 || root >= c.n.P {
		return c.badArg("reduce root %d is not a rank (0..%d)", root, c.n.P-1)
	}
	if err := c.checkLen("send", send, dt); err != nil {
		return err
	}
	if c.rank == root {
		if len(recv) != len(send) {
			return c.badArg("reduce recv buffer on root is %d bytes but send is %d", len(recv), len(send))
		}
		if !sameStart(send, recv) && overlaps(send, recv) {
			return c.badArg("reduce send and recv buffers overlap without being the same buffer")
		}
	} else {
		recv = nil
	}
	return c.run(ctx, desc{coll: CollReduce, dtype: dt, op: op, algo: algo, root: int32(root), count: uint64(len(send) / dt.Size())}, slot{send, recv})
}

// AllToAll sends block j of send to rank j, which stores it as block r of its recv. Both
// buffers hold P equal blocks and must not overlap.
func (c *Comm) AllToAll(ctx context.Context, send, recv []byte, dt DataType) error {
	if err := c.checkTypes(dt, 0, false); err != nil {
		return err
	}
	if err := c.checkLen("send", send, dt); err != nil {
		return err
	}
	if len(send) != len(recv) || len(send)%(c.n.P*dt.Size()) != 0 {
		return c.badArg("alltoall buffers must be equal and hold %d equal blocks (send %d bytes, recv %d)", c.n.P, len(send), len(recv))
	}
	if overlaps(send, recv) {
		return c.badArg("alltoall send and recv buffers overlap; in-place alltoall is not supported")
	}
	return c.run(ctx, desc{coll: CollAllToAll, dtype: dt, algo: AlgoRing, count: uint64(len(send) / dt.Size() / c.n.P)}, slot{send, recv})
}

// Barrier returns once every rank has entered it.
func (c *Comm) Barrier(ctx context.Context) error {
	return c.run(ctx, desc{coll: CollBarrier, dtype: Int32, op: Sum, algo: AlgoTree}, slot{})
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
