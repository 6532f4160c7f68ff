package comm

import "context"

// allToAll: blocks for ranks on other nodes travel as streams over the node connections;
// blocks for local ranks are copied straight out of the peer's send buffer. The exit
// barrier in run keeps every send buffer alive until all local peers have copied from it.
func (c *Comm) allToAll(ctx context.Context, op *collOp) error {
	n := c.n
	s := op.slots[c.local]
	blk := len(s.send) / n.P
	var rs reqs
	for q := range n.P {
		if n.nodeOf(q) == n.id {
			continue
		}
		n.recvPieces(&rs, c.rank, q, tagAllToAll, op.d, s.recv[q*blk:(q+1)*blk], nil, nil)
	}
	for i := 1; i <= n.P; i++ { // start with the next rank so every link gets work at once
		q := (c.rank + i) % n.P
		if n.nodeOf(q) == n.id {
			continue
		}
		n.sendPieces(&rs, c.rank, q, tagAllToAll, op.d, s.send[q*blk:(q+1)*blk])
	}
	for l := range n.L {
		q := n.first(n.id) + l
		copy(s.recv[q*blk:(q+1)*blk], op.slots[l].send[c.rank*blk:(c.rank+1)*blk])
	}
	return rs.wait(ctx, n)
}
