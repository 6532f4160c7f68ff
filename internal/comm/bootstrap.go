package comm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/strata-ai/strata/internal/comm/handshake"
	"github.com/strata-ai/strata/internal/comm/store"
)

// Node is one node's share of a communicator: its local ranks and its connections.
type Node struct {
	n *node
}

// Comms returns the node's ranks, in local-rank order. Each is driven by its own goroutine.
func (nd *Node) Comms() []*Comm { return nd.n.comms }

// Addr is the node's data address, as peers reach it.
func (nd *Node) Addr() string { return nd.n.addrs[nd.n.id] }

// Close ends the node's communicators and waits for its connection goroutines.
func (nd *Node) Close() error {
	nd.n.close()
	return nil
}

// Abort fails every pending call on the node with err and tells the peers.
func (nd *Node) Abort(err error) { nd.n.abort(err) }

// Done is closed when the node is aborted or closed.
func (nd *Node) Done() <-chan struct{} { return nd.n.abortCh }

// Err is the reason the node stopped, nil while it runs.
func (nd *Node) Err() error {
	if nd.n.aborted() {
		return nd.n.abortError()
	}
	return nil
}

// JoinOptions places one node in a job.
type JoinOptions struct {
	NNodes       int
	NodeRank     int
	RanksPerNode int
	// MasterAddr is host:port of the rendezvous store, which node 0 serves.
	MasterAddr string
	// Transport makes the data connections; nil means TCP on the interface chosen by
	// Config.SocketIfname (or the one that routes to the master).
	Transport Transport
	// Store overrides the rendezvous store (an in-memory one for nodes in one process, etcd
	// for a running cluster); nil means the TCP store at MasterAddr.
	Store store.Store
}

type nodeInfo struct {
	Addr         string `json:"addr"`
	RingAddr     string `json:"ring_addr,omitempty"` // listener on the left NIC (RingIfnames)
	NNodes       int    `json:"nnodes"`
	RanksPerNode int    `json:"ranks_per_node"`
}

// Join brings up this node: it registers with the rendezvous store, connects to every other
// node (Channels connections per pair, each authenticated), and measures the links for the
// cost model. It returns once every node has connected, or fails naming the nodes missing.
func Join(ctx context.Context, o JoinOptions, cfg Config) (*Node, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	switch {
	case o.NNodes < 1:
		return nil, fmt.Errorf("comm: %d nodes: need at least 1", o.NNodes)
	case o.NodeRank < 0 || o.NodeRank >= o.NNodes:
		return nil, fmt.Errorf("comm: node rank %d is out of range for %d nodes (0..%d)", o.NodeRank, o.NNodes, o.NNodes-1)
	case o.RanksPerNode < 1:
		return nil, fmt.Errorf("comm: %d ranks per node: need at least 1", o.RanksPerNode)
	case o.Store == nil && o.NNodes > 1 && o.MasterAddr == "":
		return nil, errors.New("comm: a multi-node job needs the master address (--master-addr host:port)")
	}
	// Without a deadline from the caller, reaching the master and waiting for every node to
	// register get cfg.JoinTimeout (nodes start minutes apart), and what follows (connecting,
	// measuring the links: every node is up by then) gets cfg.Timeout.
	parent := ctx
	_, callerDeadline := ctx.Deadline()
	if !callerDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(parent, cfg.JoinTimeout)
		defer cancel()
	}
	n := newNode(o.NodeRank, o.NNodes, o.RanksPerNode, cfg)
	nd := &Node{n: n}
	ok := false
	defer func() {
		if !ok {
			n.close()
		}
	}()
	log := cfg.Logger.With("node", o.NodeRank)

	st := o.Store
	if st == nil && o.NNodes > 1 {
		if o.NodeRank == 0 {
			ln, err := net.Listen("tcp", o.MasterAddr)
			if err != nil {
				return nil, fmt.Errorf("comm: node 0 serves the rendezvous store but cannot listen on --master-addr %s: %w (is the port taken, or the address not this machine's?)", o.MasterAddr, err)
			}
			srv := store.Serve(ln, cfg.JobID, cfg.Token, cfg.Logger)
			n.closers = append(n.closers, func() { _ = srv.Close() })
			log.Info("rendezvous store listening", "addr", srv.Addr())
		}
		cl, err := store.Dial(ctx, o.MasterAddr, cfg.JobID, cfg.Token)
		if err != nil {
			return nil, fmt.Errorf("comm: node %d: %w", o.NodeRank, err)
		}
		n.closers = append(n.closers, func() { _ = cl.Close() })
		st = cl
	}
	if st == nil {
		st = store.NewMem()
	}

	tr := o.Transport
	if tr == nil {
		host, ifname, err := pickInterface(cfg.SocketIfname, o.MasterAddr)
		if err != nil {
			return nil, fmt.Errorf("comm: node %d: %w", o.NodeRank, err)
		}
		log.Info("inter-node interface", "ifname", ifname, "addr", host, "how", ifaceHow(cfg.SocketIfname, o.MasterAddr))
		tr = TCPTransport{Host: host}
	}
	ln, err := tr.Listen()
	if err != nil {
		return nil, fmt.Errorf("comm: node %d: listen for peers: %w", o.NodeRank, err)
	}
	defer ln.Close()
	n.addrs[n.id] = ln.Addr().String()

	var ring *ringWiring
	if cfg.RingIfnames != "" && o.NNodes > 1 {
		if ring, err = newRingWiring(cfg.RingIfnames); err != nil {
			return nil, fmt.Errorf("comm: node %d: %w", o.NodeRank, err)
		}
		defer ring.ln.Close()
		log.Info("node ring links", "left", ring.leftName+" "+ring.leftIP, "right", ring.rightName+" "+ring.rightIP)
	}

	key := func(i int) string { return fmt.Sprintf("%s/node/%d", cfg.JobID, i) }
	me := nodeInfo{Addr: ln.Addr().String(), NNodes: o.NNodes, RanksPerNode: o.RanksPerNode}
	if ring != nil {
		me.RingAddr = ring.ln.Addr().String()
	}
	info, _ := json.Marshal(me)
	if err := st.Set(ctx, key(n.id), info); err != nil {
		return nil, fmt.Errorf("comm: node %d: register with the master: %w", o.NodeRank, err)
	}
	for j := range o.NNodes {
		if j == n.id {
			continue
		}
		v, err := st.Get(ctx, key(j))
		if err != nil {
			return nil, fmt.Errorf("comm: node %d: node %d did not register with the master in time (STRATA_JOIN_TIMEOUT, %v; is it running with --nnodes %d --node-rank %d and the same master address?): %w", n.id, j, cfg.JoinTimeout, o.NNodes, j, err)
		}
		var pi nodeInfo
		if err := json.Unmarshal(v, &pi); err != nil {
			return nil, fmt.Errorf("comm: node %d: bad registration from node %d: %w", n.id, j, err)
		}
		if pi.NNodes != o.NNodes || pi.RanksPerNode != o.RanksPerNode {
			return nil, fmt.Errorf("comm: node %d was started with %d nodes × %d ranks but node %d with %d × %d: every node needs the same --nnodes and --ranks-per-node",
				j, pi.NNodes, pi.RanksPerNode, n.id, o.NNodes, o.RanksPerNode)
		}
		n.addrs[j] = pi.Addr
		if ring != nil && j == (n.id+1)%o.NNodes {
			if pi.RingAddr == "" {
				return nil, fmt.Errorf("comm: node %d has no ring links but this node has STRATA_RING_IFNAMES=%s: set it on every node or on none", j, cfg.RingIfnames)
			}
			ring.nextAddr = pi.RingAddr
		}
	}
	if !callerDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(parent, cfg.Timeout)
		defer cancel()
	}

	if err := n.connectAll(ctx, tr, ln, log); err != nil {
		return nil, err
	}
	if ring != nil {
		if err := n.connectRing(ctx, ring, log); err != nil {
			return nil, err
		}
		n.model.ringLinks = true
	}
	if !cfg.SkipCalibration && o.NNodes > 1 {
		if err := n.calibrate(ctx); err != nil {
			return nil, fmt.Errorf("comm: node %d: measuring links: %w", n.id, err)
		}
	} else if !cfg.SkipCalibration {
		n.model.calibrateLocal() // one node: nobody else has to agree with these figures
	}
	ok = true
	return nd, nil
}

// connectAll dials every higher node and accepts every lower one, Channels times each.
func (n *node) connectAll(ctx context.Context, tr Transport, ln net.Listener, log interface {
	Warn(string, ...any)
}) error {
	C := n.cfg.Channels
	for j := range n.nnodes {
		if j != n.id {
			n.conns[j] = make([]*peerConn, C)
		}
	}
	expect := n.id * C
	var mu sync.Mutex
	accepted := 0
	acceptErr := make(chan error, 1)
	acceptDone := make(chan struct{})
	if expect > 0 {
		go func() {
			defer close(acceptDone)
			for {
				mu.Lock()
				done := accepted == expect
				mu.Unlock()
				if done {
					return
				}
				c, err := ln.Accept()
				if err != nil {
					acceptErr <- err
					return
				}
				dl, _ := ctx.Deadline()
				h, err := handshake.Server(c, n.cfg.JobID, n.cfg.Token, minTime(dl, time.Now().Add(10*time.Second)), func(h handshake.Hello) error {
					switch {
					case h.Role != "data":
						return fmt.Errorf("role %q on a data port", h.Role)
					case h.NNodes != n.nnodes || h.RanksPerNode != n.L:
						return fmt.Errorf("peer has %d nodes × %d ranks, this node %d × %d", h.NNodes, h.RanksPerNode, n.nnodes, n.L)
					case h.From < 0 || h.From >= n.id || h.Channel < 0 || h.Channel >= C:
						return fmt.Errorf("unexpected connection from node %d channel %d", h.From, h.Channel)
					}
					mu.Lock()
					defer mu.Unlock()
					if n.conns[h.From][h.Channel] != nil {
						return fmt.Errorf("duplicate connection from node %d channel %d", h.From, h.Channel)
					}
					return nil
				})
				if err != nil {
					log.Warn("refused connection", "from", c.RemoteAddr(), "err", err)
					_ = c.Close()
					continue
				}
				mu.Lock()
				n.conns[h.From][h.Channel] = newPeerConn(n, h.From, h.Channel, n.addrs[h.From], c)
				accepted++
				mu.Unlock()
			}
		}()
	} else {
		close(acceptDone)
	}

	var derr error
	for j := n.id + 1; j < n.nnodes && derr == nil; j++ {
		for ch := range C {
			c, err := dialRetry(ctx, tr, n.addrs[j])
			if err != nil {
				derr = &PeerError{Rank: -1, Node: j, Addr: n.addrs[j], Err: fmt.Errorf("connect: %w", err)}
				break
			}
			dl, _ := ctx.Deadline()
			err = handshake.Client(c, handshake.Hello{Job: n.cfg.JobID, Role: "data", From: n.id, Channel: ch, NNodes: n.nnodes, RanksPerNode: n.L},
				n.cfg.Token, minTime(dl, time.Now().Add(10*time.Second)))
			if err != nil {
				_ = c.Close()
				derr = &PeerError{Rank: -1, Node: j, Addr: n.addrs[j], Err: err}
				break
			}
			mu.Lock()
			n.conns[j][ch] = newPeerConn(n, j, ch, n.addrs[j], c)
			mu.Unlock()
		}
	}
	if derr == nil && expect > 0 {
		select {
		case <-acceptDone:
		case err := <-acceptErr:
			derr = err
		case <-ctx.Done():
			mu.Lock()
			var missing []int
			for j := 0; j < n.id; j++ {
				for _, c := range n.conns[j] {
					if c == nil {
						missing = append(missing, j)
						break
					}
				}
			}
			mu.Unlock()
			derr = fmt.Errorf("comm: node %d: nodes %v did not connect within the timeout (firewall, wrong interface, or not started?)", n.id, missing)
		}
	}
	_ = ln.Close()
	<-acceptDone
	if derr != nil {
		for _, cs := range n.conns {
			for _, c := range cs {
				if c != nil {
					_ = c.nc.Close()
				}
			}
		}
		n.conns = make([][]*peerConn, n.nnodes)
		return derr
	}
	for _, cs := range n.conns {
		for _, c := range cs {
			c.start()
		}
	}
	return nil
}

func dialRetry(ctx context.Context, tr Transport, addr string) (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := tr.Dial(ctx, addr)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// Local is a whole job in one process: N nodes of L ranks, linked by real connections.
type Local struct {
	Nodes []*Node
}

// Comms returns every rank in global order.
func (lc *Local) Comms() []*Comm {
	var out []*Comm
	for _, nd := range lc.Nodes {
		out = append(out, nd.Comms()...)
	}
	return out
}

// Close closes every node, all at once (each waits for its peers to hang up).
func (lc *Local) Close() error {
	var wg sync.WaitGroup
	for _, nd := range lc.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); _ = nd.Close() }()
	}
	wg.Wait()
	return nil
}

// NewLocal starts nnodes nodes of ranksPerNode ranks in this process. transport(i) gives node
// i's transport; nil means TCP over loopback, so inter-node links are real sockets.
func NewLocal(ctx context.Context, nnodes, ranksPerNode int, cfg Config, transport func(node int) Transport) (*Local, error) {
	st := store.NewMem()
	defer st.Close()
	lc := &Local{Nodes: make([]*Node, nnodes)}
	errs := make([]error, nnodes)
	var wg sync.WaitGroup
	for i := range nnodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tr Transport = TCPTransport{Host: "127.0.0.1"}
			if transport != nil {
				tr = transport(i)
			}
			lc.Nodes[i], errs[i] = Join(ctx, JoinOptions{NNodes: nnodes, NodeRank: i, RanksPerNode: ranksPerNode, Transport: tr, Store: st}, cfg)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, nd := range lc.Nodes {
			if nd != nil {
				_ = nd.Close()
			}
		}
		return nil, err
	}
	return lc, nil
}
