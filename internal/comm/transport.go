package comm

import (
	"context"
	"net"
)

// Transport makes the connections between nodes. TCP is the real one; InmemNetwork is its
// twin for tests, and tests wrap either to inject delay or failure.
type Transport interface {
	// Listen opens this node's data listener.
	Listen() (net.Listener, error)
	// Dial connects to another node's listener address.
	Dial(ctx context.Context, addr string) (net.Conn, error)
}
