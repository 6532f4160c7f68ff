package comm

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-ai/strata/internal/comm/store"
)

// syncBuffer is a log sink several goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWrongTokenRefused: a node without the shared token is refused at the handshake, the
// refusing node logs it, and the refused node's error says to fix STRATA_TOKEN.
func TestWrongTokenRefused(t *testing.T) {
	st := store.NewMem()
	defer st.Close()
	w := NewInmemNetwork()
	logs := &syncBuffer{}
	good := testConfig()
	good.Token = "s3cret"
	good.Timeout = 2 * time.Second
	good.Logger = slog.New(slog.NewTextHandler(logs, nil))
	bad := good
	bad.Token = "guess"
	bad.Logger = nil

	var wg sync.WaitGroup
	var errGood, errBad error
	wg.Add(2)
	go func() {
		defer wg.Done()
		nd, err := Join(context.Background(), JoinOptions{NNodes: 2, NodeRank: 1, RanksPerNode: 1, Transport: w.Transport(), Store: st}, good)
		if nd != nil {
			nd.Close()
		}
		errGood = err
	}()
	go func() {
		defer wg.Done()
		nd, err := Join(context.Background(), JoinOptions{NNodes: 2, NodeRank: 0, RanksPerNode: 1, Transport: w.Transport(), Store: st}, bad)
		if nd != nil {
			nd.Close()
		}
		errBad = err
	}()
	wg.Wait()
	if errBad == nil || !strings.Contains(errBad.Error(), "wrong token") {
		t.Errorf("node with the wrong token: want a refusal naming the token, got %v", errBad)
	}
	if errGood == nil || !strings.Contains(errGood.Error(), "did not connect") {
		t.Errorf("node with the right token: want a timeout naming the missing node, got %v", errGood)
	}
	if !strings.Contains(logs.String(), "refused connection") {
		t.Errorf("the refusal was not logged; log:\n%s", logs.String())
	}
}

// TestTopologyMismatch: nodes started with different ranks per node fail with a clear error.
func TestTopologyMismatch(t *testing.T) {
	st := store.NewMem()
	defer st.Close()
	w := NewInmemNetwork()
	cfg := testConfig()
	cfg.Timeout = 2 * time.Second
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd, err := Join(context.Background(), JoinOptions{NNodes: 2, NodeRank: i, RanksPerNode: 1 + i, Transport: w.Transport(), Store: st}, cfg)
			if nd != nil {
				nd.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "--ranks-per-node") {
			t.Errorf("node %d: want an error about --ranks-per-node, got %v", i, err)
		}
	}
}

// TestTCPStoreRendezvous: nodes in separate "processes" meet through the master's TCP store.
func TestTCPStoreRendezvous(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // node 0 listens on it itself
	cfg := testConfig()
	cfg.Token = "t"
	nodes := make([]*Node, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = Join(context.Background(), JoinOptions{NNodes: 3, NodeRank: i, RanksPerNode: 2, MasterAddr: addr,
				Transport: TCPTransport{Host: "127.0.0.1"}}, cfg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	var comms []*Comm
	for _, nd := range nodes {
		comms = append(comms, nd.Comms()...)
	}
	runCollective(t, comms, CollAllReduce, AlgoHier, Float32, Sum, 10007, false)
	// close together, as separate processes would: a closing node waits for its peers' FIN
	lc := &Local{Nodes: nodes}
	lc.Close()
}

// delayTransport adds a fixed one-way latency to every write, as a slow network would: tc
// cannot add delay on these machines (no netem), so latency is emulated here.
type delayTransport struct {
	Transport
	d time.Duration
}

type delayConn struct {
	net.Conn
	d time.Duration
}

func (t delayTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := t.Transport.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return delayConn{c, t.d}, nil
}

func (t delayTransport) Listen() (net.Listener, error) {
	ln, err := t.Transport.Listen()
	return delayListener{ln, t.d}, err
}

type delayListener struct {
	net.Listener
	d time.Duration
}

func (l delayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return delayConn{c, l.d}, nil
}

func (c delayConn) Write(p []byte) (int, error) {
	time.Sleep(c.d)
	return c.Conn.Write(p)
}

// TestCalibrationSeesLatency: on links with 1 ms of latency the start-up measurement finds
// it, every node agrees on the figures, and auto then prefers the latency-bound tree for
// small messages and the hierarchical ring for large ones.
func TestCalibrationSeesLatency(t *testing.T) {
	cfg := testConfig()
	cfg.SkipCalibration = false
	w := NewInmemNetwork()
	lc, err := NewLocal(context.Background(), 2, 2, cfg, func(int) Transport { return delayTransport{w.Transport(), time.Millisecond} })
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	c := lc.Comms()
	m0, m1 := c[0].CostModel(), c[3].CostModel()
	if m0 != m1 {
		t.Fatalf("nodes disagree on the cost model: %+v vs %+v", m0, m1)
	}
	if !m0.Measured || m0.InterAlpha < 0.8e-3 {
		t.Fatalf("measured latency %.3g s, want about 1 ms", m0.InterAlpha)
	}
	if a := c[0].Choose(CollAllReduce, Float32, 4<<10); a != AlgoTree {
		t.Errorf("4 KiB over slow links: auto chose %s, want tree", a)
	}
	if a := c[0].Choose(CollAllReduce, Float32, 256<<20); a != AlgoHier {
		t.Errorf("256 MiB: auto chose %s, want hier", a)
	}
	runCollective(t, c, CollAllReduce, AlgoAuto, Float32, Sum, 5000, false)
}

// cutConn forwards writes until cut says otherwise; then it swallows that write and closes
// the connection, as a process dying between a frame's header and its payload would.
type cutConn struct {
	net.Conn
	cut func(p []byte) bool
}

func (c cutConn) Write(p []byte) (int, error) {
	if c.cut(p) {
		_ = c.Conn.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

type cutTransport struct {
	Transport
	cut func(p []byte) bool
}

func (t cutTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := t.Transport.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return cutConn{c, t.cut}, nil
}

// TestCutMidFrame: the link dies after a frame's header, while the peer waits for the
// payload it has a receive posted for. Every rank must still return with an error naming the
// lost node, and no goroutine may be left behind.
func TestCutMidFrame(t *testing.T) {
	for trial := range 3 {
		w := NewInmemNetwork()
		var count atomic.Int32
		var armed atomic.Bool
		cut := func(p []byte) bool { return armed.Load() && len(p) >= 1024 && count.Add(1) == int32(3+trial) }
		lc, err := NewLocal(context.Background(), 2, 1, testConfig(), func(i int) Transport {
			if i == 0 {
				return cutTransport{w.Transport(), cut}
			}
			return w.Transport()
		})
		if err != nil {
			t.Fatal(err)
		}
		armed.Store(true)
		done := make(chan []error, 1)
		go func() {
			done <- onAll(lc.Comms(), func(c *Comm) error {
				return c.AllReduceWith(context.Background(), AlgoRing, nil, make([]byte, 256<<10), Float32, Sum)
			})
		}()
		select {
		case errs := <-done:
			for r, err := range errs {
				if err == nil || !strings.Contains(err.Error(), "node") {
					t.Errorf("trial %d rank %d: want an error naming a node, got %v", trial, r, err)
				}
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("trial %d: ranks still blocked 15 s after the link was cut", trial)
		}
		lc.Close()
	}
}

// TestCallerDeadlineWins: a caller's deadline replaces the communicator's timeout for every
// part of the call, hier's ring workers included.
func TestCallerDeadlineWins(t *testing.T) {
	cfg := testConfig()
	cfg.Timeout = 300 * time.Millisecond
	w := NewInmemNetwork()
	lc, err := NewLocal(context.Background(), 2, 2, cfg, func(int) Transport { return delayTransport{w.Transport(), 2 * time.Millisecond} })
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	mustAll(t, lc.Comms(), func(c *Comm) error {
		return c.AllReduceWith(ctx, AlgoHier, nil, make([]byte, 512<<10), Float32, Sum)
	})
	if el := time.Since(start); el < cfg.Timeout {
		t.Fatalf("the call took %v, under the communicator's timeout: slow the links down so the test means something", el)
	}
}

// TestJoinWaitsForALateNode: a node that starts after its peers have waited longer than the
// link timeout still joins, within the join window; with no window beyond the link timeout,
// a node alone gives up and names the node that never registered and the setting to raise.
func TestJoinWaitsForALateNode(t *testing.T) {
	cfg := testConfig()
	cfg.Timeout = 200 * time.Millisecond
	cfg.JoinTimeout = time.Minute

	st := store.NewMem()
	w := NewInmemNetwork()
	var wg sync.WaitGroup
	nodes := make([]*Node, 2)
	errs := make([]error, 2)
	join := func(i int) {
		defer wg.Done()
		nodes[i], errs[i] = Join(context.Background(), JoinOptions{NNodes: 2, NodeRank: i, RanksPerNode: 1, Transport: w.Transport(), Store: st}, cfg)
	}
	wg.Add(1)
	go join(0)
	// node 1 starts three link timeouts after node 0 has registered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := st.Get(ctx, cfg.JobID+"/node/0"); err != nil {
		t.Fatalf("node 0 did not register: %v", err)
	}
	<-time.After(3 * cfg.Timeout)
	wg.Add(1)
	go join(1)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		defer nodes[i].Close()
	}

	alone := cfg
	alone.JoinTimeout = 0 // no longer than the link timeout
	start := time.Now()
	_, err := Join(context.Background(), JoinOptions{NNodes: 2, NodeRank: 0, RanksPerNode: 1, Transport: w.Transport(), Store: store.NewMem()}, alone)
	if err == nil || !strings.Contains(err.Error(), "node 1 did not register") || !strings.Contains(err.Error(), "STRATA_JOIN_TIMEOUT") {
		t.Fatalf("a node alone: want an error naming node 1 and STRATA_JOIN_TIMEOUT, got %v", err)
	}
	if waited := time.Since(start); waited > 20*alone.Timeout {
		t.Errorf("a node alone waited %v with a %v link timeout and no longer join window", waited, alone.Timeout)
	}
}
