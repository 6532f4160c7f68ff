package comm

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// InmemNetwork is the in-memory twin of TCP: listeners and dials inside one process over
// net.Pipe. Each node gets its own transport from Node(i).
type InmemNetwork struct {
	mu        sync.Mutex
	listeners map[string]*inmemListener
	next      int
}

// NewInmemNetwork returns an empty network.
func NewInmemNetwork() *InmemNetwork { return &InmemNetwork{listeners: map[string]*inmemListener{}} }

// Transport returns a transport on this network.
func (w *InmemNetwork) Transport() Transport { return inmemTransport{w} }

type inmemTransport struct{ w *InmemNetwork }

type inmemAddr string

func (a inmemAddr) Network() string { return "inmem" }
func (a inmemAddr) String() string  { return string(a) }

type inmemListener struct {
	w      *InmemNetwork
	addr   inmemAddr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (t inmemTransport) Listen() (net.Listener, error) {
	t.w.mu.Lock()
	defer t.w.mu.Unlock()
	t.w.next++
	l := &inmemListener{w: t.w, addr: inmemAddr(fmt.Sprintf("inmem:%d", t.w.next)), conns: make(chan net.Conn), closed: make(chan struct{})}
	t.w.listeners[string(l.addr)] = l
	return l, nil
}

func (t inmemTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	t.w.mu.Lock()
	l := t.w.listeners[addr]
	t.w.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("inmem: dial %s: connection refused", addr)
	}
	a, b := net.Pipe()
	select {
	case l.conns <- b:
		return a, nil
	case <-l.closed:
		return nil, fmt.Errorf("inmem: dial %s: connection refused", addr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *inmemListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *inmemListener) Close() error {
	l.once.Do(func() {
		close(l.closed)
		l.w.mu.Lock()
		delete(l.w.listeners, string(l.addr))
		l.w.mu.Unlock()
	})
	return nil
}

func (l *inmemListener) Addr() net.Addr { return l.addr }
