package comm

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkAllReduce times allreduce on in-process clusters: loopback TCP between nodes.
// Compare algorithms with: go test -bench AllReduce -run ^$ ./internal/comm
func BenchmarkAllReduce(b *testing.B) {
	for _, lay := range []struct{ nodes, L int }{{2, 1}, {1, 4}, {2, 2}} {
		for _, size := range []int{1 << 10, 1 << 20} {
			for _, algo := range []Algo{AlgoRing, AlgoTree, AlgoHier} {
				b.Run(fmt.Sprintf("%dx%d/%dB/%s", lay.nodes, lay.L, size, algo), func(b *testing.B) {
					cfg := DefaultConfig()
					cfg.SkipCalibration = true
					lc := newTCP(b, lay.nodes, lay.L, cfg)
					comms := lc.Comms()
					b.SetBytes(int64(size))
					b.ResetTimer()
					errs := onAll(comms, func(c *Comm) error {
						buf := make([]byte, size)
						for i := 0; i < b.N; i++ {
							if err := c.AllReduceWith(context.Background(), algo, nil, buf, Float32, Sum); err != nil {
								return err
							}
						}
						return nil
					})
					for _, err := range errs {
						if err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
