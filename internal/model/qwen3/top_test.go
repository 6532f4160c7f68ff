package qwen3

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/strata-ai/strata/internal/kernels"
)

// topIDs is the k tokens of row with the largest logits, ties to the lower id.
func topIDs(row []float32, k int) []int {
	ids := make([]int, len(row))
	for i := range ids {
		ids[i] = i
	}
	sort.SliceStable(ids, func(a, b int) bool { return row[ids[a]] > row[ids[b]] })
	return ids[:k]
}

// TestTopKLogits decodes a batch whose items read only their TopK largest logits beside items
// that read them all: the TopK largest must be the same tokens as in the full rows, with the
// same values to float32's rounding (on AMX, where a row's sums never depend on its batch,
// bit for bit), and every other logit below them; a greedy item alone picks the same token.
func TestTopKLogits(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 9000,
		"hidden_size": 128, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
		"num_key_value_heads": 2, "head_dim": 32, "rms_norm_eps": 1e-6, "max_position_embeddings": 256,
		"rope_theta": 10000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "hidden_act": "silu"}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Random(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	const seqs, perSeq, bs = 24, 2, 16
	r := rand.New(rand.NewPCG(1, 2))
	kv := m.NewPagedKV(seqs*perSeq, bs)
	prompts := make([][]int, seqs)
	items := make([]BatchItem, seqs)
	for s := range items {
		prompts[s] = make([]int, 5+s)
		for i := range prompts[s] {
			prompts[s][i] = r.IntN(cfg.Vocab)
		}
		items[s] = BatchItem{Tokens: prompts[s], Table: []int32{int32(2 * s), int32(2*s + 1)}, WantLogits: true}
	}
	full, err := m.ForwardBatch(kv, items)
	if err != nil {
		t.Fatal(err)
	}
	full = copyRows(full)
	// near reports whether a and b agree to float32's rounding, or bit for bit on AMX
	exact := kernels.Path() == "amx"
	near := func(a, b float32) bool {
		if exact {
			return math.Float32bits(a) == math.Float32bits(b)
		}
		return math.Abs(float64(a-b)) <= 1e-4*(1+math.Abs(float64(b)))
	}
	ks := []int{1, 0, 5, 1, 20, 256}
	for s := range items {
		items[s].TopK = ks[s%len(ks)]
	}
	// the same positions again: the cache holds the same keys and values
	top, err := m.ForwardBatch(kv, items)
	if err != nil {
		t.Fatal(err)
	}
	top = copyRows(top)
	for s := range items {
		k := items[s].TopK
		name := fmt.Sprintf("sequence %d (TopK %d)", s, k)
		if k == 0 {
			// the rows that read every logit may take another path than the whole batch did:
			// the same products, added in another order
			for i := range full[s] {
				if !near(top[s][i], full[s][i]) {
					t.Fatalf("%s: logit %d is %v, in the same batch without TopK %v", name, i, top[s][i], full[s][i])
				}
			}
			continue
		}
		want, got := topIDs(full[s], k), topIDs(top[s], k)
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("%s: the largest logits are tokens %v, want %v", name, got, want)
			}
			if !near(top[s][got[i]], full[s][want[i]]) {
				t.Errorf("%s: token %d's logit is %v, want %v", name, got[i], top[s][got[i]], full[s][want[i]])
			}
		}
		kth := top[s][got[k-1]]
		in := map[int]bool{}
		for _, id := range got {
			in[id] = true
		}
		for id, v := range top[s] {
			if !in[id] && !(v < kth) && !(v == kth && id > got[k-1]) {
				t.Fatalf("%s: token %d's logit %v is not below the %d largest (the last %v)", name, id, v, k, kth)
			}
		}
	}
	if !kernels.CheapBF16() {
		t.Log("no cheap bfloat16 products on this CPU: TopK rows were computed whole")
	}
	for _, s := range []int{0, 3} {
		one, err := m.ForwardBatch(kv, []BatchItem{items[s]})
		if err != nil {
			t.Fatal(err)
		}
		id := topIDs(top[s], 1)[0]
		if got := topIDs(one[0], 1)[0]; got != id {
			t.Fatalf("sequence %d alone: greedy token %d, in the batch %d", s, got, id)
		}
		if !near(one[0][id], top[s][id]) {
			t.Errorf("sequence %d alone: top logit %v, in the batch %v", s, one[0][id], top[s][id])
		}
	}
}

func copyRows(rows [][]float32) [][]float32 {
	out := make([][]float32, len(rows))
	for i, r := range rows {
		out[i] = append([]float32(nil), r...)
	}
	return out
}
