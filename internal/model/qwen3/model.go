package qwen3

import (
	"encoding/binary"
	"fmt"
	"github.com/strata-ai/strata/internal/hugepage"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/strata-ai/strata/internal/kernels"
	"github.com/strata-ai/strata/internal/safetensors"
	"github.com/strata-ai/strata/internal/tensor"
)

// linear is a weight matrix [out, in] kept in its file's element type (bf16, f16 or f32)
// and widened row by row as it is used, never converted whole.
type linear struct {
	out, in int
	dt      safetensors.DType
	data    []byte
	prec    kernels.Precision
	// the rows' norms, for applyTop: measured on first use (the output layer's take a pass
	// over its weight, which a model that never decodes greedily need not pay)
	normsOnce sync.Once
	norms     *kernels.RowNorms
}

// row widens row o into buf.
func (l *linear) row(o int, buf []float32) {
	switch l.dt {
	case safetensors.BF16:
		b := l.data[2*o*l.in : 2*(o+1)*l.in]
		for i := range buf[:l.in] {
			buf[i] = tensor.BF16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case safetensors.F16:
		b := l.data[2*o*l.in : 2*(o+1)*l.in]
		for i := range buf[:l.in] {
			buf[i] = tensor.F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	default:
		b := l.data[4*o*l.in : 4*(o+1)*l.in]
		for i := range buf[:l.in] {
			buf[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}
}

// rowsOf cuts buf into r rows of n.
func rowsOf(buf []float32, r, n int) [][]float32 {
	rows := make([][]float32, r)
	for t := range rows {
		rows[t] = buf[t*n : (t+1)*n : (t+1)*n]
	}
	return rows
}

// apply computes y[t] = W x[t] for every row t of xs, into rows from a (fresh memory when a
// is nil).
func (l *linear) apply(a *arena, xs [][]float32) [][]float32 {
	return l.applyInto(xs, rowsOf(a.uncleared(len(xs)*l.out), len(xs), l.out)) // every element is written
}

// bytes is the size of the weight this shard holds (0 for nil).
func (l *linear) bytes() int64 {
	if l == nil {
		return 0
	}
	return int64(len(l.data))
}

// applySerial is apply on the calling goroutine only (see runExperts).
func (l *linear) applySerial(a *arena, xs [][]float32) [][]float32 {
	ys := rowsOf(a.uncleared(len(xs)*l.out), len(xs), l.out)
	if w, ok := l.bf16(); ok {
		kernels.MatBF16Serial(w, l.out, l.in, xs, ys, l.prec)
		return ys
	}
	return l.applyInto(xs, ys)
}

// bf16 is the weight as bfloat16 bit patterns, when it is stored so.
func (l *linear) bf16() ([]uint16, bool) {
	if l.dt == safetensors.BF16 && len(l.data) > 0 && uintptr(unsafe.Pointer(&l.data[0]))%2 == 0 {
		return unsafe.Slice((*uint16)(unsafe.Pointer(&l.data[0])), len(l.data)/2), true
	}
	return nil, false
}

// arena hands out zeroed float32 buffers from slabs kept across forward passes and reset
// between layers: a batched step makes tens of megabytes of short-lived activations, and
// taking fresh pages from the OS for them every step costs more in page faults than the
// arithmetic (measured: batch-32 decode of a 0.6B model went from ~165 to ~400 ms/step when
// every buffer was fresh). A nil arena allocates normally.
type arena struct {
	slabs [][]float32
	cur   int // slab being filled
	off   int // first free element in slabs[cur]
	// workers are arenas for goroutines that allocate at once (runExperts), reset with this
	// one's children by workerArenas
	workers []*arena
}

// workerArenas returns n arenas for concurrent goroutines, reset; a nil arena gives nils (each
// allocates normally).
func (a *arena) workerArenas(n int) []*arena {
	ws := make([]*arena, n)
	if a == nil {
		return ws
	}
	for len(a.workers) < n {
		a.workers = append(a.workers, &arena{})
	}
	for i := range ws {
		a.workers[i].reset()
		ws[i] = a.workers[i]
	}
	return ws
}

func (a *arena) floats(n int) []float32 {
	r := a.uncleared(n)
	clear(r)
	return r
}

// uncleared is floats for a caller that writes every element before reading any: clearing the
// outputs of a batch's matmuls cost ~3 % of a batch-32 decode step.
func (a *arena) uncleared(n int) []float32 {
	if a == nil {
		return make([]float32, n)
	}
	for a.cur < len(a.slabs) {
		s := a.slabs[a.cur]
		if a.off+n <= len(s) {
			r := s[a.off : a.off+n : a.off+n]
			a.off += n
			return r
		}
		a.cur++
		a.off = 0
	}
	a.slabs = append(a.slabs, make([]float32, max(n, 1<<20)))
	a.cur, a.off = len(a.slabs)-1, n
	return a.slabs[a.cur][:n:n]
}

func (a *arena) rows(r, n int) [][]float32 { return rowsOf(a.floats(r*n), r, n) }

// reset makes every buffer handed out so far free for reuse; when the last pass needed more
// than one slab, they are merged into one so the next pass fits without growing.
func (a *arena) reset() {
	if len(a.slabs) > 1 {
		total := 0
		for _, s := range a.slabs {
			total += len(s)
		}
		a.slabs = [][]float32{make([]float32, total)}
	}
	a.cur, a.off = 0, 0
}

// applyInto is apply writing into ys (len(xs) rows of l.out).
func (l *linear) applyInto(xs, ys [][]float32) [][]float32 {
	if w, ok := l.bf16(); ok {
		kernels.MatBF16(w, l.out, l.in, xs, ys, l.prec)
		return ys
	}
	w := make([]float32, l.in)
	for o := range l.out {
		l.row(o, w)
		for t, x := range xs {
			ys[t][o] = kernels.DotF32(w, x)
		}
	}
	return ys
}

// applyTop is applyInto for rows of which the caller reads only the ks[t] largest results
// (BatchItem.TopK; 0: all of them). Rows that want every result exact go through applyInto;
// when they are there and the others few, all rows share that one pass, since a second pass
// over the weight costs more than the cheaper arithmetic saves while a pass is bound by
// memory.
func (l *linear) applyTop(xs, ys [][]float32, ks []int) {
	w, ok := l.bf16()
	var tx, ty, ex, ey [][]float32
	var tk []int
	for t, k := range ks {
		if k > 0 {
			tx, ty, tk = append(tx, xs[t]), append(ty, ys[t]), append(tk, k)
		} else {
			ex, ey = append(ex, xs[t]), append(ey, ys[t])
		}
	}
	// at BFloat16 precision the whole pass already costs what MatBF16Top's first one does
	if !ok || l.prec != kernels.Float32 || !kernels.CheapBF16() || len(tx) == 0 || (len(ex) > 0 && len(tx) < 16) {
		l.applyInto(xs, ys)
		return
	}
	l.normsOnce.Do(func() { l.norms = kernels.NewRowNorms(w, l.out, l.in) })
	kernels.MatBF16Top(w, l.norms, l.out, l.in, tx, ty, tk)
	if len(ex) > 0 {
		l.applyInto(ex, ey)
	}
}

// mlp is a SwiGLU block. gateUp, when set, holds gate's rows then up's in one matrix (gate and
// up are views into it), so one matmul computes both.
type mlp struct{ gate, up, down, gateUp *linear }

type layer struct {
	inNorm, postNorm []float32
	q, k, v, o       *linear
	qkv              *linear // q, k and v's rows in one matrix (they are views into it), or nil
	qNorm, kNorm     []float32
	dense            *mlp
	router           *linear
	experts          []mlp
}

// Model is a loaded Qwen3 (dense or MoE) ready for a forward pass.
type Model struct {
	Cfg   *Config // this shard's shapes: its heads, intermediate size and layers
	Full  *Config // the whole model's
	shard Shard
	tp    TPComm
	// the vocabulary rows [vocabLo, vocabHi) this rank holds of embed and lmHead, vocabPer
	// rows per rank (the vocabulary padded to a multiple of the TP size)
	vocabLo, vocabHi, vocabPer int
	embed                      *linear
	layers                     []layer
	norm                       []float32
	lmHead                     *linear
	weights                    *safetensors.Set
	kvBF16                     bool              // the paged KV cache stores bfloat16 (SetKVCacheDType)
	bytesRead                  atomic.Int64      // weight bytes read by forward passes (WeightBytesRead)
	prec                       kernels.Precision // SetPrecision's
	denseBytes                 int64             // denseWeightBytes but the output layer's, once loaded
}

// SetKVCacheDType picks the element type of the paged KV caches made after it: kernels.Float32
// (the default: attention exact to a float32 reference) or kernels.BFloat16 (vLLM's choice for
// a bf16 model: half the memory per token, and half the bytes decode attention reads, at about
// three significant digits per cached key and value).
func (m *Model) SetKVCacheDType(p kernels.Precision) { m.kvBF16 = p == kernels.BFloat16 }

// KVCacheDType is what SetKVCacheDType set.
func (m *Model) KVCacheDType() kernels.Precision {
	if m.kvBF16 {
		return kernels.BFloat16
	}
	return kernels.Float32
}

// fuseRows stacks the rows of matrices that multiply the same input into one (bf16 only, the
// batched kernels' type), and makes the parts views into it: a batch then packs its input
// once and makes one kernel pass instead of one per matrix. It returns nil when the parts
// cannot be fused.
func fuseRows(parts ...*linear) *linear {
	for _, p := range parts {
		if p == nil {
			return nil
		}
	}
	in, rows := parts[0].in, 0
	for _, p := range parts {
		if p.dt != safetensors.BF16 || p.in != in {
			return nil
		}
		rows += p.out
	}
	data := make([]byte, 0, 2*rows*in)
	for _, p := range parts {
		data = append(data, p.data...)
	}
	hugepage.Advise(data)
	off := 0
	for _, p := range parts {
		n := len(p.data)
		p.data = data[off : off+n : off+n]
		off += n
	}
	return &linear{out: rows, in: in, dt: safetensors.BF16, data: data, prec: parts[0].prec}
}

// fuse joins q/k/v and every gate/up pair of the model's layers.
func (m *Model) fuse() {
	for i := range m.layers {
		l := &m.layers[i]
		l.qkv = fuseRows(l.q, l.k, l.v)
		if l.dense != nil {
			l.dense.gateUp = fuseRows(l.dense.gate, l.dense.up)
		}
		for e := range l.experts {
			if l.experts[e].gate != nil {
				l.experts[e].gateUp = fuseRows(l.experts[e].gate, l.experts[e].up)
			}
		}
	}
}

// Precision is how activations meet bf16 weights in batched matmuls (SetPrecision).
func (m *Model) Precision() kernels.Precision { return m.prec }

// SetPrecision says how activations meet bf16 weights in batched matmuls (kernels.Float32, the
// default, keeps the results within 1e-5 relative of float32; kernels.BFloat16 rounds them as
// vLLM's CPU backend does, for about twice the batched speed). The MoE router stays float32 so
// expert choices do not flip on rounding.
func (m *Model) SetPrecision(p kernels.Precision) {
	m.prec = p
	set := func(l *linear) {
		if l != nil {
			l.prec = p
		}
	}
	set(m.lmHead)
	for i := range m.layers {
		l := &m.layers[i]
		set(l.q)
		set(l.k)
		set(l.v)
		set(l.qkv)
		set(l.o)
		if l.dense != nil {
			set(l.dense.gate)
			set(l.dense.up)
			set(l.dense.gateUp)
			set(l.dense.down)
		}
		for e := range l.experts {
			set(l.experts[e].gate)
			set(l.experts[e].up)
			set(l.experts[e].gateUp)
			set(l.experts[e].down)
		}
	}
}

// Close releases the memory-mapped weights.
func (m *Model) Close() error { return m.weights.Close() }

// loader fetches tensors with the shapes the config implies and remembers what it used.
type loader struct {
	w    *safetensors.Set
	used map[string]bool
	err  error
}

func (ld *loader) linear(name string, out, in int) *linear {
	if ld.err != nil {
		return nil
	}
	info, b, err := ld.w.Bytes(name)
	if err != nil {
		ld.err = fmt.Errorf("missing tensor %s (config.json expects it)", name)
		return nil
	}
	ld.used[name] = true
	if len(info.Shape) != 2 || info.Shape[0] != out || info.Shape[1] != in {
		ld.err = fmt.Errorf("tensor %s has shape %v but config.json implies [%d %d]", name, info.Shape, out, in)
		return nil
	}
	switch info.DType {
	case safetensors.BF16, safetensors.F16, safetensors.F32:
	default:
		ld.err = fmt.Errorf("tensor %s is %s (want bf16, f16 or f32)", name, info.DType)
		return nil
	}
	return &linear{out: out, in: in, dt: info.DType, data: b}
}

func (ld *loader) vector(name string, n int) []float32 {
	if ld.err != nil {
		return nil
	}
	info, v, err := ld.w.Float32s(name)
	if err != nil {
		ld.err = fmt.Errorf("missing or unreadable tensor %s: %v", name, err)
		return nil
	}
	ld.used[name] = true
	if len(info.Shape) != 1 || info.Shape[0] != n {
		ld.err = fmt.Errorf("tensor %s has shape %v but config.json implies [%d]", name, info.Shape, n)
		return nil
	}
	return v
}

// Load opens a Hugging Face Qwen3 folder: config.json and the safetensors weights, checking
// that every tensor the config implies is present with the right shape and nothing else is.
func Load(dir string) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	w, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	m, err := build(cfg, w)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("model folder %s: %w", dir, err)
	}
	return m, nil
}

func build(cfg *Config, w *safetensors.Set) (*Model, error) {
	return buildShard(cfg, w, Shard{TP: 1, EndLayer: cfg.Layers}, nil)
}

func buildShard(cfg *Config, w *safetensors.Set, sh Shard, tp TPComm) (*Model, error) {
	lc, err := sh.localConfig(cfg)
	if err != nil {
		return nil, err
	}
	ld := &loader{w: w, used: map[string]bool{}}
	m := &Model{Cfg: lc, Full: cfg, shard: sh, weights: w}
	if sh.TP > 1 {
		m.tp = tp
	}
	H, hd := cfg.Hidden, cfg.HeadDim
	T, r := sh.TP, sh.Rank
	m.vocabPer = (cfg.Vocab + T - 1) / T
	m.vocabLo, m.vocabHi = min(r*m.vocabPer, cfg.Vocab), min((r+1)*m.vocabPer, cfg.Vocab)
	needEmbed := sh.first() || (sh.last() && cfg.TieEmbeddings)
	m.embed = ld.rows("model.embed_tokens.weight", cfg.Vocab, H, m.vocabLo, m.vocabHi, needEmbed)
	kvLo := r * lc.KVHeads // KV heads split across ranks,
	if cfg.KVHeads < T {
		kvLo = r * cfg.KVHeads / T // or replicated when there are fewer than ranks, as vLLM does
	}
	// Stop at the first missing or misshapen tensor: a config may claim far more layers or
	// experts than the folder holds (2^40 of them hung the loader here).
	for i := 0; i < cfg.Layers && ld.err == nil; i++ {
		p := fmt.Sprintf("model.layers.%d", i)
		use := i >= sh.FirstLayer && i < sh.EndLayer
		l := layer{
			inNorm:   ld.vec(p+".input_layernorm.weight", H, use),
			postNorm: ld.vec(p+".post_attention_layernorm.weight", H, use),
			q:        ld.rows(p+".self_attn.q_proj.weight", cfg.Heads*hd, H, r*lc.Heads*hd, (r+1)*lc.Heads*hd, use),
			k:        ld.rows(p+".self_attn.k_proj.weight", cfg.KVHeads*hd, H, kvLo*hd, (kvLo+lc.KVHeads)*hd, use),
			v:        ld.rows(p+".self_attn.v_proj.weight", cfg.KVHeads*hd, H, kvLo*hd, (kvLo+lc.KVHeads)*hd, use),
			o:        ld.cols(p+".self_attn.o_proj.weight", H, cfg.Heads*hd, r*lc.Heads*hd, (r+1)*lc.Heads*hd, use),
			qNorm:    ld.vec(p+".self_attn.q_norm.weight", hd, use),
			kNorm:    ld.vec(p+".self_attn.k_norm.weight", hd, use),
		}
		if cfg.Sparse(i) {
			l.router = ld.rows(p+".mlp.gate.weight", cfg.Experts, H, 0, cfg.Experts, use)
			per := cfg.Experts / T
			for e := 0; e < cfg.Experts && ld.err == nil; e++ {
				name := fmt.Sprintf("%s.mlp.experts.%d", p, e)
				switch {
				case !sh.ExpertParallel:
					l.experts = append(l.experts, ld.mlpShard(name, H, cfg.MoEIntermediate, r, T, use))
				case e/per == r: // a whole expert of this rank's
					l.experts = append(l.experts, ld.mlpShard(name, H, cfg.MoEIntermediate, 0, 1, use))
				default: // another rank's: only checked
					ld.mlpShard(name, H, cfg.MoEIntermediate, 0, 1, false)
					l.experts = append(l.experts, mlp{})
				}
			}
		} else {
			d := ld.mlpShard(p+".mlp", H, cfg.Intermediate, r, T, use)
			l.dense = &d
		}
		if use {
			m.layers = append(m.layers, l)
		}
	}
	m.norm = ld.vec("model.norm.weight", H, sh.last())
	if cfg.TieEmbeddings {
		m.lmHead = m.embed
		if _, ok := w.Info("lm_head.weight"); ok {
			ld.used["lm_head.weight"] = true // some checkpoints store the tied copy too
		}
	} else {
		m.lmHead = ld.rows("lm_head.weight", cfg.Vocab, H, m.vocabLo, m.vocabHi, sh.last())
	}
	if ld.err != nil {
		return nil, ld.err
	}
	var extra []string
	for _, n := range w.Names() {
		if !ld.used[n] && !strings.HasSuffix(n, "rotary_emb.inv_freq") {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, fmt.Errorf("%d tensors that config.json does not account for, e.g. %s (wrong config, or another architecture?)", len(extra), extra[0])
	}
	m.fuse()
	m.denseBytes = m.denseWeightBytes() - m.lmHead.bytes() // the output layer counts when it runs
	return m, nil
}
