package comm

import (
	"context"
	"sync"
	"testing"
)

// FuzzSplit checks the arithmetic every algorithm uses to cut buffers: parts and pieces cover
// the buffer exactly, in order, on element boundaries; pipeline chunks cover it too.
func FuzzSplit(f *testing.F) {
	f.Add(0, 1, 4, 1024)
	f.Add(1, 3, 2, 64)
	f.Add(1031, 7, 8, 4096)
	f.Add(1<<20+3, 16, 4, 256<<10)
	f.Fuzz(func(t *testing.T, count, k, esz, piece int) {
		if count < 0 || count > 1<<22 || k < 1 || k > 512 || piece < 1 || piece > 1<<22 {
			return
		}
		esz = []int{2, 4, 8}[((esz%3)+3)%3]
		buf := make([]byte, count*esz)
		ps := parts(buf, k, esz)
		off := 0
		for i, p := range ps {
			if len(p)%esz != 0 {
				t.Fatalf("part %d has %d bytes, not a multiple of %d", i, len(p), esz)
			}
			if len(p) > 0 && &p[0] != &buf[off] {
				t.Fatalf("part %d does not start where part %d ended", i, i-1)
			}
			off += len(p)
		}
		if off != len(buf) {
			t.Fatalf("parts cover %d of %d bytes", off, len(buf))
		}
		pc := piece / esz * esz
		if pc == 0 {
			pc = esz
		}
		total := 0
		for _, p := range pieces(buf, pc) {
			if len(p) > pc {
				t.Fatalf("piece of %d bytes exceeds %d", len(p), pc)
			}
			total += len(p)
		}
		if total != len(buf) {
			t.Fatalf("pieces cover %d of %d bytes", total, len(buf))
		}
		h0, h1 := half(buf, 0, esz), half(buf, 1, esz)
		if len(h0)+len(h1) != len(buf) || len(h0)%esz != 0 {
			t.Fatalf("halves %d+%d of %d", len(h0), len(h1), len(buf))
		}
		n := newNode(0, 2, 2, DefaultConfig())
		end := 0
		for _, ch := range n.planChunks(len(buf), esz) {
			if ch.off != end || ch.len%esz != 0 || (ch.len == 0 && len(buf) > 0) {
				t.Fatalf("chunk %+v after %d", ch, end)
			}
			end += ch.len
		}
		if end != len(buf) {
			t.Fatalf("chunks cover %d of %d bytes", end, len(buf))
		}
	})
}

var (
	fuzzOnce    sync.Once
	fuzzCluster *Local
	fuzzErr     error
)

// FuzzAllReduce runs allreduce with arbitrary counts, algorithms, types and ops on a 2 × 2
// in-memory cluster and checks the result against the sequential reference.
func FuzzAllReduce(f *testing.F) {
	f.Add(uint16(0), uint8(0), uint8(0), uint8(0), false)
	f.Add(uint16(1), uint8(1), uint8(2), uint8(4), true)
	f.Add(uint16(4099), uint8(2), uint8(5), uint8(3), false)
	f.Add(uint16(65535), uint8(0), uint8(1), uint8(1), true)
	fuzzOnce.Do(func() {
		cfg := testConfig()
		w := NewInmemNetwork()
		fuzzCluster, fuzzErr = NewLocal(context.Background(), 2, 2, cfg, func(int) Transport { return w.Transport() })
	})
	if fuzzErr != nil {
		f.Fatal(fuzzErr)
	}
	f.Fuzz(func(t *testing.T, count uint16, algo, dt, op uint8, inPlace bool) {
		a := []Algo{AlgoRing, AlgoTree, AlgoHier, AlgoAuto}[algo%4]
		d := AllDataTypes[int(dt)%len(AllDataTypes)]
		o := AllOps[int(op)%len(AllOps)]
		runCollective(t, fuzzCluster.Comms(), CollAllReduce, a, d, o, int(count), inPlace)
		runCollective(t, fuzzCluster.Comms(), CollReduceScatter, a, d, o, int(count)/4, inPlace)
	})
}

func FuzzHeader(f *testing.F) {
	var b [headerBytes]byte
	h := header{kind: frameData, d: desc{coll: CollAllReduce, dtype: Float32, op: Sum, algo: AlgoHier, root: 3, count: 77, seq: 9}, src: 1, dst: 2, tag: 5, length: 308}
	h.encode(b[:])
	f.Add(b[:])
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < headerBytes {
			return
		}
		var h header
		if err := h.decode(data[:headerBytes]); err != nil {
			return
		}
		var out [headerBytes]byte
		h.encode(out[:])
		var h2 header
		if err := h2.decode(out[:]); err != nil || h2 != h {
			t.Fatalf("round trip changed the header: %+v vs %+v (%v)", h, h2, err)
		}
	})
}
