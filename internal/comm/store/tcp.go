package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/strata-ai/strata/internal/comm/handshake"
)

// Requests on a store connection after the handshake.
const (
	opSet   = 'S'
	opGet   = 'G' // non-blocking: found or not; the client polls
	respOK  = 'K'
	respVal = 'V'
	respNo  = 'N'
)

const maxKey, maxValue = 4 << 10, 1 << 20

// Server serves a Mem store over TCP to authenticated clients.
type Server struct {
	ln    net.Listener
	mem   *Mem
	job   string
	token string
	log   *slog.Logger
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  chan struct{}
}

// Serve starts serving on ln. Close stops it.
func Serve(ln net.Listener, job, token string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{ln: ln, mem: NewMem(), job: job, token: token, log: log, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and drops its clients.
func (s *Server) Close() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	close(s.done)
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	_ = s.mem.Close()
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			_ = c.Close()
			return
		default:
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	h, err := handshake.Server(c, s.job, s.token, time.Now().Add(10*time.Second), func(h handshake.Hello) error {
		if h.Role != "store" {
			return fmt.Errorf("role %q on the store port, want store", h.Role)
		}
		return nil
	})
	if err != nil {
		s.log.Warn("store: refused connection", "from", c.RemoteAddr(), "err", err)
		return
	}
	_ = h
	br := bufio.NewReader(c)
	for {
		op, key, val, err := readReq(br)
		if err != nil {
			return
		}
		switch op {
		case opSet:
			_ = s.mem.Set(context.Background(), key, val)
			if _, err := c.Write([]byte{respOK}); err != nil {
				return
			}
		case opGet:
			s.mem.mu.Lock()
			v, ok := s.mem.kv[key]
			s.mem.mu.Unlock()
			var resp []byte
			if ok {
				resp = binary.BigEndian.AppendUint32([]byte{respVal}, uint32(len(v)))
				resp = append(resp, v...)
			} else {
				resp = []byte{respNo}
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		default:
			return
		}
	}
}

func readReq(r *bufio.Reader) (op byte, key string, val []byte, err error) {
	var hdr [9]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return
	}
	op = hdr[0]
	kl, vl := binary.BigEndian.Uint32(hdr[1:]), binary.BigEndian.Uint32(hdr[5:])
	if kl > maxKey || vl > maxValue {
		return 0, "", nil, errors.New("store: request too large")
	}
	b := make([]byte, kl+vl)
	if _, err = io.ReadFull(r, b); err != nil {
		return
	}
	return op, string(b[:kl]), b[kl:], nil
}

// Client is a Store backed by a Server on another node.
type Client struct {
	mu         sync.Mutex
	addr       string
	job, token string
	c          net.Conn // nil after Close, or after a failed exchange until the next call redials
	br         *bufio.Reader
	closed     bool
}

// dialOnce makes one connection attempt, bounded by ctx and by 10 s.
func dialOnce(ctx context.Context, addr, job, token string) (*Client, error) {
	dl := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	d := net.Dialer{Deadline: dl}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := handshake.Client(c, handshake.Hello{Job: job, Role: "store"}, token, dl); err != nil {
		_ = c.Close()
		return nil, err
	}
	return &Client{addr: addr, job: job, token: token, c: c, br: bufio.NewReader(c)}, nil
}

// Dial connects to the store at addr, retrying until ctx ends: workers usually start before
// the master is listening.
func Dial(ctx context.Context, addr, job, token string) (*Client, error) {
	var last error
	backoff := 10 * time.Millisecond
	for {
		cl, err := dialOnce(ctx, addr, job, token)
		if err == nil {
			return cl, nil
		}
		if errors.Is(err, handshake.ErrRefused) {
			return nil, fmt.Errorf("store %s: %w", addr, err)
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("store: could not reach the master at %s (is node 0 running, and is the address right?): %v", addr, last)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

func (cl *Client) roundTrip(ctx context.Context, op byte, key string, val []byte) (byte, []byte, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed {
		return 0, nil, ErrClosed
	}
	if cl.c == nil {
		// The last exchange failed part-way, so the old connection may still carry half a
		// request or a late reply: start on a fresh one (one attempt: a master that is gone
		// should fail this call, not hold the client's lock while it retries).
		fresh, err := dialOnce(ctx, cl.addr, cl.job, cl.token)
		if err != nil {
			return 0, nil, fmt.Errorf("store %s: reconnecting: %w", cl.addr, err)
		}
		cl.c, cl.br = fresh.c, fresh.br
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = cl.c.SetDeadline(dl)
	} else {
		_ = cl.c.SetDeadline(time.Time{})
	}
	req := []byte{op}
	req = binary.BigEndian.AppendUint32(req, uint32(len(key)))
	req = binary.BigEndian.AppendUint32(req, uint32(len(val)))
	req = append(append(req, key...), val...)
	if _, err := cl.c.Write(req); err != nil {
		return 0, nil, cl.fail(ctx, err)
	}
	resp, err := cl.br.ReadByte()
	if err != nil {
		return 0, nil, cl.fail(ctx, err)
	}
	if resp != respVal {
		return resp, nil, nil
	}
	var lb [4]byte
	if _, err := io.ReadFull(cl.br, lb[:]); err != nil {
		return 0, nil, cl.fail(ctx, err)
	}
	v := make([]byte, binary.BigEndian.Uint32(lb[:]))
	if _, err := io.ReadFull(cl.br, v); err != nil {
		return 0, nil, cl.fail(ctx, err)
	}
	return resp, v, nil
}

// fail drops the connection after a failed exchange and says why: the caller's deadline
// when the connection's copy of it fired (the context's own timer can lag it), else err.
func (cl *Client) fail(ctx context.Context, err error) error {
	_ = cl.c.Close()
	cl.c, cl.br = nil, nil
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			return fmt.Errorf("store %s: %w", cl.addr, context.DeadlineExceeded)
		}
	}
	return fmt.Errorf("store %s: %w", cl.addr, err)
}

// Set implements Store.
func (cl *Client) Set(ctx context.Context, key string, value []byte) error {
	if len(key) > maxKey || len(value) > maxValue {
		return errors.New("store: key or value too large")
	}
	r, _, err := cl.roundTrip(ctx, opSet, key, value)
	if err != nil {
		return err
	}
	if r != respOK {
		return fmt.Errorf("store %s: unexpected reply %q", cl.addr, r)
	}
	return nil
}

// Get implements Store by polling: the store is only used while nodes meet.
func (cl *Client) Get(ctx context.Context, key string) ([]byte, error) {
	wait := time.Millisecond
	for {
		r, v, err := cl.roundTrip(ctx, opGet, key, nil)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, fmt.Errorf("store: waiting for key %q: %w", key, cerr)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("store: waiting for key %q: %w", key, err)
			}
			return nil, err
		}
		if r == respVal {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("store: waiting for key %q: %w", key, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, 20*time.Millisecond)
	}
}

// Close implements Store.
func (cl *Client) Close() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed {
		return nil
	}
	cl.closed = true
	if cl.c == nil {
		return nil
	}
	err := cl.c.Close()
	cl.c = nil
	return err
}
