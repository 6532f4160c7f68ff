package qwen3

import (
	"encoding/binary"
	"fmt"
	"github.com/strata-ai/strata/internal/hugepage"
	"math/rand/v2"

	"github.com/strata-ai/strata/internal/safetensors"
	"github.com/strata-ai/strata/internal/tensor"
)

// Random builds a model of cfg's shape with random bf16 weights in memory, for benchmarks
// that need a realistic size without a checkpoint on disk.
func Random(cfg *Config, seed uint64) (*Model, error) {
	ts := RandomTensors(cfg, seed, 0.02)
	img, err := safetensors.Encode(ts, nil)
	if err != nil {
		return nil, err
	}
	hugepage.Advise(img)
	ts = nil
	f, err := safetensors.FromBytes("random", img)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.NewSet("random", f)
	if err != nil {
		return nil, err
	}
	return build(cfg, set)
}

// RandomTensors are the checkpoint tensors (Hugging Face names, bf16) of a model of cfg's
// shape: weights drawn from N(0, std²), norms 1.
func RandomTensors(cfg *Config, seed uint64, std float64) []safetensors.Tensor {
	r := rand.New(rand.NewPCG(seed, 1))
	var ts []safetensors.Tensor
	add := func(name string, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]byte, 2*n)
		norm := len(shape) == 1
		for i := range n {
			v := float32(r.NormFloat64() * std)
			if norm {
				v = 1
			}
			binary.LittleEndian.PutUint16(data[2*i:], tensor.F32ToBF16(v))
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: safetensors.BF16, Shape: shape, Data: data})
	}
	H, hd := cfg.Hidden, cfg.HeadDim
	add("model.embed_tokens.weight", cfg.Vocab, H)
	for i := range cfg.Layers {
		p := fmt.Sprintf("model.layers.%d", i)
		add(p+".input_layernorm.weight", H)
		add(p+".post_attention_layernorm.weight", H)
		add(p+".self_attn.q_proj.weight", cfg.Heads*hd, H)
		add(p+".self_attn.k_proj.weight", cfg.KVHeads*hd, H)
		add(p+".self_attn.v_proj.weight", cfg.KVHeads*hd, H)
		add(p+".self_attn.o_proj.weight", H, cfg.Heads*hd)
		add(p+".self_attn.q_norm.weight", hd)
		add(p+".self_attn.k_norm.weight", hd)
		mlp := func(prefix string, inter int) {
			add(prefix+".gate_proj.weight", inter, H)
			add(prefix+".up_proj.weight", inter, H)
			add(prefix+".down_proj.weight", H, inter)
		}
		if cfg.Sparse(i) {
			add(p+".mlp.gate.weight", cfg.Experts, H)
			for e := range cfg.Experts {
				mlp(fmt.Sprintf("%s.mlp.experts.%d", p, e), cfg.MoEIntermediate)
			}
		} else {
			mlp(p+".mlp", cfg.Intermediate)
		}
	}
	add("model.norm.weight", H)
	if !cfg.TieEmbeddings {
		add("lm_head.weight", cfg.Vocab, H)
	}
	return ts
}

// WeightBytes is the size of every weight a decode step reads (the embedding table is read
// one row per token, so it counts only when tied to the output layer).
func (m *Model) WeightBytes() int64 { return m.denseWeightBytes() + m.expertWeightBytes(nil) }

// denseWeightBytes is what every forward pass reads: all weights but the MoE experts'.
func (m *Model) denseWeightBytes() int64 {
	var n int64
	lin := func(l *linear) {
		if l != nil {
			n += int64(len(l.data))
		}
	}
	for _, l := range m.layers {
		lin(l.q)
		lin(l.k)
		lin(l.v)
		lin(l.o)
		if l.dense != nil {
			lin(l.dense.gate)
			lin(l.dense.up)
			lin(l.dense.down)
		}
		lin(l.router)
	}
	lin(m.lmHead)
	return n
}

// expertWeightBytes is the size of the experts this shard holds, all of them when used is nil,
// else those with used[layer][expert].
func (m *Model) expertWeightBytes(used func(layer, expert int) bool) int64 {
	var n int64
	for li, l := range m.layers {
		for e := range l.experts {
			if used != nil && !used(li, e) {
				continue
			}
			n += l.experts[e].bytes()
		}
	}
	return n
}

func (p *mlp) bytes() int64 {
	var n int64
	for _, l := range []*linear{p.gate, p.up, p.down} {
		if l != nil {
			n += int64(len(l.data))
		}
	}
	return n
}

// MatmulProductsPerToken is how many multiply-adds the weight matmuls of one forward pass
// take per token that wants logits, on this shard: every dense weight's elements (the output
// layer's included, the embedding's not: it is a lookup), and in each MoE layer those of the
// experts_per_tok experts a token is routed to. A benchmark divides it by the step time for a
// compute rate.
func (m *Model) MatmulProductsPerToken() int64 {
	var n int64
	lin := func(l *linear) {
		if l != nil {
			n += int64(l.out) * int64(l.in)
		}
	}
	for _, l := range m.layers {
		lin(l.q)
		lin(l.k)
		lin(l.v)
		lin(l.o)
		if l.dense != nil {
			lin(l.dense.gate)
			lin(l.dense.up)
			lin(l.dense.down)
		}
		lin(l.router)
		if len(l.experts) > 0 {
			e := l.experts[0]
			per := int64(0)
			for _, x := range []*linear{e.gate, e.up, e.down} {
				if x != nil {
					per += int64(x.out) * int64(x.in)
				}
			}
			n += int64(min(m.Cfg.ExpertsPerTok, len(l.experts))) * per
		}
	}
	lin(m.lmHead)
	return n
}

// WeightBytesRead is how many bytes of weights the forward passes so far have read: every
// pass reads the layers' dense weights, a MoE layer only the experts its tokens chose, and the
// output layer only when some token wants logits. A benchmark takes the difference across a
// timed pass for its roofline.
func (m *Model) WeightBytesRead() int64 { return m.bytesRead.Load() }
