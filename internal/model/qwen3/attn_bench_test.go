package qwen3

import (
	"fmt"
	"testing"
)

// BenchmarkDecodeAttention is one batch-32 decode step of a model whose time goes mostly to
// attention: Qwen3-0.6B's attention (16 query heads and 8 KV heads of 128, a float32 cache)
// over a short residual stream (hidden 256) and a small MLP and vocabulary, 4 layers, at
// 64 and 512 cached tokens per sequence.
func BenchmarkDecodeAttention(b *testing.B) {
	cfg, err := ParseConfig([]byte(`{"architectures": ["Qwen3ForCausalLM"], "head_dim": 128, "hidden_act": "silu",
		"hidden_size": 256, "intermediate_size": 64, "max_position_embeddings": 4096, "model_type": "qwen3",
		"num_attention_heads": 16, "num_hidden_layers": 4, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
		"rope_theta": 1000000, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "vocab_size": 512}`))
	if err != nil {
		b.Fatal(err)
	}
	m, err := Random(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	const batch, bs = 32, 16
	for _, ctx := range []int{64, 512} {
		b.Run(fmt.Sprintf("ctx%d", ctx), func(b *testing.B) {
			kv, items := decodeBatch(b, m, batch, ctx, bs)
			b.ResetTimer()
			for range b.N {
				if _, err := m.ForwardBatch(kv, items); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// decodeBatch fills a cache of batch sequences of ctx tokens each (blocks of bs) and returns
// the items of a decode step after them; every call of the step decodes the same position
// again, so each costs what a step at this context costs.
func decodeBatch(b *testing.B, m *Model, batch, ctx, bs int) (*PagedKV, []BatchItem) {
	b.Helper()
	perSeq := (ctx + 1 + bs - 1) / bs
	kv := m.NewPagedKV(perSeq*batch, bs)
	items := make([]BatchItem, batch)
	for s := range items {
		table := make([]int32, perSeq)
		for i := range table {
			table[i] = int32(s*perSeq + i)
		}
		toks := make([]int, ctx)
		for i := range toks {
			toks[i] = (s*31 + i*7) % m.Cfg.Vocab
		}
		items[s] = BatchItem{Tokens: toks, Table: table}
	}
	if _, err := m.ForwardBatch(kv, items); err != nil {
		b.Fatal(err)
	}
	for s := range items {
		items[s] = BatchItem{Tokens: []int{s}, Start: ctx, Table: items[s].Table, WantLogits: true}
	}
	return kv, items
}
