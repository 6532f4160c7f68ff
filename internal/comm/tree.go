package comm

import (
	"context"
	"fmt"
	"math/bits"
)

// treeState synchronises a node's ranks around the leader that talks to other nodes.
type treeState struct {
	scratch    []byte
	reduced    *event // every local rank has reduced its slice into scratch
	global     *event // the leader has the final result in scratch
	leaderOnly bool   // small message: the leader reduces every local buffer itself
}

// leaderOnlyBytes is the size up to which one rank reducing all local buffers beats
// splitting the work, since it saves a synchronisation of the node's ranks.
const leaderOnlyBytes = 64 << 10

// sendPieces posts buf as pipelining pieces; recvPieces posts the matching receives.
func (n *node) sendPieces(rs *reqs, from, to int, tag uint32, d desc, buf []byte) {
	for _, p := range pieces(buf, n.piece(d.dtype)) {
		rs.add(n.send(from, to, tag, d, p))
	}
}

func (n *node) recvPieces(rs *reqs, at, from int, tag uint32, d desc, dst, local []byte, red *reducer) []*req {
	dp := pieces(dst, n.piece(d.dtype))
	var lp [][]byte
	if red != nil {
		lp = pieces(local, n.piece(d.dtype))
	}
	out := make([]*req, len(dp))
	for k := range dp {
		spec := recvSpec{dst: dp[k]}
		if red != nil {
			spec.local, spec.red = lp[k], red
		}
		out[k] = rs.add(n.recv(at, from, tag, d, spec))
	}
	return out
}

// leader is the rank that represents a node in node-level trees and chains: the root on the
// root's node, the first local rank elsewhere.
func (n *node) leader(node, root int) int {
	if root >= 0 && n.nodeOf(root) == node {
		return root
	}
	return n.first(node)
}

// treeNodes allreduces buf across the nodes' first ranks: recursive doubling when the node
// count is a power of two (log N one-way latencies), else a binomial reduce then broadcast.
// Only node leaders call it.
func (c *Comm) treeNodes(ctx context.Context, op *collOp, buf []byte) error {
	n := c.n
	N, i := n.nnodes, n.id
	if N == 1 {
		return nil
	}
	red := reducer{op.d.dtype, op.d.op}
	if cap(c.work) < len(buf) {
		c.work = make([]byte, len(buf))
	}
	tmp := c.work[:len(buf)]
	var rs reqs
	if N&(N-1) == 0 {
		for d := 1; d < N; d <<= 1 {
			peer := i ^ d
			n.recvPieces(&rs, n.first(i), n.first(peer), tagTree, op.d, tmp, nil, nil)
			n.sendPieces(&rs, n.first(i), n.first(peer), tagTree, op.d, buf)
			if err := rs.wait(ctx, n); err != nil {
				return err
			}
			red.reduce(buf, buf, tmp)
		}
		return nil
	}
	if err := c.binomialReduce(ctx, op, buf, tmp, 0, &red); err != nil {
		return err
	}
	return c.binomialBcast(ctx, op, buf, 0)
}

// binomialReduce reduces buf over nodes toward rootNode's leader; tmp is scratch space.
func (c *Comm) binomialReduce(ctx context.Context, op *collOp, buf, tmp []byte, root int, red *reducer) error {
	n := c.n
	N := n.nnodes
	rootNode := n.nodeOf(root)
	vi := (n.id - rootNode + N) % N
	real := func(v int) int { return (v + rootNode) % N }
	me := n.leader(n.id, root)
	var rs reqs
	for mask := 1; mask < N; mask <<= 1 {
		if vi&mask != 0 {
			to := real(vi - mask)
			n.sendPieces(&rs, me, n.leader(to, root), tagTree, op.d, buf)
			return rs.wait(ctx, n)
		}
		if vi+mask < N {
			from := real(vi + mask)
			n.recvPieces(&rs, me, n.leader(from, root), tagTree, op.d, buf, buf, red)
			if err := rs.wait(ctx, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// binomialBcast sends buf from the root node's leader to every node's leader.
func (c *Comm) binomialBcast(ctx context.Context, op *collOp, buf []byte, root int) error {
	n := c.n
	N := n.nnodes
	rootNode := n.nodeOf(root)
	vi := (n.id - rootNode + N) % N
	real := func(v int) int { return (v + rootNode) % N }
	me := n.leader(n.id, root)
	var rs reqs
	mask := 1
	for mask < N {
		if vi&mask != 0 {
			n.recvPieces(&rs, me, n.leader(real(vi-mask), root), tagTree, op.d, buf, nil, nil)
			if err := rs.wait(ctx, n); err != nil {
				return err
			}
			break
		}
		mask <<= 1
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		if vi+mask < N {
			n.sendPieces(&rs, me, n.leader(real(vi+mask), root), tagTree, op.d, buf)
		}
	}
	return rs.wait(ctx, n)
}

// treeAllReduce: intra-node reduce into scratch, node leaders allreduce by recursive
// doubling, every rank copies the result. The latency-bound choice for small messages.
func (c *Comm) treeAllReduce(ctx context.Context, op *collOp) error {
	n := c.n
	s := op.slots[c.local]
	red := reducer{op.d.dtype, op.d.op}
	if n.L == 1 {
		if !sameStart(s.send, s.recv) {
			copy(s.recv, s.send)
		}
		if err := c.treeNodes(ctx, op, s.recv); err != nil {
			return err
		}
		red.finalize(s.recv, n.P)
		return nil
	}
	st := op.state.(*treeState)
	esz := op.d.dtype.Size()
	srcs := make([][]byte, n.L)
	if st.leaderOnly {
		if c.local == 0 {
			for l := range n.L {
				srcs[l] = op.slots[l].send
			}
			red.reduceMany(st.scratch, srcs)
		}
	} else {
		b := split(len(st.scratch)/esz, n.L, esz)
		lo, hi := b[c.local], b[c.local+1]
		for l := range n.L {
			srcs[l] = op.slots[l].send[lo:hi]
		}
		red.reduceMany(st.scratch[lo:hi], srcs)
		st.reduced.arrive()
	}
	if c.local == 0 {
		if !st.leaderOnly {
			if err := n.waitEvent(ctx, st.reduced, fmt.Sprintf("node %d's ranks to reduce", n.id)); err != nil {
				return err
			}
		}
		if err := c.treeNodes(ctx, op, st.scratch); err != nil {
			return err
		}
		red.finalize(st.scratch, n.P)
		st.global.arrive()
	}
	if err := n.waitEvent(ctx, st.global, fmt.Sprintf("node %d's leader to finish %s", n.id, op.d)); err != nil {
		return err
	}
	copy(s.recv, st.scratch)
	return nil
}

// bcastState lets a node's ranks copy each piece as soon as their leader has it.
type bcastState struct {
	got []*event
}

// broadcast: the leaders move the data between nodes (a pipelined chain for ring and hier,
// a binomial tree for tree; the flat ring also chains through every local rank), and the
// other local ranks copy each piece from their leader's buffer as it lands.
func (c *Comm) broadcast(ctx context.Context, op *collOp) error {
	n := c.n
	s := op.slots[c.local]
	root := int(op.d.root)
	if op.d.algo == AlgoRing {
		return c.chainBcast(ctx, op)
	}
	st := op.state.(*bcastState)
	me := n.leader(n.id, root)
	lead := op.slots[n.localOf(me)].recv
	ps := pieces(lead, n.piece(op.d.dtype))
	if c.rank == me {
		if c.rank == root && !sameStart(s.send, s.recv) {
			copy(s.recv, s.send)
		}
		if n.nnodes > 1 && op.d.algo != AlgoTree {
			return c.nodeChainBcast(ctx, op, s.recv, st) // fires the piece events as pieces land
		}
		if n.nnodes > 1 {
			if err := c.binomialBcast(ctx, op, s.recv, root); err != nil {
				return err
			}
		}
		for _, e := range st.got {
			e.arrive()
		}
		return nil
	}
	off := 0
	for k, p := range ps {
		if err := n.waitEvent(ctx, st.got[k], fmt.Sprintf("%s on node %d", n.describe(me), n.id)); err != nil {
			return err
		}
		copy(s.recv[off:off+len(p)], p)
		off += len(p)
	}
	return nil
}

// nodeChainBcast forwards buf from the root's node along the node ring, piece by piece,
// firing the node's piece events so local ranks copy while the chain runs.
func (c *Comm) nodeChainBcast(ctx context.Context, op *collOp, buf []byte, st *bcastState) error {
	n := c.n
	N, root := n.nnodes, int(op.d.root)
	rootNode := n.nodeOf(root)
	pos := (n.id - rootNode + N) % N
	me := n.leader(n.id, root)
	next := n.leader((n.id+1)%N, root)
	prev := n.leader((n.id+N-1)%N, root)
	var rs reqs
	ps := pieces(buf, n.piece(op.d.dtype))
	var recvs []*req
	if pos > 0 {
		recvs = n.recvPieces(&rs, me, prev, tagChain, op.d, buf, nil, nil)
	}
	for k, p := range ps {
		if pos > 0 {
			if err := n.wait(ctx, recvs[k]); err != nil {
				n.abort(err)
				rs.drain()
				return err
			}
		}
		st.got[k].arrive()
		if pos < N-1 {
			rs.add(n.send(me, next, tagChain, op.d, p))
		}
	}
	return rs.wait(ctx, n)
}

// chainBcast is the flat pipelined chain through every rank, starting at root.
func (c *Comm) chainBcast(ctx context.Context, op *collOp) error {
	n := c.n
	s := op.slots[c.local]
	P, root := n.P, int(op.d.root)
	pos := (c.rank - root + P) % P
	if pos == 0 && !sameStart(s.send, s.recv) {
		copy(s.recv, s.send)
	}
	var rs reqs
	ps := pieces(s.recv, n.piece(op.d.dtype))
	var recvs []*req
	if pos > 0 {
		recvs = n.recvPieces(&rs, c.rank, (c.rank+P-1)%P, tagChain, op.d, s.recv, nil, nil)
	}
	for k, p := range ps {
		if pos > 0 {
			if err := n.wait(ctx, recvs[k]); err != nil {
				n.abort(err)
				rs.drain()
				return err
			}
		}
		if pos < P-1 {
			rs.add(n.send(c.rank, (c.rank+1)%P, tagChain, op.d, p))
		}
	}
	return rs.wait(ctx, n)
}

// reduce: flat ring = a chain through every rank ending at root; tree and hier = intra-node
// reduce into scratch, then the leaders reduce toward root's node (binomial tree for tree, a
// pipelined chain along the node ring for hier).
func (c *Comm) reduceColl(ctx context.Context, op *collOp) error {
	n := c.n
	s := op.slots[c.local]
	root := int(op.d.root)
	red := reducer{op.d.dtype, op.d.op}
	if op.d.algo == AlgoRing {
		return c.chainReduce(ctx, op)
	}
	st := op.state.(*treeState)
	esz := op.d.dtype.Size()
	b := split(len(st.scratch)/esz, n.L, esz)
	lo, hi := b[c.local], b[c.local+1]
	srcs := make([][]byte, n.L)
	for l := range n.L {
		srcs[l] = op.slots[l].send[lo:hi]
	}
	red.reduceMany(st.scratch[lo:hi], srcs)
	st.reduced.arrive()
	if c.rank != n.leader(n.id, root) {
		return nil // the exit barrier keeps our send alive until the leader is done
	}
	if err := n.waitEvent(ctx, st.reduced, fmt.Sprintf("node %d's ranks to reduce", n.id)); err != nil {
		return err
	}
	var err error
	switch {
	case n.nnodes == 1:
	case op.d.algo == AlgoTree:
		if cap(c.work) < len(st.scratch) {
			c.work = make([]byte, len(st.scratch))
		}
		err = c.binomialReduce(ctx, op, st.scratch, c.work[:len(st.scratch)], root, &red)
	default:
		err = c.nodeChainReduce(ctx, op, st.scratch, root, &red)
	}
	if err != nil {
		return err
	}
	if c.rank == root {
		copy(s.recv, st.scratch)
		red.finalize(s.recv, n.P)
	}
	return nil
}

// nodeChainReduce passes partial sums along the node ring toward root's node, which is last.
func (c *Comm) nodeChainReduce(ctx context.Context, op *collOp, buf []byte, root int, red *reducer) error {
	n := c.n
	N := n.nnodes
	rootNode := n.nodeOf(root)
	pos := (n.id - rootNode - 1 + 2*N) % N // root's node is last in the chain
	me := n.leader(n.id, root)
	next := n.leader((n.id+1)%N, root)
	prev := n.leader((n.id+N-1)%N, root)
	var rs reqs
	ps := pieces(buf, n.piece(op.d.dtype))
	var recvs []*req
	if pos > 0 {
		recvs = n.recvPieces(&rs, me, prev, tagChain, op.d, buf, buf, red)
	}
	for k, p := range ps {
		if pos > 0 {
			if err := n.wait(ctx, recvs[k]); err != nil {
				n.abort(err)
				rs.drain()
				return err
			}
		}
		if pos < N-1 {
			rs.add(n.send(me, next, tagChain, op.d, p))
		}
	}
	return rs.wait(ctx, n)
}

// chainReduce is the flat pipelined chain through every rank, ending at root.
func (c *Comm) chainReduce(ctx context.Context, op *collOp) error {
	n := c.n
	s := op.slots[c.local]
	P, root := n.P, int(op.d.root)
	red := reducer{op.d.dtype, op.d.op}
	pos := (c.rank - root - 1 + 2*P) % P
	out := s.recv
	if c.rank != root {
		if cap(c.work) < len(s.send) {
			c.work = make([]byte, len(s.send))
		}
		out = c.work[:len(s.send)]
	}
	var rs reqs
	if pos == 0 {
		copy(out, s.send)
	}
	ps := pieces(out, n.piece(op.d.dtype))
	var recvs []*req
	if pos > 0 {
		recvs = n.recvPieces(&rs, c.rank, (c.rank+P-1)%P, tagChain, op.d, out, s.send, &red)
	}
	for k, p := range ps {
		if pos > 0 {
			if err := n.wait(ctx, recvs[k]); err != nil {
				n.abort(err)
				rs.drain()
				return err
			}
		}
		if pos < P-1 {
			rs.add(n.send(c.rank, (c.rank+1)%P, tagChain, op.d, p))
		}
	}
	if err := rs.wait(ctx, n); err != nil {
		return err
	}
	if c.rank == root {
		red.finalize(out, P)
	}
	return nil
}

func log2ceil(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}
