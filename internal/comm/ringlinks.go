package comm

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/strata-ai/strata/internal/comm/handshake"
)

// ringWiring is the patent's physical layout: a node's first rank owns the NIC that faces
// node i-1 (left), its last rank the NIC that faces node i+1 (right). Each node listens on
// its left NIC and dials node i+1's left NIC from its right one, so every inter-node link of
// the node ring carries exactly one connection: the right ring in one direction, the left
// ring in the other.
type ringWiring struct {
	leftName, rightName string
	leftIP, rightIP     string
	ln                  net.Listener // on the left NIC
	nextAddr            string       // node i+1's left listener
}

func newRingWiring(spec string) (*ringWiring, error) {
	names := strings.Split(spec, ",")
	if len(names) != 2 || names[0] == "" || names[1] == "" {
		return nil, fmt.Errorf("STRATA_RING_IFNAMES=%q: want LEFT,RIGHT (the first rank's NIC toward node i-1, the last rank's toward node i+1), e.g. eth2,eth1", spec)
	}
	w := &ringWiring{leftName: strings.TrimSpace(names[0]), rightName: strings.TrimSpace(names[1])}
	var err error
	if w.leftIP, _, err = pickInterface("="+w.leftName, ""); err != nil {
		return nil, fmt.Errorf("STRATA_RING_IFNAMES left NIC: %w", err)
	}
	if w.rightIP, _, err = pickInterface("="+w.rightName, ""); err != nil {
		return nil, fmt.Errorf("STRATA_RING_IFNAMES right NIC: %w", err)
	}
	if w.ln, err = net.Listen("tcp", net.JoinHostPort(w.leftIP, "0")); err != nil {
		return nil, fmt.Errorf("listen on the left ring NIC %s (%s): %w", w.leftName, w.leftIP, err)
	}
	return w, nil
}

// connectRing dials node i+1's left NIC from this node's right NIC and accepts node i-1's
// dial on the left NIC; both carry the usual authenticated handshake.
func (n *node) connectRing(ctx context.Context, w *ringWiring, log interface{ Warn(string, ...any) }) error {
	N := n.nnodes
	next, prev := (n.id+1)%N, (n.id+N-1)%N
	accepted := make(chan net.Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := w.ln.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			dl, _ := ctx.Deadline()
			_, err = handshake.Server(c, n.cfg.JobID, n.cfg.Token, minTime(dl, time.Now().Add(10*time.Second)), func(h handshake.Hello) error {
				if h.Role != "ring" || h.From != prev || h.NNodes != N || h.RanksPerNode != n.L {
					return fmt.Errorf("ring link from node %d (role %q), want node %d", h.From, h.Role, prev)
				}
				return nil
			})
			if err != nil {
				log.Warn("refused ring connection", "from", c.RemoteAddr(), "err", err)
				_ = c.Close()
				continue
			}
			accepted <- c
			return
		}
	}()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(w.rightIP)}, KeepAlive: 5 * time.Second}
	var out net.Conn
	var err error
	backoff := 5 * time.Millisecond
	for {
		out, err = d.DialContext(ctx, "tcp", w.nextAddr)
		if err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
	if err != nil {
		_ = w.ln.Close()
		return &PeerError{Rank: -1, Node: next, Addr: w.nextAddr, Err: fmt.Errorf("ring link from %s: %w", w.rightName, err)}
	}
	dl, _ := ctx.Deadline()
	if err := handshake.Client(out, handshake.Hello{Job: n.cfg.JobID, Role: "ring", From: n.id, NNodes: N, RanksPerNode: n.L},
		n.cfg.Token, minTime(dl, time.Now().Add(10*time.Second))); err != nil {
		_ = out.Close()
		_ = w.ln.Close()
		return &PeerError{Rank: -1, Node: next, Addr: w.nextAddr, Err: err}
	}
	var in net.Conn
	select {
	case in = <-accepted:
	case err := <-acceptErr:
		_ = out.Close()
		return fmt.Errorf("comm: node %d: ring link from node %d: %w", n.id, prev, err)
	case <-ctx.Done():
		_ = out.Close()
		_ = w.ln.Close()
		return fmt.Errorf("comm: node %d: node %d did not open its ring link to this node's %s within the timeout", n.id, prev, w.leftName)
	}
	_ = w.ln.Close()
	n.ringR = newPeerConn(n, next, -1, w.nextAddr, out)
	n.ringL = newPeerConn(n, prev, -1, in.RemoteAddr().String(), in)
	n.ringR.start()
	n.ringL.start()
	return nil
}
