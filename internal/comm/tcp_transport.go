package comm

import (
	"context"
	"net"
	"strconv"
	"time"
)

// TCPTransport listens on Host (an interface address; port chosen by the kernel unless Port
// is set) and dials peers over TCP with keepalives, so a vanished peer is noticed.
type TCPTransport struct {
	Host string
	Port int
}

// Listen implements Transport.
func (t TCPTransport) Listen() (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort(t.Host, strconv.Itoa(t.Port)))
}

// Dial implements Transport.
func (t TCPTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{KeepAlive: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return c, nil
}
