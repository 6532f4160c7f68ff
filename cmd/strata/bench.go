package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-ai/strata/internal/comm"
	"github.com/strata-ai/strata/internal/commbench"
	"github.com/strata-ai/strata/internal/enginebench"
	"github.com/strata-ai/strata/internal/model/qwen3"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure strata: comm (collectives, like nccl-tests), engine (prefill and decode), serve (a server under load)",
	}
	cmd.AddCommand(newBenchCommCmd(), newBenchEngineCmd(), newBenchServeCmd())
	return cmd
}

type benchCommFlags struct {
	minBytes, maxBytes, stepBytes string
	stepFactor                    float64
	iters, warmup, check          int
	op, dtype, algo, collective   string
	root                          int
	localNodes, ranksPerNode      int
	nnodes, nodeRank              int
	masterAddr                    string
	timeout                       time.Duration
	channels                      int
	jsonOut                       bool
	cpuProfile                    string
}

// maxRanksPerNode bounds --ranks-per-node: see its check.
const maxRanksPerNode = 1024

func newBenchCommCmd() *cobra.Command {
	var f benchCommFlags
	cmd := &cobra.Command{
		Use:   "comm",
		Short: "Benchmark collectives like nccl-tests' all_reduce_perf",
		Long: `Benchmark a collective over a sweep of sizes and print nccl-tests' table: per size
the time per call, algbw (size / time) and busbw (algbw × the collective's bus factor,
2(P-1)/P for all_reduce), for out-of-place and in-place calls, and #wrong, the elements
that differ from an exact reference when -c 1.

Two ways to launch:

  In one process, nodes linked over loopback TCP (the default: 2 nodes × 2 ranks):
    strata bench comm --local-nodes 2 --ranks-per-node 4 -b 1M -e 64M

  One process per node, as on real machines (node 0 serves the rendezvous store):
    node0$ strata bench comm --nnodes 2 --node-rank 0 --master-addr 10.0.0.1:29500 --ranks-per-node 8
    node1$ strata bench comm --nnodes 2 --node-rank 1 --master-addr 10.0.0.1:29500 --ranks-per-node 8

Every node must be given the same flags except --node-rank. Environment:
  STRATA_SOCKET_IFNAME  interfaces for inter-node traffic (as NCCL_SOCKET_IFNAME: eth0, ^docker, =ens5)
  STRATA_NCHANNELS      TCP connections per node pair (default 2)
  STRATA_ALGO           ring | tree | hier | auto (-a wins)
  STRATA_TOKEN          shared secret every connection must prove (set the same on all nodes)
  STRATA_TIMEOUT        default for --timeout
  STRATA_JOIN_TIMEOUT   how long a node waits at start for the others to come up (default 10m)
  STRATA_RING_IFNAMES   LEFT,RIGHT: NICs facing node i-1 and i+1; hier's node rings then use them
  STRATA_SPIN_US        how long a rank polls for a small message before sleeping (default 50)`,
		Example: `  strata bench comm
  strata bench comm -b 8 -e 128M -f 2 -a hier -d all
  strata bench comm --collective reduce_scatter -o all -c 1
  strata bench comm --local-nodes 2 --ranks-per-node 4 -b 1M -e 64M --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchComm(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.minBytes, "minbytes", "b", "8", "smallest size in bytes (K, M, G suffixes)")
	fl.StringVarP(&f.maxBytes, "maxbytes", "e", "32M", "largest size in bytes")
	fl.Float64VarP(&f.stepFactor, "stepfactor", "f", 2, "multiply the size by this between steps")
	fl.StringVarP(&f.stepBytes, "stepbytes", "i", "0", "add this many bytes between steps instead of -f")
	fl.IntVarP(&f.iters, "iters", "n", 20, "timed iterations per size")
	fl.IntVarP(&f.warmup, "warmup_iters", "w", 5, "untimed iterations before timing")
	fl.IntVarP(&f.check, "check", "c", 1, "1: check every element of one extra call against an exact reference")
	fl.StringVarP(&f.op, "op", "o", "sum", "reduction: sum, prod, min, max, avg or all")
	fl.StringVarP(&f.dtype, "datatype", "d", "float", "element type: float, double, half, bfloat16, int32, int64 or all")
	fl.StringVarP(&f.algo, "algo", "a", "", "algorithm: ring, tree, hier or auto (default: $STRATA_ALGO, else auto)")
	fl.StringVar(&f.collective, "collective", "all_reduce", "all_reduce, reduce_scatter, all_gather, broadcast, reduce, alltoall or sendrecv")
	fl.IntVarP(&f.root, "root", "r", 0, "root rank for broadcast and reduce")
	fl.IntVar(&f.localNodes, "local-nodes", 0, "run this many nodes in this process, linked over loopback TCP (default 2 unless --nnodes)")
	fl.IntVar(&f.ranksPerNode, "ranks-per-node", 2, "ranks (goroutines sharing memory) per node")
	fl.IntVar(&f.nnodes, "nnodes", 0, "number of node processes in a multi-process run")
	fl.IntVar(&f.nodeRank, "node-rank", 0, "this process's node index (0 serves the rendezvous store)")
	fl.StringVar(&f.masterAddr, "master-addr", "", "host:port of node 0's rendezvous store (multi-process runs)")
	fl.DurationVar(&f.timeout, "timeout", 0, "deadline for every blocking wait once the nodes have registered (default $STRATA_TIMEOUT, else 30s; STRATA_JOIN_TIMEOUT bounds the wait for them)")
	fl.IntVar(&f.channels, "nchannels", 0, "TCP connections per node pair (default $STRATA_NCHANNELS, else 2)")
	fl.BoolVar(&f.jsonOut, "json", false, "print one JSON report instead of the table")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a Go CPU profile of this process to this file")
	return cmd
}

// parseSize reads nccl-tests' sizes: 8, 1K, 128M, 1G (powers of 1024).
func parseSize(flag, s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, strings.TrimSuffix(t, "K")
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, strings.TrimSuffix(t, "M")
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, strings.TrimSuffix(t, "G")
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s %q: want a byte count such as 8, 64K, 128M or 1G", flag, s)
	}
	return int64(v * float64(mult)), nil
}

func runBenchComm(cmd *cobra.Command, f *benchCommFlags) error {
	var o commbench.Options
	var err error
	if o.MinBytes, err = parseSize("-b", f.minBytes); err != nil {
		return err
	}
	if o.MaxBytes, err = parseSize("-e", f.maxBytes); err != nil {
		return err
	}
	if o.StepBytes, err = parseSize("-i", f.stepBytes); err != nil {
		return err
	}
	if o.MaxBytes < o.MinBytes {
		return fmt.Errorf("-e %s is smaller than -b %s", f.maxBytes, f.minBytes)
	}
	if o.StepBytes == 0 && o.MinBytes == 0 && o.MaxBytes > 0 {
		return errors.New("-b 0 with a step factor never grows: start at -b 1 or more, or step with -i")
	}
	if o.StepBytes == 0 && f.stepFactor <= 1 && o.MaxBytes > o.MinBytes {
		return fmt.Errorf("-f %g: the step factor must be above 1 (or give -i)", f.stepFactor)
	}
	if f.iters < 1 || f.warmup < 0 {
		return fmt.Errorf("-n must be at least 1 and -w at least 0")
	}
	o.StepFactor, o.Iters, o.Warmup, o.Check, o.Root = f.stepFactor, f.iters, f.warmup, f.check != 0, f.root
	if o.Collective, err = comm.ParseCollective(f.collective); err != nil || o.Collective == comm.CollBarrier {
		return fmt.Errorf("--collective: unknown collective %q (want all_reduce, reduce_scatter, all_gather, broadcast, reduce, alltoall or sendrecv)", f.collective)
	}
	if f.op == "all" {
		o.Ops = comm.AllOps
	} else {
		op, err := comm.ParseOp(f.op)
		if err != nil {
			return fmt.Errorf("-o: %w", err)
		}
		o.Ops = []comm.Op{op}
	}
	if f.dtype == "all" {
		o.Types = comm.AllDataTypes
	} else {
		dt, err := comm.ParseDataType(f.dtype)
		if err != nil {
			return fmt.Errorf("-d: %w", err)
		}
		o.Types = []comm.DataType{dt}
	}

	cfg, err := comm.ConfigFromEnv()
	if err != nil {
		return err
	}
	if f.algo != "" {
		if cfg.Algo, err = comm.ParseAlgo(f.algo); err != nil {
			return fmt.Errorf("-a: %w", err)
		}
	}
	o.Algo = cfg.Algo
	switch {
	case f.timeout < 0:
		return fmt.Errorf("--timeout %v: want a positive duration such as 30s (0 keeps the default)", f.timeout)
	case f.channels < 0:
		return fmt.Errorf("--nchannels %d: want at least 1 (0 keeps the default)", f.channels)
	}
	if f.timeout > 0 {
		cfg.Timeout = f.timeout
	}
	if f.channels > 0 {
		cfg.Channels = f.channels
	}
	cfg.Logger = logger()

	local := f.localNodes
	switch {
	case f.nnodes > 0 && local > 0:
		return errors.New("give either --local-nodes (all nodes in this process) or --nnodes/--node-rank/--master-addr (one process per node), not both")
	case f.nnodes == 0 && local == 0:
		local = 2
	case f.nnodes > 1 && f.masterAddr == "":
		return errors.New("--nnodes > 1 needs --master-addr host:port (node 0's address, reachable from every node)")
	case f.nnodes > 0 && (f.nodeRank < 0 || f.nodeRank >= f.nnodes):
		return fmt.Errorf("--node-rank %d is out of range for --nnodes %d (0..%d)", f.nodeRank, f.nnodes, f.nnodes-1)
	}
	if f.ranksPerNode < 1 {
		return fmt.Errorf("--ranks-per-node %d: need at least 1", f.ranksPerNode)
	}
	// In-process ranks keep state for every pair: 1024 a node took 0.8 GB to set up, 4096
	// took 13 GB. A node is a machine's accelerators or cores, far below this.
	if f.ranksPerNode > maxRanksPerNode {
		return fmt.Errorf("--ranks-per-node %d: at most %d (ranks in one process keep state for every pair: 4096 take 13 GB)", f.ranksPerNode, maxRanksPerNode)
	}
	if ram, ok := memTotal(); ok {
		here := f.ranksPerNode
		if local > 0 {
			here *= local
		}
		nranks := f.ranksPerNode * max(local, f.nnodes)
		if need := int64(here) * o.BytesPerRank(nranks); float64(need) > float64(ram)*0.8 {
			return fmt.Errorf("the buffers of %d ranks in this process at -e %d need %.1f GB, more than 80%% of this machine's %.1f GB: lower -e or the ranks", here, o.MaxBytes, float64(need)/1e9, float64(ram)/1e9)
		}
	}

	stopProfile, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()

	ctx := cmd.Context()
	var comms []*comm.Comm
	var closeAll func()
	var where string
	if local > 0 {
		lc, err := comm.NewLocal(ctx, local, f.ranksPerNode, cfg, nil)
		if err != nil {
			return err
		}
		comms, closeAll = lc.Comms(), func() { _ = lc.Close() }
		where = "in this process, nodes linked over loopback TCP"
	} else {
		nd, err := comm.Join(ctx, comm.JoinOptions{NNodes: f.nnodes, NodeRank: f.nodeRank, RanksPerNode: f.ranksPerNode, MasterAddr: f.masterAddr}, cfg)
		if err != nil {
			return err
		}
		comms, closeAll = nd.Comms(), func() { _ = nd.Close() }
		where = fmt.Sprintf("one process per node, this is node %d at %s", f.nodeRank, nd.Addr())
	}
	defer closeAll()

	out := cmd.OutOrStdout()
	var p commbench.Printer
	c0 := comms[0]
	if c0.Rank() == 0 && !f.jsonOut {
		p = &commbench.TablePrinter{W: out}
		m := c0.CostModel()
		fmt.Fprintf(out, "# strata bench comm: %s, %d nodes × %d ranks (%s)\n", o.Collective, c0.NNodes(), c0.LocalSize(), where)
		fmt.Fprintf(out, "# minBytes %d maxBytes %d step: %s warmup iters: %d iters: %d validation: %d algo: %s channels: %d timeout: %v\n",
			o.MinBytes, o.MaxBytes, stepText(o), o.Warmup, o.Iters, f.check, o.Algo, cfg.Channels, cfg.Timeout)
		how := "built-in"
		if m.Measured {
			how = "measured"
		}
		fmt.Fprintf(out, "# cost model (%s): inter-node α %.1f µs, %.1f MB/s; intra-node copy %.2f GB/s, reduce %.2f GB/s\n",
			how, m.InterAlpha*1e6, 1/m.InterBeta/1e6, 1/m.IntraBeta/1e9, 1/m.Gamma/1e9)
	}
	rep, err := commbench.Run(ctx, comms, o, p)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
		return err
	}
	if c0.Rank() == 0 && f.jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	if rep.Wrong > 0 {
		fmt.Fprintf(os.Stderr, "strata: %d elements differ from the reference\n", rep.Wrong)
		return exitError{code: 2}
	}
	_ = context.Background
	return nil
}

func stepText(o commbench.Options) string {
	if o.StepBytes > 0 {
		return fmt.Sprintf("%d(bytes)", o.StepBytes)
	}
	return fmt.Sprintf("%g(factor)", o.StepFactor)
}

func newBenchEngineCmd() *cobra.Command {
	var dir, random string
	var o enginebench.Options
	var batches, cpuProfile, dtype, kvDType string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "engine (--model DIR | --random-model CONFIG.json) [--json]",
		Short: "Measure prefill and decode speed, and decode against the memory-bandwidth roofline",
		Long: `Measure the forward pass on one node: prefill tokens/s for one prompt, decode tokens/s at
each batch size, and decode's fraction of the roofline (weight and KV bytes read per step ÷
the memory bandwidth, measured in the same run). A batch reads its weights once for all
its tokens, so a large one is bound by arithmetic instead: "compute" is the rate of the
step's weight matmuls ÷ the batched matmul's own rate on a weight held in cache, also
measured in the run. Each decode step draws its tokens greedily, as generate does by
default; --full-logits computes every logit of every step instead, as sampling without
top-k, logprobs or penalties need. --random-model builds a model of a config.json's shape
with random bf16 weights in memory, so no checkpoint is needed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (dir == "") == (random == "") {
				return errors.New("give exactly one of --model DIR or --random-model CONFIG.json")
			}
			var err error
			if o.Batches, err = parseInts("--batches", batches, "batch size", "positive integers separated by commas, e.g. 1,8,32", 1); err != nil {
				return err
			}
			prec, err := parseDType(dtype)
			if err != nil {
				return err
			}
			kvType, err := parseKVDType(kvDType, prec)
			if err != nil {
				return err
			}
			if o.PromptLen < 1 || o.ContextLen < 1 || o.DecodeSteps < 1 || o.Repeats < 1 {
				return errors.New("--prompt-len, --context-len, --decode-steps and --repeats must be at least 1")
			}
			var m *qwen3.Model
			if dir != "" {
				m, err = qwen3.Load(dir)
			} else {
				var b []byte
				if b, err = os.ReadFile(random); err != nil {
					return err
				}
				var c *qwen3.Config
				if c, err = qwen3.ParseConfig(b); err != nil {
					return fmt.Errorf("%s: %w", random, err)
				}
				// Building one holds the tensors, the image made of them and the fused copies of
				// q/k/v and gate/up: peak RSS 1.75–2.0× the bf16 weights for Qwen3-30B-A3B's shape
				// scaled to 4 and 6 layers, so 3× leaves room for the caches a run adds. Where
				// the machine's memory is unknown (off Linux), no check.
				if ram, ok := memTotal(); ok {
					w, have := 2*c.Weights(), float64(ram)*8/10
					if 3*w > have {
						return fmt.Errorf("%s: a random model of this shape has %.1f GB of bf16 weights and needs about %.1f GB while it is built, more than 80%% of this machine's memory (%.1f GB): scale hidden_size, intermediate_size, num_hidden_layers or num_experts down", random, w/1e9, 3*w/1e9, have/1e9)
					}
				}
				m, err = qwen3.Random(c, 1)
			}
			if err != nil {
				return err
			}
			defer m.Close()
			m.SetPrecision(prec)
			m.SetKVCacheDType(kvType)
			stopProfile, err := startCPUProfile(cpuProfile)
			if err != nil {
				return err
			}
			defer stopProfile()
			// the cache may take what the weights leave of 80 % of RAM
			o.MemoryLimit = max(1, totalRAM()*8/10-m.WeightBytes())
			res, err := enginebench.Run(m, o)
			if err != nil {
				return err
			}
			res.DType = prec.String()
			w := cmd.OutOrStdout()
			if jsonOut {
				return json.NewEncoder(w).Encode(res)
			}
			fmt.Fprintf(w, "# model: %s\n# memory bandwidth %.1f GB/s (%d threads), activations %s, KV cache %s, kernels %s, decoding %s\n", enginebench.Describe(m), res.BandwidthGBs, res.Threads, res.DType, res.KVCacheDType, res.Kernels, res.Sampling)
			fmt.Fprintf(w, "# batched matmul peak %.0f GFLOP/s (batch 32, weight in cache): compute below is the weight matmuls' share of it\n", res.MatmulPeakGFLOPs)
			if res.FMAPeakGFLOPs > 0 {
				fmt.Fprintf(w, "# float32 FMA peak %.0f GFLOP/s: no batch decodes faster than %.1f tokens/s with float32 FMAs (%.2f GFLOP a token)\n", res.FMAPeakGFLOPs, res.FMACeilingTokensPerS, res.FMAPeakGFLOPs/res.FMACeilingTokensPerS)
			}
			fmt.Fprintf(w, "prefill  %6d tokens   %10.1f tokens/s\n", o.PromptLen, res.PrefillTokensPerS)
			one := 0.0 // batch 1's rate, when measured: each batch's gain over it is what batching buys
			for _, d := range res.Decode {
				if d.Batch == 1 {
					one = d.TokensPerS
				}
			}
			for _, d := range res.Decode {
				steal := ""
				if d.CPUStealFraction != nil {
					steal = fmt.Sprintf("   cpu steal %4.1f%%", 100**d.CPUStealFraction)
				}
				gain := ""
				if one > 0 && d.Batch > 1 {
					gain = fmt.Sprintf("   %5.2f× batch 1", d.TokensPerS/one)
				}
				fmt.Fprintf(w, "decode   batch %4d   %10.1f tokens/s   %7.2f ms/step   roofline %5.1f%%   compute %5.1f%%%s%s\n", d.Batch, d.TokensPerS, d.StepMs, 100*d.RooflineFraction, 100*d.ComputeFraction, gain, steal)
			}
			if one > 0 && res.FMACeilingTokensPerS > 0 && res.DType == "float32" && res.Kernels != "amx" { // AMX tiles are not bound by the FMAs
				fmt.Fprintf(w, "# at float32, the FMA ceiling bounds any batch at %.1f× batch 1 on this machine\n", res.FMACeilingTokensPerS/one)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "model", "", "Hugging Face model folder")
	f.StringVar(&random, "random-model", "", "config.json whose shape to build with random weights")
	f.IntVar(&o.PromptLen, "prompt-len", 128, "tokens in the prefill measurement")
	f.IntVar(&o.ContextLen, "context-len", 64, "tokens cached before decoding")
	f.IntVar(&o.DecodeSteps, "decode-steps", 16, "decode steps timed per batch size")
	f.StringVar(&batches, "batches", "1,8,32", "decode batch sizes")
	f.BoolVar(&o.FullLogits, "full-logits", false, "compute every step's whole logits rows and feed random tokens, as sampling without top-k, logprobs or penalties need (default: decode greedily, as generate does)")
	f.IntVar(&o.Repeats, "repeats", 3, "timed passes per batch size, the sizes taking turns (the best of each is reported)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile of the measurement to this file")
	addDTypeFlag(f, &dtype)
	addKVDTypeFlag(f, &kvDType)
	f.BoolVar(&jsonOut, "json", false, `print {"prefill_tokens_per_s", "decode": [{"batch", "tokens_per_s", "roofline_fraction"}], "bandwidth_gb_s"}`)
	return cmd
}

// startCPUProfile writes a Go CPU profile to path (nothing when path is empty) until the
// returned function is called.
func startCPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	pf, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); pf.Close() }, nil
}
