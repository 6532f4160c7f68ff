package comm

import (
	"context"
	"encoding/binary"
	"math"
	"time"
)

// CostModel holds the α-β-γ figures auto uses: α is a per-message latency (seconds), β the
// seconds per byte of a link, γ the seconds per byte of reduction arithmetic.
type CostModel struct {
	IntraAlpha float64 // one synchronisation among a node's ranks
	IntraBeta  float64 // copying a byte in shared memory
	InterAlpha float64 // one-way latency between nodes
	InterBeta  float64 // a byte through one node's network link, both directions busy
	Gamma      float64 // reducing a byte
	Measured   bool    // the inter-node figures were measured at start-up
}

type costModel struct {
	CostModel
	ringLinks bool // hier's node rings run on their own NICs (Config.RingIfnames)
}

func defaultCostModel() *costModel {
	return &costModel{CostModel: CostModel{
		IntraAlpha: 4e-6,
		IntraBeta:  1 / 6e9,
		InterAlpha: 30e-6,
		InterBeta:  1 / 1.2e8,
		Gamma:      1 / 4e9,
	}}
}

func (m *costModel) public() CostModel { return m.CostModel }

// intraInterRatio is the cost of a byte in the intra-node step relative to the inter-node
// step; hier sizes its first pipeline chunk by it.
func (m *costModel) intraInterRatio() float64 {
	r := (m.IntraBeta + m.Gamma) / m.InterBeta
	return math.Min(math.Max(r, 1.0/64), 1)
}

// predict estimates the seconds a collective of nbytes (the full per-rank buffer) takes.
func (m *costModel) predict(coll Collective, algo Algo, nbytes, N, L, C int) float64 {
	P := N * L
	n := float64(nbytes)
	a1, b1, a2, b2, g := m.IntraAlpha, m.IntraBeta, m.InterAlpha, m.InterBeta, m.Gamma
	if N == 1 {
		a2, b2 = a1, b1 // every hop is shared memory
	}
	lg := float64(log2ceil(N))
	pow2 := N&(N-1) == 0
	intra := 0.0 // reduce into and copy out of the node buffer
	if L > 1 {
		intra = 2*a1 + n*(b1+g)
	}
	switch coll {
	case CollAllReduce, CollBarrier:
		switch algo {
		case AlgoRing:
			ch := float64(min(C, max(1, nbytes/(P*64<<10))))
			steps := 2 * float64(P-1)
			return steps*a2 + 2*n*float64(P-1)/float64(P)*b2 + n*g/ch + float64(P-1)*a1
		case AlgoHier:
			if N == 1 {
				return 2*a1 + n*(b1+g)*2/float64(L)
			}
			first := math.Min(n, math.Max(64<<10, math.Min(math.Max(n/8, 512<<10), 8<<20)*m.intraInterRatio()))
			bh := b2
			if m.ringLinks {
				bh /= 2 // each ring direction has a NIC of its own
			}
			return 2*float64(N-1)*a2 + 2*n*float64(N-1)/float64(N)*bh + first*(b1+g) + 4*a1
		case AlgoTree:
			if pow2 {
				return lg*(a2+n*b2+n*g) + intra
			}
			return 2*lg*(a2+n*b2) + lg*n*g + intra
		}
	case CollReduceScatter, CollAllGather:
		switch algo {
		case AlgoRing:
			return float64(P-1)*a2 + n*float64(P-1)/float64(P)*b2 + n*g/float64(P)
		case AlgoHier:
			if N == 1 {
				return 2*a1 + n*(b1+g)
			}
			return float64(N-1)*a2 + n*float64(N-1)/float64(N)*b2 + n*(b1+g) + 4*a1
		}
	case CollBroadcast, CollReduce:
		piece := math.Min(n, 256<<10)
		switch algo {
		case AlgoRing:
			return float64(P-1)*a1 + float64(N-1)*a2 + n*b2 + float64(P-2)*piece*b1
		case AlgoTree:
			return lg*(a2+n*b2) + intra
		case AlgoHier:
			return float64(N-1)*a2 + n*b2 + float64(max(N-2, 0))*piece*b2 + intra
		}
	}
	return math.Inf(1)
}

// choose picks the algorithm with the least predicted time. Every node holds the same
// figures (agreed at start-up), so every node picks the same.
func (m *costModel) choose(coll Collective, nbytes, N, L, C int) Algo {
	switch coll {
	case CollAllToAll, CollSendRecv:
		return AlgoRing
	case CollBarrier:
		return AlgoTree
	}
	if N == 1 {
		switch coll {
		case CollAllReduce, CollReduceScatter, CollAllGather:
			return AlgoHier // shared memory, no links at all
		}
		return AlgoTree
	}
	best, bestT := AlgoRing, math.Inf(1)
	for _, a := range []Algo{AlgoTree, AlgoHier, AlgoRing} {
		if t := m.predict(coll, normalizeAlgo(coll, a), nbytes, N, L, C); t < bestT {
			best, bestT = normalizeAlgo(coll, a), t
		}
	}
	return best
}

// calibrateLocal measures the intra-node figures: memory copy and reduction speed.
func (m *costModel) calibrateLocal() {
	const size = 4 << 20
	a := make([]byte, size)
	b := make([]byte, size)
	for i := range a {
		a[i] = byte(i)
	}
	copy(b, a) // fault the pages in
	best := math.Inf(1)
	for range 3 {
		t0 := time.Now()
		copy(b, a)
		best = math.Min(best, time.Since(t0).Seconds())
	}
	m.IntraBeta = best / size
	red := reducer{Float32, Sum}
	for i := range View[float32](a) {
		View[float32](a)[i] = 1
	}
	best = math.Inf(1)
	for range 3 {
		t0 := time.Now()
		red.reduce(b, b, a)
		best = math.Min(best, time.Since(t0).Seconds())
	}
	m.Gamma = math.Max(best/size-m.IntraBeta, m.IntraBeta/4)
}

// calibrate measures the inter-node link: each node's leader exchanges messages with its
// ring neighbours, once empty (latency) and once large (bandwidth, with every link busy in
// both directions as in a collective). Node 0 gathers the figures and hands everyone the
// worst, so all nodes hold identical models and pick identical algorithms.
func (n *node) calibrate(ctx context.Context) error {
	m := n.model
	m.calibrateLocal()
	me := n.first(n.id)
	next, prev := n.first((n.id+1)%n.nnodes), n.first((n.id+n.nnodes-1)%n.nnodes)
	d := desc{coll: CollSendRecv, dtype: Float64, seq: math.MaxUint32}
	exchange := func(size int) (float64, error) {
		out := make([]byte, size)
		in := make([]byte, size)
		t0 := time.Now()
		var rs reqs
		n.recvPieces(&rs, me, prev, tagCalib, d, in, nil, nil)
		n.sendPieces(&rs, me, next, tagCalib, d, out)
		err := rs.wait(ctx, n)
		return time.Since(t0).Seconds(), err
	}
	lat := math.Inf(1)
	for range 20 {
		t, err := exchange(0)
		if err != nil {
			return err
		}
		lat = math.Min(lat, t)
	}
	const big = 4 << 20
	if _, err := exchange(big / 4); err != nil { // warm the congestion window
		return err
	}
	bw := math.Inf(1)
	for range 2 {
		t, err := exchange(big)
		if err != nil {
			return err
		}
		bw = math.Min(bw, t)
	}
	vals := []float64{lat, math.Max(bw-lat, 1e-9) / big, m.IntraBeta, m.Gamma}

	// agree: gather at node 0, take the worst of each, send back
	enc := func(v []float64) []byte {
		b := make([]byte, 8*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
		}
		return b
	}
	dec := func(b []byte) []float64 {
		v := make([]float64, len(b)/8)
		for i := range v {
			v[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		return v
	}
	var rs reqs
	if n.id == 0 {
		bufs := make([][]byte, n.nnodes)
		for j := 1; j < n.nnodes; j++ {
			bufs[j] = make([]byte, 8*len(vals))
			n.recvPieces(&rs, me, n.first(j), tagCalib+1, d, bufs[j], nil, nil)
		}
		if err := rs.wait(ctx, n); err != nil {
			return err
		}
		for j := 1; j < n.nnodes; j++ {
			for i, x := range dec(bufs[j]) {
				vals[i] = math.Max(vals[i], x)
			}
		}
		for j := 1; j < n.nnodes; j++ {
			n.sendPieces(&rs, me, n.first(j), tagCalib+2, d, enc(vals))
		}
		if err := rs.wait(ctx, n); err != nil {
			return err
		}
	} else {
		n.sendPieces(&rs, me, n.first(0), tagCalib+1, d, enc(vals))
		got := make([]byte, 8*len(vals))
		n.recvPieces(&rs, me, n.first(0), tagCalib+2, d, got, nil, nil)
		if err := rs.wait(ctx, n); err != nil {
			return err
		}
		vals = dec(got)
	}
	m.InterAlpha, m.InterBeta, m.IntraBeta, m.Gamma = vals[0], vals[1], vals[2], vals[3]
	m.Measured = true
	return nil
}
