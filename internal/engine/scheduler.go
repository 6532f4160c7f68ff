// Package engine is the vLLM-style core that runs many sequences through one model: a
// scheduler with continuous batching, chunked prefill, prefix caching and preemption by
// recompute. The scheduler is a pure state machine over kvcache's block manager: it decides
// which tokens of which sequences the next forward pass computes; the caller runs the model
// and reports the sampled tokens back.
package engine

import (
	"errors"
	"fmt"
	"math"

	"github.com/strata-ai/strata/internal/kvcache"
)

// SchedulerConfig carries vLLM's scheduling flags.
type SchedulerConfig struct {
	MaxNumSeqs          int  // --max-num-seqs: sequences in one batch
	MaxNumBatchedTokens int  // --max-num-batched-tokens: tokens in one forward pass
	ChunkedPrefill      bool // --enable-chunked-prefill: split long prompts across steps
	MaxModelLen         int  // --max-model-len: prompt plus generated tokens
}

// Sequence is one request's tokens and cache state.
type Sequence struct {
	ID          string
	Tokens      []int // prompt then generated tokens
	PromptLen   int
	MaxTokens   int // generated tokens allowed
	Computed    int // leading tokens whose keys and values are in the cache
	Table       []kvcache.BlockID
	Preemptions int
	CachedHit   int // prompt tokens served from the prefix cache at the last admission
	running     bool
	busy        bool // in a step that has not completed (pipelined execution)
	// PromptLogits asks for the logits of every prompt position (prompt logprobs): the
	// sequence then never takes its prompt from the prefix cache, which holds no logits
	PromptLogits bool
}

// promptLogitsChunk is the most prompt tokens a PromptLogits sequence computes in one step:
// each returns a row of logits (151,936 floats for Qwen3), so an 8,192-token prompt in one
// step would take 5 GB of them.
const promptLogitsChunk = 512

// chunkCap is the most tokens the sequence may compute in one step beyond the budgets.
func (s *Sequence) chunkCap() int {
	if s.PromptLogits && s.Computed < s.PromptLen {
		return promptLogitsChunk
	}
	return math.MaxInt
}

// Generated is the number of tokens produced so far.
func (s *Sequence) Generated() int { return len(s.Tokens) - s.PromptLen }

// Item asks the model to compute tokens [Start, End) of Seq.Tokens. When End is the whole
// sequence, the last position's logits choose the next token.
type Item struct {
	Seq        *Sequence
	Start, End int
}

// Samples reports whether this item ends at the sequence's last token, so a token is sampled.
func (it Item) Samples() bool { return it.End == len(it.Seq.Tokens) }

// Step is one forward pass's work.
type Step struct {
	Items     []Item
	Preempted []*Sequence // sent back to waiting this step (their blocks are freed)
}

// Tokens is the number of tokens the step computes.
func (s Step) Tokens() int {
	n := 0
	for _, it := range s.Items {
		n += it.End - it.Start
	}
	return n
}

// Scheduler holds the waiting and running sequences.
type Scheduler struct {
	cfg     SchedulerConfig
	bm      *kvcache.Manager
	waiting []*Sequence
	running []*Sequence
	byID    map[string]*Sequence
	// Preemptions counts sequences sent back to waiting (vLLM's num_preemptions).
	Preemptions int64
}

// Errors for requests the scheduler can never run.
var (
	ErrTooLong    = errors.New("request is longer than the model allows")
	ErrNoCapacity = errors.New("request needs more KV cache blocks than exist")
	ErrDuplicate  = errors.New("request id already in use")
)

// NewScheduler makes a scheduler over a block pool.
func NewScheduler(cfg SchedulerConfig, bm *kvcache.Manager) (*Scheduler, error) {
	if cfg.MaxNumSeqs < 1 || cfg.MaxNumBatchedTokens < 1 {
		return nil, fmt.Errorf("engine: max-num-seqs %d and max-num-batched-tokens %d must be positive", cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens)
	}
	if !cfg.ChunkedPrefill && cfg.MaxModelLen > cfg.MaxNumBatchedTokens {
		return nil, fmt.Errorf("engine: without chunked prefill, max-num-batched-tokens (%d) must be at least max-model-len (%d) so every prompt fits one step", cfg.MaxNumBatchedTokens, cfg.MaxModelLen)
	}
	return &Scheduler{cfg: cfg, bm: bm, byID: map[string]*Sequence{}}, nil
}

// Add queues a sequence (Tokens holds the prompt).
func (s *Scheduler) Add(seq *Sequence) error {
	seq.PromptLen = len(seq.Tokens)
	switch {
	case len(seq.Tokens) == 0:
		return fmt.Errorf("request %s: empty prompt", seq.ID)
	case s.byID[seq.ID] != nil:
		return fmt.Errorf("request %s: %w", seq.ID, ErrDuplicate)
	case s.cfg.MaxModelLen > 0 && len(seq.Tokens)+seq.MaxTokens > s.cfg.MaxModelLen:
		return fmt.Errorf("request %s: %d prompt tokens + %d to generate exceed max-model-len %d: %w",
			seq.ID, len(seq.Tokens), seq.MaxTokens, s.cfg.MaxModelLen, ErrTooLong)
	case !s.cfg.ChunkedPrefill && len(seq.Tokens)+seq.MaxTokens > s.cfg.MaxNumBatchedTokens:
		// a preempted sequence is recomputed whole, prompt and output, in one step
		return fmt.Errorf("request %s: %d prompt tokens + %d to generate exceed max-num-batched-tokens %d without chunked prefill (enable it or raise the limit): %w",
			seq.ID, len(seq.Tokens), seq.MaxTokens, s.cfg.MaxNumBatchedTokens, ErrTooLong)
	case s.bm.BlocksFor(len(seq.Tokens)+seq.MaxTokens) > s.bm.NumBlocks():
		return fmt.Errorf("request %s: %d tokens need %d KV blocks but the cache has %d: %w",
			seq.ID, len(seq.Tokens)+seq.MaxTokens, s.bm.BlocksFor(len(seq.Tokens)+seq.MaxTokens), s.bm.NumBlocks(), ErrNoCapacity)
	}
	s.byID[seq.ID] = seq
	s.waiting = append(s.waiting, seq)
	return nil
}

// Abort removes a sequence wherever it is and frees its blocks.
func (s *Scheduler) Abort(id string) bool {
	seq := s.byID[id]
	if seq == nil {
		return false
	}
	s.remove(seq)
	return true
}

func (s *Scheduler) remove(seq *Sequence) {
	s.bm.Free(seq.Table)
	seq.Table, seq.Computed = nil, 0
	delete(s.byID, seq.ID)
	s.running = without(s.running, seq)
	s.waiting = without(s.waiting, seq)
	seq.running = false
}

func without(list []*Sequence, seq *Sequence) []*Sequence {
	for i, x := range list {
		if x == seq {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// NumWaiting and NumRunning are for metrics.
func (s *Scheduler) NumWaiting() int { return len(s.waiting) }

// NumRunning is the number of admitted sequences.
func (s *Scheduler) NumRunning() int { return len(s.running) }

// Tables lists every block table the scheduler holds (for consistency checks).
func (s *Scheduler) Tables() [][]kvcache.BlockID {
	var out [][]kvcache.BlockID
	for _, q := range [][]*Sequence{s.running, s.waiting} {
		for _, seq := range q {
			if len(seq.Table) > 0 {
				out = append(out, seq.Table)
			}
		}
	}
	return out
}

// preempt sends the most recently admitted running sequence back to the front of the waiting
// queue, freeing its blocks; its tokens are recomputed when it is admitted again. requester
// is the sequence that needs a block; nil means wait (no sequence can be preempted now).
func (s *Scheduler) preempt(requester *Sequence) *Sequence {
	// the most recent one not in flight: a step still running owns its blocks
	i := len(s.running) - 1
	for i >= 0 && s.running[i].busy {
		i--
	}
	if i < 0 {
		return nil
	}
	victim := s.running[i]
	if victim == requester && i < len(s.running)-1 {
		// vLLM would preempt a newer sequence, but those are in flight: wait for one to come
		// back rather than throw away the requester's older KV
		return nil
	}
	s.running = append(s.running[:i], s.running[i+1:]...)
	s.bm.Free(victim.Table)
	victim.Table, victim.Computed, victim.running = nil, 0, false
	victim.Preemptions++
	s.Preemptions++
	s.waiting = append([]*Sequence{victim}, s.waiting...)
	return victim
}

// Schedule picks the next step's work: running sequences first (one token each when
// decoding, the next chunk when prefilling), then waiting ones in arrival order while the
// token budget, the sequence limit and the block pool allow.
func (s *Scheduler) Schedule() Step { return s.ScheduleAtMost(0) }

// ScheduleAtMost is Schedule with at most limit sequences in the step (0: no limit beyond
// max-num-seqs). A pipelined engine splits its sequences across the micro-batches in flight.
func (s *Scheduler) ScheduleAtMost(limit int) Step {
	if limit <= 0 {
		limit = s.cfg.MaxNumSeqs
	}
	var st Step
	budget := s.cfg.MaxNumBatchedTokens
	scheduled := map[*Sequence]bool{}
	for i := 0; i < len(s.running) && budget > 0 && len(st.Items) < limit; i++ {
		seq := s.running[i]
		if seq.busy {
			continue // its last step is still in flight
		}
		n := min(len(seq.Tokens)-seq.Computed, budget, seq.chunkCap())
		if n <= 0 {
			continue
		}
		grown := false
		for {
			table, ok := s.bm.Grow(seq.Table, seq.Computed+n)
			if ok {
				seq.Table, grown = table, true
				break
			}
			victim := s.preempt(seq)
			if victim == nil {
				break // every other sequence is in flight: wait for one to come back
			}
			st.Preempted = append(st.Preempted, victim)
			if victim == seq {
				break
			}
		}
		if !seq.running {
			break // it preempted itself: nothing smaller can run either
		}
		if !grown {
			break
		}
		st.Items = append(st.Items, Item{Seq: seq, Start: seq.Computed, End: seq.Computed + n})
		scheduled[seq] = true
		budget -= n
	}
	for len(s.waiting) > 0 && budget > 0 && len(s.running) < s.cfg.MaxNumSeqs && len(st.Preempted) == 0 && len(st.Items) < limit {
		seq := s.waiting[0]
		looked := false
		if seq.Computed == 0 && len(seq.Table) == 0 && !seq.PromptLogits {
			seq.Table, seq.Computed = s.bm.MatchPrefix(seq.Tokens)
			seq.CachedHit = seq.Computed
			looked = true
		}
		n := len(seq.Tokens) - seq.Computed
		if n > budget && !s.cfg.ChunkedPrefill {
			s.releasePrefix(seq)
			break
		}
		n = min(n, budget, seq.chunkCap())
		table, ok := s.bm.Grow(seq.Table, seq.Computed+n)
		if !ok {
			s.releasePrefix(seq)
			break
		}
		seq.Table = table
		if looked {
			s.bm.RecordPrefix(len(seq.Tokens), seq.CachedHit)
		}
		s.waiting = s.waiting[1:]
		s.running = append(s.running, seq)
		seq.running = true
		st.Items = append(st.Items, Item{Seq: seq, Start: seq.Computed, End: seq.Computed + n})
		budget -= n
	}
	return st
}

// releasePrefix gives back prefix-cache blocks a waiting sequence took but could not use yet.
func (s *Scheduler) releasePrefix(seq *Sequence) {
	s.bm.Free(seq.Table)
	seq.Table, seq.Computed = nil, 0
}

// SetBusy marks a step's sequences as in flight (true) or back (false). A pipelined engine
// schedules the next step before the last one's results are in; Schedule leaves busy
// sequences out, and preemption never takes their blocks.
func (s *Scheduler) SetBusy(st Step, busy bool) {
	for _, it := range st.Items {
		it.Seq.busy = busy
	}
}

// Complete records a step's results: every item's tokens are now cached, and sampled holds the
// token chosen for each item that samples. finished reports sequences that stop (an end
// token or a stop string, decided by the caller); sequences that reach MaxTokens stop too.
// It returns the sequences that finished; their blocks are freed.
func (s *Scheduler) Complete(st Step, sampled map[*Sequence]int, finished map[*Sequence]bool) []*Sequence {
	var done []*Sequence
	for _, it := range st.Items {
		seq := it.Seq
		if s.byID[seq.ID] != seq { // aborted while the step ran
			continue
		}
		seq.Computed = it.End
		s.bm.Commit(seq.Table, seq.Tokens, seq.Computed)
		if !it.Samples() {
			continue
		}
		if tok, ok := sampled[seq]; ok {
			seq.Tokens = append(seq.Tokens, tok)
		}
		if finished[seq] || seq.Generated() >= seq.MaxTokens {
			s.remove(seq)
			done = append(done, seq)
		}
	}
	return done
}
