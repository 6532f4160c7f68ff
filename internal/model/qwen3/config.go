// Package qwen3 is the Qwen3 model family (Qwen3ForCausalLM and Qwen3MoeForCausalLM) as
// Hugging Face publishes it: config, weights, and the forward pass in the order it runs.
package qwen3

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/strata-ai/strata/internal/jsontype"
)

// Config is the subset of config.json the forward pass needs, with both key styles resolved
// (rope_theta / rope_parameters.rope_theta, num_experts / num_local_experts, torch_dtype /
// dtype).
type Config struct {
	Architecture     string
	Vocab            int
	Hidden           int
	Intermediate     int
	Layers           int
	Heads            int
	KVHeads          int
	HeadDim          int
	RMSEps           float64
	RopeTheta        float64
	TieEmbeddings    bool
	MaxPositions     int
	DType            string
	Experts          int   // 0 for dense models
	ExpertsPerTok    int   // top-k
	MoEIntermediate  int   // each expert's intermediate size
	NormTopK         bool  // renormalise the top-k router weights
	MLPOnlyLayers    []int // layers that keep a dense MLP in a MoE model
	SparseStep       int   // decoder_sparse_step
	BOSToken, EOSIDs []int
}

// ErrUnsupported marks a config strata cannot run (yet): the error says which key.
var ErrUnsupported = errors.New("unsupported model")

type rawConfig struct {
	Architectures         []string        `json:"architectures"`
	VocabSize             int             `json:"vocab_size"`
	HiddenSize            int             `json:"hidden_size"`
	IntermediateSize      *int            `json:"intermediate_size"`
	NumHiddenLayers       int             `json:"num_hidden_layers"`
	NumAttentionHeads     int             `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	RMSNormEps            float64         `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeParameters        *ropeParameters `json:"rope_parameters"`
	RopeScaling           *ropeParameters `json:"rope_scaling"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	TorchDType            string          `json:"torch_dtype"`
	DType                 string          `json:"dtype"`
	HiddenAct             string          `json:"hidden_act"`
	AttentionBias         bool            `json:"attention_bias"`
	UseSlidingWindow      bool            `json:"use_sliding_window"`
	LayerTypes            []string        `json:"layer_types"`
	NumExperts            *int            `json:"num_experts"`
	NumLocalExperts       *int            `json:"num_local_experts"`
	NumExpertsPerTok      *int            `json:"num_experts_per_tok"`
	MoEIntermediateSize   *int            `json:"moe_intermediate_size"`
	NormTopKProb          bool            `json:"norm_topk_prob"`
	MLPOnlyLayers         []int           `json:"mlp_only_layers"`
	DecoderSparseStep     *int            `json:"decoder_sparse_step"`
}

type ropeParameters struct {
	RopeType  string   `json:"rope_type"`
	Type      string   `json:"type"`
	RopeTheta *float64 `json:"rope_theta"`
}

// LoadConfig reads and checks dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	const want = "give the folder of a Hugging Face model (config.json, *.safetensors)"
	if st, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model folder %s does not exist: %s", dir, want)
	} else if err == nil && !st.IsDir() {
		return nil, fmt.Errorf("model folder %s is a file, not a folder: %s", dir, want)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("model folder %s has no config.json: %s", dir, want)
	}
	if err != nil {
		return nil, fmt.Errorf("model folder %s: %w", dir, err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig checks a config.json body.
func ParseConfig(b []byte) (*Config, error) {
	var r rawConfig
	if err := json.Unmarshal(b, &r); err != nil {
		if fe := jsontype.FieldError(err, &r); fe != nil {
			return nil, fe
		}
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	c := &Config{
		Vocab: r.VocabSize, Hidden: r.HiddenSize, Layers: r.NumHiddenLayers,
		Heads: r.NumAttentionHeads, RMSEps: r.RMSNormEps, DType: r.TorchDType, NormTopK: r.NormTopKProb,
		MLPOnlyLayers: r.MLPOnlyLayers, SparseStep: 1,
	}
	if len(r.Architectures) != 1 {
		return nil, fmt.Errorf("%w: architectures %v: want exactly one of Qwen3ForCausalLM, Qwen3MoeForCausalLM", ErrUnsupported, r.Architectures)
	}
	c.Architecture = r.Architectures[0]
	moe := c.Architecture == "Qwen3MoeForCausalLM"
	switch c.Architecture {
	case "Qwen3ForCausalLM", "Qwen3MoeForCausalLM":
	default:
		return nil, fmt.Errorf("%w: architecture %q (strata runs Qwen3ForCausalLM and Qwen3MoeForCausalLM)", ErrUnsupported, c.Architecture)
	}
	// keys a config leaves out (or sets to null) take transformers' defaults for its class:
	// Qwen3Config and Qwen3MoeConfig differ in a few
	orDefault := func(p *int, def int) int {
		if p != nil {
			return *p
		}
		return def
	}
	c.Intermediate = orDefault(r.IntermediateSize, 22016)
	if moe {
		c.Intermediate = orDefault(r.IntermediateSize, 6144)
	}
	c.KVHeads = orDefault(r.NumKeyValueHeads, c.Heads)
	if moe {
		c.KVHeads = orDefault(r.NumKeyValueHeads, 4)
	}
	c.HeadDim = orDefault(r.HeadDim, 128)
	if moe && r.HeadDim == nil && c.Heads > 0 { // Qwen3MoeConfig has no head_dim of its own
		c.HeadDim = c.Hidden / c.Heads
	}
	c.MaxPositions = orDefault(r.MaxPositionEmbeddings, 32768)
	if c.MaxPositions <= 0 {
		return nil, fmt.Errorf("max_position_embeddings is %d: it must be a positive number of positions", c.MaxPositions)
	}
	c.ExpertsPerTok = orDefault(r.NumExpertsPerTok, 8)
	c.MoEIntermediate = orDefault(r.MoEIntermediateSize, 768)
	if r.DType != "" {
		c.DType = r.DType
	}
	if r.TieWordEmbeddings != nil {
		c.TieEmbeddings = *r.TieWordEmbeddings
	}
	switch {
	case r.RopeParameters != nil && r.RopeParameters.RopeTheta != nil:
		c.RopeTheta = *r.RopeParameters.RopeTheta
	case r.RopeTheta != nil:
		c.RopeTheta = *r.RopeTheta
	default:
		c.RopeTheta = 10000
	}
	for _, rp := range []*ropeParameters{r.RopeScaling, r.RopeParameters} {
		if rp == nil {
			continue
		}
		t := rp.RopeType
		if t == "" {
			t = rp.Type
		}
		if t != "" && t != "default" {
			return nil, fmt.Errorf("%w: rope type %q (only default RoPE is implemented)", ErrUnsupported, t)
		}
	}
	if r.NumLocalExperts != nil {
		c.Experts = *r.NumLocalExperts
	} else if r.NumExperts != nil {
		c.Experts = *r.NumExperts
	} else if moe {
		c.Experts = 128
	}
	if r.DecoderSparseStep != nil {
		c.SparseStep = *r.DecoderSparseStep
	}
	if c.Architecture == "Qwen3ForCausalLM" {
		c.Experts = 0
	}
	if c.RMSEps == 0 {
		c.RMSEps = 1e-6
	}
	if !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) {
		return nil, fmt.Errorf("rope_theta is %g: it must be a positive number", c.RopeTheta)
	}
	if !(c.RMSEps > 0) || math.IsInf(c.RMSEps, 0) {
		return nil, fmt.Errorf("rms_norm_eps is %g: it must be a small positive number", c.RMSEps)
	}
	switch c.DType {
	case "", "auto", "bfloat16", "float16", "float32":
	default:
		return nil, fmt.Errorf("%w: dtype %q (want bfloat16, float16 or float32)", ErrUnsupported, c.DType)
	}
	switch {
	case r.HiddenAct != "" && r.HiddenAct != "silu":
		return nil, fmt.Errorf("%w: hidden_act %q (Qwen3 uses silu)", ErrUnsupported, r.HiddenAct)
	case r.AttentionBias:
		return nil, fmt.Errorf("%w: attention_bias true", ErrUnsupported)
	case r.UseSlidingWindow:
		return nil, fmt.Errorf("%w: use_sliding_window true (sliding-window attention is not implemented)", ErrUnsupported)
	}
	for i, t := range r.LayerTypes {
		if t != "full_attention" {
			return nil, fmt.Errorf("%w: layer_types[%d] is %q (only full_attention is implemented)", ErrUnsupported, i, t)
		}
	}
	for _, chk := range []struct {
		key string
		v   int
	}{{"vocab_size", c.Vocab}, {"hidden_size", c.Hidden}, {"num_hidden_layers", c.Layers},
		{"num_attention_heads", c.Heads}, {"num_key_value_heads", c.KVHeads}, {"head_dim", c.HeadDim}} {
		if chk.v <= 0 {
			return nil, fmt.Errorf("%s is %d: it must be positive", chk.key, chk.v)
		}
	}
	if c.Heads%c.KVHeads != 0 {
		return nil, fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.Heads, c.KVHeads)
	}
	if c.HeadDim%2 != 0 {
		return nil, fmt.Errorf("head_dim %d must be even for RoPE", c.HeadDim)
	}
	if c.Experts > 0 {
		if c.ExpertsPerTok <= 0 || c.ExpertsPerTok > c.Experts {
			return nil, fmt.Errorf("num_experts_per_tok %d must be between 1 and num_experts %d", c.ExpertsPerTok, c.Experts)
		}
		if c.MoEIntermediate <= 0 || c.SparseStep <= 0 {
			return nil, fmt.Errorf("moe_intermediate_size %d and decoder_sparse_step %d must be positive", c.MoEIntermediate, c.SparseStep)
		}
	}
	if c.Intermediate <= 0 {
		if c.Experts == 0 {
			return nil, fmt.Errorf("intermediate_size %d must be positive", c.Intermediate)
		}
		// a MoE model's dense layers (mlp_only_layers, or those decoder_sparse_step skips)
		// have an MLP of intermediate_size
		if i := c.FirstDense(); i >= 0 {
			return nil, fmt.Errorf("intermediate_size %d must be positive: layer %d is dense (mlp_only_layers %v, decoder_sparse_step %d)", c.Intermediate, i, c.MLPOnlyLayers, c.SparseStep)
		}
	}
	return c, nil
}

// FirstDense is the first layer with a plain MLP, or -1 if every layer is sparse. It does not
// walk the layers: a config may claim any number of them, and is refused for that only once
// the weights are looked at.
func (c *Config) FirstDense() int {
	if c.Layers <= 0 {
		return -1
	}
	if c.Experts == 0 || c.SparseStep > 1 { // layer 0 is sparse only if 1 % step == 0
		return 0
	}
	first := -1
	for _, l := range c.MLPOnlyLayers {
		if l >= 0 && l < c.Layers && (first < 0 || l < first) {
			first = l
		}
	}
	return first
}

// Weights is how many weight elements a checkpoint of this shape holds, as a float64: a
// config may claim any sizes, and this is how a caller learns that one cannot fit before
// allocating it.
func (c *Config) Weights() float64 {
	H, hd, V := float64(c.Hidden), float64(c.HeadDim), float64(c.Vocab)
	n := V*H + H // the embedding and the final norm
	if !c.TieEmbeddings {
		n += V * H
	}
	attn := 2*H + 2*float64(c.Heads)*hd*H + 2*float64(c.KVHeads)*hd*H + 2*hd
	sparse := float64(c.sparseLayers())
	dense := float64(c.Layers) - sparse
	expert := 3 * H * float64(c.MoEIntermediate)
	return n + float64(c.Layers)*attn + dense*3*H*float64(c.Intermediate) + sparse*float64(c.Experts)*(H+expert)
}

// sparseLayers counts the layers Sparse picks without walking them: every SparseStep-th,
// less those of mlp_only_layers among them.
func (c *Config) sparseLayers() int {
	if c.Experts == 0 || c.SparseStep <= 0 || c.Layers <= 0 {
		return 0
	}
	n := c.Layers / c.SparseStep
	seen := map[int]bool{}
	for _, l := range c.MLPOnlyLayers {
		if l >= 0 && l < c.Layers && (l+1)%c.SparseStep == 0 && !seen[l] {
			seen[l] = true
			n--
		}
	}
	return n
}

// Sparse reports whether layer i uses the mixture of experts (Hugging Face's rule).
func (c *Config) Sparse(i int) bool {
	if c.Experts == 0 {
		return false
	}
	for _, l := range c.MLPOnlyLayers {
		if l == i {
			return false
		}
	}
	return (i+1)%c.SparseStep == 0
}
