package comm

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// node is the state one process keeps for one node: its local ranks (goroutines sharing
// memory), the links among them, and the connections to other nodes.
type node struct {
	id, nnodes, L, P int
	cfg              Config
	model            *costModel

	comms []*Comm
	mem   [][]*memLink  // [from local][to local]
	conns [][]*peerConn // [peer node][channel]; nil for this node
	// With Config.RingIfnames, the patent's wiring: ringR joins this node's last rank (its
	// right NIC) to node i+1's first rank; ringL joins this node's first rank (its left NIC)
	// to node i-1's last rank. nil when the node rings share the ordinary connections.
	ringR, ringL *peerConn
	addrs        []string // data address of every node, for errors

	mu      sync.Mutex
	pending *collOp // the collective the local ranks are gathering for
	seq     uint64  // collectives started on this node

	scratch []byte // node-wide working buffer, owned by the running collective
	cur     desc   // the collective running on this node (under mu)

	waitMu      sync.Mutex
	remoteWaits map[int]int // remote rank -> waits in progress

	abortOnce sync.Once
	abortCh   chan struct{}
	abortErr  error
	closers   []func() // run once at close/abort (listeners, stores)
}

func newNode(id, nnodes, L int, cfg Config) *node {
	n := &node{id: id, nnodes: nnodes, L: L, P: nnodes * L, cfg: cfg, abortCh: make(chan struct{})}
	n.mem = make([][]*memLink, L)
	for i := range n.mem {
		n.mem[i] = make([]*memLink, L)
		for j := range n.mem[i] {
			n.mem[i][j] = newMemLink()
		}
	}
	n.conns = make([][]*peerConn, nnodes)
	n.addrs = make([]string, nnodes)
	n.comms = make([]*Comm, L)
	for l := range L {
		n.comms[l] = &Comm{n: n, rank: id*L + l, local: l, sendSeq: map[int]uint64{}, recvSeq: map[int]uint64{}}
	}
	n.model = defaultCostModel()
	return n
}

func (n *node) nodeOf(rank int) int  { return rank / n.L }
func (n *node) localOf(rank int) int { return rank % n.L }
func (n *node) first(node int) int   { return node * n.L }
func (n *node) last(node int) int    { return node*n.L + n.L - 1 }

// describe names a rank for error messages: "rank 5 (node 1, 10.77.0.2:4000)".
func (n *node) describe(rank int) string {
	nd := n.nodeOf(rank)
	if nd != n.id && n.addrs[nd] != "" {
		return fmt.Sprintf("rank %d (node %d, %s)", rank, nd, n.addrs[nd])
	}
	return fmt.Sprintf("rank %d (node %d)", rank, nd)
}

// connFor picks the connection that carries a (src, dst, tag) stream between two nodes.
func (n *node) connFor(peer int, src, dst int, tag uint32) *peerConn {
	cs := n.conns[peer]
	// The patent's two node rings: with three or more nodes they talk to different peers and
	// so use different connections. With two nodes both rings join the same pair of nodes;
	// over one NIC per node they share one connection, whose single writer interleaves their
	// frames: two TCP flows through the same shaped link measured 7% slower (docs/bench).
	switch tag {
	case tagHierR, tagHierL:
		if n.ringR != nil {
			// the right ring leaves on the right link and arrives on the left one; the left
			// ring the other way round
			if sending := n.nodeOf(src) == n.id; sending == (tag == tagHierR) {
				return n.ringR
			}
			return n.ringL
		}
		return cs[0]
	}
	lo, hi := min(src, dst), max(src, dst)
	return cs[(uint32(lo)*31+uint32(hi)*7+tag)%uint32(len(cs))]
}

// send posts buf from rank src (local to this node) to rank dst.
func (n *node) send(src, dst int, tag uint32, d desc, buf []byte) *req {
	r := newReq(dst)
	x := &xfer{r: r, d: d, src: int32(src), dst: int32(dst), tag: tag, buf: buf}
	if pn := n.nodeOf(dst); pn == n.id {
		n.mem[n.localOf(src)][n.localOf(dst)].postSend(x)
	} else {
		n.connFor(pn, src, dst, tag).postSend(x)
	}
	return r
}

// recv posts a receive at rank dst (local) of a message from rank src.
func (n *node) recv(dst, src int, tag uint32, d desc, spec recvSpec) *req {
	r := newReq(src)
	x := &xfer{r: r, d: d, src: int32(src), dst: int32(dst), tag: tag, spec: spec}
	if pn := n.nodeOf(src); pn == n.id {
		n.mem[n.localOf(src)][n.localOf(dst)].postRecv(x)
	} else {
		r.conn = n.connFor(pn, src, dst, tag)
		r.spin = len(spec.dst) <= spinMaxBytes
		r.conn.postRecv(x)
	}
	return r
}

// wait blocks until r completes, the context ends, or the node aborts.
func (n *node) wait(ctx context.Context, r *req) error {
	select {
	case <-r.done:
		return n.reqErr(r)
	default:
	}
	if r.spin && n.cfg.SpinWait > 0 {
		// poll the socket ourselves for a short while: waking a parked thread costs more
		// than the whole message on small collectives
		deadline := time.Now().Add(n.cfg.SpinWait)
		for {
			r.conn.poll()
			select {
			case <-r.done:
				return n.reqErr(r)
			default:
			}
			if !time.Now().Before(deadline) {
				break
			}
			runtime.Gosched()
		}
	}
	if n.nodeOf(r.peer) != n.id {
		n.noteWait(r.peer, 1)
		defer n.noteWait(r.peer, -1)
	}
	select {
	case <-r.done:
		return n.reqErr(r)
	case <-n.abortCh:
		return n.abortError()
	case <-ctx.Done():
		return n.ctxFailed(ctx, n.describe(r.peer))
	}
}

// noteWait counts the ranks on other nodes this node is blocked on, so a rank that times out
// waiting for a local peer can say which remote peer the node is really stuck on.
func (n *node) noteWait(peer, delta int) {
	n.waitMu.Lock()
	defer n.waitMu.Unlock()
	if n.remoteWaits == nil {
		n.remoteWaits = map[int]int{}
	}
	n.remoteWaits[peer] += delta
	if n.remoteWaits[peer] <= 0 {
		delete(n.remoteWaits, peer)
	}
}

func (n *node) blame() string {
	n.waitMu.Lock()
	defer n.waitMu.Unlock()
	var who []string
	for peer := range n.remoteWaits {
		who = append(who, n.describe(peer))
	}
	if len(who) == 0 {
		return ""
	}
	sort.Strings(who)
	return fmt.Sprintf(" (node %d is itself waiting for %s)", n.id, strings.Join(who, ", "))
}

// ctxFailed turns an expired context into an error naming what was awaited, and aborts the
// node: peers may still be reading this rank's buffers, so the communicator cannot go on.
func (n *node) ctxFailed(ctx context.Context, what string) error {
	if n.aborted() { // someone else found the cause first
		return n.abortError()
	}
	var err error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		var d time.Duration
		if dl, ok := ctx.Value(timeoutKey{}).(time.Duration); ok {
			d = dl
		}
		err = fmt.Errorf("comm: node %d: %w%s", n.id, timeoutError(d, what), n.blame())
	} else {
		err = fmt.Errorf("comm: node %d: canceled while waiting for %s%s: %w", n.id, what, n.blame(), ctx.Err())
	}
	n.abort(err)
	if n.abortErr != err {
		return n.abortError()
	}
	return err
}

type timeoutKey struct{}

// abort ends the node's communicators: every pending and future call fails with err, peers
// are told why, and connections close.
func (n *node) abort(err error) { n.stop(err, true) }

// stop ends the node. With notify, peers get an abort frame carrying err, so they fail at
// once with the real cause; without it (a graceful close), connections are half-closed after
// the data already queued, so peers still finishing their last collective read it in full.
func (n *node) stop(err error, notify bool) {
	if err == nil {
		err = errors.New("aborted")
	}
	if n.aborted() { // also stops re-entry from connections failing during the abort below
		return
	}
	n.abortOnce.Do(func() {
		n.abortErr = err
		close(n.abortCh)
		for _, row := range n.mem {
			for _, l := range row {
				l.abort(n.abortError())
			}
		}
		var wg sync.WaitGroup
		for _, c := range n.allConns() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if notify {
					c.sendAbort(err)
				} else {
					c.shutdown()
				}
			}()
		}
		wg.Wait()
		for _, f := range n.closers {
			f()
		}
	})
}

func (n *node) abortError() error {
	<-n.abortCh
	if errors.Is(n.abortErr, ErrAborted) {
		return n.abortErr
	}
	return fmt.Errorf("%w: %w", ErrAborted, n.abortErr)
}

func (n *node) aborted() bool {
	select {
	case <-n.abortCh:
		return true
	default:
		return false
	}
}

// close shuts the node down without blaming anyone, and waits for its goroutines.
func (n *node) close() {
	n.stop(errClosed, false)
	for _, c := range n.allConns() {
		c.finished.Wait()
	}
}

var errClosed = errors.New("communicator closed")

// spinMaxBytes is the largest receive a waiter polls for before parking.
const spinMaxBytes = 64 << 10

// growScratch returns the node's scratch buffer with at least size bytes. Only the creator of
// a collective calls it, while no other collective runs on the node.
func (n *node) growScratch(size int) []byte {
	if cap(n.scratch) < size {
		n.scratch = make([]byte, size)
	}
	return n.scratch[:size]
}

// checkEarly catches a frame that belongs to the collective this node is running but that no
// receive will ever match, because the peer chose another algorithm or call: without this
// check both sides would wait on streams the other never uses.
func (n *node) checkEarly(h *header) error {
	if h.tag >= tagP2P {
		return nil
	}
	n.mu.Lock()
	cur := n.cur
	n.mu.Unlock()
	if cur.coll == 0 || h.d.seq != cur.seq || h.d == cur {
		return nil
	}
	return mismatchError(h.src, h.dst, h.d, cur)
}

// scanEarly applies checkEarly to frames that arrived before this node started the
// collective d.
func (n *node) scanEarly(d desc) error {
	for _, c := range n.allConns() {
		c.mu.Lock()
		for _, st := range c.streams {
			for _, f := range st.early {
				if f.h.tag < tagP2P && f.h.d.seq == d.seq && f.h.d != d {
					c.mu.Unlock()
					return mismatchError(f.h.src, f.h.dst, f.h.d, d)
				}
			}
		}
		c.mu.Unlock()
	}
	return nil
}

// reqErr prefers the node's abort cause to a request's own error: once a node aborts, the
// requests it fails carry secondary errors (closed pipes), and the cause is what users need.
func (n *node) reqErr(r *req) error {
	if r.err != nil && n.aborted() {
		return n.abortError()
	}
	return r.err
}

// allConns lists every connection to other nodes, ring links included.
func (n *node) allConns() []*peerConn {
	var out []*peerConn
	for _, cs := range n.conns {
		for _, c := range cs {
			if c != nil {
				out = append(out, c)
			}
		}
	}
	for _, c := range []*peerConn{n.ringR, n.ringL} {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}
