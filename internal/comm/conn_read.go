package comm

import (
	"errors"
	"fmt"
	"io"
	"syscall"
)

// readState parses the incoming byte stream incrementally, so that any goroutine can advance
// it by whatever the socket holds right now: the connection's reader goroutine after the
// poller wakes it, or a rank that polls the socket while it waits for a small message (a
// sleeping thread takes tens of microseconds to wake on a virtual machine; a polling one
// sees the bytes as they land).
type readState struct {
	hdr     [headerBytes]byte
	hn      int  // header bytes so far
	inFrame bool // the header is parsed; payload bytes follow
	h       header
	x       *xfer  // the receive this frame fills, or nil
	early   []byte // payload of a frame with no receive posted yet
	abort   []byte // message of an abort frame
	off     int    // payload bytes consumed
	sfill   int    // bytes in staging awaiting reduction
	dead    bool   // the descriptor is closed: pollers stay away

	// outcomes for the caller to act on once rmu is released (acting needs other locks)
	eof      bool
	err      error
	aborted  error
	mismatch error
}

// reader abstracts one read: non-blocking syscalls on a socket, or a blocking Read on
// connections without a descriptor (in-memory pipes).
type reader func(p []byte) (int, error)

var errWouldBlock = errors.New("would block")

// fdReader reads the socket without blocking. A read that returns less than asked means
// the socket is empty, so the next call reports would-block without a syscall: on a 1 Gbit/s
// link every wake-up would otherwise cost an extra read that finds nothing.
func fdReader(fd int) reader {
	short := false
	return func(p []byte) (int, error) {
		if short {
			return 0, errWouldBlock
		}
		for {
			n, err := syscall.Read(fd, p)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return 0, errWouldBlock
			case err != nil:
				return 0, err
			case n == 0 && len(p) > 0:
				return 0, io.EOF
			}
			short = n < len(p)
			return n, nil
		}
	}
}

// bread reads through a small buffer so that a small frame (header and payload) costs one
// syscall, while large payloads still go straight from the socket into their destination.
// Called under rmu.
func (c *peerConn) bread(read reader, p []byte) (int, error) {
	if c.rpos < c.rend {
		n := copy(p, c.rbuf[c.rpos:c.rend])
		c.rpos += n
		return n, nil
	}
	if len(p) >= len(c.rbuf)/4 {
		return read(p)
	}
	n, err := read(c.rbuf)
	if err != nil {
		return 0, err
	}
	m := copy(p, c.rbuf[:n])
	c.rpos, c.rend = m, n
	return m, nil
}

// setLowat asks the kernel to report the socket readable only once v bytes are queued
// (SO_RCVLOWAT), so a large payload is read in a few large reads instead of one per packet.
// Called under rmu.
func (c *peerConn) setLowat(v int) {
	if c.fd < 0 || c.lowat == v {
		return
	}
	if syscall.SetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, v) == nil {
		c.lowat = v
	}
}

// drain parses frames from rd until it would block or the stream ends. It reports whether
// the caller must stop reading (end of stream, error, or a protocol violation in rd's
// outcomes). Called with rmu held.
func (c *peerConn) drain(read reader) (stop bool) {
	r := &c.rd
	for {
		if !r.inFrame {
			if c.lowat != 1 {
				c.setLowat(1)
			}
			n, err := c.bread(read, r.hdr[r.hn:])
			if err != nil {
				return c.readFailed(err, r.hn > 0)
			}
			r.hn += n
			if r.hn < headerBytes {
				continue
			}
			if err := r.h.decode(r.hdr[:]); err != nil {
				r.err = &PeerError{Rank: -1, Node: c.peer, Addr: c.addr, Err: fmt.Errorf("protocol error: %w", err)}
				return true
			}
			if r.h.length > maxFrame {
				r.err = &PeerError{Rank: -1, Node: c.peer, Addr: c.addr, Err: fmt.Errorf("protocol error: frame of %d bytes", r.h.length)}
				return true
			}
			r.inFrame, r.off, r.sfill, r.x, r.early, r.abort = true, 0, 0, nil, nil, nil
			if r.h.kind == frameAbort {
				r.abort = make([]byte, min(r.h.length, 64<<10))
			} else {
				key := streamKey{r.h.src, r.h.dst, r.h.tag}
				c.mu.Lock()
				if st := c.streams[key]; st != nil && len(st.posted) > 0 {
					r.x = st.posted[0]
					st.posted = st.posted[1:]
				}
				c.mu.Unlock()
				if r.x != nil {
					if err := checkFrame(&r.h, r.x); err != nil {
						r.x.r.finish(err)
						r.x = nil // its call has returned: never write into it
						r.mismatch = err
						r.dead = true // the stream is out of step: nobody reads on
						return true
					}
				} else {
					r.early = make([]byte, r.h.length)
				}
			}
		}
		if done, stop := c.readPayload(read); stop {
			return true
		} else if !done {
			return false // would block: wait for more bytes
		}
		r.inFrame, r.hn = false, 0
		if r.h.kind == frameAbort {
			r.aborted = &PeerError{Rank: -1, Node: c.peer, Addr: c.addr, Err: fmt.Errorf("aborted: %s", r.abort)}
			return true
		}
		if r.x != nil {
			r.x.r.finish(nil)
			r.x = nil
			continue
		}
		c.frameArrivedEarly(r.h, r.early)
		r.early = nil
		if r.mismatch != nil {
			r.dead = true
			return true
		}
	}
}

const maxFrame = 256 << 20

// lowatMax caps the receive low-water mark: large enough that a wake-up carries a useful
// amount of data, small enough to stay well inside the socket buffer.
const lowatMax = 128 << 10

// lowatMin is the smallest remainder worth a low-water mark: small frames arrive whole, and
// two setsockopt calls would cost more than the wake-ups they save.
const lowatMin = 32 << 10

// readPayload advances the current frame's payload. done: the frame is complete.
func (c *peerConn) readPayload(read reader) (done, stop bool) {
	r := &c.rd
	total := int(r.h.length)
	for r.off < total {
		var dst []byte
		switch {
		case r.abort != nil:
			if r.off < len(r.abort) {
				dst = r.abort[r.off:]
			} else { // discard the tail of an over-long message
				dst = c.staging[:min(len(c.staging), total-r.off)]
			}
		case r.x == nil:
			dst = r.early[r.off:]
		case r.x.spec.red == nil:
			dst = r.x.spec.dst[r.off:]
		default:
			chunk := min(len(c.staging), total-(r.off-r.sfill))
			dst = c.staging[r.sfill:chunk]
		}
		if rest := total - r.off; rest >= lowatMin {
			c.setLowat(min(rest, lowatMax))
		} else if c.lowat != 1 {
			c.setLowat(1)
		}
		n, err := c.bread(read, dst)
		if err != nil {
			return false, c.readFailed(err, true)
		}
		if r.x != nil && r.x.spec.red != nil && r.abort == nil {
			r.sfill += n
			r.off += n
			base := r.off - r.sfill
			if r.sfill == min(len(c.staging), total-base) { // a full staging chunk (or the tail)
				s := &r.x.spec
				s.red.reduce(s.dst[base:r.off], s.local[base:r.off], c.staging[:r.sfill])
				r.sfill = 0
			}
			continue
		}
		r.off += n
	}
	return true, false
}

// readFailed classifies a read error. Would-block returns false (come back later).
func (c *peerConn) readFailed(err error, midFrame bool) bool {
	r := &c.rd
	switch {
	case errors.Is(err, errWouldBlock):
		return false
	case errors.Is(err, io.EOF) && !midFrame:
		r.eof = true
	case errors.Is(err, io.EOF):
		r.err = c.readErr(io.ErrUnexpectedEOF)
	default:
		r.err = c.readErr(err)
	}
	return true
}

// frameArrivedEarly files a complete frame that had no receive when its header arrived.
func (c *peerConn) frameArrivedEarly(h header, payload []byte) {
	c.mu.Lock()
	st := c.streamLocked(streamKey{h.src, h.dst, h.tag})
	if len(st.posted) > 0 { // a receive was posted while the payload streamed in
		x := st.posted[0]
		st.posted = st.posted[1:]
		c.mu.Unlock()
		err := checkFrame(&h, x)
		if err == nil {
			x.spec.apply(payload)
		}
		x.r.finish(err)
		if err != nil && c.rd.mismatch == nil {
			c.rd.mismatch = err
		}
		return
	}
	st.early = append(st.early, earlyFrame{h: h, payload: payload})
	c.mu.Unlock()
	if err := c.n.checkEarly(&h); err != nil && c.rd.mismatch == nil {
		c.rd.mismatch = err
	}
}

// settle acts on the outcomes drain recorded; called without rmu. It reports whether the
// connection is finished.
func (c *peerConn) settle() bool {
	c.rmu.Lock()
	r := &c.rd
	eof, err, aborted, mismatch := r.eof, r.err, r.aborted, r.mismatch
	r.mismatch = nil
	c.rmu.Unlock()
	switch {
	case mismatch != nil:
		// the node's abort closes this connection after telling the peer why; closing it
		// here could race ahead of that message
		c.n.abort(mismatch)
		return true
	case aborted != nil:
		c.n.abort(aborted)
		return true
	case err != nil:
		c.fail(err)
		return true
	case eof:
		c.peerClosed(c.readErr(io.EOF))
		return true
	}
	return false
}

func (c *peerConn) finishedReading() bool {
	return c.rd.eof || c.rd.err != nil || c.rd.aborted != nil || c.rd.mismatch != nil || c.rd.dead
}

// readLoop is the connection's reader goroutine. On sockets it drains whatever is readable
// and parks in the runtime's poller; on other connections it blocks in Read.
func (c *peerConn) readLoop() {
	defer c.finished.Done()
	defer close(c.readDone)
	if c.raw == nil {
		read := func(p []byte) (int, error) { return c.nc.Read(p) }
		for {
			c.rmu.Lock()
			c.drain(read)
			c.rmu.Unlock()
			if c.settle() {
				return
			}
		}
	}
	for {
		stop := false
		err := c.raw.Read(func(uintptr) bool {
			c.rmu.Lock()
			if !c.rd.dead && !c.finishedReading() {
				stop = c.drain(fdReader(c.fd))
			} else {
				stop = true
			}
			c.rmu.Unlock()
			return stop
		})
		if err != nil {
			c.fail(c.readErr(err))
			return
		}
		if c.settle() || stop {
			return
		}
	}
}

// poll lets a waiting rank advance the socket without waiting for the reader goroutine.
func (c *peerConn) poll() {
	if c.fd < 0 || !c.rmu.TryLock() {
		return
	}
	stop := false
	if !c.rd.dead && !c.finishedReading() {
		stop = c.drain(fdReader(c.fd))
	}
	c.rmu.Unlock()
	if stop {
		c.settle()
	}
}
