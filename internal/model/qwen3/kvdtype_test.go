package qwen3

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-ai/strata/internal/kernels"
	"github.com/strata-ai/strata/internal/safetensors"
)

// TestBF16KVCache runs the golden prompts a token at a time through a bfloat16 paged cache.
// The dense model's logits stay within 3e-2 of transformers' float32 ones (measured: 1e-2;
// the cache rounds every key and value to 8 significant bits) and its greedy choice agrees
// wherever transformers' top two are 0.1 apart. Both models then give the same last logits
// whether a prompt is prefilled whole or in chunks, so the rounded cache is written and read
// consistently: to 3e-3 (measured: under 1e-3), because chunks of different sizes take
// different matmuls (one token the float32 GEMV, more the split-bfloat16 tiles on AVX-512 BF16)
// and a key that lands across a bf16 rounding step moves by 2^-9. A block
// takes half the bytes of a float32 one.
func TestBF16KVCache(t *testing.T) {
	for _, name := range []string{"qwen3-dense-tiny", "qwen3-moe-tiny"} {
		dir := filepath.Join("../../../testdata/models", name)
		m, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		f32Block := m.BytesPerBlock(4)
		m.SetKVCacheDType(kernels.BFloat16)
		if got := m.BytesPerBlock(4); got*2 != f32Block {
			t.Fatalf("%s: a bf16 block takes %d bytes, a float32 one %d", name, got, f32Block)
		}
		b, err := os.ReadFile(filepath.Join(dir, "golden.json"))
		if err != nil {
			t.Fatal(err)
		}
		var g golden
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		ref, err := safetensors.Open(filepath.Join(dir, "golden.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		defer ref.Close()
		V := m.Cfg.Vocab
		table := make([]int32, 64)
		for i := range table {
			table[i] = int32(63 - i) // scattered blocks
		}
		for pi, prompt := range g.Prompts {
			_, want, err := ref.Float32s(fmt.Sprintf("logits.%d", pi))
			if err != nil {
				t.Fatal(err)
			}
			if name == "qwen3-dense-tiny" {
				kv := m.NewPagedKV(64, 4)
				for p := range prompt {
					out, err := m.ForwardBatch(kv, []BatchItem{{Tokens: prompt[p : p+1], Start: p, Table: table, WantLogits: true}})
					if err != nil {
						t.Fatal(err)
					}
					w := want[p*V : (p+1)*V]
					for v := range out[0] {
						if d := math.Abs(float64(out[0][v] - w[v])); d > 3e-2 {
							t.Fatalf("%s prompt %d position %d: logit %d is %v, transformers %v", name, pi, p, v, out[0][v], w[v])
						}
					}
					if best, second := top2(w); w[best]-w[second] > 0.1 && argmax(out[0]) != best {
						t.Fatalf("%s prompt %d position %d: greedy token %d, transformers %d", name, pi, p, argmax(out[0]), best)
					}
				}
			}
			whole := m.NewPagedKV(64, 4)
			wout, err := m.ForwardBatch(whole, []BatchItem{{Tokens: prompt, Table: table, WantLogits: true}})
			if err != nil {
				t.Fatal(err)
			}
			for _, chunk := range []int{4, 7} {
				kv := m.NewPagedKV(64, 4)
				var last []float32
				for start := 0; start < len(prompt); start += chunk {
					end := min(start+chunk, len(prompt))
					out, err := m.ForwardBatch(kv, []BatchItem{{Tokens: prompt[start:end], Start: start, Table: table, WantLogits: true}})
					if err != nil {
						t.Fatal(err)
					}
					last = out[0]
				}
				for v := range last {
					if d := math.Abs(float64(last[v] - wout[0][v])); d > 3e-3 {
						t.Fatalf("%s prompt %d in chunks of %d: last logit %d is %v, whole prefill %v", name, pi, chunk, v, last[v], wout[0][v])
					}
				}
			}
		}
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// top2 returns the indices of the largest and second-largest values.
func top2(x []float32) (int, int) {
	a, b := 0, 1
	if x[b] > x[a] {
		a, b = b, a
	}
	for i := 2; i < len(x); i++ {
		switch {
		case x[i] > x[a]:
			a, b = i, a
		case x[i] > x[b]:
			b = i
		}
	}
	return a, b
}

// TestWeightBytesRead: a forward pass reads every dense weight once, and in a MoE layer only the
// experts its tokens chose, which is what the engine benchmark's roofline counts.
func TestWeightBytesRead(t *testing.T) {
	for _, name := range []string{"qwen3-dense-tiny", "qwen3-moe-tiny"} {
		m, err := Load(filepath.Join("../../../testdata/models", name))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		kv := m.NewPagedKV(8, 4)
		before := m.WeightBytesRead()
		if _, err := m.ForwardBatch(kv, []BatchItem{{Tokens: []int{7}, Table: []int32{0}, WantLogits: true}}); err != nil {
			t.Fatal(err)
		}
		got := m.WeightBytesRead() - before
		want := m.denseWeightBytes()
		for _, l := range m.layers {
			if len(l.experts) > 0 {
				want += int64(m.Cfg.ExpertsPerTok) * l.experts[0].bytes() // one token: its top-k experts
			}
		}
		if got != want {
			t.Fatalf("%s: one token read %d bytes of weights, want %d (all %d)", name, got, want, m.WeightBytes())
		}
		if len(m.layers[0].experts) > 0 && got >= m.WeightBytes() {
			t.Fatalf("%s: one token read all %d bytes of a MoE model's weights", name, got)
		}
	}
}

// TestWeightBytesReadNoLogits: a prefill chunk that wants no logits does not read the output
// layer, and the reference Step counts what it reads too.
func TestWeightBytesReadNoLogits(t *testing.T) {
	m, err := Load("../../../testdata/models/qwen3-dense-tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	kv := m.NewPagedKV(8, 4)
	before := m.WeightBytesRead()
	if _, err := m.ForwardBatch(kv, []BatchItem{{Tokens: []int{7, 8}, Table: []int32{0}}}); err != nil {
		t.Fatal(err)
	}
	if got, want := m.WeightBytesRead()-before, m.WeightBytes()-m.lmHead.bytes(); got != want {
		t.Fatalf("a chunk without logits read %d bytes, want %d (all but the output layer)", got, want)
	}
	before = m.WeightBytesRead()
	if _, err := m.Step(m.NewCache(), []int{7}, false); err != nil {
		t.Fatal(err)
	}
	if got := m.WeightBytesRead() - before; got != m.WeightBytes() {
		t.Fatalf("Step read %d bytes, want all %d", got, m.WeightBytes())
	}
}

// TestPrefault: a prefaulted cache, float32 or bfloat16, holds zeros and gives the logits a
// fresh one gives.
func TestPrefault(t *testing.T) {
	for _, dt := range []kernels.Precision{kernels.Float32, kernels.BFloat16} {
		m, err := Load("../../../testdata/models/qwen3-dense-tiny")
		if err != nil {
			t.Fatal(err)
		}
		m.SetKVCacheDType(dt)
		logits := func(prefault bool) []float32 {
			// big enough for several pages per layer
			kv := m.NewPagedKV(512, 4)
			if prefault {
				kv.Prefault()
				for i := range kv.k {
					if slices.ContainsFunc(kv.k[i], func(v float32) bool { return v != 0 }) || slices.ContainsFunc(kv.v[i], func(v float32) bool { return v != 0 }) {
						t.Fatalf("%s: layer %d is not all zeros after Prefault", dt, i)
					}
				}
				for i := range kv.k16 {
					if slices.ContainsFunc(kv.k16[i], func(v uint16) bool { return v != 0 }) || slices.ContainsFunc(kv.v16[i], func(v uint16) bool { return v != 0 }) {
						t.Fatalf("%s: layer %d is not all zeros after Prefault", dt, i)
					}
				}
			}
			out, err := m.ForwardBatch(kv, []BatchItem{{Tokens: []int{7, 8, 9, 10, 11}, Table: []int32{0, 100, 300}, WantLogits: true}})
			if err != nil {
				t.Fatal(err)
			}
			return out[0]
		}
		if a, b := logits(false), logits(true); !slices.Equal(a, b) {
			t.Fatalf("%s: a prefaulted cache gives other logits", dt)
		}
		m.Close()
	}
}
