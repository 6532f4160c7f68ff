package comm

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// req is one posted send or receive. It completes exactly once, with nil or an error; a
// node abort completes every pending req, so waiting on one never outlives the communicator.
type req struct {
	done chan struct{}
	err  error
	peer int // global rank on the other side, for errors
	once sync.Once
	conn *peerConn // for a remote receive: the connection a waiter may poll
	spin bool      // small enough that polling beats sleeping
}

func newReq(peer int) *req { return &req{done: make(chan struct{}), peer: peer} }

func (r *req) finish(err error) {
	r.once.Do(func() {
		r.err = err
		close(r.done)
	})
}

// recvSpec says what a receive does with the incoming bytes: copy them into dst, or, when
// red is set, store local op incoming into dst.
type recvSpec struct {
	dst   []byte
	local []byte
	red   *reducer
}

// apply delivers src into the spec. len(src) == len(dst) has been checked.
func (s *recvSpec) apply(src []byte) {
	if s.red == nil {
		copy(s.dst, src)
		return
	}
	s.red.reduce(s.dst, s.local, src)
}

// xfer is a posted transfer on a link: a send (buf) or a receive (spec).
type xfer struct {
	r    *req
	d    desc
	src  int32 // sending rank
	dst  int32 // receiving rank
	tag  uint32
	buf  []byte   // send payload
	spec recvSpec // receive target
}

// reqs collects the requests a collective posted so it can wait for all of them, including
// after an error: no goroutine may touch a caller's buffer once the call has returned.
type reqs struct{ list []*req }

func (s *reqs) add(r *req) *req { s.list = append(s.list, r); return r }

// wait waits for every request in order; on failure it aborts the node and drains.
func (s *reqs) wait(ctx context.Context, n *node) error {
	for _, r := range s.list {
		if err := n.wait(ctx, r); err != nil {
			n.abort(err)
			s.drain()
			return err
		}
	}
	s.list = s.list[:0]
	return nil
}

// drain waits for every request without a deadline. It is called only after success or after
// the node aborted (which completes every request), so it cannot hang.
func (s *reqs) drain() {
	for _, r := range s.list {
		<-r.done
	}
	s.list = s.list[:0]
}

// event is a one-shot signal that counts down from n arrivals.
type event struct {
	mu   sync.Mutex
	n    int
	ch   chan struct{}
	spin bool // waiters poll briefly before sleeping (small, latency-bound collectives)
}

func newEvent(n int) *event { return &event{n: n, ch: make(chan struct{})} }

func newSpinEvent(n int, spin bool) *event { e := newEvent(n); e.spin = spin; return e }

// arrive counts one arrival and fires the event at the last, reporting whether it did.
func (e *event) arrive() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n--
	if e.n == 0 {
		close(e.ch)
		return true
	}
	return false
}

// wait blocks for the event, the context, or the node's abort.
func (n *node) waitEvent(ctx context.Context, e *event, what string) error {
	select {
	case <-e.ch:
		return nil
	default:
	}
	if e.spin && n.cfg.SpinWait > 0 {
		deadline := time.Now().Add(n.cfg.SpinWait)
		for time.Now().Before(deadline) {
			runtime.Gosched()
			select {
			case <-e.ch:
				return nil
			default:
			}
		}
	}
	select {
	case <-e.ch:
		return nil
	case <-n.abortCh:
		return n.abortError()
	case <-ctx.Done():
		return n.ctxFailed(ctx, what)
	}
}
