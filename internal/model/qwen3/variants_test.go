package qwen3

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/strata-ai/strata/internal/kernels"
	"github.com/strata-ai/strata/internal/model/qwen3ref"
	"github.com/strata-ai/strata/internal/safetensors"
)

// TestVariantsMatchReference loads every variant as a user's folder and holds both forward
// paths to the float64 reference (itself held to transformers by qwen3ref's tests): the
// whole-prompt pass's logits at every position and the paged, batched path's logits after
// each chunk of a chunked prefill, within 1e-3; and greedy decoding's tokens, up to the first
// near tie in the reference.
func TestVariantsMatchReference(t *testing.T) {
	for vi, v := range qwen3ref.Variants {
		t.Run(v.Name, func(t *testing.T) {
			ref, m, prompt, want := againstReference(t, v.Config, v.DType, v.Shards, uint64(vi+1), 21, uint64(vi), 3)
			spread := 0.0
			check := func(what string, pos int, got []float32) {
				t.Helper()
				worst, most := maxDiff(got, want[pos])
				spread = math.Max(spread, most)
				if worst > 1e-3 {
					t.Fatalf("%s position %d: logits differ from the reference by %.2g", what, pos, worst)
				}
			}
			out, err := m.Forward(prompt)
			if err != nil {
				t.Fatal(err)
			}
			for p, row := range out.Logits {
				check("whole prompt", p, row)
			}
			if spread < 1 {
				t.Fatalf("the logits reach only %.2g: the test would not see a wrong layer", spread)
			}
			const bs = 4
			kv := m.NewPagedKV(32, bs)
			table := make([]int32, (len(prompt)+bs-1)/bs)
			for i := range table {
				table[i] = int32(31 - 3*i) // scattered blocks
			}
			for start, chunk := 0, 1; start < len(prompt); start, chunk = start+chunk, chunk%5+1 {
				end := min(start+chunk, len(prompt))
				lg, err := m.ForwardBatch(kv, []BatchItem{{Tokens: prompt[start:end], Start: start, Table: table, WantLogits: true}})
				if err != nil {
					t.Fatal(err)
				}
				check(fmt.Sprintf("paged chunk %d..%d", start, end), end-1, lg[0])
			}
			wantToks, gaps := ref.Greedy(prompt[:8], 10)
			got, err := m.Greedy(prompt[:8], 10)
			if err != nil {
				t.Fatal(err)
			}
			for i := range wantToks {
				if got[i] != wantToks[i] {
					if gaps[i] > 1e-3 {
						t.Fatalf("greedy token %d: got %d, the reference chose %d (by %.2g)", i, got[i], wantToks[i], gaps[i])
					}
					break
				}
			}
		})
	}
}

// TestWideShapesBatched holds shapes past the kernels' column blocks (rows longer than 1024,
// by amounts that are no multiple of a vector) to the float64 reference, through the
// whole-prompt pass and through one batched step of 33 sequences of different lengths, which
// takes the three-by-eight kernels, their remainders and the prefill path at once.
func TestWideShapesBatched(t *testing.T) {
	wide := []struct{ name, config string }{
		{"dense", `{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 70,
			"hidden_size": 1096, "intermediate_size": 1100, "num_hidden_layers": 1, "num_attention_heads": 9,
			"num_key_value_heads": 3, "head_dim": 136, "rms_norm_eps": 1e-6, "max_position_embeddings": 512,
			"rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "hidden_act": "silu"}`},
		{"moe", `{"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
			"vocab_size": 77, "hidden_size": 1032, "intermediate_size": 60, "num_hidden_layers": 1,
			"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 264, "rms_norm_eps": 1e-6,
			"rope_theta": 1000000.0, "num_experts": 5, "num_experts_per_tok": 2, "moe_intermediate_size": 1050,
			"norm_topk_prob": true, "tie_word_embeddings": true,
			"torch_dtype": "bfloat16", "hidden_act": "silu", "max_position_embeddings": 512}`},
	}
	for wi, w := range wide {
		t.Run(w.name, func(t *testing.T) {
			_, m, prompt, want := againstReference(t, w.config, safetensors.BF16, 1, uint64(wi+11), 37, uint64(wi), 5)
			check := func(what string, pos int, got []float32) {
				t.Helper()
				if worst, _ := maxDiff(got, want[pos]); worst > 1e-3 {
					t.Errorf("%s position %d: logits differ from the reference by %.2g", what, pos, worst)
				}
			}
			out, err := m.Forward(prompt)
			if err != nil {
				t.Fatal(err)
			}
			for p, row := range out.Logits {
				check("whole prompt", p, row)
			}
			const bs = 4
			kv := m.NewPagedKV(33*2, bs)
			var items []BatchItem
			for s := range 33 {
				n := 1 + s%7 // every sequence is a prefix of the prompt: its logits are the prompt's
				items = append(items, BatchItem{Tokens: prompt[:n], Table: []int32{int32(2 * s), int32(2*s + 1)}, WantLogits: true})
			}
			lg, err := m.ForwardBatch(kv, items)
			if err != nil {
				t.Fatal(err)
			}
			for s, it := range items {
				check(fmt.Sprintf("batched sequence %d", s), len(it.Tokens)-1, lg[s])
			}
		})
	}
}

// againstReference writes a random folder of config, loads it into the float64 reference and
// into the model (closed when the test ends), and gives a random prompt of n tokens and the
// reference's logits for it.
func againstReference(t *testing.T, config string, dtype safetensors.DType, shards int, seed uint64, n int, promptSeed, stream uint64) (*qwen3ref.Model, *Model, []int, [][]float64) {
	t.Helper()
	dir := t.TempDir()
	if err := qwen3ref.WriteRandom(dir, config, dtype, shards, seed); err != nil {
		t.Fatal(err)
	}
	ref, err := qwen3ref.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	r := rand.New(rand.NewPCG(promptSeed, stream))
	prompt := make([]int, n)
	for i := range prompt {
		prompt[i] = r.IntN(m.Cfg.Vocab)
	}
	return ref, m, prompt, ref.Logits(prompt)
}

// maxDiff is the largest absolute difference between got and want, and want's largest
// magnitude.
func maxDiff(got []float32, want []float64) (worst, most float64) {
	for j, g := range got {
		worst = math.Max(worst, math.Abs(float64(g)-want[j]))
		most = math.Max(most, math.Abs(want[j]))
	}
	return worst, most
}

// TestDecodeBatchMatchesReference decodes one token for each of twelve sequences in one step,
// after prompts of 9 to 20 tokens cached in blocks of four. With two cores, attention then
// takes each sequence's three KV heads in one unit and reads its three to six blocks block by
// block. The logits must be the float64 reference's (float32 cache), and those of a fresh
// prefill of the same tokens (either cache type), within 1e-3.
func TestDecodeBatchMatchesReference(t *testing.T) {
	kernels.SetThreads(2) // twelve one-row groups then make units of all three KV heads
	t.Cleanup(func() { kernels.SetThreads(0) })
	const config = `{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 70,
		"hidden_size": 96, "intermediate_size": 80, "num_hidden_layers": 2, "num_attention_heads": 9,
		"num_key_value_heads": 3, "head_dim": 40, "rms_norm_eps": 1e-6, "max_position_embeddings": 512,
		"rope_theta": 10000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "hidden_act": "silu"}`
	_, m, prompt, want := againstReference(t, config, safetensors.BF16, 1, 21, 24, 5, 7)
	const bs, seqs, perSeq = 4, 12, 6
	for _, dt := range []kernels.Precision{kernels.Float32, kernels.BFloat16} {
		m.SetKVCacheDType(dt)
		kv := m.NewPagedKV(seqs*perSeq, bs)
		items := make([]BatchItem, seqs)
		for s := range items {
			table := make([]int32, perSeq)
			for i := range table {
				table[i] = int32(seqs*perSeq - 1 - (i*seqs + s)) // scattered, interleaved blocks
			}
			items[s] = BatchItem{Tokens: prompt[:9+s], Table: table}
		}
		if _, err := m.ForwardBatch(kv, items); err != nil {
			t.Fatal(err)
		}
		for s := range items {
			n := 9 + s
			items[s] = BatchItem{Tokens: prompt[n : n+1], Start: n, Table: items[s].Table, WantLogits: true}
		}
		lg, err := m.ForwardBatch(kv, items)
		if err != nil {
			t.Fatal(err)
		}
		for s := range items {
			n := 9 + s
			if worst, _ := maxDiff(lg[s], want[n]); dt == kernels.Float32 && worst > 1e-3 {
				t.Errorf("%v cache, sequence %d: decoded logits differ from the reference by %.2g", dt, s, worst)
			}
			fresh := m.NewPagedKV(perSeq, bs)
			one, err := m.ForwardBatch(fresh, []BatchItem{{Tokens: prompt[:n+1], Table: []int32{0, 1, 2, 3, 4, 5}, WantLogits: true}})
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for j := range one[0] {
				worst = math.Max(worst, math.Abs(float64(lg[s][j]-one[0][j])))
			}
			if worst > 1e-3 {
				t.Errorf("%v cache, sequence %d: decoded logits differ from a fresh prefill's by %.2g", dt, s, worst)
			}
		}
	}
}
