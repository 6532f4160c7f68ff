package comm

import (
	"context"
	"fmt"
)

// The patent's hierarchical ring allreduce, in four moves:
//
//  1. Intra-node reduce: the L local ranks each reduce a 1/L slice of a chunk from all local
//     buffers into the node's scratch buffer, so the node sum sits in memory that both the
//     first and the last local rank own.
//  2. Inter-node ring: two rings run at once, each over half of the chunk. The "right" ring
//     sends from node i's last rank to node i+1's first rank; the "left" ring sends from node
//     i's first rank to node i-1's last rank. Each inter-node link thus carries both rings,
//     one per direction, on its own connection, and only node sums cross the slow links.
//  3. Intra-node broadcast: every local rank copies the finished chunk out of the scratch
//     buffer (in shared memory the "first rank serves the first half, last rank the second"
//     of the patent becomes every rank reading the half each ring finished).
//  4. Pipelining: the buffer is cut into chunks; while chunk j is on the slow links, the
//     local ranks reduce chunk j+1 and copy out chunk j-1. The first chunk is smaller than
//     the rest by the intra/inter cost ratio, so the slow links start after a short
//     intra-node step and never wait for the fast ones afterwards.

type span struct{ off, len int }

// hierState is shared by the local ranks and the two ring workers of one collective.
type hierState struct {
	scratch []byte
	chunks  []span
	reduced []*event // chunk j's node sum is in scratch (L arrivals)
	global  []*event // chunk j's result is in scratch (2 arrivals: one per ring)
	esz     int
}

// planChunks cuts nbytes into pipeline chunks: a small first chunk sized by the cost model's
// intra/inter ratio, then regular chunks.
func (n *node) planChunks(nbytes, esz int) []span {
	if nbytes == 0 {
		return []span{{0, 0}}
	}
	regular := min(max(nbytes/8, 512<<10), 8<<20)
	if nbytes <= regular {
		return []span{{0, nbytes}}
	}
	ratio := n.model.intraInterRatio()
	first := max(int(float64(regular)*ratio), 64<<10)
	first = min(first, regular)
	first = first / esz * esz
	out := []span{{0, first}}
	off := first
	for off < nbytes {
		l := min(regular/esz*esz, nbytes-off)
		if rest := nbytes - off - l; rest > 0 && rest < regular/4 {
			l += rest // fold a tiny tail into the last chunk
		}
		out = append(out, span{off, l})
		off += l
	}
	return out
}

// prepareHier sets up the shared state for a hierarchical collective whose node-level data is
// nbytes long, and starts the two ring workers when there is more than one node.
func (c *Comm) prepareHier(op *collOp, nbytes int, mode ringMode) *hierState {
	n := c.n
	esz := op.d.dtype.Size()
	st := &hierState{scratch: n.growScratch(nbytes), esz: esz}
	if mode == ringAllReduce {
		st.chunks = n.planChunks(nbytes, esz)
	} else {
		// reduce-scatter and all-gather chunk each node's part; see nodePartChunk
		st.chunks = n.planChunks(nbytes/n.nnodes, esz)
	}
	for range st.chunks {
		st.reduced = append(st.reduced, newEvent(n.L))
		st.global = append(st.global, newEvent(2))
	}
	if n.nnodes > 1 {
		// The workers have no deadline of their own: the ranks wait on them under the
		// callers' deadlines and abort the node (which stops the workers) when one passes.
		// The last rank to leave cancels this context.
		op.ctx, op.cancel = context.WithCancel(context.Background())
		for dir := range 2 {
			go c.hierWorker(op, st, dir, mode)
		}
	}
	return st
}

// nodeRing returns the node-level ring for a direction: 0 = right (last(i) -> first(i+1)),
// 1 = left (first(i) -> last(i-1)).
func (n *node) nodeRing(op *collOp, dir int) *ring {
	i, N := n.id, n.nnodes
	g := &ring{n: n, size: N, d: op.d, red: reducer{op.d.dtype, op.d.op}, piece: n.piece(op.d.dtype)}
	if dir == 0 {
		g.idx = i
		g.sendFrom, g.sendTo = n.last(i), n.first((i+1)%N)
		g.recvAt, g.recvFrom = n.first(i), n.last((i+N-1)%N)
		g.tag = tagHierR
	} else {
		g.idx = N - 1 - i
		g.sendFrom, g.sendTo = n.first(i), n.last((i+N-1)%N)
		g.recvAt, g.recvFrom = n.last(i), n.first((i+1)%N)
		g.tag = tagHierL
	}
	return g
}

// hierWorker drives one direction's node ring over the chunks as the local ranks finish them.
func (c *Comm) hierWorker(op *collOp, st *hierState, dir int, mode ringMode) {
	n := c.n
	ctx := op.ctx
	g := n.nodeRing(op, dir)
	for j, ch := range st.chunks {
		if err := n.waitEvent(ctx, st.reduced[j], fmt.Sprintf("node %d's ranks to reduce chunk %d", n.id, j)); err != nil {
			return
		}
		var bufs [][]byte
		if mode == ringAllReduce {
			b := st.scratch[ch.off : ch.off+ch.len]
			h := half(b, dir, st.esz)
			bufs = parts(h, n.nnodes, st.esz)
		} else {
			// parts are the nodes' own regions; each ring takes one half of chunk j of each
			bufs = make([][]byte, n.nnodes)
			for p := range n.nnodes {
				nodePart := st.scratch[p*len(st.scratch)/n.nnodes : (p+1)*len(st.scratch)/n.nnodes]
				bufs[p] = half(nodePart[ch.off:ch.off+ch.len], dir, st.esz)
			}
			if dir == 1 { // the left ring numbers nodes backwards
				for a, b := 0, len(bufs)-1; a < b; a, b = a+1, b-1 {
					bufs[a], bufs[b] = bufs[b], bufs[a]
				}
			}
		}
		if err := g.run(ctx, mode, bufs, bufs, n.P); err != nil {
			return
		}
		st.global[j].arrive()
	}
}

// half returns the first (dir 0) or second (dir 1) element-aligned half of b.
func half(b []byte, dir, esz int) []byte {
	m := (len(b) / esz / 2) * esz
	if dir == 0 {
		return b[:m]
	}
	return b[m:]
}

// hierAllReduce is this rank's part of the hierarchical allreduce.
func (c *Comm) hierAllReduce(ctx context.Context, op *collOp) error {
	n := c.n
	if n.nnodes == 1 {
		return c.sharedAllReduce(ctx, op)
	}
	st := op.state.(*hierState)
	red := reducer{op.d.dtype, op.d.op}
	srcs := make([][]byte, n.L)
	for j, ch := range st.chunks {
		b := split(ch.len/st.esz, n.L, st.esz)
		lo, hi := ch.off+b[c.local], ch.off+b[c.local+1]
		for l := range n.L {
			srcs[l] = op.slots[l].send[lo:hi]
		}
		red.reduceMany(st.scratch[lo:hi], srcs)
		st.reduced[j].arrive()
	}
	recv := op.slots[c.local].recv
	for j, ch := range st.chunks {
		if err := c.hierWait(ctx, op, st, j); err != nil {
			return err
		}
		copy(recv[ch.off:ch.off+ch.len], st.scratch[ch.off:ch.off+ch.len])
	}
	return nil
}

// sharedState synchronises the single-node shared-memory allreduce.
type sharedState struct {
	reduced *event
}

// sharedAllReduce is the single-node allreduce: rank l reduces slice l of every rank's send
// into its own recv, then copies every other slice from the rank that owns it. Each byte is
// read from a peer exactly once and nothing goes through a socket or a staging copy.
func (c *Comm) sharedAllReduce(ctx context.Context, op *collOp) error {
	n := c.n
	st := op.state.(*sharedState)
	esz := op.d.dtype.Size()
	recv := op.slots[c.local].recv
	b := split(len(recv)/esz, n.L, esz)
	lo, hi := b[c.local], b[c.local+1]
	srcs := make([][]byte, n.L)
	for l := range n.L {
		srcs[l] = op.slots[l].send[lo:hi]
	}
	red := reducer{op.d.dtype, op.d.op}
	red.reduceMany(recv[lo:hi], srcs)
	red.finalize(recv[lo:hi], n.P)
	st.reduced.arrive()
	if err := n.waitEvent(ctx, st.reduced, fmt.Sprintf("node %d's ranks to reduce their slices", n.id)); err != nil {
		return err
	}
	for l := range n.L {
		if l != c.local {
			copy(recv[b[l]:b[l+1]], op.slots[l].recv[b[l]:b[l+1]])
		}
	}
	return nil
}

// hierReduceScatter: intra-node reduce of the whole buffer into scratch, node ring
// reduce-scatter over the nodes' regions (node i's region is its ranks' blocks), then each
// rank copies its block.
func (c *Comm) hierReduceScatter(ctx context.Context, op *collOp) error {
	n := c.n
	st := op.state.(*hierState)
	red := reducer{op.d.dtype, op.d.op}
	s := op.slots[c.local]
	region := len(st.scratch) / n.nnodes
	srcs := make([][]byte, n.L)
	for j, ch := range st.chunks {
		b := split(ch.len/st.esz, n.L, st.esz)
		for p := range n.nnodes {
			lo, hi := p*region+ch.off+b[c.local], p*region+ch.off+b[c.local+1]
			for l := range n.L {
				srcs[l] = op.slots[l].send[lo:hi]
			}
			red.reduceMany(st.scratch[lo:hi], srcs)
			if n.nnodes == 1 {
				red.finalize(st.scratch[lo:hi], n.P)
			}
		}
		st.reduced[j].arrive()
	}
	blk := len(s.recv)
	for j, ch := range st.chunks {
		if err := c.hierWait(ctx, op, st, j); err != nil {
			return err
		}
		// the part of chunk j (within my node's region) that overlaps my block
		lo, hi := max(ch.off, c.local*blk), min(ch.off+ch.len, (c.local+1)*blk)
		if lo < hi {
			copy(s.recv[lo-c.local*blk:hi-c.local*blk], st.scratch[n.id*region+lo:n.id*region+hi])
		}
	}
	return nil
}

// hierWait waits until chunk j's result is in scratch: after the node rings with several
// nodes, after the local reduction with one.
func (c *Comm) hierWait(ctx context.Context, op *collOp, st *hierState, j int) error {
	if c.n.nnodes == 1 {
		return c.n.waitEvent(ctx, st.reduced[j], fmt.Sprintf("node %d's ranks (chunk %d of %s)", c.n.id, j, op.d))
	}
	return c.n.waitEvent(ctx, st.global[j], fmt.Sprintf("the node ring (chunk %d of %s)", j, op.d))
}

// hierAllGather: ranks place their blocks into the node's region of scratch, the node ring
// all-gathers the regions, every rank copies the whole result.
func (c *Comm) hierAllGather(ctx context.Context, op *collOp) error {
	n := c.n
	st := op.state.(*hierState)
	s := op.slots[c.local]
	region := len(st.scratch) / n.nnodes
	blk := len(s.send)
	copy(st.scratch[n.id*region+c.local*blk:], s.send)
	for j := range st.chunks {
		st.reduced[j].arrive()
	}
	for j := range st.chunks {
		if err := c.hierWait(ctx, op, st, j); err != nil {
			return err
		}
	}
	copy(s.recv, st.scratch)
	return nil
}
