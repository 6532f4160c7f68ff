// Package qwen3ref is a test reference for the Qwen3 and Qwen3-MoE forward pass: a plain,
// sequential float64 transcription of Hugging Face transformers' modeling_qwen3.py and
// modeling_qwen3_moe.py, sharing nothing with package qwen3 but the safetensors reader. It
// reads its own config keys (both styles), runs one prompt position by position with a full
// causal attention, and is checked against transformers' golden logits before anything is
// checked against it. It also writes model folders with random weights of any shape, dtype
// and sharding, so tests can hold the engine to it on shapes no golden file covers.
//
// It is slow on purpose and meant for tiny models only.
package qwen3ref

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/strata-ai/strata/internal/safetensors"
	"github.com/strata-ai/strata/internal/tensor"
)

// Config is the part of config.json the reference reads.
type Config struct {
	Vocab, Hidden, Inter, Layers, Heads, KVHeads, HeadDim int
	Eps, Theta                                            float64
	DType                                                 string // torch_dtype or dtype
	Tied                                                  bool
	Experts, TopK, MoEInter, SparseStep                   int
	NormTopK                                              bool
	MLPOnly                                               map[int]bool
}

// ReadConfig reads dir/config.json in either key style: rope_theta or
// rope_parameters.rope_theta, num_experts or num_local_experts.
func ReadConfig(dir string) (*Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("qwen3ref: %s: %w", dir, err)
	}
	num := func(key string, def float64) float64 {
		if v, ok := raw[key].(float64); ok {
			return v
		}
		return def
	}
	c := &Config{
		Vocab: int(num("vocab_size", 0)), Hidden: int(num("hidden_size", 0)),
		Inter: int(num("intermediate_size", 0)), Layers: int(num("num_hidden_layers", 0)),
		Heads: int(num("num_attention_heads", 0)), Eps: num("rms_norm_eps", 1e-6),
		TopK: int(num("num_experts_per_tok", 0)), MoEInter: int(num("moe_intermediate_size", 0)),
		SparseStep: int(num("decoder_sparse_step", 1)), MLPOnly: map[int]bool{},
	}
	c.KVHeads = int(num("num_key_value_heads", float64(c.Heads)))
	c.HeadDim = int(num("head_dim", float64(c.Hidden/max(c.Heads, 1))))
	c.Theta = num("rope_theta", 10000)
	if rp, ok := raw["rope_parameters"].(map[string]any); ok {
		if v, ok := rp["rope_theta"].(float64); ok {
			c.Theta = v
		}
	}
	c.Experts = int(num("num_experts", num("num_local_experts", 0)))
	c.DType, _ = raw["torch_dtype"].(string)
	if d, ok := raw["dtype"].(string); ok {
		c.DType = d
	}
	c.Tied, _ = raw["tie_word_embeddings"].(bool)
	c.NormTopK, _ = raw["norm_topk_prob"].(bool)
	if l, ok := raw["mlp_only_layers"].([]any); ok {
		for _, v := range l {
			c.MLPOnly[int(v.(float64))] = true
		}
	}
	return c, nil
}

func (c *Config) sparse(layer int) bool {
	return c.Experts > 0 && !c.MLPOnly[layer] && (layer+1)%c.SparseStep == 0
}

// Model is a loaded reference model: every weight as float64.
type Model struct {
	Cfg *Config
	w   map[string][]float64
}

// Load reads a model folder (one file or shards with an index).
func Load(dir string) (*Model, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer set.Close()
	m := &Model{Cfg: cfg, w: map[string][]float64{}}
	for _, name := range set.Names() {
		_, f, err := set.Float32s(name)
		if err != nil {
			return nil, err
		}
		d := make([]float64, len(f))
		for i, v := range f {
			d[i] = float64(v)
		}
		m.w[name] = d
	}
	return m, nil
}

func (m *Model) get(name string) []float64 {
	w, ok := m.w[name]
	if !ok {
		panic("qwen3ref: no tensor " + name)
	}
	return w
}

// linear is x·Wᵀ for W of shape [len(W)/len(x), len(x)].
func linear(w, x []float64) []float64 {
	out := make([]float64, len(w)/len(x))
	for o := range out {
		s := 0.0
		for i, v := range x {
			s += w[o*len(x)+i] * v
		}
		out[o] = s
	}
	return out
}

func rmsNorm(x, w []float64, eps float64) []float64 {
	ss := 0.0
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = w[i] * v * r
	}
	return out
}

// rope rotates one head in place at position pos: rotate_half over the two halves. The angles
// are transformers' float32 ones, from inverse frequencies rounded to the checkpoint's dtype:
// the rotary buffer is cast with the model when a bf16 or f16 checkpoint is loaded, and stays
// rounded after the model is converted to float32.
func rope(x []float64, pos int, theta float64, dtype string) {
	half := len(x) / 2
	for i := range half {
		inv := float32(1 / math.Pow(theta, float64(2*i)/float64(len(x))))
		switch dtype {
		case "bfloat16":
			inv = tensor.BF16ToF32(tensor.F32ToBF16(inv))
		case "float16":
			inv = tensor.F16ToF32(tensor.F32ToF16(inv))
		}
		f := float64(float32(pos) * inv)
		c, s := math.Cos(f), math.Sin(f)
		a, b := x[i], x[i+half]
		x[i], x[i+half] = a*c-b*s, b*c+a*s
	}
}

func silu(v float64) float64 { return v / (1 + math.Exp(-v)) }

func (m *Model) mlp(prefix string, x []float64) []float64 {
	g := linear(m.get(prefix+".gate_proj.weight"), x)
	u := linear(m.get(prefix+".up_proj.weight"), x)
	for i := range g {
		g[i] = silu(g[i]) * u[i]
	}
	return linear(m.get(prefix+".down_proj.weight"), g)
}

// moe is Qwen3MoeSparseMoeBlock: softmax over all experts, the top k (ties to the lower
// index, as torch.topk on distinct values), renormalised when norm_topk_prob.
func (m *Model) moe(prefix string, x []float64) []float64 {
	c := m.Cfg
	logits := linear(m.get(prefix+".gate.weight"), x)
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, v)
	}
	p := make([]float64, len(logits))
	sum := 0.0
	for i, v := range logits {
		p[i] = math.Exp(v - mx)
		sum += p[i]
	}
	idx := make([]int, len(p))
	for i := range p {
		p[i] /= sum
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
	top := idx[:c.TopK]
	wsum := 0.0
	for _, e := range top {
		wsum += p[e]
	}
	out := make([]float64, len(x))
	for _, e := range top {
		wt := p[e]
		if c.NormTopK {
			wt /= wsum
		}
		y := m.mlp(fmt.Sprintf("%s.experts.%d", prefix, e), x)
		for i := range out {
			out[i] += wt * y[i]
		}
	}
	return out
}

// Logits runs tokens through the model and returns the logits at every position.
func (m *Model) Logits(tokens []int) [][]float64 {
	c := m.Cfg
	hd := c.HeadDim
	T := len(tokens)
	emb := m.get("model.embed_tokens.weight")
	h := make([][]float64, T)
	for t, id := range tokens {
		h[t] = append([]float64(nil), emb[id*c.Hidden:(id+1)*c.Hidden]...)
	}
	for l := range c.Layers {
		p := fmt.Sprintf("model.layers.%d", l)
		q := make([][]float64, T)
		k := make([][]float64, T)
		v := make([][]float64, T)
		for t := range T {
			x := rmsNorm(h[t], m.get(p+".input_layernorm.weight"), c.Eps)
			q[t] = linear(m.get(p+".self_attn.q_proj.weight"), x)
			k[t] = linear(m.get(p+".self_attn.k_proj.weight"), x)
			v[t] = linear(m.get(p+".self_attn.v_proj.weight"), x)
			for hh := range c.Heads {
				copy(q[t][hh*hd:], rmsNorm(q[t][hh*hd:(hh+1)*hd], m.get(p+".self_attn.q_norm.weight"), c.Eps))
				rope(q[t][hh*hd:(hh+1)*hd], t, c.Theta, c.DType)
			}
			for hh := range c.KVHeads {
				copy(k[t][hh*hd:], rmsNorm(k[t][hh*hd:(hh+1)*hd], m.get(p+".self_attn.k_norm.weight"), c.Eps))
				rope(k[t][hh*hd:(hh+1)*hd], t, c.Theta, c.DType)
			}
		}
		group := c.Heads / c.KVHeads
		for t := range T {
			attn := make([]float64, c.Heads*hd)
			for hh := range c.Heads {
				kvh := hh / group // repeat_kv
				qh := q[t][hh*hd : (hh+1)*hd]
				sc := make([]float64, t+1)
				mx := math.Inf(-1)
				for s := 0; s <= t; s++ {
					d := 0.0
					for i := range hd {
						d += qh[i] * k[s][kvh*hd+i]
					}
					sc[s] = d / math.Sqrt(float64(hd))
					mx = math.Max(mx, sc[s])
				}
				sum := 0.0
				for s := range sc {
					sc[s] = math.Exp(sc[s] - mx)
					sum += sc[s]
				}
				for s := range sc {
					for i := range hd {
						attn[hh*hd+i] += sc[s] / sum * v[s][kvh*hd+i]
					}
				}
			}
			o := linear(m.get(p+".self_attn.o_proj.weight"), attn)
			for i := range o {
				h[t][i] += o[i]
			}
			x := rmsNorm(h[t], m.get(p+".post_attention_layernorm.weight"), c.Eps)
			var y []float64
			if c.sparse(l) {
				y = m.moe(p+".mlp", x)
			} else {
				y = m.mlp(p+".mlp", x)
			}
			for i := range y {
				h[t][i] += y[i]
			}
		}
	}
	head := "lm_head.weight"
	if c.Tied {
		head = "model.embed_tokens.weight"
	}
	out := make([][]float64, T)
	for t := range T {
		out[t] = linear(m.get(head), rmsNorm(h[t], m.get("model.norm.weight"), c.Eps))
	}
	return out
}

// Greedy appends n tokens to prompt, each the argmax of the last logits, and returns them with
// the gap between the best and second-best logit at each choice (a small gap means a float32
// engine may choose the other one without being wrong).
func (m *Model) Greedy(prompt []int, n int) (toks []int, gaps []float64) {
	seq := append([]int(nil), prompt...)
	for range n {
		logits := m.Logits(seq)
		last := logits[len(logits)-1]
		best, second := 0, -1
		for i := 1; i < len(last); i++ {
			switch {
			case last[i] > last[best]:
				best, second = i, best
			case second < 0 || last[i] > last[second]:
				second = i
			}
		}
		toks = append(toks, best)
		gaps = append(gaps, last[best]-last[second])
		seq = append(seq, best)
	}
	return toks, gaps
}
