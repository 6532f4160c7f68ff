package comm

import (
	"fmt"
	"sync"
)

// memLink carries messages from one local rank to another in the same process. Nothing is
// copied through a channel: a send posts its slice, a receive posts its target, and whichever
// arrives second reduces (or copies) straight from the sender's memory into the receiver's.
// The sender's slice is not reused until its req completes.
type memLink struct {
	mu      sync.Mutex
	sends   map[uint32][]*xfer // unmatched sends, per tag, in post order
	recvs   map[uint32][]*xfer // unmatched receives
	aborted error
}

func newMemLink() *memLink {
	return &memLink{sends: map[uint32][]*xfer{}, recvs: map[uint32][]*xfer{}}
}

func (l *memLink) postSend(x *xfer) {
	l.mu.Lock()
	if l.aborted != nil {
		l.mu.Unlock()
		x.r.finish(l.aborted)
		return
	}
	if q := l.recvs[x.tag]; len(q) > 0 {
		rx := q[0]
		l.recvs[x.tag] = q[1:]
		l.mu.Unlock()
		memDeliver(x, rx)
		return
	}
	l.sends[x.tag] = append(l.sends[x.tag], x)
	l.mu.Unlock()
}

func (l *memLink) postRecv(x *xfer) {
	l.mu.Lock()
	if l.aborted != nil {
		l.mu.Unlock()
		x.r.finish(l.aborted)
		return
	}
	if q := l.sends[x.tag]; len(q) > 0 {
		sx := q[0]
		l.sends[x.tag] = q[1:]
		l.mu.Unlock()
		memDeliver(sx, x)
		return
	}
	l.recvs[x.tag] = append(l.recvs[x.tag], x)
	l.mu.Unlock()
}

// memDeliver performs a matched transfer and completes both sides.
func memDeliver(sx, rx *xfer) {
	var err error
	switch {
	case sx.d != rx.d:
		err = mismatchError(sx.src, rx.dst, sx.d, rx.d)
	case len(sx.buf) != len(rx.spec.dst):
		err = fmt.Errorf("%w: rank %d sent %d bytes but rank %d expected %d for %s",
			ErrMismatch, sx.src, len(sx.buf), rx.dst, len(rx.spec.dst), rx.d)
	default:
		rx.spec.apply(sx.buf)
	}
	sx.r.finish(err)
	rx.r.finish(err)
}

// abort fails every pending transfer and refuses new ones.
func (l *memLink) abort(err error) {
	l.mu.Lock()
	l.aborted = err
	var pending []*xfer
	for _, q := range l.sends {
		pending = append(pending, q...)
	}
	for _, q := range l.recvs {
		pending = append(pending, q...)
	}
	l.sends, l.recvs = map[uint32][]*xfer{}, map[uint32][]*xfer{}
	l.mu.Unlock()
	for _, x := range pending {
		x.r.finish(err)
	}
}

func mismatchError(sender, receiver int32, sd, rd desc) error {
	return fmt.Errorf("%w: rank %d called %s but rank %d called %s: %s differ",
		ErrMismatch, receiver, rd, sender, sd, rd.diff(sd))
}
