package qwen3

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/strata-ai/strata/internal/hugepage"
	"github.com/strata-ai/strata/internal/kernels"
)

// PagedKV stores keys and values for many sequences in fixed-size blocks: block
// table[p/BlockSize] holds position p of a sequence whose block table is table, at offset
// p%BlockSize. The engine's block manager decides which blocks a sequence owns.
//
// Inside a block the layout is head-major, [KV head][offset][head dim], as vLLM's CPU cache
// is: attention reads one KV head's keys of a block as one contiguous run, where a
// position-major block would give it 128-float pieces a whole token's keys apart (4 KiB on
// Qwen3-0.6B), which the hardware prefetcher does not follow and which fall into few L1 sets.
type PagedKV struct {
	BlockSize int
	NumBlocks int
	kvDim     int
	k, v      [][]float32 // [layer][block][KV head][offset][head dim], float32 caches
	k16, v16  [][]uint16  // the same as bfloat16 bit patterns, bfloat16 caches
	// logits is reused by every ForwardBatch on this cache: a batch-32 step of a 150k-token
	// vocabulary makes 19 MB of logits, and fresh pages for them each step cost more in page
	// faults than the output layer's arithmetic.
	logits []float32
	// step holds what lives for a whole ForwardBatch (the residual stream), layer what lives
	// for one layer; both are reused across calls.
	step, layer arena
}

// NewPagedKV allocates numBlocks blocks of blockSize token slots for every layer.
func (m *Model) NewPagedKV(numBlocks, blockSize int) *PagedKV {
	kvDim := m.Cfg.KVHeads * m.Cfg.HeadDim
	kv := &PagedKV{BlockSize: blockSize, NumBlocks: numBlocks, kvDim: kvDim}
	for range m.layers {
		if m.kvBF16 {
			kv.k16 = append(kv.k16, make([]uint16, numBlocks*blockSize*kvDim))
			kv.v16 = append(kv.v16, make([]uint16, numBlocks*blockSize*kvDim))
			continue
		}
		kv.k = append(kv.k, make([]float32, numBlocks*blockSize*kvDim))
		kv.v = append(kv.v, make([]float32, numBlocks*blockSize*kvDim))
	}
	for i := range kv.k {
		hugepage.Floats(kv.k[i])
		hugepage.Floats(kv.v[i])
	}
	for i := range kv.k16 {
		hugepage.Words(kv.k16[i])
		hugepage.Words(kv.v16[i])
	}
	return kv
}

// Prefault writes every page of the cache once, spread over the cores, so the kernel maps
// them now rather than in the steps that first reach each block. A server's cache gets its
// pages from its first requests and keeps them; a benchmark that times a fresh cache would
// count those faults in its steps (2.5 % of a batch-32 decode profile of Qwen3-0.6B's shape,
// its KV stores showing as memmove). NewPagedKV leaves the pages unmapped: a cache sized
// from a share of RAM would otherwise take all of it at start.
func (kv *PagedKV) Prefault() {
	const page = 4096
	var bufs [][]byte
	for i := range kv.k {
		bufs = append(bufs, bytesOf(kv.k[i]), bytesOf(kv.v[i]))
	}
	for i := range kv.k16 {
		bufs = append(bufs, bytesOf(kv.k16[i]), bytesOf(kv.v16[i]))
	}
	kernels.ParallelFor(len(bufs), 1, func(lo, hi int) {
		for _, b := range bufs[lo:hi] {
			for i := 0; i < len(b); i += page {
				b[i] = 0
			}
		}
	})
}

func bytesOf[T float32 | uint16](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

// BytesPerBlock is the memory one block takes across all layers (keys and values, in the
// cache's element type).
func (m *Model) BytesPerBlock(blockSize int) int64 {
	elem := int64(4)
	if m.kvBF16 {
		elem = 2
	}
	return int64(len(m.layers)) * 2 * int64(blockSize) * int64(m.Cfg.KVHeads*m.Cfg.HeadDim) * elem
}

// headBase is where KV head h's run of a block starts: a block holds BlockSize·kvDim
// elements, head h's keys (or values) of it are BlockSize·hd consecutive ones.
func (kv *PagedKV) headBase(block int32, h, hd int) int {
	return int(block)*kv.BlockSize*kv.kvDim + h*kv.BlockSize*hd
}

// storeF32 writes one position's keys or values (all KV heads, kvDim elements) into its block.
func (kv *PagedKV) storeF32(dst []float32, table []int32, p, hd int, src []float32) {
	b, off := table[p/kv.BlockSize], p%kv.BlockSize
	for h := 0; h < kv.kvDim/hd; h++ {
		o := kv.headBase(b, h, hd) + off*hd
		copy(dst[o:o+hd], src[h*hd:(h+1)*hd])
	}
}

// storeBF16 is storeF32 for a bfloat16 cache.
func (kv *PagedKV) storeBF16(dst []uint16, table []int32, p, hd int, src []float32) {
	b, off := table[p/kv.BlockSize], p%kv.BlockSize
	for h := 0; h < kv.kvDim/hd; h++ {
		o := kv.headBase(b, h, hd) + off*hd
		kernels.ToBF16(dst[o:o+hd], src[h*hd:(h+1)*hd])
	}
}

// BatchItem is one sequence's share of a batched forward pass: Tokens at positions
// Start, Start+1, ...; earlier positions are already in the cache under Table.
type BatchItem struct {
	Tokens     []int
	Start      int
	Table      []int32
	WantLogits bool // return the logits of the last token
	// AllLogits returns the logits of every token instead, row after row in one slice (a
	// prompt's logprobs need each position's prediction of the next token)
	AllLogits bool
	// TopK > 0 says the caller reads only the TopK largest of the last token's logits (greedy
	// decoding reads one, top-k sampling k): those come back as float32 computes them (on
	// AMX bit for bit as with TopK 0, in any batch; elsewhere within float32 rounding of
	// it), every other one strictly below them, from a cheaper pass where the CPU has one
	// (kernels.MatBF16Top). It does not apply with AllLogits.
	TopK int
}

// ForwardBatch runs every item's tokens through the model in one pass: the linear layers see
// all tokens of all sequences at once (each weight is read once per step, which is what makes
// batching pay), attention runs per token over its own sequence's cached positions. It returns
// the last token's logits for items that want them; they stay valid until the next
// ForwardBatch on kv.
func (m *Model) ForwardBatch(kv *PagedKV, items []BatchItem) ([][]float32, error) {
	_, logits, err := m.ForwardStage(kv, items, nil)
	return logits, err
}

// ForwardStage is ForwardBatch for one shard. The first pipeline stage embeds the items'
// tokens; a later one takes hIn, the previous stage's output rows (one per token, in item
// order), and works on them in place. A stage that is not the last returns its output rows as
// hOut; the last returns the logits. With tensor parallelism every rank of the stage calls
// ForwardStage with the same items and gets the same rows back.
func (m *Model) ForwardStage(kv *PagedKV, items []BatchItem, hIn [][]float32) (hOut, logits [][]float32, err error) {
	cfg := m.Cfg
	type row struct {
		item, pos int
	}
	var rows []row
	for i, it := range items {
		if len(it.Tokens) == 0 {
			return nil, nil, fmt.Errorf("batch item %d has no tokens", i)
		}
		if need := (it.Start + len(it.Tokens) + kv.BlockSize - 1) / kv.BlockSize; need > len(it.Table) {
			return nil, nil, fmt.Errorf("batch item %d: %d positions need %d blocks, table has %d", i, it.Start+len(it.Tokens), need, len(it.Table))
		}
		for j := range it.Tokens {
			rows = append(rows, row{i, it.Start + j})
		}
	}
	maxPos := 0
	for _, rw := range rows {
		maxPos = max(maxPos, rw.pos)
	}
	kv.step.reset()
	m.bytesRead.Add(m.denseBytes)
	var h [][]float32
	if m.shard.first() {
		h = kv.step.rows(len(rows), cfg.Hidden) // one allocation: allreduced in place below
	} else {
		h = make([][]float32, len(rows))
	}
	cos := make([][]float32, len(rows))
	sin := make([][]float32, len(rows))
	if !m.shard.first() {
		if len(hIn) != len(rows) {
			return nil, nil, fmt.Errorf("stage input has %d rows for %d tokens", len(hIn), len(rows))
		}
		copy(h, hIn)
	}
	r := 0
	for _, it := range items {
		for j, id := range it.Tokens {
			if id < 0 || id >= cfg.Vocab {
				return nil, nil, errTokenRange(id, cfg.Vocab)
			}
			if m.shard.first() && id >= m.vocabLo && id < m.vocabHi {
				m.embed.row(id-m.vocabLo, h[r])
			}
			c, s := ropeTables(it.Start+j, it.Start+j+1, cfg.HeadDim, cfg.RopeTheta, cfg.DType)
			cos[r], sin[r] = c[0], s[0]
			r++
		}
	}
	if m.shard.first() && m.tp != nil {
		// vocabulary-parallel embedding: the rank holding each token's row wrote it, the
		// others zeros, so a sum gives every rank the full rows
		if err := allReduceRows(m.tp, h); err != nil {
			return nil, nil, err
		}
	}
	hd := cfg.HeadDim
	group := cfg.Heads / cfg.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	for li := range m.layers {
		l := &m.layers[li]
		a := &kv.layer
		a.reset()
		x := rowsOf(a.uncleared(len(rows)*cfg.Hidden), len(rows), cfg.Hidden) // rmsNormInto writes every element
		kernels.ParallelFor(len(h), kernels.GrainFor(cfg.Hidden), func(lo, hi int) {
			for t := lo; t < hi; t++ {
				rmsNormInto(x[t], h[t], l.inNorm, cfg.RMSEps)
			}
		})
		q, k, v := l.projectQKV(a, x)
		var K, V []float32
		var K16, V16 []uint16
		if kv.k16 != nil {
			K16, V16 = kv.k16[li], kv.v16[li]
		} else {
			K, V = kv.k[li], kv.v[li]
		}
		kernels.ParallelFor(len(rows), kernels.GrainFor((cfg.Heads+cfg.KVHeads)*hd), func(lo, hi int) {
			for t := lo; t < hi; t++ {
				rw := rows[t]
				for hh := range cfg.Heads {
					headNormRope(q[t][hh*hd:(hh+1)*hd], l.qNorm, cfg.RMSEps, cos[t], sin[t])
				}
				for hh := range cfg.KVHeads {
					headNormRope(k[t][hh*hd:(hh+1)*hd], l.kNorm, cfg.RMSEps, cos[t], sin[t])
				}
				table := items[rw.item].Table
				if K16 != nil {
					kv.storeBF16(K16, table, rw.pos, hd, k[t])
					kv.storeBF16(V16, table, rw.pos, hd, v[t])
				} else {
					kv.storeF32(K, table, rw.pos, hd, k[t])
					kv.storeF32(V, table, rw.pos, hd, v[t])
				}
			}
		})
		attn := make([][]float32, len(rows))
		for t := range rows {
			attn[t] = a.floats(cfg.Heads * hd)
		}
		// Attention runs in units of up to attnQueries consecutive rows of one sequence and
		// one KV head (with its group of query heads): every key and value block is read once
		// per unit and stays in L1 while each of the unit's queries uses it, where row by row
		// a long prefill re-read the whole cache for every query. Each query's scores,
		// softmax and weighted sum are formed exactly as row by row would.
		bs := kv.BlockSize
		type unit struct{ r0, r1, kvh0, kvh1 int }
		var groups [][2]int
		for r0 := 0; r0 < len(rows); {
			r1 := r0 + 1
			for r1 < len(rows) && r1-r0 < attnQueries && rows[r1].item == rows[r0].item {
				r1++
			}
			groups = append(groups, [2]int{r0, r1})
			r0 = r1
		}
		// A unit takes as many KV heads as keeps four units per core: a batch of decode
		// rows then reads each sequence's blocks head after head, one prefetch stream per
		// sequence instead of one that starts cold per head, while one long sequence still
		// spreads its heads over the cores.
		hpu := cfg.KVHeads
		for hpu > 1 && (cfg.KVHeads%hpu != 0 || len(groups)*(cfg.KVHeads/hpu) < 4*kernels.Threads()) {
			hpu--
		}
		var units []unit
		for _, g := range groups {
			for kvh := 0; kvh < cfg.KVHeads; kvh += hpu {
				units = append(units, unit{g[0], g[1], kvh, kvh + hpu})
			}
		}
		width := attnQueries * group * (maxPos + 1)
		parallelUnits(len(units), width, (maxPos+1)*cfg.Heads*hd*len(rows)/max(len(units), 1), func(u int, scores []float32) {
			un := units[u]
			table := items[rows[un.r0].item].Table
			last := rows[un.r1-1].pos // the unit's queries are consecutive: the last sees most
			nh, nb := un.kvh1-un.kvh0, last/bs+1
			// A unit of several queries goes head by head: each head's scores for all its
			// queries, then the next head's in the same buffer. A decode unit (one query)
			// holds every head's scores at once and goes block by block instead, all heads of
			// a block in turn: a block's heads lie one after another, so the unit streams
			// 64 KB runs (Qwen3-0.6B's shape) rather than hopping between blocks every 8 KB.
			// Measured on a 2-vCPU Zen 5, binaries taking turns, medians:
			// BenchmarkDecodeAttention 5.1 → 4.7 ms at 64 cached tokens and 20.0 → 18.1 ms at
			// 512; BenchmarkDecodeStep at batch 32 138 → 133 ms. Each query's sums are formed
			// in the same order either way.
			blockMajor := un.r1-un.r0 == 1 && nh <= attnQueries
			sc := func(t, kvh, g int) []float32 { // query row t, head g of KV head kvh's group
				row := t - un.r0
				if blockMajor {
					row = kvh - un.kvh0
				}
				o := (row*group + g) * (maxPos + 1)
				return scores[o : o+rows[t].pos+1]
			}
			// run numbers the unit's runs (one head's keys or values of one block) in the
			// order it reads them; pass 0 is keys, 1 values.
			run := func(pass, blk, kvh int) int {
				if blockMajor {
					return (pass*nb+blk)*nh + kvh - un.kvh0
				}
				return ((kvh-un.kvh0)*2+pass)*nb + blk
			}
			// Each run comes from memory (the cache is far larger than the caches): runs are
			// asked for attnAhead runs before they are used, so one is on its way while
			// another is worked on.
			runs, asked := 2*nb*nh, 0
			ask := func(upTo int) { // prefetch runs [asked, upTo)
				for ; asked < min(upTo, runs); asked++ {
					var pass, blk, kvh int
					if blockMajor {
						pass, blk, kvh = asked/(nb*nh), asked/nh%nb, un.kvh0+asked%nh
					} else {
						pass, blk, kvh = asked/nb%2, asked%nb, un.kvh0+asked/(2*nb)
					}
					c, c16 := K, K16
					if pass == 1 {
						c, c16 = V, V16
					}
					b := kv.headBase(table[blk], kvh, hd)
					if c16 != nil {
						kernels.PrefetchBF16(c16[b : b+bs*hd])
					} else {
						kernels.PrefetchF32(c[b : b+bs*hd])
					}
				}
			}
			// meet every query with one head's run of keys (pass 0: scores) or of values
			// (pass 1: the weighted sum into the query's output)
			meet := func(pass, kvh, start int) {
				base := kv.headBase(table[start/bs], kvh, hd)
				ask(run(pass, start/bs, kvh) + 1 + attnAhead)
				for t := un.r0; t < un.r1; t++ {
					if start > rows[t].pos {
						continue
					}
					end := min(start+bs, rows[t].pos+1)
					for g := 0; g < group; g++ {
						hh := kvh*group + g
						s := sc(t, kvh, g)[start:end]
						if g+1 < group { // two heads of the group read each key or value once
							s2 := sc(t, kvh, g+1)[start:end]
							switch {
							case pass == 0 && K16 != nil:
								kernels.DotsStrided2BF16(q[t][hh*hd:(hh+1)*hd], q[t][(hh+1)*hd:(hh+2)*hd], K16[base:], hd, s, s2)
							case pass == 0:
								kernels.DotsStrided2(q[t][hh*hd:(hh+1)*hd], q[t][(hh+1)*hd:(hh+2)*hd], K[base:], hd, s, s2)
							case V16 != nil:
								kernels.AxpysStrided2BF16(s, s2, V16[base:], hd, attn[t][hh*hd:(hh+1)*hd], attn[t][(hh+1)*hd:(hh+2)*hd])
							default:
								kernels.AxpysStrided2(s, s2, V[base:], hd, attn[t][hh*hd:(hh+1)*hd], attn[t][(hh+1)*hd:(hh+2)*hd])
							}
							g++
							continue
						}
						switch {
						case pass == 0 && K16 != nil:
							kernels.DotsStridedBF16(q[t][hh*hd:(hh+1)*hd], K16[base:], hd, s)
						case pass == 0:
							kernels.DotsStrided(q[t][hh*hd:(hh+1)*hd], K[base:], hd, s)
						case V16 != nil:
							kernels.AxpysStridedBF16(s, V16[base:], hd, attn[t][hh*hd:(hh+1)*hd])
						default:
							kernels.AxpysStrided(s, V[base:], hd, attn[t][hh*hd:(hh+1)*hd])
						}
					}
				}
			}
			softmax := func(kvh int) {
				for t := un.r0; t < un.r1; t++ {
					for g := range group {
						kernels.SoftmaxScaled(sc(t, kvh, g), scale)
					}
				}
			}
			if blockMajor {
				for start := 0; start <= last; start += bs {
					for kvh := un.kvh0; kvh < un.kvh1; kvh++ {
						meet(0, kvh, start)
					}
				}
				for kvh := un.kvh0; kvh < un.kvh1; kvh++ {
					softmax(kvh)
				}
				for start := 0; start <= last; start += bs {
					for kvh := un.kvh0; kvh < un.kvh1; kvh++ {
						meet(1, kvh, start)
					}
				}
				return
			}
			for kvh := un.kvh0; kvh < un.kvh1; kvh++ {
				for start := 0; start <= last; start += bs {
					meet(0, kvh, start)
				}
				softmax(kvh)
				for start := 0; start <= last; start += bs {
					meet(1, kvh, start)
				}
			}
		})
		if err := m.finishLayer(a, l, h, attn); err != nil {
			return nil, nil, err
		}
	}
	if !m.shard.last() {
		return h, nil, nil
	}
	// only the rows whose logits are wanted go through the final norm and the vocabulary
	var last [][]float32
	var ks []int          // each row of last's TopK (0: every logit exact)
	var which, from []int // the item of each wanted row range, and where its rows start in last
	r = 0
	for i, it := range items {
		first := r + len(it.Tokens) - 1
		if it.AllLogits {
			first = r
		}
		r += len(it.Tokens)
		if it.WantLogits || it.AllLogits {
			which, from = append(which, i), append(from, len(last))
			k := it.TopK
			if it.AllLogits {
				k = 0
			}
			for t := first; t < r; t++ {
				last = append(last, rmsNormInto(kv.step.floats(cfg.Hidden), h[t], m.norm, cfg.RMSEps))
				ks = append(ks, k)
			}
		}
	}
	out := make([][]float32, len(items))
	if len(last) > 0 {
		logits, err := m.vocabLogits(kv, last, ks)
		if err != nil {
			return nil, nil, err
		}
		V := cfg.Vocab
		for j, i := range which {
			n := 1
			if items[i].AllLogits {
				n = len(items[i].Tokens)
			}
			// vocabLogits writes its rows one after another into kv.logits
			lo := from[j] * V
			out[i] = kv.logits[lo : lo+n*V : lo+n*V]
			if &out[i][0] != &logits[from[j]][0] {
				return nil, nil, fmt.Errorf("qwen3: the logits of item %d are not where vocabLogits put them", i)
			}
		}
	}
	return nil, out, nil
}

// vocabLogits applies the output layer to rows: on one rank directly; with tensor
// parallelism each rank computes its slice of the vocabulary and an all-gather assembles the
// full rows on every rank.
// ks holds each row's TopK (BatchItem).
func (m *Model) vocabLogits(kv *PagedKV, rows [][]float32, ks []int) ([][]float32, error) {
	V := m.Cfg.Vocab
	if cap(kv.logits) < len(rows)*V {
		kv.logits = make([]float32, len(rows)*V)
	}
	logits := rowsOf(kv.logits[:len(rows)*V], len(rows), V)
	m.bytesRead.Add(m.lmHead.bytes())
	if m.tp == nil {
		m.lmHead.applyTop(rows, logits, ks)
		return logits, nil
	}
	T, Vp := m.shard.TP, m.vocabPer
	local := make([]float32, len(rows)*Vp) // padded to the same size on every rank
	if m.lmHead.out > 0 {
		// each rank's slice keeps its own largest exact: the TopK largest of the whole row are
		// among them
		m.lmHead.applyTop(rows, rowsOf(local, len(rows), Vp), ks)
	}
	all := make([]float32, T*len(local))
	if err := m.tp.AllGather(local, all); err != nil {
		return nil, err
	}
	for r := range T {
		for i := range rows {
			lo := r * Vp
			if lo >= V {
				break
			}
			n := min(Vp, V-lo)
			copy(logits[i][lo:lo+n], all[r*len(local)+i*Vp:][:n])
		}
	}
	return logits, nil
}

// attnQueries is how many consecutive rows of one sequence an attention unit takes: their
// scores (for a KV head's group of query heads) must fit in L2 next to the blocks they read.
const attnQueries = 16

// attnAhead is how many KV runs (one head's keys or values of one block) attention asks for
// ahead of the one it works on.
const attnAhead = 1

// parallelUnits calls f(u, scores) for every u < n across the machine's cores, handing each
// worker a scratch buffer of width floats; units go out one at a time from a counter so
// long-context ones do not pile up on one core. work is about one unit's cost in elements.
func parallelUnits(n, width, work int, f func(u int, scores []float32)) {
	workers := min(kernels.Threads(), n)
	if n*work < 64<<10 { // too little work to pay for waking another core
		workers = 1
	}
	if workers <= 1 {
		scores := scratch(width)
		defer scoresPool.Put(scores)
		for u := range n {
			f(u, *scores)
		}
		return
	}
	var next atomic.Int64
	kernels.Run(workers, func() {
		scores := scratch(width)
		defer scoresPool.Put(scores)
		for {
			u := int(next.Add(1) - 1)
			if u >= n {
				return
			}
			f(u, *scores)
		}
	})
}

// scoresPool keeps attention's score buffers between layers and steps: made afresh, they were
// half a megabyte of new heap per batch-32 decode step, each page faulted in and cleared.
var scoresPool sync.Pool

// scratch returns a buffer of n floats from scoresPool, its contents left from earlier use
// (attention writes every score before it reads it).
func scratch(n int) *[]float32 {
	if p, ok := scoresPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]float32, n)
	return &b
}
