package qwen3

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-ai/strata/internal/model/qwen3ref"
	"github.com/strata-ai/strata/internal/safetensors"
)

const denseDir = "../../../testdata/models/qwen3-dense-tiny"

func readConfig(t *testing.T, dir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func parse(t *testing.T, m map[string]any) (*Config, error) {
	t.Helper()
	b, _ := json.Marshal(m)
	return ParseConfig(b)
}

// TestConfigKeyStyles: published checkpoints' keys and newer transformers' keys mean the same.
func TestConfigKeyStyles(t *testing.T) {
	old := readConfig(t, "../../../testdata/models/qwen3-moe-tiny")
	a, err := parse(t, old)
	if err != nil {
		t.Fatal(err)
	}
	neu := readConfig(t, "../../../testdata/models/qwen3-moe-tiny")
	neu["rope_parameters"] = map[string]any{"rope_type": "default", "rope_theta": neu["rope_theta"]}
	delete(neu, "rope_theta")
	neu["num_local_experts"] = neu["num_experts"]
	delete(neu, "num_experts")
	neu["dtype"] = neu["torch_dtype"]
	delete(neu, "torch_dtype")
	b, err := parse(t, neu)
	if err != nil {
		t.Fatal(err)
	}
	if a.RopeTheta != 1e6 || a.Experts != 8 || a.DType != "bfloat16" {
		t.Fatalf("published keys read as %+v", a)
	}
	if a.RopeTheta != b.RopeTheta || a.Experts != b.Experts || a.DType != b.DType {
		t.Fatalf("key styles disagree: %+v vs %+v", a, b)
	}
	if a.Sparse(0) || !a.Sparse(1) {
		t.Fatalf("mlp_only_layers [0]: layer 0 must be dense, layer 1 sparse")
	}
}

// TestConfigDefaults: keys a config leaves out take transformers' defaults for its class
// (Qwen3Config, Qwen3MoeConfig), which differ in places: an untied output layer in both,
// num_key_value_heads the heads' count (dense) or 4 (MoE), head_dim 128 (dense) or
// hidden/heads (MoE, which has no default of its own), intermediate_size 22016 (dense) or
// 6144 (MoE).
func TestConfigDefaults(t *testing.T) {
	dense := readConfig(t, denseDir)
	for _, k := range []string{"num_key_value_heads", "head_dim", "tie_word_embeddings", "max_position_embeddings", "rope_theta", "rms_norm_eps", "intermediate_size"} {
		delete(dense, k)
	}
	dense["num_key_value_heads"] = nil
	d, err := parse(t, dense)
	if err != nil {
		t.Fatal(err)
	}
	if d.KVHeads != d.Heads || d.HeadDim != 128 || d.TieEmbeddings || d.MaxPositions != 32768 || d.RopeTheta != 10000 || d.RMSEps != 1e-6 || d.Intermediate != 22016 {
		t.Errorf("dense defaults: %+v", d)
	}
	moe := readConfig(t, "../../../testdata/models/qwen3-moe-tiny")
	for _, k := range []string{"num_key_value_heads", "head_dim", "tie_word_embeddings", "num_experts", "num_experts_per_tok", "moe_intermediate_size", "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers", "intermediate_size"} {
		delete(moe, k)
	}
	m, err := parse(t, moe)
	if err != nil {
		t.Fatal(err)
	}
	if m.KVHeads != 4 || m.HeadDim != m.Hidden/m.Heads || m.TieEmbeddings || m.Experts != 128 || m.ExpertsPerTok != 8 ||
		m.MoEIntermediate != 768 || m.NormTopK || m.SparseStep != 1 || len(m.MLPOnlyLayers) != 0 || m.Intermediate != 6144 {
		t.Errorf("MoE defaults: %+v", m)
	}
}

func TestConfigRefusals(t *testing.T) {
	cases := []struct {
		mut  func(m map[string]any)
		want string
	}{
		{func(m map[string]any) { m["architectures"] = []string{"LlamaForCausalLM"} }, "LlamaForCausalLM"},
		{func(m map[string]any) { m["use_sliding_window"] = true }, "use_sliding_window"},
		{func(m map[string]any) { m["rope_scaling"] = map[string]any{"rope_type": "yarn", "factor": 4} }, "yarn"},
		{func(m map[string]any) { m["hidden_act"] = "gelu" }, "gelu"},
		{func(m map[string]any) { m["num_key_value_heads"] = 3 }, "multiple"},
		{func(m map[string]any) { m["hidden_size"] = 0 }, "hidden_size"},
		{func(m map[string]any) { m["layer_types"] = []string{"sliding_attention"} }, "layer_types"},
		{func(m map[string]any) { m["rope_theta"] = 0 }, "rope_theta"},
		{func(m map[string]any) { m["rope_parameters"] = map[string]any{"rope_theta": -5} }, "rope_theta"},
		{func(m map[string]any) { m["rms_norm_eps"] = -1 }, "rms_norm_eps"},
		{func(m map[string]any) { m["torch_dtype"] = "int8" }, "int8"},
		{func(m map[string]any) { m["dtype"] = "float8_e4m3fn" }, "float8_e4m3fn"},
		{func(m map[string]any) { m["max_position_embeddings"] = 0 }, "max_position_embeddings is 0"},
		// a key of the wrong JSON type is named with what it should hold, not Go's types
		{func(m map[string]any) { m["hidden_size"] = "64" }, "hidden_size: got a JSON string, want an integer"},
		{func(m map[string]any) { m["rope_parameters"] = map[string]any{"rope_theta": "big"} }, "rope_parameters.rope_theta: got a JSON string, want a number"},
		{func(m map[string]any) { m["mlp_only_layers"] = []any{"x"} }, "mlp_only_layers"},
	}
	for _, c := range cases {
		m := readConfig(t, denseDir)
		c.mut(m)
		if _, err := parse(t, m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error naming %q, got %v", c.want, err)
		}
	}
	if _, err := ParseConfig([]byte("{not json")); err == nil {
		t.Error("bad JSON accepted")
	}
	// a MoE model's dense layers need a positive intermediate_size like a dense model's
	m := readConfig(t, "../../../testdata/models/qwen3-moe-tiny")
	m["mlp_only_layers"] = []int{0}
	m["intermediate_size"] = 0
	if _, err := parse(t, m); err == nil || !strings.Contains(err.Error(), "layer 0 is dense") {
		t.Errorf("a MoE config with a dense layer and intermediate_size 0: got %v", err)
	}
	m["mlp_only_layers"] = []int{}
	if _, err := parse(t, m); err != nil {
		t.Errorf("a MoE config with no dense layer needs no intermediate_size: %v", err)
	}
}

// TestLoadRefusesBadFolders: missing, misshapen and extra tensors, truncated weights and a
// missing config each fail with an error naming the file or tensor.
func TestLoadRefusesBadFolders(t *testing.T) {
	src, err := safetensors.OpenDir(denseDir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var all []safetensors.Tensor
	for _, n := range src.Names() {
		info, b, _ := src.Bytes(n)
		all = append(all, safetensors.Tensor{Name: n, DType: info.DType, Shape: info.Shape, Data: append([]byte(nil), b...)})
	}
	cfg, _ := os.ReadFile(filepath.Join(denseDir, "config.json"))
	folder := func(ts []safetensors.Tensor) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
		if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	without := func(name string) []safetensors.Tensor {
		var out []safetensors.Tensor
		for _, x := range all {
			if x.Name != name {
				out = append(out, x)
			}
		}
		return out
	}
	reshaped := without("model.layers.1.self_attn.k_proj.weight")
	reshaped = append(reshaped, safetensors.Tensor{Name: "model.layers.1.self_attn.k_proj.weight", DType: safetensors.BF16, Shape: []int{32, 64}, Data: make([]byte, 32*64*2)})
	extra := append(append([]safetensors.Tensor(nil), all...), safetensors.Tensor{Name: "model.layers.9.mlp.gate.weight", DType: safetensors.F32, Shape: []int{1}, Data: make([]byte, 4)})
	cases := map[string]struct {
		dir  string
		want string
	}{
		"missing":  {folder(without("model.layers.2.mlp.up_proj.weight")), "model.layers.2.mlp.up_proj.weight"},
		"reshaped": {folder(reshaped), "model.layers.1.self_attn.k_proj.weight has shape [32 64]"},
		"extra":    {folder(extra), "model.layers.9.mlp.gate.weight"},
		"no config": {func() string {
			d := folder(all)
			os.Remove(filepath.Join(d, "config.json"))
			return d
		}(), "config.json"},
		"truncated": {func() string {
			d := folder(all)
			p := filepath.Join(d, "model.safetensors")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
			return d
		}(), "model.safetensors"},
	}
	// a config that claims far more layers (or, for MoE, experts) than the folder holds is
	// refused at the first missing tensor, not after walking every claimed one
	claims := func(src, key string, n int, want string) {
		d := t.TempDir()
		for _, f := range []string{"config.json", "model.safetensors"} {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		m := readConfig(t, d)
		m[key] = n
		b, _ := json.Marshal(m)
		if err := os.WriteFile(filepath.Join(d, "config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		cases["claims "+key] = struct {
			dir  string
			want string
		}{d, want}
	}
	claims(denseDir, "num_hidden_layers", 1<<40, "model.layers.4.input_layernorm.weight")
	claims("../../../testdata/models/qwen3-moe-tiny", "num_experts", 1<<40, "mlp.gate.weight has shape")
	for name, c := range cases {
		m, err := Load(c.dir)
		if err == nil {
			m.Close()
			t.Errorf("%s: loaded", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not name %q", name, err, c.want)
		}
	}
	var tre tokenRangeError
	m, err := Load(folder(all))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Forward([]int{5, 1024}); !errors.As(err, &tre) {
		t.Errorf("token 1024 of a 1024-token vocabulary: %v", err)
	}
}

// TestMatmulProductsPerToken counts a token's multiply-adds from the config's shapes, layer by
// layer as transformers' modules are built, and compares with the model's own count.
func TestMatmulProductsPerToken(t *testing.T) {
	for _, js := range []string{
		`{"architectures": ["Qwen3ForCausalLM"], "head_dim": 16, "hidden_size": 32, "intermediate_size": 48,
		  "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
		  "rope_theta": 10000, "tie_word_embeddings": true, "vocab_size": 64, "max_position_embeddings": 128}`,
		`{"architectures": ["Qwen3MoeForCausalLM"], "head_dim": 16, "hidden_size": 32, "intermediate_size": 48,
		  "moe_intermediate_size": 8, "num_experts": 6, "num_experts_per_tok": 2, "decoder_sparse_step": 2,
		  "mlp_only_layers": [3], "num_attention_heads": 4, "num_hidden_layers": 4, "num_key_value_heads": 1,
		  "rms_norm_eps": 1e-6, "rope_theta": 10000, "vocab_size": 64, "max_position_embeddings": 128}`,
	} {
		cfg, err := ParseConfig([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		m, err := Random(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, hd := int64(cfg.Hidden), int64(cfg.HeadDim)
		want := int64(cfg.Vocab) * h // output layer
		for i := range cfg.Layers {
			want += h*int64(cfg.Heads)*hd + 2*h*int64(cfg.KVHeads)*hd + int64(cfg.Heads)*hd*h
			if cfg.Experts > 0 && cfg.Sparse(i) {
				want += h*int64(cfg.Experts) + int64(cfg.ExpertsPerTok)*3*h*int64(cfg.MoEIntermediate)
			} else {
				want += 3 * h * int64(cfg.Intermediate)
			}
		}
		if got := m.MatmulProductsPerToken(); got != want {
			t.Errorf("%s: %d multiply-adds per token, want %d", cfg.Architecture, got, want)
		}
	}
}

// FuzzParseConfig: any bytes as config.json give either an error or a config the model code
// can build on (every size positive, the heads grouping evenly, a valid expert choice),
// never a panic. Seeds are the shipped configs in both key styles.
func FuzzParseConfig(f *testing.F) {
	for _, p := range []string{
		denseDir + "/config.json",
		"../../../testdata/models/qwen3-moe-tiny/config.json",
		"../../../testdata/configs/qwen3-0.6b.json",
		"../../../testdata/configs/qwen3-30b-a3b-scaled.json",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"architectures": ["Qwen3MoeForCausalLM"], "vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 1,
		"num_attention_heads": 2, "num_key_value_heads": 1, "rope_parameters": {"rope_theta": 5e5, "rope_type": "default"}, "num_local_experts": 4,
		"num_experts_per_tok": 2, "decoder_sparse_step": 2, "mlp_only_layers": [0], "intermediate_size": 0, "dtype": "bfloat16"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			if c != nil {
				t.Fatalf("an error (%v) came with a config", err)
			}
			return
		}
		for _, v := range []int{c.Vocab, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.MaxPositions} {
			if v <= 0 {
				t.Fatalf("accepted a config with a size %d: %+v", v, c)
			}
		}
		if c.Heads%c.KVHeads != 0 || c.HeadDim%2 != 0 {
			t.Fatalf("accepted heads %d/%d, head_dim %d", c.Heads, c.KVHeads, c.HeadDim)
		}
		if !(c.RopeTheta > 0) || !(c.RMSEps > 0) {
			t.Fatalf("accepted rope_theta %g, rms_norm_eps %g", c.RopeTheta, c.RMSEps)
		}
		if c.Experts > 0 && (c.ExpertsPerTok < 1 || c.ExpertsPerTok > c.Experts || c.SparseStep < 1 || c.MoEIntermediate < 1) {
			t.Fatalf("accepted experts %d, top-%d, sparse step %d, expert width %d", c.Experts, c.ExpertsPerTok, c.SparseStep, c.MoEIntermediate)
		}
		for i := range min(c.Layers, 1024) {
			if !c.Sparse(i) && c.Intermediate <= 0 {
				t.Fatalf("accepted dense layer %d with intermediate_size %d", i, c.Intermediate)
			}
		}
	})
}

// TestFirstDense holds FirstDense, which does not walk the layers, to Sparse layer by layer.
func TestFirstDense(t *testing.T) {
	for _, experts := range []int{0, 4} {
		for step := 1; step <= 3; step++ {
			for _, only := range [][]int{nil, {0}, {2}, {5, 1}, {3, 1}, {-1, 9}} {
				for layers := 0; layers <= 6; layers++ {
					c := &Config{Layers: layers, Experts: experts, SparseStep: step, MLPOnlyLayers: only}
					want := -1
					for i := range layers {
						if !c.Sparse(i) {
							want = i
							break
						}
					}
					if got := c.FirstDense(); got != want {
						t.Errorf("%+v: FirstDense %d, want %d", c, got, want)
					}
				}
			}
		}
	}
}

// TestWeights holds Config.Weights, which multiplies out the shapes, to the element count of
// the tensors RandomTensors lists one by one, for the shipped configs and every variant.
func TestWeights(t *testing.T) {
	var raws [][]byte
	for _, p := range []string{denseDir + "/config.json", "../../../testdata/models/qwen3-moe-tiny/config.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, b)
	}
	for _, v := range qwen3ref.Variants {
		raws = append(raws, []byte(v.Config))
	}
	for i, raw := range raws {
		c, err := ParseConfig(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, extra := range [][]int{nil, {0, 0, 2}, {1, 3, 99, -1}} {
			for layers := 1; layers <= 5; layers++ {
				for step := 1; step <= 3; step++ {
					c := *c
					c.MLPOnlyLayers = append(append([]int(nil), c.MLPOnlyLayers...), extra...)
					c.Layers, c.SparseStep = layers, step
					want := 0
					for _, x := range RandomTensors(&c, 1, 0.02) {
						want += len(x.Data) / 2
					}
					if got := c.Weights(); got != float64(want) {
						t.Errorf("config %d, %d layers, step %d, mlp_only_layers %v: Weights %v, tensors hold %d", i, layers, step, c.MLPOnlyLayers, got, want)
					}
				}
			}
		}
	}
}

// TestCheckTP: a MoE model's dense MLP width must divide across the ranks only when it has
// dense layers.
func TestCheckTP(t *testing.T) {
	base := Config{Hidden: 64, Heads: 4, KVHeads: 4, HeadDim: 16, Layers: 4, Experts: 8, ExpertsPerTok: 2,
		MoEIntermediate: 32, SparseStep: 1, Intermediate: 30}
	for _, c := range []struct {
		only []int
		step int
		bad  bool
	}{{nil, 1, false}, {[]int{0}, 1, true}, {[]int{7}, 1, false}, {nil, 2, true}} {
		cfg := base
		cfg.MLPOnlyLayers, cfg.SparseStep = c.only, c.step
		err := CheckTP(&cfg, 4)
		if bad := err != nil; bad != c.bad || (bad && !strings.Contains(err.Error(), "dense intermediate size 30")) {
			t.Errorf("mlp_only_layers %v, step %d: %v, want refused %v", c.only, c.step, err, c.bad)
		}
	}
	dense := base
	dense.Experts = 0
	if err := CheckTP(&dense, 4); err == nil || !strings.Contains(err.Error(), "intermediate size 30") {
		t.Errorf("a dense model of width 30 over 4 ranks: %v", err)
	}
}

// TestLoadConfigFolderErrors: a model path that is missing, a file, or a folder without
// config.json gets an error that says which and what to give instead.
func TestLoadConfigFolderErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "does not exist"},
		{file, "is a file, not a folder"},
		{dir, "has no config.json"},
	} {
		_, err := LoadConfig(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), "Hugging Face model") {
			t.Errorf("%s: want an error naming it and saying %q, got %v", c.path, c.want, err)
		}
	}
}
