package qwen3ref

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/strata-ai/strata/internal/safetensors"
	"github.com/strata-ai/strata/internal/tensor"
)

// WriteRandom writes a model folder to dir: config.json as given, and random weights of its
// shape in dtype (F32, F16 or BF16), in one model.safetensors or, with shards > 1, in that many
// files with a model.safetensors.index.json. Projections are scaled to keep activations of
// order one, norms are near but not at one (so a norm applied to the wrong vector shows), and
// the router is spread enough that experts' probabilities differ.
func WriteRandom(dir, configJSON string, dtype safetensors.DType, shards int, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(configJSON), 0o644); err != nil {
		return err
	}
	c, err := ReadConfig(dir)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(seed, 7))
	var ts []safetensors.Tensor
	add := func(name string, std, mean float64, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]byte, n*dtype.Size())
		for i := range n {
			v := float32(mean + std*r.NormFloat64())
			switch dtype {
			case safetensors.F32:
				binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
			case safetensors.F16:
				binary.LittleEndian.PutUint16(data[2*i:], tensor.F32ToF16(v))
			default:
				binary.LittleEndian.PutUint16(data[2*i:], tensor.F32ToBF16(v))
			}
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: dtype, Shape: shape, Data: data})
	}
	proj := func(name string, out, in int) { add(name, 1/math.Sqrt(float64(in)), 0, out, in) }
	// The layers' outputs outweigh the embedding they are added to, or a tied model would
	// mostly predict its input token again and greedy decoding would repeat it.
	outProj := func(name string, out, in int) { add(name, 4/math.Sqrt(float64(in)), 0, out, in) }
	norm := func(name string, n int) { add(name, 0.1, 1, n) }
	// The tensor list is written out here rather than taken from qwen3.RandomTensors: the
	// folders test that package's loader, so their names and shapes come from the reference's
	// own reading of the config (and the scales differ per kind of tensor, which it has no say in).
	H, hd := c.Hidden, c.HeadDim
	add("model.embed_tokens.weight", 1, 0, c.Vocab, H)
	for l := range c.Layers {
		p := fmt.Sprintf("model.layers.%d", l)
		norm(p+".input_layernorm.weight", H)
		norm(p+".post_attention_layernorm.weight", H)
		proj(p+".self_attn.q_proj.weight", c.Heads*hd, H)
		proj(p+".self_attn.k_proj.weight", c.KVHeads*hd, H)
		proj(p+".self_attn.v_proj.weight", c.KVHeads*hd, H)
		outProj(p+".self_attn.o_proj.weight", H, c.Heads*hd)
		norm(p+".self_attn.q_norm.weight", hd)
		norm(p+".self_attn.k_norm.weight", hd)
		mlp := func(prefix string, inter int) {
			proj(prefix+".gate_proj.weight", inter, H)
			proj(prefix+".up_proj.weight", inter, H)
			outProj(prefix+".down_proj.weight", H, inter)
		}
		if c.sparse(l) {
			add(p+".mlp.gate.weight", 3/math.Sqrt(float64(H)), 0, c.Experts, H)
			for e := range c.Experts {
				mlp(fmt.Sprintf("%s.mlp.experts.%d", p, e), c.MoEInter)
			}
		} else {
			mlp(p+".mlp", c.Inter)
		}
	}
	norm("model.norm.weight", H)
	if !c.Tied {
		proj("lm_head.weight", c.Vocab, H)
	}
	if shards <= 1 {
		b, err := safetensors.Encode(ts, map[string]string{"format": "pt"})
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "model.safetensors"), b, 0o644)
	}
	weightMap := map[string]string{}
	total := 0
	for s := range shards {
		file := fmt.Sprintf("model-%05d-of-%05d.safetensors", s+1, shards)
		var part []safetensors.Tensor
		for i := s; i < len(ts); i += shards {
			part = append(part, ts[i])
			weightMap[ts[i].Name] = file
			total += len(ts[i].Data)
		}
		b, err := safetensors.Encode(part, map[string]string{"format": "pt"})
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
			return err
		}
	}
	idx, err := json.MarshalIndent(map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644)
}

// Variants are model shapes and folder layouts no golden file covers, as held-out checkpoints
// would bring them: the other config key style, one KV head (MQA), a KV group of three or
// five, MoE every second layer with unnormalised top-k and an mlp_only layer, tied and untied
// outputs, head_dim unequal to hidden/heads, sizes that are no multiple of the kernels' vector
// widths, f16, bf16 and f32 weights, one file and shards.
var Variants = []struct {
	Name   string
	Config string
	DType  safetensors.DType
	Shards int
}{
	{"dense-mqa-f16-newkeys", `{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 300,
		"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4,
		"num_key_value_heads": 1, "head_dim": 16, "rms_norm_eps": 1e-6, "max_position_embeddings": 512,
		"rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": false,
		"dtype": "float16", "hidden_act": "silu"}`, safetensors.F16, 1},
	{"moe-sparse2-unnormalised-sharded", `{"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
		"vocab_size": 256, "hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 4,
		"num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 8, "rms_norm_eps": 1e-6,
		"rope_theta": 1000000.0, "num_experts": 6, "num_experts_per_tok": 3, "moe_intermediate_size": 24,
		"decoder_sparse_step": 2, "norm_topk_prob": false, "mlp_only_layers": [3], "tie_word_embeddings": true,
		"torch_dtype": "bfloat16", "hidden_act": "silu", "max_position_embeddings": 512}`, safetensors.BF16, 2},
	{"moe-mqa-f32-newkeys", `{"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
		"vocab_size": 200, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
		"num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "rms_norm_eps": 1e-5,
		"rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}, "num_local_experts": 5,
		"num_experts_per_tok": 2, "moe_intermediate_size": 16, "norm_topk_prob": true, "mlp_only_layers": [],
		"tie_word_embeddings": false, "dtype": "float32", "hidden_act": "silu", "max_position_embeddings": 512}`, safetensors.F32, 1},
	{"dense-mha-bf16-3shards", `{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 320,
		"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
		"num_key_value_heads": 2, "head_dim": 32, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
		"tie_word_embeddings": true, "torch_dtype": "bfloat16", "hidden_act": "silu", "max_position_embeddings": 512}`, safetensors.BF16, 3},
	{"dense-gqa5-odd-sizes", `{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 131,
		"hidden_size": 40, "intermediate_size": 52, "num_hidden_layers": 2, "num_attention_heads": 5,
		"num_key_value_heads": 1, "head_dim": 12, "rms_norm_eps": 1e-6, "max_position_embeddings": 512,
		"rope_theta": 10000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "hidden_act": "silu"}`, safetensors.BF16, 1},
	{"moe-odd-sizes-sparse2", `{"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
		"vocab_size": 97, "hidden_size": 56, "intermediate_size": 60, "num_hidden_layers": 3,
		"num_attention_heads": 7, "num_key_value_heads": 7, "head_dim": 10, "rms_norm_eps": 1e-6,
		"rope_theta": 1000000.0, "num_experts": 7, "num_experts_per_tok": 3, "moe_intermediate_size": 20,
		"decoder_sparse_step": 2, "norm_topk_prob": false, "mlp_only_layers": [], "tie_word_embeddings": false,
		"torch_dtype": "bfloat16", "hidden_act": "silu", "max_position_embeddings": 512}`, safetensors.BF16, 1},
}
