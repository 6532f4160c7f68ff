package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/strata-ai/strata/internal/comm"
	"github.com/strata-ai/strata/internal/kernels"
	"github.com/strata-ai/strata/internal/model/qwen3"
)

// Options describe a job.
type Options struct {
	Dir       string // the model folder, the same on every node
	Layout    Layout
	BlockSize int
	// KVBytesPerRank is each rank's KV-cache budget; the job's block count is the smallest
	// any rank can hold (ranks of different stages hold different layers).
	KVBytesPerRank int64
	Precision      kernels.Precision
	KVCacheDType   kernels.Precision // the paged KV cache's element type
	Comm           comm.Config
	Heartbeat      time.Duration // an idle driver's ping interval (default 1 s)
}

// Job is this process's share of a split model: every rank with StartLocal, one node's
// ranks with JoinNode. Driver is set where global rank 0 lives.
type Job struct {
	Driver    *Driver
	NumBlocks int
	Full      *qwen3.Config
	Ranks     []*Rank

	workers   sync.WaitGroup
	mu        sync.Mutex
	werr      error          // the first worker failure
	links     []func() error // comm jobs
	aborts    []func(error)  // abort each comm job of this process
	models    []func() error // mapped weights: closed only once no rank can touch them
	closeOnce sync.Once
	closeErr  error
}

// Abort fails the job: every link of this process is aborted, so every rank's wait ends at
// once (peers see the connections drop and fail too). Close must still be called.
func (j *Job) Abort(err error) {
	j.mu.Lock()
	if j.werr == nil {
		j.werr = err
	}
	aborts := j.aborts
	j.mu.Unlock()
	for _, a := range aborts {
		a(err)
	}
}

// Plan describes where each stage's layers go, for start-up logs.
func Plan(cfg *qwen3.Config, l Layout) ([][2]int, error) {
	if err := qwen3.CheckSplit(cfg, l.TP, l.ExpertParallel && l.TP > 1); err != nil {
		return nil, err
	}
	return qwen3.StageLayers(cfg.Layers, l.Nodes)
}

// testHookBuildCache, when set, runs before each rank of a node builds its KV cache (tests
// make one node slow to build it).
var testHookBuildCache func(node int)

// StartLocal runs the whole job in this process: Layout.Nodes emulated nodes linked over
// loopback TCP (their inter-node traffic goes through real sockets), each with TP ranks.
func StartLocal(ctx context.Context, o Options) (*Job, error) {
	l := o.Layout
	if l.Ranks() > runtime.GOMAXPROCS(0) {
		// More ranks than cores: a rank polling for a peer would take the core that peer
		// needs, so waits block at once instead of spinning.
		o.Comm.SpinWait = 0
	}
	global, err := comm.NewLocal(ctx, l.Nodes, l.TP, o.Comm, nil)
	if err != nil {
		return nil, fmt.Errorf("pipeline: linking %d local nodes: %w", l.Nodes, err)
	}
	j := &Job{}
	j.links = append(j.links, global.Close)
	for _, nd := range global.Nodes {
		j.aborts = append(j.aborts, nd.Abort)
	}
	var nodes [][]*comm.Comm
	for n := range l.Nodes {
		nodes = append(nodes, global.Nodes[n].Comms())
	}
	if err := j.start(ctx, o, nodes); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// noSpinIfCrowded: with more ranks in this process than cores, a rank polling for a peer
// would take the core its peer needs, so waits block at once instead of spinning (unless the
// user set STRATA_SPIN_US).
func noSpinIfCrowded(o *Options, ranks int) {
	if ranks > runtime.GOMAXPROCS(0) && os.Getenv("STRATA_SPIN_US") == "" {
		o.Comm.SpinWait = 0
	}
}

// JoinNode brings up one node of a multi-process job (vLLM's --nnodes/--node-rank): it joins
// the job's rendezvous, then runs this node's stage.
func JoinNode(ctx context.Context, o Options, jo comm.JoinOptions) (*Job, error) {
	noSpinIfCrowded(&o, o.Layout.TP)
	jo.NNodes, jo.RanksPerNode = o.Layout.Nodes, o.Layout.TP
	nd, err := comm.Join(ctx, jo, o.Comm)
	if err != nil {
		return nil, err
	}
	j := &Job{}
	j.links = append(j.links, nd.Close)
	j.aborts = append(j.aborts, nd.Abort)
	if err := j.start(ctx, o, [][]*comm.Comm{nd.Comms()}); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// start loads every rank's shard, agrees on the KV block count, and starts the worker loops.
func (j *Job) start(ctx context.Context, o Options, nodes [][]*comm.Comm) error {
	l := o.Layout
	cfg, err := qwen3.LoadConfig(o.Dir)
	if err != nil {
		return err
	}
	j.Full = cfg
	stages, err := Plan(cfg, l)
	if err != nil {
		return err
	}
	timeout := o.Comm.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	// The two reductions at start wait for the other nodes to load their shards and build
	// their caches, which a cold disk or a large cache stretches far past a link timeout:
	// they get the join's window.
	startWait := max(timeout, o.Comm.JoinTimeout)
	type loaded struct {
		m   *qwen3.Model
		tpc *comm.Comm
		g   *comm.Comm
	}
	var all []loaded
	for _, comms := range nodes {
		var tpcs []*comm.Comm
		if l.TP > 1 {
			// the node's own job: its ranks only, over shared memory
			lc, err := comm.NewLocal(ctx, 1, l.TP, o.Comm, nil)
			if err != nil {
				return fmt.Errorf("pipeline: linking the ranks of node %d: %w", comms[0].Node(), err)
			}
			j.links = append(j.links, lc.Close)
			for _, nd := range lc.Nodes {
				j.aborts = append(j.aborts, nd.Abort)
			}
			tpcs = lc.Comms()
		}
		for i, g := range comms {
			st := stages[g.Node()]
			sh := qwen3.Shard{TP: l.TP, Rank: i, FirstLayer: st[0], EndLayer: st[1], Layers: cfg.Layers, ExpertParallel: l.ExpertParallel && l.TP > 1}
			var tp qwen3.TPComm
			var tpc *comm.Comm
			if l.TP > 1 {
				tpc = tpcs[i]
				tp = TPComm{C: tpc, Timeout: timeout}
			}
			m, err := qwen3.LoadShard(o.Dir, sh, tp)
			if err != nil {
				return err
			}
			m.SetPrecision(o.Precision)
			m.SetKVCacheDType(o.KVCacheDType)
			j.models = append(j.models, m.Close)
			all = append(all, loaded{m, tpc, g})
		}
	}
	// The ranks of this process run at once (tensor-parallel ranks together, pipeline
	// stages overlapping): each kernel call gets its share of the cores.
	if len(all) > 1 {
		kernels.SetThreads(max(1, runtime.GOMAXPROCS(0)/len(all)))
		j.models = append(j.models, func() error { kernels.SetThreads(0); return nil })
	}
	// Every rank computes what its budget holds; the job takes the minimum. The same
	// reduction checks that every node computes in the same precisions: a min and a max (as
	// the min of the negation) of each must agree.
	blocks := make([]int64, len(all))
	agreed := make([][5]int64, len(all))
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, ld := range all {
		blocks[i] = o.KVBytesPerRank / ld.m.BytesPerBlock(o.BlockSize)
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := [5]int64{blocks[i], int64(o.Precision), -int64(o.Precision), int64(o.KVCacheDType), -int64(o.KVCacheDType)}
			b := make([]byte, 8*len(v))
			for k, x := range v {
				binary.LittleEndian.PutUint64(b[8*k:], uint64(x))
			}
			cctx, cancel := context.WithTimeout(ctx, startWait)
			defer cancel()
			errs[i] = ld.g.AllReduce(cctx, b, b, comm.Int64, comm.Min)
			for k := range v {
				agreed[i][k] = int64(binary.LittleEndian.Uint64(b[8*k:]))
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pipeline: agreeing on the KV cache size: %w", err)
	}
	if a := agreed[0]; a[1] != -a[2] {
		return fmt.Errorf("pipeline: the nodes were started with different --dtype (this one: %s); give every node the same", o.Precision)
	} else if a[3] != -a[4] {
		return fmt.Errorf("pipeline: the nodes were started with different --kv-cache-dtype (this one: %s); give every node the same", o.KVCacheDType)
	}
	j.NumBlocks = int(agreed[0][0])
	if j.NumBlocks < 1 {
		return fmt.Errorf("pipeline: %d bytes of KV cache per rank hold no block of %d tokens", o.KVBytesPerRank, o.BlockSize)
	}
	// Every rank builds its KV cache before any driver starts: a driver's heartbeat counts
	// from its first ping, and a rank still zeroing its cache (hundreds of milliseconds for a
	// quarter gigabyte, far longer for a server's) cannot answer one yet. The caches are built
	// at once, and a last reduction holds every node until all of them are ready.
	j.Ranks = make([]*Rank, len(all))
	for i, ld := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if testHookBuildCache != nil {
				testHookBuildCache(ld.g.Node())
			}
			j.Ranks[i] = NewRank(l, ld.m, j.NumBlocks, o.BlockSize, ld.g, ld.tpc, timeout)
			b := make([]byte, 8)
			cctx, cancel := context.WithTimeout(ctx, startWait)
			defer cancel()
			errs[i] = ld.g.AllReduce(cctx, b, b, comm.Int64, comm.Min)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pipeline: waiting for every node's KV cache: %w", err)
	}
	for i, ld := range all {
		r := j.Ranks[i]
		if ld.g.Rank() == 0 {
			hb := o.Heartbeat
			if hb <= 0 {
				hb = time.Second
			}
			if j.Driver, err = NewDriver(r, hb, j.Abort); err != nil {
				return err
			}
			continue
		}
		j.workers.Add(1)
		go func() {
			defer j.workers.Done()
			if err := r.Serve(); err != nil && !errors.Is(err, ErrStopped) {
				// one rank's failure ends its node's other ranks too (their node-local
				// collectives would otherwise wait out a timeout)
				j.Abort(fmt.Errorf("rank %d (node %d): %w", ld.g.Rank(), ld.g.Node(), err))
			}
		}()
	}
	return nil
}

// Err is the first failure of a worker in this process, or the driver's.
func (j *Job) Err() error {
	j.mu.Lock()
	err := j.werr
	j.mu.Unlock()
	if err == nil && j.Driver != nil {
		err = j.Driver.Err()
	}
	return err
}

// Wait blocks until this process's worker loops end (a headless node's life).
func (j *Job) Wait() error {
	j.workers.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.werr
}

// Close stops the job: the driver tells the workers to leave (unless the job failed); links
// close, releasing any worker still blocked on a broken one; the weights are unmapped last.
// Calling it again returns the first result.
func (j *Job) Close() error {
	j.closeOnce.Do(func() {
		if j.Driver != nil {
			_ = j.Driver.Stop()
		}
		done := make(chan struct{})
		go func() { j.workers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			j.Abort(errors.New("pipeline: closing"))
		}
		var err error
		for _, c := range j.links {
			err = errors.Join(err, c())
		}
		<-done
		for _, c := range j.models {
			err = errors.Join(err, c())
		}
		j.closeErr = err
	})
	return j.closeErr
}
