package comm

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

type streamKey struct {
	src, dst int32
	tag      uint32
}

// stream queues, in order, the receives posted for one (src, dst, tag) and the frames that
// arrived before their receive was posted.
type stream struct {
	posted []*xfer
	early  []earlyFrame
}

type earlyFrame struct {
	h       header
	payload []byte
}

// peerConn is one TCP (or in-memory) connection to another node. A writer goroutine sends
// queued frames in order; a reader goroutine delivers each incoming frame straight into the
// buffer its receive posted, reducing as the bytes arrive.
type peerConn struct {
	n        *node
	peer     int // node id of the other end
	ch       int
	addr     string // the peer's address, for errors
	nc       net.Conn
	staging  []byte // reduction buffer, cache-sized, used under rmu
	fd       int    // raw socket for polling waiters; -1 when the conn has none (pipes)
	lowat    int    // the socket's SO_RCVLOWAT as last set, under rmu
	rbuf     []byte // bytes read ahead of the parser, rbuf[rpos:rend], under rmu
	rpos     int
	rend     int
	raw      syscall.RawConn
	rmu      sync.Mutex // held by whoever parses incoming bytes (reader goroutine or a poller)
	rd       readState  // incremental frame parser, under rmu
	wake     chan struct{}
	quit     chan struct{}
	readDone chan struct{}
	finished sync.WaitGroup

	mu      sync.Mutex
	sendq   []*xfer
	writing bool // a goroutine is writing to nc (writer or an inline small send)
	midway  bool // a frame was partly written when writing stopped: no abort frame can follow
	closed  error
	rclosed error // the peer closed its side cleanly: frames already here stay readable
	streams map[streamKey]*stream
	wmu     sync.Mutex // serialises writes to nc
}

const inlineSendMax = 64 << 10

func newPeerConn(n *node, peer, ch int, addr string, nc net.Conn) *peerConn {
	c := &peerConn{
		n: n, peer: peer, ch: ch, addr: addr, nc: nc,
		staging:  make([]byte, 64<<10),
		rbuf:     make([]byte, 32<<10),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		readDone: make(chan struct{}),
		streams:  map[streamKey]*stream{},
	}
	c.fd, c.lowat = -1, 1
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		if raw, err := tc.SyscallConn(); err == nil {
			c.raw = raw
			_ = raw.Control(func(fd uintptr) { c.fd = int(fd) })
		}
	}
	return c
}

func (c *peerConn) start() {
	c.finished.Add(2)
	go c.readLoop()
	go c.writeLoop()
}

func (c *peerConn) peerErr(rank int32, err error) error {
	return &PeerError{Rank: int(rank), Node: c.peer, Addr: c.addr, Err: err}
}

// postSend queues a frame. Small frames go out inline when the connection is idle, which
// saves a goroutine hand-off on the latency-bound path.
func (c *peerConn) postSend(x *xfer) {
	c.mu.Lock()
	if c.closed != nil {
		err := c.closed
		c.mu.Unlock()
		x.r.finish(err)
		return
	}
	if !c.writing && len(c.sendq) == 0 && len(x.buf) <= inlineSendMax {
		c.writing = true
		c.mu.Unlock()
		err := c.writeFrame(x)
		if err != nil {
			err = c.writeFailed(err)
		}
		x.r.finish(err)
		c.mu.Lock()
		c.writing = false
		more := len(c.sendq) > 0
		c.mu.Unlock()
		if err != nil {
			c.fail(err)
		} else if more {
			c.kick()
		}
		return
	}
	c.sendq = append(c.sendq, x)
	c.mu.Unlock()
	c.kick()
}

func (c *peerConn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *peerConn) writeLoop() {
	defer c.finished.Done()
	for {
		select {
		case <-c.wake:
		case <-c.quit:
			return
		}
		for {
			c.mu.Lock()
			if c.closed != nil {
				c.mu.Unlock()
				return
			}
			if c.writing || len(c.sendq) == 0 {
				c.mu.Unlock()
				break
			}
			q := c.sendq
			c.sendq = nil
			c.writing = true
			c.mu.Unlock()
			var err error
			for i, x := range q {
				if err = c.writeFrame(x); err != nil {
					err = c.writeFailed(err)
					for _, y := range q[i:] {
						y.r.finish(err)
					}
					break
				}
				x.r.finish(nil)
			}
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			if err != nil {
				c.fail(err)
				return
			}
		}
	}
}

func (c *peerConn) writeFrame(x *xfer) error {
	var hb [headerBytes]byte
	h := header{kind: frameData, d: x.d, src: x.src, dst: x.dst, tag: x.tag, length: uint32(len(x.buf))}
	h.encode(hb[:])
	c.wmu.Lock()
	defer c.wmu.Unlock()
	bufs := net.Buffers{hb[:], x.buf}
	want := int64(headerBytes + len(x.buf))
	n, err := bufs.WriteTo(c.nc)
	if err != nil {
		if n > 0 && n < want {
			c.mu.Lock()
			c.midway = true
			c.mu.Unlock()
		}
		return c.peerErr(x.dst, fmt.Errorf("%w: send: %v", ErrPeerDown, err))
	}
	return nil
}

func (c *peerConn) postRecv(x *xfer) {
	c.mu.Lock()
	st := c.streamLocked(streamKey{x.src, x.dst, x.tag})
	if len(st.early) == 0 && (c.closed != nil || c.rclosed != nil) {
		err := c.closed
		if err == nil {
			err = c.rclosed
		}
		c.mu.Unlock()
		x.r.finish(err)
		return
	}
	if len(st.early) > 0 {
		f := st.early[0]
		st.early = st.early[1:]
		c.mu.Unlock()
		err := checkFrame(&f.h, x)
		if err == nil {
			x.spec.apply(f.payload)
		}
		x.r.finish(err)
		if err != nil {
			c.n.abort(err)
		}
		return
	}
	st.posted = append(st.posted, x)
	c.mu.Unlock()
}

// checkFrame verifies that an incoming frame belongs to the call its receive was posted for.
func checkFrame(h *header, x *xfer) error {
	if h.d != x.d {
		return mismatchError(h.src, x.dst, h.d, x.d)
	}
	if int(h.length) != len(x.spec.dst) {
		return fmt.Errorf("%w: rank %d sent %d bytes but rank %d expected %d for %s",
			ErrMismatch, h.src, h.length, x.dst, len(x.spec.dst), x.d)
	}
	return nil
}

func (c *peerConn) readErr(err error) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("%w: connection closed by node %d (process exited or aborted)", ErrPeerDown, c.peer)
	case errors.Is(err, net.ErrClosed):
		err = fmt.Errorf("%w: connection closed locally", ErrAborted)
	default:
		err = fmt.Errorf("%w: %v", ErrPeerDown, err)
	}
	return &PeerError{Rank: -1, Node: c.peer, Addr: c.addr, Err: err}
}

// fail closes the connection, completes every pending transfer with err and aborts the node.
// fail(nil) closes after an abort that is already under way.
func (c *peerConn) fail(err error) {
	c.mu.Lock()
	if c.closed != nil {
		c.mu.Unlock()
		return
	}
	if err == nil {
		err = c.n.abortError()
	}
	c.closed = err
	var pending []*xfer
	pending = append(pending, c.sendq...)
	c.sendq = nil
	for _, st := range c.streams {
		pending = append(pending, st.posted...)
		st.posted = nil
	}
	c.mu.Unlock()
	close(c.quit)
	if c.fd < 0 {
		_ = c.nc.Close() // unblocks a pipe reader parked in Read while it holds rmu
	}
	// No poller may be inside a syscall on the descriptor when it closes (the number could be
	// reused), and the receive the parser was filling must fail too, or its waiter would
	// drain forever.
	c.rmu.Lock()
	c.rd.dead = true
	if x := c.rd.x; x != nil {
		c.rd.x, c.rd.inFrame = nil, false
		pending = append(pending, x)
	}
	c.rmu.Unlock()
	if c.fd >= 0 {
		_ = c.nc.Close()
	}
	for _, x := range pending {
		x.r.finish(err)
	}
	c.n.abort(err)
}

// sendAbort tells the peer why this node is giving up, best effort and bounded in time, then
// closes. It skips the message when a frame was cut halfway (the peer could not parse it).
func (c *peerConn) sendAbort(reason error) {
	c.mu.Lock()
	closed := c.closed != nil
	c.mu.Unlock()
	if !closed {
		_ = c.nc.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		c.wmu.Lock()
		c.mu.Lock()
		midway := c.midway
		c.mu.Unlock()
		if !midway {
			msg := []byte(reason.Error())
			if len(msg) > 4096 {
				msg = msg[:4096]
			}
			var hb [headerBytes]byte
			h := header{kind: frameAbort, length: uint32(len(msg))}
			h.encode(hb[:])
			bufs := net.Buffers{hb[:], msg}
			_, _ = bufs.WriteTo(c.nc)
		}
		c.wmu.Unlock()
	}
	c.fail(reason)
}

// shutdown closes gracefully: it half-closes after the frames already written (a FIN, not a
// reset, so the peer reads everything we sent), waits briefly for the peer's own close, then
// closes. Called once the node has stopped, so nothing new is queued.
func (c *peerConn) shutdown() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		// a writer stuck on a peer that stopped reading must not hold up the close
		_ = c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		c.wmu.Lock()
		_ = cw.CloseWrite()
		c.wmu.Unlock()
		t := time.NewTimer(2 * time.Second)
		select {
		case <-c.readDone:
		case <-t.C:
		}
		t.Stop()
	}
	c.fail(errClosed)
}

// peerClosed handles a clean end of stream between frames. The peer may simply have
// finished (its last collective done, its communicator closed) while this node still reads
// what it sent, so nothing aborts here: receives already posted cannot complete and fail,
// later ones fail unless their frame already arrived, and the failure of any of them aborts
// the node through its waiter.
func (c *peerConn) peerClosed(err error) {
	c.mu.Lock()
	c.rclosed = err
	var pending []*xfer
	for _, st := range c.streams {
		pending = append(pending, st.posted...)
		st.posted = nil
	}
	c.mu.Unlock()
	for _, x := range pending {
		x.r.finish(err)
	}
}

// writeFailed gives the reader a moment to take in what the peer said before it hung up
// (usually an abort frame naming the real cause), so the node aborts with that cause rather
// than with "broken pipe".
func (c *peerConn) writeFailed(err error) error {
	t := time.NewTimer(200 * time.Millisecond)
	defer t.Stop()
	select {
	case <-c.readDone:
	case <-c.n.abortCh:
	case <-t.C:
	}
	if c.n.aborted() {
		return c.n.abortError()
	}
	return err
}

// streamLocked returns the stream for key, creating it; c.mu is held.
func (c *peerConn) streamLocked(key streamKey) *stream {
	st := c.streams[key]
	if st == nil {
		st = &stream{}
		c.streams[key] = st
	}
	return st
}
