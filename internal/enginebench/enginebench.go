// Package enginebench measures the engine's forward pass: prefill tokens per second, decode
// tokens per second at several batch sizes, and decode's fraction of the memory-bandwidth
// roofline, with the bandwidth measured in the same run.
package enginebench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/strata-ai/strata/internal/hugepage"
	"github.com/strata-ai/strata/internal/kernels"
	"github.com/strata-ai/strata/internal/model/qwen3"
	"github.com/strata-ai/strata/internal/sampling"
)

// Options shape a run.
type Options struct {
	PromptLen   int   // tokens in the prefill measurement
	ContextLen  int   // tokens already cached when decoding starts
	DecodeSteps int   // decode steps timed per batch size
	Batches     []int // decode batch sizes
	Repeats     int   // timed passes per batch size; the best is reported
	// MemoryLimit, when positive, is the most the run's KV cache may take: a run that would
	// need more is refused before it allocates, instead of being killed by the OS.
	MemoryLimit int64
	// FullLogits makes every step compute its rows' whole logits, as a draw that weighs the
	// whole vocabulary needs (sampling without top-k, logprobs, penalties), and feed random
	// tokens. Otherwise each step draws greedily, as strata generate and bench serve do by
	// default, and feeds the drawn tokens back.
	FullLogits bool
}

// DecodeResult is one batch size's decode speed.
type DecodeResult struct {
	Batch            int     `json:"batch"`
	TokensPerS       float64 `json:"tokens_per_s"`
	RooflineFraction float64 `json:"roofline_fraction"`
	StepMs           float64 `json:"step_ms"`
	// ComputeFraction is the step's weight-matmul rate ÷ MatmulPeakGFLOPs: where a batch
	// reads its weights once for many tokens, the arithmetic and not the memory bounds it.
	ComputeFraction float64 `json:"compute_fraction"`
	// CPUStealFraction is the share of the machine's CPU time the hypervisor gave to others
	// during the reported pass (Linux /proc/stat; absent elsewhere). A virtual machine's
	// neighbours slow a compute-bound batch far more than a memory-bound one, so this says how
	// much of a batch's spread between runs is the host's.
	CPUStealFraction *float64 `json:"cpu_steal_fraction,omitempty"`
}

// Result is what `strata bench engine --json` prints.
type Result struct {
	PrefillTokensPerS float64        `json:"prefill_tokens_per_s"`
	Decode            []DecodeResult `json:"decode"`
	BandwidthGBs      float64        `json:"bandwidth_gb_s"`
	MatmulPeakGFLOPs  float64        `json:"matmul_peak_gflop_s"`
	// FMAPeakGFLOPs is the cores' float32 multiply-add rate on registers alone
	// (kernels.FMAPeak), and FMACeilingTokensPerS that rate ÷ a token's multiply-adds: the
	// most tokens/s any decode batch can reach with float32 FMAs, as the bandwidth bounds
	// batch 1. With --dtype bfloat16 on a CPU with AVX-512 BF16 or AMX the matmuls are not
	// float32 FMAs and can pass it. 0 in the portable build.
	FMAPeakGFLOPs        float64 `json:"fma_peak_gflop_s"`
	FMACeilingTokensPerS float64 `json:"fma_ceiling_tokens_per_s"`
	WeightBytes          int64   `json:"weight_bytes"`
	Threads              int     `json:"threads"`
	DType                string  `json:"dtype"`
	KVCacheDType         string  `json:"kv_cache_dtype"`
	Kernels              string  `json:"kernels"`  // amx, avx512-bf16, avx512, avx2 or portable
	Sampling             string  `json:"sampling"` // greedy, or full-logits (Options.FullLogits)
}

// Bandwidth measures how fast all cores together can read memory, three ways, and keeps the
// fastest (a higher bandwidth makes the roofline harder to reach, never easier): each core
// streams its share of a buffer far larger than the caches into a small cache-resident one
// (memmove reads at the memory's speed; the writes stay in L1), each core runs the vector
// bf16 dot product over its share, and the buffer is read as the weights of a one-row matmul
// through the kernel decode uses (AMX tiles where the CPU has them, which stream faster than
// either). Best of three passes each, in GB/s.
func Bandwidth() float64 {
	const size = 512 << 20
	buf := make([]byte, size)
	hugepage.Advise(buf)                  // as the weights and the KV cache are, so the probe reads as they do
	for i := 0; i < len(buf); i += 4096 { // fault every page in before timing
		buf[i] = 1
	}
	// ordinary bf16 values, not zeros (matrix units may skip zero tiles)
	for i := 0; i < 4096; i += 2 {
		buf[i], buf[i+1] = byte(i), 0x3f
	}
	for n := 4096; n < len(buf); n *= 2 {
		copy(buf[n:], buf[:n])
	}
	procs := runtime.GOMAXPROCS(0)
	best := 0.0
	for range 3 {
		var wg sync.WaitGroup
		t0 := time.Now()
		per := len(buf) / procs
		for p := range procs {
			wg.Add(1)
			go func(part []byte) {
				defer wg.Done()
				dst := make([]byte, 32<<10)
				for off := 0; off+len(dst) <= len(part); off += len(dst) {
					copy(dst, part[off:off+len(dst)])
				}
			}(buf[p*per : (p+1)*per])
		}
		wg.Wait()
		best = max(best, float64(len(buf))/time.Since(t0).Seconds()/1e9)
	}
	words := unsafe.Slice((*uint16)(unsafe.Pointer(&buf[0])), len(buf)/2)
	x := make([]float32, 1<<16)
	for range 3 {
		var wg sync.WaitGroup
		t0 := time.Now()
		per := len(words) / procs
		for p := range procs {
			wg.Add(1)
			go func(part []uint16) {
				defer wg.Done()
				for off := 0; off+len(x) <= len(part); off += len(x) {
					kernels.DotBF16(part[off:off+len(x)], x)
				}
			}(words[p*per : (p+1)*per])
		}
		wg.Wait()
		best = max(best, float64(len(buf))/time.Since(t0).Seconds()/1e9)
	}
	const in = 1024
	out := len(words) / in
	xs, ys := [][]float32{make([]float32, in)}, [][]float32{make([]float32, out)}
	for i := range xs[0] {
		xs[0][i] = float32(i%7) - 3
	}
	for range 3 {
		t0 := time.Now()
		kernels.MatBF16(words[:out*in], out, in, xs, ys, kernels.Float32)
		best = max(best, float64(2*out*in)/time.Since(t0).Seconds()/1e9)
	}
	return best
}

// MatmulPeak measures the batched matmul at precision p on all cores (GFLOP/s, two per
// multiply-add), with a batch of 32 and an 8 MB weight that stays in the last-level cache:
// the most a decode step can do once its weights come from memory no faster than the
// arithmetic uses them. Best of 20 calls.
func MatmulPeak(p kernels.Precision) float64 {
	const out, in, batch = 4096, 1024, 32
	r := rand.New(rand.NewPCG(3, 4))
	w := make([]uint16, out*in)
	for i := range w {
		w[i] = uint16(math.Float32bits(float32(r.NormFloat64()*0.02)) >> 16)
	}
	xs, ys := make([][]float32, batch), make([][]float32, batch)
	for t := range xs {
		xs[t], ys[t] = make([]float32, in), make([]float32, out)
		for k := range xs[t] {
			xs[t][k] = float32(r.NormFloat64())
		}
	}
	kernels.MatBF16(w, out, in, xs, ys, p) // warm the caches and the helpers
	best := 0.0
	for range 20 {
		t0 := time.Now()
		kernels.MatBF16(w, out, in, xs, ys, p)
		best = max(best, float64(2*out*in*batch)/time.Since(t0).Seconds()/1e9)
	}
	return best
}

// Run measures m.
func Run(m *qwen3.Model, o Options) (*Result, error) {
	cfg := m.Cfg
	res := &Result{BandwidthGBs: Bandwidth(), WeightBytes: m.WeightBytes(), Threads: runtime.GOMAXPROCS(0), KVCacheDType: m.KVCacheDType().String(), Kernels: kernels.Path(), Sampling: "greedy"}
	topK := 1 // a greedy draw reads the largest logit only
	if o.FullLogits {
		res.Sampling, topK = "full-logits", 0
	}
	res.MatmulPeakGFLOPs = MatmulPeak(m.Precision())
	res.FMAPeakGFLOPs = kernels.FMAPeak(res.Threads)
	r := rand.New(rand.NewPCG(1, 2))
	tokens := func(n int) []int {
		t := make([]int, n)
		for i := range t {
			t[i] = r.IntN(cfg.Vocab)
		}
		return t
	}
	const bs = 16
	// Every batch size has sequences of its own, so their passes can take turns (below).
	base := make([]int, len(o.Batches))
	seqs := 0
	for i, b := range o.Batches {
		base[i] = seqs
		seqs += b
	}
	seqs = max(seqs, 1)
	if n := max(o.PromptLen, o.ContextLen+o.DecodeSteps); n > cfg.MaxPositions {
		return nil, fmt.Errorf("a sequence of %d tokens (prompt %d, or context %d + %d decode steps) is longer than the model's %d positions (max_position_embeddings)", n, o.PromptLen, o.ContextLen, o.DecodeSteps, cfg.MaxPositions)
	}
	perSeq := (max(o.PromptLen, o.ContextLen+o.DecodeSteps) + bs - 1) / bs
	if need := m.BytesPerBlock(bs) * int64(perSeq*seqs); o.MemoryLimit > 0 && need > o.MemoryLimit {
		return nil, fmt.Errorf("the KV cache for batches %v of up to %d tokens each needs %.1f GB, more than the %.1f GB left for it: use smaller batches or a shorter context", o.Batches, perSeq*bs, float64(need)/1e9, float64(o.MemoryLimit)/1e9)
	}
	kv := m.NewPagedKV(perSeq*seqs, bs)
	kv.Prefault() // time what a server runs at once its cache's pages are mapped
	table := func(seq int) []int32 {
		t := make([]int32, perSeq)
		for i := range t {
			t[i] = int32(seq*perSeq + i)
		}
		return t
	}

	// prefill: one long prompt, best of three
	best := 0.0
	for range 3 {
		t0 := time.Now()
		var err error
		labelled("prefill", 1, func() {
			_, err = m.ForwardBatch(kv, []qwen3.BatchItem{{Tokens: tokens(o.PromptLen), Table: table(0), WantLogits: true, TopK: topK}})
		})
		if err != nil {
			return nil, err
		}
		best = max(best, float64(o.PromptLen)/time.Since(t0).Seconds())
	}
	res.PrefillTokensPerS = best

	// bytes of K and V per cached token across all layers, in the cache's element type
	kvPerToken := m.BytesPerBlock(bs) / bs
	for i, B := range o.Batches {
		ctx := make([]qwen3.BatchItem, B)
		for s := range B {
			ctx[s] = qwen3.BatchItem{Tokens: tokens(o.ContextLen), Table: table(base[i] + s)}
		}
		var err error
		labelled("context", B, func() { _, err = m.ForwardBatch(kv, ctx) })
		if err != nil {
			return nil, err
		}
	}
	// Best of Repeats passes over the same positions: on a shared machine a neighbour's burst
	// slows one pass, and the best pass is the closest to what the code can do. The batch
	// sizes take turns, one pass each per round, so a slow minute slows passes of every size
	// alike instead of all passes of one, and the ratios between sizes come out steadier.
	res.Decode = make([]DecodeResult, len(o.Batches))
	for i, B := range o.Batches {
		res.Decode[i].Batch = B
	}
	// the best pass's bytes and multiply-adds per second, divided by the probes at the end
	bytesPerS, flopsPerS := make([]float64, len(o.Batches)), make([]float64, len(o.Batches))
	for round := range max(o.Repeats, 1) {
		if round > 0 {
			// between rounds too: a probe that met a neighbour's burst at the start and at the
			// end put batch 1 above 100 % of the roofline on a shared Zen 3 (24.5 GB/s probed,
			// 27.9 read by the step)
			res.BandwidthGBs = max(res.BandwidthGBs, Bandwidth())
		}
		for i, B := range o.Batches {
			var kvBytes int64
			read0 := m.WeightBytesRead()
			cpu0, cpuOK := readCPU()
			next := tokens(B) // each sequence's next token
			samplers := make([]*sampling.Sampler, B)
			for s := range samplers {
				samplers[s] = sampling.New(sampling.Params{TopP: 1})
			}
			t0 := time.Now()
			for step := range o.DecodeSteps {
				items := make([]qwen3.BatchItem, B)
				pos := o.ContextLen + step
				if o.FullLogits {
					next = tokens(B)
				}
				for s := range B {
					items[s] = qwen3.BatchItem{Tokens: next[s : s+1], Start: pos, Table: table(base[i] + s), WantLogits: true, TopK: topK}
				}
				var err error
				labelled("decode", B, func() {
					var logits [][]float32
					if logits, err = m.ForwardBatch(kv, items); err != nil || o.FullLogits {
						return
					}
					next = make([]int, B)
					// across the cores, as the engine draws a batch's plain requests
					kernels.ParallelFor(B, 1, func(lo, hi int) {
						for s := lo; s < hi; s++ {
							next[s] = samplers[s].Next(logits[s])
						}
					})
				})
				if err != nil {
					return nil, err
				}
				kvBytes += int64(B) * int64(pos+1) * kvPerToken
			}
			el := time.Since(t0).Seconds()
			cpu1, cpuOK1 := readCPU()
			flops := 2 * float64(m.MatmulProductsPerToken()) * float64(B*o.DecodeSteps)
			weights := m.WeightBytesRead() - read0 // a MoE step reads only the experts its tokens chose
			if best := &res.Decode[i]; float64(B*o.DecodeSteps)/el > best.TokensPerS {
				best.TokensPerS = float64(B*o.DecodeSteps) / el
				best.StepMs = el / float64(o.DecodeSteps) * 1e3
				bytesPerS[i] = (float64(weights) + float64(kvBytes)) / el
				flopsPerS[i] = flops / el
				best.CPUStealFraction = nil
				if f, ok := stealFraction(cpu0, cpu1); ok && cpuOK && cpuOK1 {
					best.CPUStealFraction = &f
				}
			}
		}
	}
	// The probes run again after the passes and the faster of each pair is kept: on a shared
	// machine one probe can meet a neighbour's burst, and a low denominator would put a
	// fraction above 1.
	res.BandwidthGBs = max(res.BandwidthGBs, Bandwidth())
	res.MatmulPeakGFLOPs = max(res.MatmulPeakGFLOPs, MatmulPeak(m.Precision()))
	res.FMAPeakGFLOPs = max(res.FMAPeakGFLOPs, kernels.FMAPeak(res.Threads))
	res.FMACeilingTokensPerS = res.FMAPeakGFLOPs * 1e9 / (2 * float64(m.MatmulProductsPerToken()))
	for i := range res.Decode {
		res.Decode[i].RooflineFraction = bytesPerS[i] / (res.BandwidthGBs * 1e9)
		res.Decode[i].ComputeFraction = flopsPerS[i] / (res.MatmulPeakGFLOPs * 1e9)
	}
	return res, nil
}

// labelled runs f with profiler labels phase and batch on the calling goroutine, so a
// --cpuprofile can be cut to one phase (go tool pprof -tagfocus phase=decode). Kernel helpers
// do not carry the labels: the labelled samples show the caller, whose time is the wall time.
func labelled(phase string, batch int, f func()) {
	pprof.Do(context.Background(), pprof.Labels("phase", phase, "batch", strconv.Itoa(batch)), func(context.Context) { f() })
}

// Describe is a one-line summary of a model for reports.
func Describe(m *qwen3.Model) string {
	c := m.Cfg
	kind := "dense"
	if c.Experts > 0 {
		kind = fmt.Sprintf("MoE %d experts top-%d", c.Experts, c.ExpertsPerTok)
	}
	return fmt.Sprintf("%s, %d layers, hidden %d, heads %d/%d, vocab %d, %.2f GB of weights",
		kind, c.Layers, c.Hidden, c.Heads, c.KVHeads, c.Vocab, float64(m.WeightBytes())/1e9)
}
