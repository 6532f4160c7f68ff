package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/strata-ai/strata/internal/api"
	"github.com/strata-ai/strata/internal/chattemplate"
	"github.com/strata-ai/strata/internal/comm"
	"github.com/strata-ai/strata/internal/demo"
	"github.com/strata-ai/strata/internal/engine"
	"github.com/strata-ai/strata/internal/kernels"
	"github.com/strata-ai/strata/internal/model/qwen3"
	"github.com/strata-ai/strata/internal/pipeline"
	"github.com/strata-ai/strata/internal/serve"
	"github.com/strata-ai/strata/internal/tokenizer"
)

// serveFlags are vLLM's flag names for what strata supports.
type serveFlags struct {
	model, host, apiKey, generationConfig, chatTemplate     string
	toolParser, reasoningParser, dtype, kvDType, masterAddr string
	servedNames                                             []string
	port, tp, pp, maxModelLen, maxNumSeqs, maxBatched       int
	blockSize, nnodes, nodeRank, masterPort, localNodes     int
	seed                                                    int64
	memUtil                                                 float64
	kvBytes                                                 int64
	prefixCaching, chunkedPrefill, autoTools, skipTokens    bool
	headless, expertParallel                                bool
	cpuProfile                                              string
}

// unsupportedVLLMFlags are vLLM flags a user may carry over that strata does not implement;
// each is accepted by the parser only to be refused by name.
var unsupportedVLLMFlags = []string{
	"quantization", "speculative-config", "lora-modules", "enable-lora",
	"max-loras", "max-lora-rank", "data-parallel-size", "distributed-executor-backend",
	"trust-remote-code", "tokenizer", "revision", "download-dir", "load-format",
	"enforce-eager", "cpu-offload-gb", "swap-space", "max-logprobs", "guided-decoding-backend",
	"structured-outputs-config", "limit-mm-per-prompt", "mm-processor-kwargs", "ssl-keyfile",
	"ssl-certfile", "root-path", "middleware", "response-role", "uvicorn-log-level",
	"disable-log-requests", "disable-log-stats", "enable-log-requests", "hf-overrides",
	"rope-scaling", "num-scheduler-steps", "scheduling-policy", "long-prefill-token-threshold",
	"compilation-config", "task", "runner", "tokenizer-mode", "config-format",
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	unsupported := map[string]*string{}
	var negations []func()
	cmd := &cobra.Command{
		Use:   "serve [MODEL]",
		Short: "Serve a model with an OpenAI-compatible API, taking vLLM's flags",
		Long: `Serve a Hugging Face Qwen3 folder with an OpenAI-compatible API, as vllm serve does.

  strata serve ./Qwen3-0.6B --port 8000
  strata serve ./Qwen3-0.6B --enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser qwen3`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, n := range negations {
				n()
			}
			for name, v := range unsupported {
				if cmd.Flags().Changed(name) {
					return fmt.Errorf("--%s is a vLLM flag that strata does not support (value %q): remove it", name, *v)
				}
			}
			if len(args) == 1 {
				if f.model != "" && f.model != args[0] {
					return fmt.Errorf("the model is given twice (%s and --model %s): give it once", args[0], f.model)
				}
				f.model = args[0]
			}
			return runServe(cmd.Context(), cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "Hugging Face model folder (also the first argument)")
	fl.StringVar(&f.host, "host", "", "address to listen on (all interfaces when empty)")
	fl.IntVar(&f.port, "port", 8000, "port to listen on")
	fl.StringSliceVar(&f.servedNames, "served-model-name", nil, "model name(s) the API answers to (default: the model argument)")
	fl.StringVar(&f.apiKey, "api-key", "", "require \"Authorization: Bearer KEY\" on /v1 endpoints")
	fl.IntVar(&f.tp, "tensor-parallel-size", 1, "ranks per node sharing each layer")
	fl.IntVar(&f.pp, "pipeline-parallel-size", 1, "pipeline stages (one per node)")
	fl.BoolVar(&f.expertParallel, "enable-expert-parallel", false, "MoE: place whole experts on the ranks of a node instead of slicing every expert")
	fl.IntVar(&f.maxModelLen, "max-model-len", 0, "longest prompt plus output (default: the model's max_position_embeddings, capped by memory)")
	fl.IntVar(&f.maxNumSeqs, "max-num-seqs", 256, "sequences in one batch")
	fl.IntVar(&f.maxBatched, "max-num-batched-tokens", 2048, "tokens in one forward pass")
	fl.IntVar(&f.blockSize, "block-size", 16, "tokens per KV-cache block")
	fl.BoolVar(&f.prefixCaching, "enable-prefix-caching", true, "reuse KV blocks of shared prompt prefixes")
	fl.BoolVar(&f.chunkedPrefill, "enable-chunked-prefill", true, "split long prompts across steps")
	fl.Float64Var(&f.memUtil, "gpu-memory-utilization", 0.5, "share of this machine's RAM for weights plus KV cache")
	fl.Int64Var(&f.kvBytes, "kv-cache-memory-bytes", 0, "KV-cache size in bytes (overrides --gpu-memory-utilization for the cache)")
	fl.Int64Var(&f.seed, "seed", 0, "default seed for requests that give none (0: random)")
	fl.StringVar(&f.generationConfig, "generation-config", "auto", "auto: sampling defaults from the model's generation_config.json; vllm: none; or a folder holding one")
	fl.StringVar(&f.chatTemplate, "chat-template", "", "a Jinja chat template file (or inline template) to use instead of the model's")
	fl.BoolVar(&f.autoTools, "enable-auto-tool-choice", false, "let the model decide to call tools (needs --tool-call-parser)")
	fl.StringVar(&f.toolParser, "tool-call-parser", "", "how tool calls are read from the output: hermes (Qwen3)")
	fl.StringVar(&f.reasoningParser, "reasoning-parser", "", "split <think> reasoning into reasoning_content: qwen3")
	fl.BoolVar(&f.skipTokens, "skip-tokenizer-init", false, "no tokenizer: prompts are token ids and outputs carry token ids only")
	addDTypeFlag(fl, &f.dtype)
	addKVDTypeFlag(fl, &f.kvDType)
	fl.IntVar(&f.nnodes, "nnodes", 1, "nodes in the cluster")
	fl.IntVar(&f.nodeRank, "node-rank", 0, "this node's rank (0 serves the API)")
	fl.StringVar(&f.masterAddr, "master-addr", "127.0.0.1", "node 0's address")
	fl.IntVar(&f.masterPort, "master-port", 29500, "node 0's rendezvous port")
	fl.BoolVar(&f.headless, "headless", false, "a worker node: run stages, serve no API")
	fl.IntVar(&f.localNodes, "local-nodes", 0, "emulate this many nodes in this process, linked over loopback TCP")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the server to this file")
	// vLLM spells its boolean switches off as --no-NAME
	for _, name := range []string{"enable-prefix-caching", "enable-chunked-prefill"} {
		target := fl.Lookup(name)
		off := new(bool)
		fl.BoolVar(off, "no-"+name, false, "turn --"+name+" off")
		_ = fl.MarkHidden("no-" + name)
		negations = append(negations, func() {
			if *off {
				_ = target.Value.Set("false")
			}
		})
	}
	for _, name := range unsupportedVLLMFlags {
		v := new(string)
		unsupported[name] = v
		fl.StringVar(v, name, "", "vLLM flag not supported by strata")
		_ = fl.MarkHidden(name)
	}
	fl.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		return pflag.NormalizedName(strings.ReplaceAll(name, "_", "-"))
	})
	return cmd
}

// loadDefaults reads generation_config.json's sampling defaults as vLLM's --generation-config.
func loadDefaults(mode, modelDir string) (api.Defaults, error) {
	var d api.Defaults
	dir := modelDir
	switch mode {
	case "vllm":
		return d, nil
	case "auto":
	default:
		dir = mode
	}
	b, err := os.ReadFile(filepath.Join(dir, "generation_config.json"))
	if errors.Is(err, os.ErrNotExist) {
		if mode != "auto" {
			return d, fmt.Errorf("--generation-config %s: no generation_config.json there", mode)
		}
		return d, nil
	}
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%s: %w", filepath.Join(dir, "generation_config.json"), err)
	}
	if err := d.Validate(); err != nil {
		return d, fmt.Errorf("%s: %w (fix it, or serve with --generation-config vllm to leave its defaults out)", filepath.Join(dir, "generation_config.json"), err)
	}
	return d, nil
}

// totalRAM is the machine's memory, or 8 GiB where /proc/meminfo does not say (off Linux):
// a cache budget needs some number.
func totalRAM() int64 {
	if n, ok := memTotal(); ok {
		return n
	}
	return 8 << 30
}

// memTotal is MemTotal from /proc/meminfo; ok is false where there is none.
func memTotal() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	var kb int64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			fmt.Sscanf(strings.TrimPrefix(line, "MemTotal:"), "%d", &kb)
		}
	}
	return kb << 10, kb > 0
}

// modelBytes is the size of a folder's safetensors files: the weights to place.
func modelBytes(dir string) int64 {
	var n int64
	files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}

// check refuses flag values no server could start with, before any model is loaded.
func (f *serveFlags) check() error {
	for _, c := range []struct {
		name string
		v    int
	}{{"--block-size", f.blockSize}, {"--max-num-seqs", f.maxNumSeqs}, {"--max-num-batched-tokens", f.maxBatched}, {"--nnodes", f.nnodes}} {
		if c.v < 1 {
			return fmt.Errorf("%s %d: want at least 1", c.name, c.v)
		}
	}
	switch {
	case f.localNodes < 0:
		return fmt.Errorf("--local-nodes %d: want 1 or more (0: one node, not emulated)", f.localNodes)
	case f.kvBytes < 0:
		return fmt.Errorf("--kv-cache-memory-bytes %d: want a size in bytes (0: from --gpu-memory-utilization)", f.kvBytes)
	case f.masterPort < 1 || f.masterPort > 65535:
		return fmt.Errorf("--master-port %d: want a TCP port, 1 to 65535", f.masterPort)
	}
	// vLLM's --master-addr is a host; the port is --master-port. A host:port here would be
	// looked up as a name and retried for ever.
	if h, p, err := net.SplitHostPort(f.masterAddr); err == nil && h != "" && p != "" {
		return fmt.Errorf("--master-addr %q: give the host alone and the port as --master-port %s", f.masterAddr, p)
	}
	if f.port < 0 || f.port > 65535 {
		return fmt.Errorf("--port %d: want a TCP port, 1 to 65535 (0: any free one)", f.port)
	}
	for _, n := range f.servedNames {
		if strings.TrimSpace(n) == "" {
			return errors.New("--served-model-name: a name is empty; give the names clients send as \"model\"")
		}
	}
	return nil
}

func runServe(ctx context.Context, cmd *cobra.Command, f *serveFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	log := logger()
	stopProfile, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	demoDefault := false
	if f.model == "" {
		dir, err := demo.Dir()
		if err != nil {
			return err
		}
		log.Info("no model given: serving the built-in demo (random weights; it shows the serving, not language skill)", "folder", dir)
		f.model = dir
		if len(f.servedNames) == 0 {
			f.servedNames = []string{demo.Name}
		}
		demoDefault = true
	}
	fl := cmd.Flags()
	// The demo shows the seed's layout in miniature: 2 emulated nodes × 2 ranks.
	if demoDefault && !fl.Changed("local-nodes") && !fl.Changed("nnodes") && !fl.Changed("tensor-parallel-size") && !fl.Changed("pipeline-parallel-size") {
		f.localNodes, f.tp, f.pp = 2, 2, 2
	}
	// The demo's weights are random, so nothing is lost by computing as vLLM does for a bf16
	// checkpoint; a real model keeps float32 activations (exact to transformers) unless told.
	if demoDefault && !fl.Changed("dtype") {
		f.dtype = "bfloat16"
	}
	prec, err := parseDType(f.dtype)
	if err != nil {
		return err
	}
	kvType, err := parseKVDType(f.kvDType, prec)
	if err != nil {
		return err
	}
	if f.autoTools && f.toolParser == "" {
		return errors.New("--enable-auto-tool-choice needs --tool-call-parser hermes")
	}
	if f.toolParser != "" && f.toolParser != "hermes" {
		return fmt.Errorf("--tool-call-parser %q: strata has hermes (what Qwen3 emits)", f.toolParser)
	}
	if f.reasoningParser != "" && f.reasoningParser != "qwen3" {
		return fmt.Errorf("--reasoning-parser %q: strata has qwen3", f.reasoningParser)
	}
	if f.memUtil <= 0 || f.memUtil > 1 {
		return fmt.Errorf("--gpu-memory-utilization %v: want a share of RAM in (0, 1]", f.memUtil)
	}
	// Layout: one pipeline stage per node.
	nodes := f.pp
	switch {
	case f.localNodes > 0 && f.nnodes > 1:
		return errors.New("--local-nodes emulates every node in this process; it does not combine with --nnodes")
	case f.localNodes > 0:
		if fl.Changed("pipeline-parallel-size") && f.pp != f.localNodes {
			return fmt.Errorf("--local-nodes %d with --pipeline-parallel-size %d: strata runs one pipeline stage per node, so they must match", f.localNodes, f.pp)
		}
		nodes = f.localNodes
	case f.nnodes > 1:
		if fl.Changed("pipeline-parallel-size") && f.pp != f.nnodes {
			return fmt.Errorf("--nnodes %d with --pipeline-parallel-size %d: strata runs one pipeline stage per node, so they must match", f.nnodes, f.pp)
		}
		nodes = f.nnodes
	case f.pp > 1:
		return fmt.Errorf("--pipeline-parallel-size %d needs %d nodes: start one process per node with --nnodes %d --node-rank R --master-addr HOST, or emulate them with --local-nodes %d", f.pp, f.pp, f.pp, f.pp)
	}
	if f.headless && f.nnodes <= 1 {
		return errors.New("--headless is for worker nodes of a multi-node job (--nnodes N --node-rank R with R > 0)")
	}
	if f.nodeRank != 0 && !f.headless {
		return fmt.Errorf("--node-rank %d serves no API: add --headless (node 0 serves it)", f.nodeRank)
	}
	layout := pipeline.Layout{Nodes: nodes, TP: f.tp, ExpertParallel: f.expertParallel}
	cfg, err := qwen3.LoadConfig(f.model)
	if err != nil {
		return err
	}
	stages, err := pipeline.Plan(cfg, layout)
	if err != nil {
		return fmt.Errorf("cannot split %s as TP %d × PP %d: %w", f.model, f.tp, nodes, err)
	}

	// Memory: the weights this process holds, then the KV cache from what is left of the
	// RAM share, no more than max-num-seqs sequences of max-model-len need.
	maxLen := f.maxModelLen
	if maxLen == 0 {
		maxLen = cfg.MaxPositions
	}
	if maxLen < 1 {
		return fmt.Errorf("--max-model-len %d: want at least 1", maxLen)
	}
	localNodes := 1
	if f.localNodes > 0 {
		localNodes = f.localNodes
	}
	ranksHere := localNodes * f.tp
	weights := modelBytes(f.model) * int64(localNodes) / int64(nodes)
	budget := int64(f.memUtil * float64(totalRAM()))
	kvHeads := max(cfg.KVHeads/f.tp, 1)
	maxStage := 0
	for _, st := range stages {
		maxStage = max(maxStage, st[1]-st[0])
	}
	elem := int64(4)
	if kvType == kernels.BFloat16 {
		elem = 2
	}
	perBlock := int64(maxStage) * 2 * int64(f.blockSize) * int64(kvHeads*cfg.HeadDim) * elem
	kv := f.kvBytes
	if kv == 0 {
		left := budget - weights
		if left <= 0 {
			return fmt.Errorf("the model does not fit: this process holds %.2f GB of its weights and --gpu-memory-utilization %.2f allows %.2f GB of this machine's RAM", float64(weights)/1e9, f.memUtil, float64(budget)/1e9)
		}
		kv = left / int64(ranksHere)
		want := int64(f.maxNumSeqs) * int64((maxLen+f.blockSize-1)/f.blockSize) * perBlock
		kv = min(kv, want)
	}
	if kv/perBlock*int64(f.blockSize) < int64(maxLen) {
		if f.maxModelLen != 0 {
			return fmt.Errorf("the KV cache (%d bytes per rank) holds %d tokens, less than --max-model-len %d: raise --gpu-memory-utilization or --kv-cache-memory-bytes, or lower --max-model-len", kv, kv/perBlock*int64(f.blockSize), maxLen)
		}
		maxLen = int(kv / perBlock * int64(f.blockSize)) // shrink to what fits, as vLLM suggests
		if maxLen < 1 {
			return fmt.Errorf("the KV cache (%d bytes per rank) holds no block of %d tokens", kv, f.blockSize)
		}
	}
	cc, err := comm.ConfigFromEnv()
	if err != nil {
		return err
	}
	cc.Logger = log // the inter-node interface chosen, refused connections
	opts := pipeline.Options{Dir: f.model, Layout: layout, BlockSize: f.blockSize, KVBytesPerRank: kv, Precision: prec, KVCacheDType: kvType, Comm: cc}
	var job *pipeline.Job
	where := "this process"
	join := func(jctx context.Context) (*pipeline.Job, error) {
		return pipeline.JoinNode(jctx, opts, comm.JoinOptions{NodeRank: f.nodeRank, MasterAddr: net.JoinHostPort(f.masterAddr, fmt.Sprint(f.masterPort))})
	}
	if f.headless {
		log.Info("joining the cluster as a headless worker", "node_rank", f.nodeRank, "nnodes", f.nnodes, "master", net.JoinHostPort(f.masterAddr, fmt.Sprint(f.masterPort)))
		return runHeadless(ctx, log, join)
	}
	switch {
	case f.nnodes > 1:
		where = fmt.Sprintf("node %d of %d, master %s:%d", f.nodeRank, f.nnodes, f.masterAddr, f.masterPort)
		log.Info("joining the cluster", "node_rank", f.nodeRank, "nnodes", f.nnodes, "master", net.JoinHostPort(f.masterAddr, fmt.Sprint(f.masterPort)))
		job, err = pipeline.JoinNode(ctx, opts, comm.JoinOptions{NodeRank: f.nodeRank, MasterAddr: net.JoinHostPort(f.masterAddr, fmt.Sprint(f.masterPort))})
	default:
		if nodes > 1 {
			where = fmt.Sprintf("%d emulated nodes in this process, linked over loopback TCP", nodes)
		}
		job, err = pipeline.StartLocal(ctx, opts)
	}
	if err != nil {
		return err
	}
	cl := &clusterState{job: job}
	// the current job is closed last, after the runner and the supervisor have stopped
	defer func() { _ = cl.current().Close() }()
	for s, st := range stages {
		log.Info("pipeline stage", "stage", s, "node", s, "layers", fmt.Sprintf("%d-%d", st[0], st[1]-1), "tensor_parallel_ranks", f.tp)
	}
	log.Info("strata serve", "model", f.model, "nodes", nodes, "ranks", nodes*f.tp, "tp", f.tp, "pp", nodes, "where", where,
		"weights_here_gb", fmt.Sprintf("%.2f", float64(weights)/1e9), "kv_blocks", job.NumBlocks, "block_size", f.blockSize,
		"kv_tokens", job.NumBlocks*f.blockSize, "max_model_len", maxLen, "dtype", prec.String(), "kv_cache_dtype", kvType.String())
	engCfg := engine.Config{
		SchedulerConfig: engine.SchedulerConfig{MaxNumSeqs: f.maxNumSeqs, MaxNumBatchedTokens: f.maxBatched, ChunkedPrefill: f.chunkedPrefill, MaxModelLen: maxLen},
		BlockSize:       f.blockSize, PrefixCaching: f.prefixCaching,
	}
	eng, err := engine.NewWithExecutor(job.Driver, cfg.Vocab, job.NumBlocks, engCfg)
	if err != nil {
		return err
	}
	var tok *tokenizer.Tokenizer
	var tpl *chattemplate.Template
	if !f.skipTokens {
		if tok, err = loadTokenizer(f.model, "the server needs one to take and give text"); err != nil {
			return fmt.Errorf("%w (or serve with --skip-tokenizer-init)", err)
		}
		eng.SetTokenizer(tok)
		if tpl, err = loadChatTemplate(f.chatTemplate, f.model); err != nil {
			return err
		}
	}
	defaults, err := loadDefaults(f.generationConfig, f.model)
	if err != nil {
		return err
	}
	eos, err := eosIDs(f.model)
	if err != nil {
		return err
	}
	names := f.servedNames
	if len(names) == 0 {
		names = []string{f.model}
	}
	run := serve.NewRunner(eng)
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { run.Run(runCtx); close(runDone) }()
	defer func() { stopRun(); <-runDone }()
	if f.nnodes > 1 {
		// A node that dies takes the job with it; the survivors and the node's replacement
		// form a new one, and the server goes on with a fresh engine.
		supDone := make(chan struct{})
		defer func() { stopRun(); <-supDone }()
		go func() {
			defer close(supDone)
			cl.supervise(runCtx, log, join, func(j *pipeline.Job) error {
				e, err := engine.NewWithExecutor(j.Driver, cfg.Vocab, j.NumBlocks, engCfg)
				if err != nil {
					return err
				}
				if tok != nil {
					e.SetTokenizer(tok)
				}
				run.Replace(e)
				return nil
			})
		}()
	}
	srv := api.New(api.Config{
		ModelNames: names, ModelRoot: f.model, APIKey: f.apiKey, MaxModelLen: maxLen, Vocab: cfg.Vocab,
		Tokenizer: tok, Template: tpl, EOS: eos, Defaults: defaults,
		AutoTools: f.autoTools, ToolParser: f.toolParser, Reasoning: f.reasoningParser, Log: log,
		Health: cl.Err, Seed: f.seed,
	}, run)
	api.Version = version
	ln, err := net.Listen("tcp", net.JoinHostPort(f.host, fmt.Sprint(f.port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listening on port %d: %w (is another server there? pick another with --port)", f.port, err)
		}
		return fmt.Errorf("listening on %s port %d: %w (check --host: an address of this machine, or 0.0.0.0 for all)", f.host, f.port, err)
	}
	return serveHTTP(ctx, cmd, log, ln, srv.Handler())
}

// clusterState is the job the server runs on, replaced when a node dies and the cluster
// re-forms.
type clusterState struct {
	mu   sync.Mutex
	job  *pipeline.Job
	down error // set from a node's death until the new job is up
}

func (c *clusterState) current() *pipeline.Job {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.job
}

// Err is what /health reports: the job's failure, or that the cluster is re-forming.
func (c *clusterState) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down != nil {
		return c.down
	}
	return c.job.Err()
}

// supervise waits for the job to fail, then closes it and joins a new one (retrying until
// every node is back), and hands it to the server through install. It returns when ctx ends.
func (c *clusterState) supervise(ctx context.Context, log *slog.Logger, join func(context.Context) (*pipeline.Job, error), install func(*pipeline.Job) error) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		old := c.current()
		jerr := old.Err()
		if jerr == nil {
			continue
		}
		log.Error("the cluster lost a node; waiting for every node to rejoin", "err", jerr)
		c.mu.Lock()
		c.down = fmt.Errorf("a node is down (%v); waiting for every node to rejoin", jerr)
		c.mu.Unlock()
		_ = old.Close() // failed: no stop message goes out, the workers rejoin
		for {
			nj, err := join(ctx)
			if err == nil {
				if err = install(nj); err == nil {
					c.mu.Lock()
					c.job, c.down = nj, nil
					c.mu.Unlock()
					log.Info("the cluster is whole again", "kv_blocks", nj.NumBlocks)
					break
				}
				// abort rather than stop: the workers must rejoin, not shut down
				nj.Abort(fmt.Errorf("node 0 could not use the new job: %w", err))
				_ = nj.Close()
			}
			log.Warn("rejoining failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// runHeadless runs a worker node: it joins the job (retrying until node 0 is there), runs
// its stage until the driver stops the job, and when the job fails (a node died) joins the
// next one, so the cluster re-forms around a restarted node.
func runHeadless(ctx context.Context, log *slog.Logger, join func(context.Context) (*pipeline.Job, error)) error {
	for {
		var job *pipeline.Job
		for {
			var err error
			if job, err = join(ctx); err == nil {
				log.Info("joined the cluster; running this node's stage", "kv_blocks", job.NumBlocks)
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("joining failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
		errc := make(chan error, 1)
		go func() { errc <- job.Wait() }()
		var err error
		select {
		case err = <-errc:
		case <-ctx.Done():
			_ = job.Close()
			return nil
		}
		_ = job.Close()
		if err == nil {
			log.Info("the driver stopped the job")
			return nil
		}
		log.Error("the job failed; rejoining", "err", err)
	}
}

// serveHTTP serves until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, cmd *cobra.Command, log *slog.Logger, ln net.Listener, h http.Handler) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + ln.Addr().String()
	if host, port, err := net.SplitHostPort(ln.Addr().String()); err == nil && (host == "::" || host == "0.0.0.0") {
		url = "http://localhost:" + port
	}
	fmt.Fprintf(cmd.OutOrStdout(), "strata: serving on %s\ntry: curl %s/v1/completions -H 'Content-Type: application/json' -d '{\"prompt\": \"Hello\", \"max_tokens\": 16}'\n", url, url)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// loadChatTemplate reads --chat-template (a file, or the template itself) or the model's.
func loadChatTemplate(flag, dir string) (*chattemplate.Template, error) {
	if flag == "" {
		tpl, err := chattemplate.Load(filepath.Join(dir, "tokenizer_config.json"))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // no chat: /v1/chat/completions says so
		}
		return tpl, err
	}
	src := flag
	if b, err := os.ReadFile(flag); err == nil {
		src = string(b)
	} else if !strings.Contains(flag, "{") {
		return nil, fmt.Errorf("--chat-template %s: %w", flag, err)
	}
	return chattemplate.Parse(src)
}
