package comm

import (
	"context"
)

// Stream tags. Each concurrent flow between the same two ranks needs its own tag.
const (
	tagRing     uint32 = 0x100 // + channel
	tagHierR    uint32 = 0x200 // node ring carried by last(i) -> first(i+1)
	tagHierL    uint32 = 0x300 // node ring carried by first(i) -> last(i-1)
	tagTree     uint32 = 0x400
	tagChain    uint32 = 0x500 // + channel
	tagAllToAll uint32 = 0x600
	tagP2P      uint32 = 0x700
	tagCalib    uint32 = 0x800
)

type ringMode int

const (
	ringAllReduce ringMode = iota
	ringReduceScatter
	ringAllGather
)

// ring is one participant's view of a ring: its position, the rank it sends as and to, the
// rank it receives as and from. For the flat ring these are plain neighbours; for the
// patent's node ring, a node sends from one rank and receives at another.
type ring struct {
	n                *node
	idx, size        int
	sendFrom, sendTo int
	recvAt, recvFrom int
	tag              uint32
	d                desc
	red              reducer
	piece            int
}

type ringStep struct {
	send, recv  int
	reduce      bool
	sendFromSrc bool
}

func (g *ring) steps(mode ringMode) (steps []ringStep, final int) {
	S, i := g.size, g.idx
	mod := func(x int) int { return ((x % S) + S) % S }
	final = -1
	switch mode {
	case ringAllReduce:
		for s := 0; s < S-1; s++ {
			steps = append(steps, ringStep{send: mod(i - s), recv: mod(i - s - 1), reduce: true, sendFromSrc: s == 0})
		}
		final = S - 2
		for s := 0; s < S-1; s++ {
			steps = append(steps, ringStep{send: mod(i + 1 - s), recv: mod(i - s)})
		}
	case ringReduceScatter: // shifted so that participant i ends with part i
		for s := 0; s < S-1; s++ {
			steps = append(steps, ringStep{send: mod(i - s - 1), recv: mod(i - s - 2), reduce: true, sendFromSrc: s == 0})
		}
		final = S - 2
	case ringAllGather:
		for s := 0; s < S-1; s++ {
			steps = append(steps, ringStep{send: mod(i - s), recv: mod(i - s - 1)})
		}
	}
	return steps, final
}

// pieces cuts a part into pipelining pieces; an empty part still travels as one empty piece
// so both ends agree on the frame sequence.
func pieces(b []byte, piece int) [][]byte {
	if len(b) <= piece {
		return [][]byte{b}
	}
	out := make([][]byte, 0, (len(b)+piece-1)/piece)
	for off := 0; off < len(b); off += piece {
		out = append(out, b[off:min(off+piece, len(b))])
	}
	return out
}

// run moves parts around the ring. src[p] and dst[p] are part p (equal lengths; they may be
// the same memory). All-reduce and reduce-scatter combine src into dst; all-gather expects
// dst[idx] filled. With op Avg, the completed reduction is divided by avgDiv.
//
// Every receive is posted up front, in the order the peer will send, so frames land straight
// in their destination; each received piece is forwarded as soon as it is complete, which
// keeps the link busy across step boundaries.
func (g *ring) run(ctx context.Context, mode ringMode, src, dst [][]byte, avgDiv int) (err error) {
	if g.size == 1 {
		if mode != ringAllGather {
			if !sameStart(src[0], dst[0]) {
				copy(dst[0], src[0])
			}
			g.red.finalize(dst[0], avgDiv)
		}
		return nil
	}
	steps, final := g.steps(mode)
	var rs reqs
	recvs := make([][]*req, len(steps))
	for t, st := range steps {
		dp := pieces(dst[st.recv], g.piece)
		var lp [][]byte
		if st.reduce {
			lp = pieces(src[st.recv], g.piece)
		}
		recvs[t] = make([]*req, len(dp))
		for k := range dp {
			spec := recvSpec{dst: dp[k]}
			if st.reduce {
				spec.local, spec.red = lp[k], &g.red
			}
			recvs[t][k] = rs.add(g.n.recv(g.recvAt, g.recvFrom, g.tag, g.d, spec))
		}
	}
	first := dst[steps[0].send]
	if steps[0].sendFromSrc {
		first = src[steps[0].send]
	}
	for _, p := range pieces(first, g.piece) {
		rs.add(g.n.send(g.sendFrom, g.sendTo, g.tag, g.d, p))
	}
	for t, st := range steps {
		dp := pieces(dst[st.recv], g.piece)
		for k, r := range recvs[t] {
			if err := g.n.wait(ctx, r); err != nil {
				g.n.abort(err)
				rs.drain()
				return err
			}
			if t == final {
				g.red.finalize(dp[k], avgDiv)
			}
			if t+1 < len(steps) {
				rs.add(g.n.send(g.sendFrom, g.sendTo, g.tag, g.d, dp[k]))
			}
		}
	}
	return rs.wait(ctx, g.n)
}

// split cuts n elements of esz bytes into k nearly equal runs and returns the byte bounds
// (k+1 offsets). Earlier runs get the extra elements.
func split(n, k, esz int) []int {
	b := make([]int, k+1)
	q, r := n/k, n%k
	off := 0
	for i := range k {
		b[i] = off * esz
		off += q
		if i < r {
			off++
		}
	}
	b[k] = off * esz
	return b
}

// parts cuts buf into k element-aligned parts.
func parts(buf []byte, k, esz int) [][]byte {
	b := split(len(buf)/esz, k, esz)
	out := make([][]byte, k)
	for i := range k {
		out[i] = buf[b[i]:b[i+1]]
	}
	return out
}

// channelsFor decides how many parallel rings a message of nbytes uses: enough that each
// ring moves at least 64 KiB per rank, at most the configured channels.
func (n *node) channelsFor(nbytes int) int {
	c := min(n.cfg.Channels, max(1, nbytes/(n.P*64<<10)))
	return max(c, 1)
}

// goAll runs f(0..k-1) concurrently (f(0) on the caller) and returns the first error.
func goAll(k int, f func(i int) error) error {
	if k == 1 {
		return f(0)
	}
	errs := make(chan error, k-1)
	for i := 1; i < k; i++ {
		go func() { errs <- f(i) }()
	}
	err := f(0)
	for i := 1; i < k; i++ {
		if e := <-errs; err == nil {
			err = e
		}
	}
	return err
}

// ringAllReduce is the flat ring over every rank, one ring per channel on its own region.
func (c *Comm) ringAllReduce(ctx context.Context, op *collOp) error {
	n := c.n
	s := op.slots[c.local]
	esz := op.d.dtype.Size()
	nch := n.channelsFor(len(s.recv))
	cb := split(len(s.recv)/esz, nch, esz)
	return goAll(nch, func(ch int) error {
		g := c.flatRing(op, uint32(ch))
		src := parts(s.send[cb[ch]:cb[ch+1]], n.P, esz)
		dst := parts(s.recv[cb[ch]:cb[ch+1]], n.P, esz)
		return g.run(ctx, ringAllReduce, src, dst, n.P)
	})
}

func (c *Comm) flatRing(op *collOp, ch uint32) *ring {
	n := c.n
	return &ring{n: n, idx: c.rank, size: n.P,
		sendFrom: c.rank, sendTo: (c.rank + 1) % n.P,
		recvAt: c.rank, recvFrom: (c.rank + n.P - 1) % n.P,
		tag: tagRing + ch, d: op.d, red: reducer{op.d.dtype, op.d.op}, piece: n.piece(op.d.dtype)}
}

func (n *node) piece(dt DataType) int {
	return max(n.cfg.PieceBytes/dt.Size(), 1) * dt.Size()
}

// ringReduceScatter: flat ring; channel ch handles a slice of every rank's block.
func (c *Comm) ringReduceScatter(ctx context.Context, op *collOp) error {
	n := c.n
	s := op.slots[c.local]
	esz := op.d.dtype.Size()
	blk := len(s.recv)
	if cap(c.work) < len(s.send) {
		c.work = make([]byte, len(s.send))
	}
	work := c.work[:len(s.send)]
	nch := n.channelsFor(len(s.send))
	cb := split(blk/esz, nch, esz)
	err := goAll(nch, func(ch int) error {
		g := c.flatRing(op, uint32(ch))
		src := make([][]byte, n.P)
		dst := make([][]byte, n.P)
		for p := range n.P {
			src[p] = s.send[p*blk+cb[ch] : p*blk+cb[ch+1]]
			dst[p] = work[p*blk+cb[ch] : p*blk+cb[ch+1]]
		}
		return g.run(ctx, ringReduceScatter, src, dst, n.P)
	})
	if err != nil {
		return err
	}
	copy(s.recv, work[c.rank*blk:(c.rank+1)*blk])
	return nil
}

// ringAllGather: flat ring; channel ch handles a slice of every block.
func (c *Comm) ringAllGather(ctx context.Context, op *collOp) error {
	n := c.n
	s := op.slots[c.local]
	esz := op.d.dtype.Size()
	blk := len(s.send)
	if !sameStart(s.recv[c.rank*blk:], s.send) {
		copy(s.recv[c.rank*blk:(c.rank+1)*blk], s.send)
	}
	nch := n.channelsFor(len(s.recv))
	cb := split(blk/esz, nch, esz)
	return goAll(nch, func(ch int) error {
		g := c.flatRing(op, uint32(ch))
		dst := make([][]byte, n.P)
		for p := range n.P {
			dst[p] = s.recv[p*blk+cb[ch] : p*blk+cb[ch+1]]
		}
		return g.run(ctx, ringAllGather, nil, dst, 0)
	})
}
