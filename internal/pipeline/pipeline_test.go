package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/strata-ai/strata/internal/comm"
	"github.com/strata-ai/strata/internal/comm/store"
	"github.com/strata-ai/strata/internal/engine"
	"github.com/strata-ai/strata/internal/kernels"
	"github.com/strata-ai/strata/internal/model/qwen3"
	"github.com/strata-ai/strata/internal/safetensors"
	"github.com/strata-ai/strata/internal/sampling"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(kernels.HelperFunc))
}

type golden struct {
	Prompts [][]int `json:"prompts"`
	Greedy  [][]int `json:"greedy"`
}

func modelDir(name string) string { return filepath.Join("..", "..", "testdata", "models", name) }

func readGolden(t *testing.T, name string) golden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(modelDir(name), "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestSplitMatchesOneRank runs every TP ∈ {1, 2, 4} × PP ∈ {1, 2} on the dense and MoE test
// models (and, for MoE, with whole experts per rank) as in-process nodes linked over loopback
// TCP: the prefill logits of every golden
// prompt must be within 1e-3 of one rank's, and greedy decoding through the engine must give
// transformers' tokens.
func TestSplitMatchesOneRank(t *testing.T) {
	for _, name := range []string{"qwen3-dense-tiny", "qwen3-moe-tiny"} {
		dir := modelDir(name)
		g := readGolden(t, name)
		whole, err := qwen3.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, pp := range []int{1, 2} {
			for _, tp := range []int{1, 2, 4} {
				t.Run(fmt.Sprintf("%s/tp%d-pp%d", name, tp, pp), func(t *testing.T) {
					checkSplit(t, dir, whole, g, Layout{Nodes: pp, TP: tp})
				})
				if whole.Cfg.Experts > 0 && tp > 1 {
					t.Run(fmt.Sprintf("%s/tp%d-pp%d-expert-parallel", name, tp, pp), func(t *testing.T) {
						checkSplit(t, dir, whole, g, Layout{Nodes: pp, TP: tp, ExpertParallel: true})
					})
				}
			}
		}
		whole.Close()
	}
}

func checkSplit(t *testing.T, dir string, whole *qwen3.Model, g golden, l Layout) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cc := comm.DefaultConfig()
	cc.Timeout = 20 * time.Second
	job, err := StartLocal(ctx, Options{Dir: dir, Layout: l, BlockSize: 4, KVBytesPerRank: 8 << 20, Comm: cc})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := job.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	// prefill logits against one rank's, prompt by prompt, in scattered blocks
	ref := whole.NewPagedKV(job.NumBlocks, 4)
	for p, prompt := range g.Prompts {
		table := make([]int32, (len(prompt)+3)/4)
		for i := range table {
			table[i] = int32(2*i + p%2)
		}
		items := []qwen3.BatchItem{{Tokens: prompt, Table: table, WantLogits: true}}
		got, err := job.Driver.Forward(items)
		if err != nil {
			t.Fatal(err)
		}
		want, err := whole.ForwardBatch(ref, items)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for v := range want[0] {
			worst = math.Max(worst, math.Abs(float64(got[0][v]-want[0][v])))
		}
		if worst > 1e-3 {
			t.Fatalf("prompt %d: logits differ from one rank's by %.2g", p, worst)
		}
		// every position's logits (prompt logprobs) beside an item that wants only its last
		n := min(4, len(prompt))
		items = []qwen3.BatchItem{{Tokens: prompt[:n], Table: table, AllLogits: true}, {Tokens: prompt[:1], Table: []int32{int32(job.NumBlocks - 1)}, WantLogits: true}}
		got, err = job.Driver.Forward(items)
		if err != nil {
			t.Fatal(err)
		}
		want, err = whole.ForwardBatch(ref, items)
		if err != nil {
			t.Fatal(err)
		}
		if len(got[0]) != len(want[0]) || len(got[1]) != len(want[1]) || len(got[0]) != n*whole.Cfg.Vocab {
			t.Fatalf("prompt %d, AllLogits: %d and %d logits, want %d and %d", p, len(got[0]), len(got[1]), len(want[0]), len(want[1]))
		}
		for i := range got {
			for v := range want[i] {
				if d := math.Abs(float64(got[i][v] - want[i][v])); d > 1e-3 {
					t.Fatalf("prompt %d, AllLogits item %d: logit %d differs from one rank's by %.2g", p, i, v, d)
				}
			}
		}
	}
	// greedy decoding of all prompts together through the engine
	eng, err := engine.NewWithExecutor(job.Driver, job.Full.Vocab, job.NumBlocks, engine.Config{
		SchedulerConfig: engine.SchedulerConfig{MaxNumSeqs: 8, MaxNumBatchedTokens: 64, ChunkedPrefill: true, MaxModelLen: 256},
		BlockSize:       4,
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, prompt := range g.Prompts {
		if err := eng.Add(engine.Request{ID: fmt.Sprint(p), Prompt: prompt, MaxTokens: len(g.Greedy[p]), Sampling: sampling.Params{TopP: 1}, PromptLogprobs: 2}); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string][]int{}
	promptLP := map[string][]engine.PromptLogprob{}
	for eng.Pending() > 0 {
		evs, err := eng.Step()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if len(out[ev.ID]) == 0 {
				promptLP[ev.ID] = ev.PromptLogprobs
			}
			out[ev.ID] = append(out[ev.ID], ev.Token)
		}
	}
	for p, prompt := range g.Prompts {
		if got := promptLP[fmt.Sprint(p)]; len(got) != len(prompt)-1 || len(got) > 0 && got[len(got)-1].Token != prompt[len(prompt)-1] {
			t.Errorf("prompt %d: %d prompt logprobs through the split model, want %d", p, len(got), len(prompt)-1)
		}
	}
	for p := range g.Prompts {
		if fmt.Sprint(out[fmt.Sprint(p)]) != fmt.Sprint(g.Greedy[p]) {
			t.Errorf("prompt %d: greedy %v, transformers %v", p, out[fmt.Sprint(p)], g.Greedy[p])
		}
	}
}

// writeRandomModel writes a Hugging Face folder with random weights for config (a JSON
// object), so shapes the test models do not cover can be checked.
func writeRandomModel(t *testing.T, config map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := qwen3.ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), qwen3.RandomTensors(cfg, 5, 0.1), nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSplitOtherShapes: shapes the test models lack, against one rank: multi-query attention
// (one KV head, replicated across TP ranks), a vocabulary that does not divide (padded), the
// other config key style, untied embeddings; and a MoE with decoder_sparse_step 2 and
// unnormalised top-k, sliced and expert-parallel.
func TestSplitOtherShapes(t *testing.T) {
	mqa := map[string]any{
		"architectures": []string{"Qwen3ForCausalLM"}, "hidden_size": 64, "intermediate_size": 96,
		"num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16,
		"vocab_size": 301, "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
		"rope_parameters":     map[string]any{"rope_type": "default", "rope_theta": 10000.0},
		"tie_word_embeddings": false, "dtype": "bfloat16", "hidden_act": "silu",
	}
	moe := map[string]any{
		"architectures": []string{"Qwen3MoeForCausalLM"}, "hidden_size": 64, "intermediate_size": 128,
		"num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
		"vocab_size": 257, "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
		"tie_word_embeddings": true, "torch_dtype": "bfloat16", "hidden_act": "silu",
		"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "norm_topk_prob": false,
		"decoder_sparse_step": 2, "mlp_only_layers": []int{},
	}
	prompts := [][]int{{1, 2, 3}, {7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, {250, 4, 99, 3, 3, 3, 60}}
	for name, config := range map[string]map[string]any{"mqa": mqa, "moe-sparse-step-2": moe} {
		dir := writeRandomModel(t, config)
		whole, err := qwen3.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		var greedy [][]int
		for _, p := range prompts {
			g, err := whole.Greedy(p, 12)
			if err != nil {
				t.Fatal(err)
			}
			greedy = append(greedy, g)
		}
		g := golden{Prompts: prompts, Greedy: greedy}
		layouts := []Layout{{Nodes: 2, TP: 2}, {Nodes: 1, TP: 4}, {Nodes: 3, TP: 1}}
		if name != "mqa" {
			layouts = append(layouts, Layout{Nodes: 2, TP: 2, ExpertParallel: true})
		}
		for _, l := range layouts {
			t.Run(fmt.Sprintf("%s/tp%d-pp%d-ep%v", name, l.TP, l.Nodes, l.ExpertParallel), func(t *testing.T) {
				checkSplit(t, dir, whole, g, l)
			})
		}
		whole.Close()
	}
}

// TestLongStepIsNotADeadNode: a step that computes for longer than a link timeout on a later
// stage must not make the heartbeat declare that stage dead (its answer queues behind the
// step). The link timeout is set from this machine's speed: a third of one rank's time for
// the prefill, so each stage's half of it outlasts the timeout, and still fits the ten
// timeouts a compute wait is given; the prefill takes enough prompts that the timeout is not
// so short that starting the job on a busy machine outlasts it.
func TestLongStepIsNotADeadNode(t *testing.T) {
	dir := writeRandomModel(t, map[string]any{
		"architectures": []string{"Qwen3ForCausalLM"}, "hidden_size": 256, "intermediate_size": 768,
		"num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
		"vocab_size": 1024, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
		"tie_word_embeddings": true, "torch_dtype": "bfloat16", "hidden_act": "silu",
	})
	prompt := make([]int, 1500)
	for i := range prompt {
		prompt[i] = i % 1000
	}
	perSeq := (len(prompt) + 15) / 16
	batch := func(n int) []qwen3.BatchItem {
		items := make([]qwen3.BatchItem, n)
		for s := range items {
			table := make([]int32, perSeq)
			for i := range table {
				table[i] = int32(s*perSeq + i)
			}
			items[s] = qwen3.BatchItem{Tokens: prompt, Table: table, WantLogits: true}
		}
		return items
	}
	whole, err := qwen3.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := whole.ForwardBatch(whole.NewPagedKV(perSeq, 16), batch(1)); err != nil {
		t.Fatal(err)
	}
	one := time.Since(start)
	whole.Close()

	// The step takes as many prompts as make each stage's half outlast the link timeout. The
	// job starts under a deadline of its own: without one the short link timeout would also
	// bound the start, whose link measurement moves megabytes, and a busy machine (or the
	// race detector) stretches that past a quarter second.
	const minTimeout = 250 * time.Millisecond
	n := max(1, int((3*minTimeout+one-1)/one))
	items := batch(n)
	cc := comm.DefaultConfig()
	cc.Timeout = max(time.Duration(n)*one/3, minTimeout)
	startCtx, cancelStart := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelStart()
	job, err := StartLocal(startCtx, Options{Dir: dir, Layout: Layout{Nodes: 2, TP: 1}, BlockSize: 16,
		KVBytesPerRank: 256 << 20, Comm: cc, Heartbeat: cc.Timeout / 20})
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	start = time.Now()
	if _, err := job.Driver.Forward(items); err != nil {
		t.Fatalf("a %v step of %d prompts (one rank took %v for one, link timeout %v): %v", time.Since(start), n, one, cc.Timeout, err)
	}
	if err := job.Err(); err != nil {
		t.Fatalf("job failed after a long step: %v", err)
	}
}

// TestJoinRefusesMixedPrecisions: nodes started with different --kv-cache-dtype (or --dtype)
// would hold different block counts and compute differently; both refuse, naming the flag.
func TestJoinRefusesMixedPrecisions(t *testing.T) {
	cfg := comm.DefaultConfig()
	cfg.Timeout = 10 * time.Second
	jobs, errs := joinTwoNodes(t, func(n int) Options {
		o := Options{Dir: modelDir("qwen3-dense-tiny"), Layout: Layout{Nodes: 2, TP: 1}, BlockSize: 4, KVBytesPerRank: 1 << 20, Comm: cfg}
		if n == 1 {
			o.KVCacheDType = kernels.BFloat16
		}
		return o
	})
	for n, err := range errs {
		if jobs[n] != nil {
			jobs[n].Close()
		}
		if err == nil || !strings.Contains(err.Error(), "different --kv-cache-dtype") {
			t.Fatalf("nodes with float32 and bfloat16 KV caches: %v, want a refusal naming --kv-cache-dtype", err)
		}
	}
}

// joinTwoNodes runs JoinNode for nodes 0 and 1 at once, over an in-memory network and store,
// with the options opts gives each, and returns their jobs and errors.
func joinTwoNodes(t *testing.T, opts func(node int) Options) ([]*Job, []error) {
	t.Helper()
	w := comm.NewInmemNetwork()
	st := store.NewMem()
	t.Cleanup(func() { st.Close() })
	jobs := make([]*Job, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for n := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jobs[n], errs[n] = JoinNode(context.Background(), opts(n), comm.JoinOptions{NodeRank: n, Transport: w.Transport(), Store: st})
		}()
	}
	wg.Wait()
	return jobs, errs
}

// TestSlowCacheIsNotADeadNode: a node that takes several link timeouts to build its KV cache
// (a server's is many gigabytes) is not taken for dead by the driver's heartbeat: the driver
// starts only once every node's cache is ready, and the first step runs.
func TestSlowCacheIsNotADeadNode(t *testing.T) {
	cfg := comm.DefaultConfig()
	cfg.Timeout = 200 * time.Millisecond
	cfg.SkipCalibration = true
	testHookBuildCache = func(node int) {
		if node == 1 {
			<-time.After(3 * cfg.Timeout) // the slow node, not a synchronisation
		}
	}
	defer func() { testHookBuildCache = nil }()
	jobs, errs := joinTwoNodes(t, func(int) Options {
		return Options{Dir: modelDir("qwen3-dense-tiny"), Layout: Layout{Nodes: 2, TP: 1}, BlockSize: 4, KVBytesPerRank: 1 << 20, Comm: cfg, Heartbeat: cfg.Timeout / 20}
	})
	for n, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", n, err)
		}
		defer jobs[n].Close()
	}
	logits, err := jobs[0].Driver.Forward([]qwen3.BatchItem{{Tokens: []int{1, 2, 3}, Table: []int32{0}, WantLogits: true}})
	if err != nil {
		t.Fatalf("the first step after a slow cache: %v", err)
	}
	if len(logits) != 1 || len(logits[0]) != jobs[0].Full.Vocab {
		t.Fatalf("got %d logit rows", len(logits))
	}
	if err := jobs[0].Err(); err != nil {
		t.Fatalf("the job failed: %v", err)
	}
}
