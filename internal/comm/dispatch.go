package comm

import (
	"context"
	"fmt"
)

// EffectiveAlgo is the algorithm a collective really runs when a has been asked for
// (reduce-scatter and all-gather have no tree; all-to-all and send/recv have one way).
func EffectiveAlgo(coll Collective, a Algo) Algo { return normalizeAlgo(coll, a) }

// normalizeAlgo maps a requested algorithm onto one the collective has. Every node applies
// the same mapping, so the algorithm in frame headers still agrees.
func normalizeAlgo(coll Collective, a Algo) Algo {
	switch coll {
	case CollReduceScatter, CollAllGather:
		if a == AlgoTree {
			return AlgoRing
		}
	case CollAllToAll, CollSendRecv:
		return AlgoRing
	case CollBarrier:
		return AlgoTree
	}
	return a
}

// prepare builds the state the local ranks share for one collective. It runs on the last rank
// to join, before any rank starts.
func (c *Comm) prepare(op *collOp) error {
	n := c.n
	op.d.algo = normalizeAlgo(op.d.coll, op.d.algo)
	esz := op.d.dtype.Size()
	nbytes := int(op.d.count) * esz
	small := nbytes <= spinMaxBytes*4
	ev := func(k int) *event { return newSpinEvent(k, small) }
	switch op.d.coll {
	case CollAllReduce:
		switch op.d.algo {
		case AlgoHier:
			if n.nnodes == 1 {
				op.state = &sharedState{reduced: ev(n.L)}
			} else {
				op.state = c.prepareHier(op, nbytes, ringAllReduce)
			}
		case AlgoTree:
			if n.L > 1 {
				op.state = &treeState{scratch: n.growScratch(nbytes), reduced: ev(n.L), global: ev(1), leaderOnly: nbytes <= leaderOnlyBytes}
				op.noExit = nbytes <= leaderOnlyBytes
			}
		}
	case CollBarrier:
		if n.L > 1 {
			op.state = &treeState{scratch: n.growScratch(0), reduced: ev(n.L), global: ev(1), leaderOnly: true}
			op.noExit = true
		}
	case CollReduceScatter:
		if op.d.algo == AlgoHier {
			op.state = c.prepareHier(op, nbytes*n.P, ringReduceScatter)
		}
	case CollAllGather:
		if op.d.algo == AlgoHier {
			op.state = c.prepareHier(op, nbytes*n.P, ringAllGather)
		}
	case CollBroadcast:
		if op.d.algo != AlgoRing {
			piece := n.piece(op.d.dtype)
			np := max(1, (nbytes+piece-1)/piece)
			st := &bcastState{got: make([]*event, np)}
			for k := range st.got {
				st.got[k] = ev(1)
			}
			op.state = st
		}
	case CollReduce:
		if op.d.algo != AlgoRing {
			op.state = &treeState{scratch: n.growScratch(nbytes), reduced: ev(n.L)}
		}
	}
	return nil
}

// dispatch runs this rank's part of the prepared collective.
func (c *Comm) dispatch(ctx context.Context, op *collOp) error {
	switch op.d.coll {
	case CollAllReduce:
		switch op.d.algo {
		case AlgoRing:
			return c.ringAllReduce(ctx, op)
		case AlgoTree:
			return c.treeAllReduce(ctx, op)
		case AlgoHier:
			return c.hierAllReduce(ctx, op)
		}
	case CollBarrier:
		return c.treeAllReduce(ctx, op)
	case CollReduceScatter:
		if op.d.algo == AlgoHier {
			return c.hierReduceScatter(ctx, op)
		}
		return c.ringReduceScatter(ctx, op)
	case CollAllGather:
		if op.d.algo == AlgoHier {
			return c.hierAllGather(ctx, op)
		}
		return c.ringAllGather(ctx, op)
	case CollBroadcast:
		return c.broadcast(ctx, op)
	case CollReduce:
		return c.reduceColl(ctx, op)
	case CollAllToAll:
		return c.allToAll(ctx, op)
	}
	return fmt.Errorf("comm: no algorithm %s for %s", op.d.algo, op.d.coll)
}
