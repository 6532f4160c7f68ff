package comm

import (
	"context"
	"fmt"
)

// Send delivers buf to rank peer, which must call Recv (or SendRecv) with a buffer of the same
// size and type. Messages between a pair arrive in the order they were sent. Sending to
// oneself needs SendRecv, since Send returns only once the receiver has the data.
func (c *Comm) Send(ctx context.Context, buf []byte, dt DataType, peer int) error {
	return c.SendRecv(ctx, buf, dt, peer, nil, -1)
}

// Recv receives into buf from rank peer.
func (c *Comm) Recv(ctx context.Context, buf []byte, dt DataType, peer int) error {
	return c.SendRecv(ctx, nil, dt, -1, buf, peer)
}

// SendRecv sends send to rank to and receives recv from rank from at the same time (either
// side may be skipped with a negative rank), like a grouped ncclSend/ncclRecv pair.
func (c *Comm) SendRecv(ctx context.Context, send []byte, dt DataType, to int, recv []byte, from int) error {
	n := c.n
	if !dt.valid() {
		return c.badArg("unknown data type %d", dt)
	}
	for _, p := range []int{to, from} {
		if p >= n.P {
			return c.badArg("peer rank %d is out of range (0..%d)", p, n.P-1)
		}
	}
	if to >= 0 {
		if err := c.checkLen("send", send, dt); err != nil {
			return err
		}
	}
	if from >= 0 {
		if err := c.checkLen("recv", recv, dt); err != nil {
			return err
		}
	}
	if n.aborted() {
		return n.abortError()
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	c.p2pMu.Lock()
	var sd, rd desc
	if to >= 0 {
		sd = desc{coll: CollSendRecv, dtype: dt, count: uint64(len(send) / dt.Size()), seq: c.sendSeq[to]}
		c.sendSeq[to]++
	}
	if from >= 0 {
		rd = desc{coll: CollSendRecv, dtype: dt, count: uint64(len(recv) / dt.Size()), seq: c.recvSeq[from]}
		c.recvSeq[from]++
	}
	c.p2pMu.Unlock()
	var rs reqs
	if from >= 0 {
		n.recvPieces(&rs, c.rank, from, tagP2P, rd, recv, nil, nil)
	}
	if to >= 0 {
		n.sendPieces(&rs, c.rank, to, tagP2P, sd, send)
	}
	if err := rs.wait(ctx, n); err != nil {
		return fmt.Errorf("comm: rank %d: send/recv: %w", c.rank, err)
	}
	return nil
}
