package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-ai/strata/internal/model/qwen3ref"
	"github.com/strata-ai/strata/internal/safetensors"
)

// TestGenerateAndLogitsMatchTransformers runs the CLI as a user would on both test models:
// generate --json must print the Hugging Face greedy tokens, logits --out their logits.
func TestGenerateAndLogitsMatchTransformers(t *testing.T) {
	for _, name := range []string{"qwen3-dense-tiny", "qwen3-moe-tiny"} {
		dir := filepath.Join("../../testdata/models", name)
		b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
		if err != nil {
			t.Fatal(err)
		}
		var g struct {
			Prompts [][]int `json:"prompts"`
			Greedy  [][]int `json:"greedy"`
		}
		json.Unmarshal(b, &g)
		ref, err := safetensors.Open(filepath.Join(dir, "golden.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Close()
		for p := range g.Prompts[:3] {
			ids := strings.Trim(strings.ReplaceAll(fmt.Sprint(g.Prompts[p]), " ", ","), "[]")
			out, err := runCLI("generate", "--model", dir, "--prompt-ids", ids, "--max-tokens", fmt.Sprint(len(g.Greedy[p])), "--json")
			if err != nil {
				t.Fatalf("%s prompt %d: %v", name, p, err)
			}
			var res struct {
				TokenIDs []int `json:"token_ids"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("%s: generate --json printed %q", name, out)
			}
			if fmt.Sprint(res.TokenIDs) != fmt.Sprint(g.Greedy[p]) {
				t.Errorf("%s prompt %d: got %v, want %v", name, p, res.TokenIDs, g.Greedy[p])
			}
			file := filepath.Join(t.TempDir(), "l.safetensors")
			if _, err := runCLI("logits", "--model", dir, "--prompt-ids", ids, "--out", file); err != nil {
				t.Fatal(err)
			}
			got, err := safetensors.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			info, gl, err := got.Float32s("logits")
			_, want, _ := ref.Float32s(fmt.Sprintf("logits.%d", p))
			got.Close()
			if err != nil || len(info.Shape) != 2 || info.Shape[0] != len(g.Prompts[p]) || len(gl) != len(want) {
				t.Fatalf("%s prompt %d: logits file %+v %v", name, p, info, err)
			}
			for i := range gl {
				if math.Abs(float64(gl[i]-want[i])) > 1e-3 {
					t.Fatalf("%s prompt %d: logit %d differs by %g", name, p, i, gl[i]-want[i])
				}
			}
		}
	}
}

// TestHeldOutShapesThroughCLI runs strata logits and strata generate --json, as a user would,
// on folders of shapes no golden file covers (qwen3ref.Variants: the other config key style,
// MQA, a group of three, MoE every second layer with unnormalised top-k, f16/f32/bf16, shards;
// no tokenizer, so --prompt-ids): the logits within 1e-3 of the float64 reference at every
// position, the greedy tokens the reference's up to its first near tie.
func TestHeldOutShapesThroughCLI(t *testing.T) {
	for vi, v := range qwen3ref.Variants {
		dir := t.TempDir()
		if err := qwen3ref.WriteRandom(dir, v.Config, v.DType, v.Shards, uint64(100+vi)); err != nil {
			t.Fatal(err)
		}
		ref, err := qwen3ref.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		prompt := []int{5, 17, 2, 99, 42, 7, 63, 1, 150, 11, 12, 13}
		for i := range prompt {
			prompt[i] %= ref.Cfg.Vocab
		}
		ids := strings.Trim(strings.ReplaceAll(fmt.Sprint(prompt), " ", ","), "[]")
		file := filepath.Join(t.TempDir(), "l.safetensors")
		if out, err := runCLI("logits", "--model", dir, "--prompt-ids", ids, "--out", file); err != nil {
			t.Fatalf("%s: logits: %v\n%s", v.Name, err, out)
		}
		f, err := safetensors.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		info, got, err := f.Float32s("logits")
		f.Close()
		want := ref.Logits(prompt)
		V := ref.Cfg.Vocab
		if err != nil || len(info.Shape) != 2 || info.Shape[0] != len(prompt) || info.Shape[1] != V {
			t.Fatalf("%s: logits file holds %+v (%v), want [%d %d]", v.Name, info, err, len(prompt), V)
		}
		for i, g := range got {
			if d := math.Abs(float64(g) - want[i/V][i%V]); d > 1e-3 {
				t.Fatalf("%s: position %d logit %d differs from the reference by %.2g", v.Name, i/V, i%V, d)
			}
		}
		out, err := runCLI("generate", "--model", dir, "--prompt-ids", ids, "--max-tokens", "8", "--json")
		if err != nil {
			t.Fatalf("%s: generate: %v\n%s", v.Name, err, out)
		}
		var res struct {
			TokenIDs []int `json:"token_ids"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.TokenIDs) != 8 {
			t.Fatalf("%s: generate --json printed %q", v.Name, out)
		}
		wantToks, gaps := ref.Greedy(prompt, 8)
		for i := range wantToks {
			if res.TokenIDs[i] != wantToks[i] {
				if gaps[i] > 1e-3 {
					t.Fatalf("%s: generated %v, the reference %v", v.Name, res.TokenIDs, wantToks)
				}
				break
			}
		}
	}
}

// TestGenerateStopsAtModelLength: as in vLLM, generate refuses a prompt that leaves the model
// no room (max_position_embeddings) and ends the output where the model's length ends it.
func TestGenerateStopsAtModelLength(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(qwen3ref.Variants[0].Config, `"max_position_embeddings": 512`, `"max_position_embeddings": 16`, 1)
	if cfg == qwen3ref.Variants[0].Config {
		t.Fatal("the variant's config has no max_position_embeddings of 512 to lower")
	}
	if err := qwen3ref.WriteRandom(dir, cfg, safetensors.BF16, 1, 5); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI("generate", "--model", dir, "--prompt-ids", "1,2,3,4,5,6,7,8,9,10,11,12", "--max-tokens", "10", "--json", "--ignore-eos")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		TokenIDs []int `json:"token_ids"`
	}
	// the output (stdout and stderr together here): a note that the tokens were capped, then the JSON
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || len(res.TokenIDs) != 4 || !strings.Contains(out, "room for 4 more tokens") {
		t.Fatalf("12 prompt tokens of 16: want a note and 4 generated, got %q", out)
	}
	_, err = runCLI("generate", "--model", dir, "--prompt-ids", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", "--json")
	if err == nil || !strings.Contains(err.Error(), "max_position_embeddings") {
		t.Fatalf("a 16-token prompt for a 16-position model: want an error naming max_position_embeddings, got %v", err)
	}
}

func TestModelCommandsBadInput(t *testing.T) {
	dense := "../../testdata/models/qwen3-dense-tiny"
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "config.json"), []byte(`{"architectures":["Qwen3ForCausalLM"]`), 0o644)
	// the dense model with one file replaced
	with := func(name, content string) string {
		d := t.TempDir()
		entries, err := os.ReadDir(dense)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			abs, _ := filepath.Abs(filepath.Join(dense, e.Name()))
			if err := os.Symlink(abs, filepath.Join(d, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		os.Remove(filepath.Join(d, name))
		if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// bytes overwritten in the middle of a weight: 0xffff is a bfloat16 NaN
	st, err := os.ReadFile(filepath.Join(dense, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	var header map[string]struct {
		Offsets [2]int `json:"data_offsets"`
	}
	hlen := int(binary.LittleEndian.Uint64(st))
	if err := json.Unmarshal(st[8:8+hlen], &header); err != nil {
		t.Fatal(err)
	}
	q := 8 + hlen + header["model.layers.0.self_attn.q_proj.weight"].Offsets[0]
	for i := q + 256; i < q+320; i++ {
		st[i] = 0xff
	}
	corrupt := with("model.safetensors", string(st))
	outDir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--model", corrupt, "--prompt-ids", "1,2,3"}, "weights are probably corrupt"},
		{[]string{"generate", "--model", corrupt, "--prompt-ids", "1,2,3", "--temperature", "0.7", "--n", "2"}, "weights are probably corrupt"},
		{[]string{"logits", "--model", corrupt, "--prompt-ids", "1,2,3", "--out", filepath.Join(outDir, "nan.safetensors")}, "nothing was written"},
		{[]string{"generate", "--model", dense, "--prompt-ids", "1,-2"}, "not a token id"},
		{[]string{"generate", "--model", dense, "--prompt-ids", "99999"}, "outside the model's vocabulary"},
		{[]string{"generate", "--model", dense, "--prompt-ids", "1", "--temperature", "-1"}, "temperature"},
		{[]string{"generate", "--model", broken, "--prompt-ids", "1"}, "config.json"},
		{[]string{"generate", "--prompt-ids", "1"}, "--model"},
		{[]string{"generate", "--model", dense, "--prompt", "hello"}, "no tokenizer.json"},
		{[]string{"generate", "--model", dense, "--prompt", "hello", "--prompt-ids", "1"}, "exactly one"},
		{[]string{"logits", "--model", dense, "--prompt-ids", "1"}, "--out"},
		{[]string{"generate", "--model", dense, "--prompt-ids", "1", "--kv-cache-dtype", "fp8"}, "fp8 KV caches are not supported"},
		{[]string{"generate", "--model", dense, "--prompt-ids", "1", "--kv-cache-dtype", "int4"}, "want auto, float32 or bfloat16"},
		{[]string{"logits", "--model", dense, "--prompt-ids", "1", "--out", "/nonexistent-dir/x.safetensors"}, "the folder /nonexistent-dir does not exist"},
		{[]string{"logits", "--model", dense, "--prompt-ids", "1", "--out", outDir}, "is a folder"},
		{[]string{"generate", "--model", with("generation_config.json", `{"eos_token_id":`), "--prompt-ids", "1"}, "generation_config.json is not valid JSON"},
		{[]string{"generate", "--model", with("generation_config.json", `{"eos_token_id":"x"}`), "--prompt-ids", "1"}, "eos_token_id is \"x\""},
		{[]string{"generate", "--model", dense, "--prompt-ids", "1,,3"}, "entry 2"},
		{[]string{"generate", "--model", dense, "--prompt-ids", "1,"}, "entry 2"},
		{[]string{"generate", "--model", dense, "--prompt-ids", "1", "--repetition-penalty", "0"}, "repetition-penalty"},
		{[]string{"generate", "--model", dense, "--prompt-ids", "1", "--temperature", "inf"}, "temperature"},
		{[]string{"bench", "engine", "--model", dense, "--batches", "1,x"}, "not a batch size"},
		{[]string{"bench", "engine", "--model", dense, "--prompt-len", "999999"}, "max_position_embeddings"},
		{[]string{"bench", "engine", "--model", dense, "--batches", "100000000", "--context-len", "4000"}, "use smaller batches"},
	}
	for _, c := range cases {
		_, err := runCLI(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want an error mentioning %q, got %v", c.args, c.want, err)
		}
	}
	if left, _ := os.ReadDir(outDir); len(left) != 0 {
		t.Errorf("failed commands left %v in the output folder", left)
	}
}

// TestGenerateNSeeded: n completions run together; the same seed gives the same completions,
// and each completion matches a single run with its own seed.
func TestGenerateNSeeded(t *testing.T) {
	dir := "../../testdata/models/qwen3-moe-tiny"
	args := []string{"generate", "--model", dir, "--prompt-ids", "53,7", "--max-tokens", "8", "--temperature", "1", "--top-p", "0.9", "--seed", "4", "--n", "3", "--json"}
	a, err := runCLI(args...)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := runCLI(args...)
	if a != b {
		t.Fatalf("same seed, different output:\n%s\n%s", a, b)
	}
	var res struct {
		Choices []struct {
			TokenIDs []int `json:"token_ids"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(a), &res); err != nil || len(res.Choices) != 3 {
		t.Fatalf("%q: %v", a, err)
	}
	one, err := runCLI("generate", "--model", dir, "--prompt-ids", "53,7", "--max-tokens", "8", "--temperature", "1", "--top-p", "0.9", "--seed", "5", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var single struct {
		TokenIDs []int `json:"token_ids"`
	}
	json.Unmarshal([]byte(one), &single)
	if fmt.Sprint(single.TokenIDs) != fmt.Sprint(res.Choices[1].TokenIDs) {
		t.Fatalf("choice 1 (seed 5 in a batch of 3) %v differs from seed 5 alone %v", res.Choices[1].TokenIDs, single.TokenIDs)
	}
}
