package qwen3

import (
	"fmt"
	"unsafe"

	"github.com/strata-ai/strata/internal/safetensors"
)

// Shard says which part of a model one rank holds: pipeline stage layers [FirstLayer,
// EndLayer), and tensor-parallel slice Rank of TP (attention heads, MLP and expert
// intermediate rows, vocabulary rows).
type Shard struct {
	TP, Rank             int
	FirstLayer, EndLayer int
	Layers               int // the model's layer count (0: EndLayer is the last)
	// ExpertParallel places whole experts on ranks (rank r holds experts [r·E/TP, (r+1)·E/TP))
	// instead of slicing every expert across them. Each rank dispatches the tokens it owns
	// (every TP-th one) to the experts' ranks with an all-to-all, they run their experts and
	// send the results back with another, and the sum after the MoE block (the same one
	// row-parallel experts need) gives every rank every token's output.
	ExpertParallel bool
}

func (s Shard) first() bool { return s.FirstLayer == 0 }
func (s Shard) last() bool  { return s.Layers == 0 || s.EndLayer == s.Layers }

func (s Shard) String() string {
	return fmt.Sprintf("layers %d..%d, tensor-parallel rank %d of %d", s.FirstLayer, s.EndLayer-1, s.Rank, s.TP)
}

// TPComm is what a tensor-parallel shard needs from the ranks of its node: a sum, a maximum,
// a gather in rank order, and an all-to-all (block j of send to rank j, which keeps it as
// block r of recv; expert parallelism dispatches tokens with it). Every rank of the stage
// calls them in the same order.
type TPComm interface {
	AllReduceSum(buf []float32) error
	AllReduceMax(buf []float32) error
	AllGather(send, recv []float32) error
	AllToAll(send, recv []float32) error
}

// CheckTP says whether cfg's shapes divide across tp ranks, and why not.
func CheckTP(cfg *Config, tp int) error { return checkTP(cfg, tp, false) }

// CheckSplit is CheckTP for a shard that may place whole experts (expert parallelism).
func CheckSplit(cfg *Config, tp int, expertParallel bool) error {
	return checkTP(cfg, tp, expertParallel)
}

func checkTP(cfg *Config, tp int, ep bool) error {
	if ep && cfg.Experts == 0 {
		return fmt.Errorf("expert parallelism needs a MoE model; this one is dense")
	}
	if ep && cfg.Experts%tp != 0 {
		return fmt.Errorf("the model's %d experts do not divide across %d ranks", cfg.Experts, tp)
	}
	switch {
	case tp < 1:
		return fmt.Errorf("tensor-parallel size %d must be at least 1", tp)
	case cfg.Heads%tp != 0:
		return fmt.Errorf("the model's %d attention heads do not divide across %d tensor-parallel ranks", cfg.Heads, tp)
	case cfg.KVHeads >= tp && cfg.KVHeads%tp != 0:
		return fmt.Errorf("the model's %d KV heads do not divide across %d tensor-parallel ranks", cfg.KVHeads, tp)
	case cfg.KVHeads < tp && tp%cfg.KVHeads != 0:
		return fmt.Errorf("%d tensor-parallel ranks cannot share the model's %d KV heads evenly", tp, cfg.KVHeads)
	case cfg.Experts == 0 && cfg.Intermediate%tp != 0:
		return fmt.Errorf("the model's intermediate size %d does not divide across %d tensor-parallel ranks", cfg.Intermediate, tp)
	case cfg.Experts > 0 && !ep && cfg.MoEIntermediate%tp != 0:
		return fmt.Errorf("the model's expert intermediate size %d does not divide across %d tensor-parallel ranks", cfg.MoEIntermediate, tp)
	}
	if cfg.Experts > 0 && cfg.Intermediate%tp != 0 && cfg.FirstDense() >= 0 {
		return fmt.Errorf("the model's dense intermediate size %d does not divide across %d tensor-parallel ranks", cfg.Intermediate, tp)
	}
	return nil
}

// StageLayers splits n layers into pp contiguous stages, the first ones one longer when they
// do not divide (vLLM gives the remainder to the last stages; either is fine for correctness,
// and the first stage also embeds).
func StageLayers(n, pp int) ([][2]int, error) {
	if pp < 1 || pp > n {
		return nil, fmt.Errorf("%d pipeline stages for %d layers: want 1 to %d", pp, n, n)
	}
	var out [][2]int
	lo := 0
	for s := range pp {
		k := n / pp
		if s >= pp-n%pp {
			k++
		}
		out = append(out, [2]int{lo, lo + k})
		lo += k
	}
	return out, nil
}

func (s Shard) localConfig(cfg *Config) (*Config, error) {
	if s.TP < 1 {
		s.TP = 1
	}
	if err := checkTP(cfg, s.TP, s.ExpertParallel); err != nil {
		return nil, err
	}
	if s.Rank < 0 || s.Rank >= s.TP || s.FirstLayer < 0 || s.EndLayer > cfg.Layers || s.FirstLayer >= s.EndLayer {
		return nil, fmt.Errorf("shard %s does not fit a model of %d layers", s, cfg.Layers)
	}
	lc := *cfg
	lc.Heads = cfg.Heads / s.TP
	lc.KVHeads = max(cfg.KVHeads/s.TP, 1)
	lc.Intermediate = cfg.Intermediate / s.TP
	lc.MoEIntermediate = cfg.MoEIntermediate / s.TP
	if s.ExpertParallel {
		lc.MoEIntermediate = cfg.MoEIntermediate
	}
	lc.Layers = s.EndLayer - s.FirstLayer
	return &lc, nil
}

// LoadShard opens a model folder and keeps only the part sh describes; tp links the ranks of
// the node when sh.TP > 1. The whole folder is still checked: every tensor must be present
// with the right shape, and none extra.
func LoadShard(dir string, sh Shard, tp TPComm) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	if sh.Layers == 0 {
		sh.Layers = cfg.Layers
	}
	if sh.TP > 1 && tp == nil {
		return nil, fmt.Errorf("a tensor-parallel shard needs its node's collectives")
	}
	w, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	m, err := buildShard(cfg, w, sh, tp)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("model folder %s: %w", dir, err)
	}
	return m, nil
}

// check validates a tensor's presence, type and shape without reading its data.
func (ld *loader) check(name string, shape ...int) (safetensors.Info, bool) {
	if ld.err != nil {
		return safetensors.Info{}, false
	}
	info, ok := ld.w.Info(name)
	if !ok {
		ld.err = fmt.Errorf("missing tensor %s (config.json expects it)", name)
		return info, false
	}
	ld.used[name] = true
	same := len(info.Shape) == len(shape)
	for i := range shape {
		same = same && info.Shape[i] == shape[i]
	}
	if !same {
		ld.err = fmt.Errorf("tensor %s has shape %v but config.json implies %v", name, info.Shape, shape)
		return info, false
	}
	switch info.DType {
	case safetensors.BF16, safetensors.F16, safetensors.F32:
	default:
		ld.err = fmt.Errorf("tensor %s is %s (want bf16, f16 or f32)", name, info.DType)
		return info, false
	}
	return info, true
}

// slice fetches a whole [out, in] tensor for a partial load, after checking it; nil when the
// loader already failed.
func (ld *loader) slice(name string, out, in int) (safetensors.Info, []byte) {
	info, ok := ld.check(name, out, in)
	if !ok {
		return info, nil
	}
	_, b, err := ld.w.Bytes(name)
	if err != nil {
		ld.err = fmt.Errorf("tensor %s: %w", name, err)
		return info, nil
	}
	return info, b
}

// rows loads rows [lo, hi) of an [out, in] matrix, sharing the mapped file's bytes (rows are
// contiguous); with use false it only checks the tensor.
func (ld *loader) rows(name string, out, in, lo, hi int, use bool) *linear {
	switch {
	case !use:
		ld.check(name, out, in)
		return nil
	case lo == 0 && hi == out:
		return ld.linear(name, out, in)
	}
	info, b := ld.slice(name, out, in)
	if b == nil {
		return nil
	}
	es := info.DType.Size()
	return &linear{out: hi - lo, in: in, dt: info.DType, data: b[lo*in*es : hi*in*es]}
}

// cols loads columns [lo, hi) of an [out, in] matrix: a copy, since columns are strided.
func (ld *loader) cols(name string, out, in, lo, hi int, use bool) *linear {
	switch {
	case !use:
		ld.check(name, out, in)
		return nil
	case lo == 0 && hi == in:
		return ld.linear(name, out, in)
	}
	info, b := ld.slice(name, out, in)
	if b == nil {
		return nil
	}
	es := info.DType.Size()
	n := hi - lo
	data := make([]byte, out*n*es)
	for o := range out {
		copy(data[o*n*es:(o+1)*n*es], b[(o*in+lo)*es:(o*in+hi)*es])
	}
	return &linear{out: out, in: n, dt: info.DType, data: data}
}

func (ld *loader) vec(name string, n int, use bool) []float32 {
	if !use {
		ld.check(name, n)
		return nil
	}
	return ld.vector(name, n)
}

// mlpShard is rank r of t's slice of a SwiGLU MLP: gate and up rows (column-parallel), down
// columns (row-parallel).
func (ld *loader) mlpShard(prefix string, hidden, inter, r, t int, use bool) mlp {
	per := inter / t
	return mlp{
		gate: ld.rows(prefix+".gate_proj.weight", inter, hidden, r*per, (r+1)*per, use),
		up:   ld.rows(prefix+".up_proj.weight", inter, hidden, r*per, (r+1)*per, use),
		down: ld.cols(prefix+".down_proj.weight", hidden, inter, r*per, (r+1)*per, use),
	}
}

// flatRows returns the rows as one slice when they lie back to back in memory, so a
// collective can work on them in place. Callers pass rows from one arena rows() call (one
// allocation): consecutive addresses alone could span two neighbouring allocations.
func flatRows(rows [][]float32) ([]float32, bool) {
	n := len(rows[0])
	if n == 0 {
		return nil, false
	}
	base := uintptr(unsafe.Pointer(&rows[0][0]))
	for i, r := range rows {
		if len(r) != n || uintptr(unsafe.Pointer(&r[0])) != base+uintptr(i*n*4) {
			return nil, false
		}
	}
	return unsafe.Slice(&rows[0][0], len(rows)*n), true
}

// allReduceRows sums rows across the tensor-parallel ranks: in place when the rows are
// contiguous, else through one flat buffer.
func allReduceRows(tp TPComm, rows [][]float32) error {
	if len(rows) == 0 {
		return nil
	}
	if flat, ok := flatRows(rows); ok {
		return tp.AllReduceSum(flat)
	}
	n := len(rows[0])
	buf := make([]float32, len(rows)*n)
	for i, r := range rows {
		copy(buf[i*n:], r)
	}
	if err := tp.AllReduceSum(buf); err != nil {
		return err
	}
	for i, r := range rows {
		copy(r, buf[i*n:(i+1)*n])
	}
	return nil
}
