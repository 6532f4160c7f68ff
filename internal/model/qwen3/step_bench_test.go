package qwen3

import (
	"fmt"
	"os"
	"runtime"
	"testing"
)

// BenchmarkDecodeStep is one decode step of Qwen3-0.6B's shape (random bf16 weights,
// float32 activations and cache) at batch 1, 8 and 32, 64 cached tokens per sequence: the
// two sides of bench engine's batch-32 ratio and the batch between them, where reading the
// weights and the arithmetic take about as long, for profiling (-cpuprofile) without bench
// engine's prefill and bandwidth probe. gc/op shows whether a step allocates enough to
// collect. The greedy variants read only each row's largest logit (BatchItem.TopK 1), as
// greedy decoding does, and take kernels.MatBF16Top where the CPU has cheap bf16 products.
func BenchmarkDecodeStep(b *testing.B) {
	raw, err := os.ReadFile("../../../testdata/configs/qwen3-0.6b.json")
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		b.Fatal(err)
	}
	m, err := Random(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	const ctx, bs = 64, 16
	for _, c := range []struct {
		batch, topK int
	}{{1, 0}, {1, 1}, {8, 0}, {8, 1}, {32, 0}, {32, 1}} {
		batch, name := c.batch, fmt.Sprintf("batch%d", c.batch)
		if c.topK > 0 {
			name += "/greedy"
		}
		b.Run(name, func(b *testing.B) {
			kv, items := decodeBatch(b, m, batch, ctx, bs)
			for i := range items {
				items[i].TopK = c.topK
			}
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			for range b.N {
				if _, err := m.ForwardBatch(kv, items); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(ms1.NumGC-ms0.NumGC)/float64(b.N), "gc/op")
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
