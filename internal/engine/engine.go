package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"

	"github.com/strata-ai/strata/internal/jsonmode"
	"github.com/strata-ai/strata/internal/jsonschema"
	"github.com/strata-ai/strata/internal/kernels"
	"github.com/strata-ai/strata/internal/kvcache"
	"github.com/strata-ai/strata/internal/model/qwen3"
	"github.com/strata-ai/strata/internal/regexmode"
	"github.com/strata-ai/strata/internal/sampling"
)

// Config sizes an engine.
type Config struct {
	SchedulerConfig
	BlockSize     int   // --block-size: token slots per KV block
	KVCacheBytes  int64 // memory for the paged KV cache
	PrefixCaching bool  // --enable-prefix-caching
}

// Request is one generation request.
type Request struct {
	ID        string
	Prompt    []int
	MaxTokens int
	Sampling  sampling.Params
	StopIDs   []int    // end the sequence when one of these is sampled
	StopText  []string // end it when the generated text contains one of these (needs SetTokenizer)
	Logprobs  int      // with each token, report its log-probability and the top Logprobs alternatives (0: none, -1: the chosen token only)
	// MinTokens is vLLM's min_tokens: until this many tokens are out, StopIDs are never drawn
	// and stop strings do not end the sequence.
	MinTokens int
	// BadWords are token sequences never to generate (vLLM's bad_words, tokenized): the last
	// token of one is not drawn when the output ends with the ones before it.
	BadWords [][]int
	// JSONObject keeps the output a JSON object (vLLM's response_format json_object): only
	// tokens that continue one are drawn, and the stop tokens only once it is complete. It
	// needs a byte-level tokenizer (SetTokenizer).
	JSONObject bool
	// Choices makes the output exactly one of these strings (vLLM's guided_choice). Like
	// JSONObject, it needs a byte-level tokenizer.
	Choices []string
	// JSONSchema keeps the output a JSON value the schema accepts (vLLM's guided_json and
	// response_format json_schema), in the form jsonschema describes. Like JSONObject, it
	// needs a byte-level tokenizer.
	JSONSchema *jsonschema.Schema
	// Regex makes the output a full match of the expression (vLLM's guided_regex). Like
	// JSONObject, it needs a byte-level tokenizer.
	Regex *regexmode.Regex
	// CompactJSON writes JSONObject's or JSONSchema's value without whitespace between its
	// tokens (vLLM's disable_any_whitespace).
	CompactJSON bool
	// Before and After are exact text around JSONSchema's value (a tool call's tags, for a
	// named tool_choice).
	Before, After string
	// Think, with a constraint, lets a reasoning block come first, unconstrained: the
	// constraint waits while the block is open (from the prompt, or from a first output
	// token Think.Start, which it then also allows) and holds from the token after
	// Think.End, as vLLM's reasoning-aware structured output does.
	Think *Think
	// PromptLogprobs reports, with the first token, the log-probability of every prompt token
	// after the first given those before it, and the top PromptLogprobs alternatives (0: none,
	// -1: the prompt token's own only). The executor must be an AllLogitsExecutor.
	PromptLogprobs int
}

// ErrNoPromptLogprobs: the executor cannot return every prompt position's logits.
var ErrNoPromptLogprobs = errors.New("this executor cannot return every prompt position's logits, which prompt logprobs need")

// AllLogitsExecutor is an Executor that honours qwen3.BatchItem.AllLogits, returning every
// row's logits for such an item (prompt logprobs need them).
type AllLogitsExecutor interface {
	Executor
	AllLogits()
}

func (x *localExecutor) AllLogits() {}

// PromptLogprob is a prompt token's log-probability given the tokens before it, its rank in
// that distribution (1: the most likely) and the most likely alternatives.
type PromptLogprob struct {
	Token   int
	Logprob float32
	Rank    int
	Top     []sampling.TokenLogprob
}

// Detokenizer turns ids into text for stop strings.
type Detokenizer interface {
	Decode(ids []int, skipSpecial bool) (string, error)
}

// Event reports a sampled token, and whether its sequence finished.
type Event struct {
	ID       string
	Token    int
	Finished bool
	Reason   string // "stop" or "length" when finished; "error" with Err
	// Err, on a request's last event, says why it failed; that event carries no token. The
	// request's blocks are already free.
	Err error
	// StopText is the stop string that ended the sequence, if one did; the text generated up
	// to it (without it) is what vLLM returns.
	StopText    string
	Logprob     float32
	TopLogprobs []sampling.TokenLogprob
	// PromptLogprobs, on a request's first event when it asked for them, hold prompt
	// positions 1 onward (the first token has no context to be predicted from)
	PromptLogprobs []PromptLogprob
}

// Executor runs the forward passes the scheduler plans: one model in this process, or a model
// split across ranks and nodes. The KV cache it keeps has the engine's number of blocks.
type Executor interface {
	Forward(items []qwen3.BatchItem) ([][]float32, error)
}

// Think names a reasoning block's delimiting tokens.
type Think struct {
	Start, End int
	Open       bool // the prompt ends inside a block
}

// localExecutor is one whole model and its paged KV cache.
type localExecutor struct {
	m  *qwen3.Model
	kv *qwen3.PagedKV
}

func (x *localExecutor) Forward(items []qwen3.BatchItem) ([][]float32, error) {
	return x.m.ForwardBatch(x.kv, items)
}

// Engine runs requests through one model with continuous batching.
type Engine struct {
	x     Executor
	vocab int
	bm    *kvcache.Manager
	sched *Scheduler
	reqs  map[*Sequence]*active
	tok   Detokenizer
	// steps submitted to a pipelined executor whose results are not back, oldest first
	inflight []flight
	// each token's bytes (special tokens none), built for the first JSON-mode request
	tokenBytes [][]byte
}

// SetTokenizer lets requests stop on strings.
func (e *Engine) SetTokenizer(t Detokenizer) { e.tok = t }

type active struct {
	req     Request
	sampler *sampling.Sampler
	stop    map[int]bool
	out     []byte // the output's bytes so far, for stop strings (with a byte-level tokenizer)
	// prompt logprobs so far, for positions 1 .. len(prompt)-1 (a preempted request computes
	// its prompt again; what it already has is not added twice)
	prompt []PromptLogprob
	sent   bool // the first event went out
	// the output's constraint (JSON object or choice), nil when free
	con constraint
	// thinking: a reasoning block is open, and the constraint waits for its end
	thinking bool
}

// constraint says which bytes the output may continue with, for JSON mode and guided
// choice: a token is drawn only if its bytes are allowed, a stop token only once the output
// is complete.
type constraint interface {
	allows(b []byte) bool // the output may continue with b
	complete() bool       // the output may end here
	final() bool          // the output must end here: nothing may follow
	feed(b []byte)
}

// jsonObject keeps the output a JSON object.
type jsonObject struct{ s jsonmode.State }

func (j *jsonObject) allows(b []byte) bool { st := j.s; return st.FeedAll(b) }
func (j *jsonObject) complete() bool       { return j.s.Done() }
func (j *jsonObject) final() bool          { return j.s.Done() }
func (j *jsonObject) feed(b []byte)        { j.s.FeedAll(b) }

// schemaValue keeps the output a JSON value its schema accepts.
type schemaValue struct{ s jsonschema.State }

func (j *schemaValue) allows(b []byte) bool { st := j.s; return st.FeedAll(b) }
func (j *schemaValue) complete() bool       { return j.s.Complete() }
func (j *schemaValue) final() bool          { return j.s.Done() }
func (j *schemaValue) feed(b []byte)        { j.s.FeedAll(b) }

// wrappedValue is exact text, a JSON value its schema accepts, and exact text again.
type wrappedValue struct {
	before, after string
	s             jsonschema.State
	stage         uint8 // 0 before, 1 the value, 2 after
	pos           int   // bytes of before or after written
}

func (w *wrappedValue) step(c byte) bool {
	switch w.stage {
	case 0:
		if w.pos >= len(w.before) || w.before[w.pos] != c {
			return false
		}
		if w.pos++; w.pos == len(w.before) {
			w.stage, w.pos = 1, 0
		}
		return true
	case 1:
		if try := w.s; try.Feed(c) {
			w.s = try
			if w.s.Done() {
				w.stage = 2
			}
			return true
		}
		if !w.s.Complete() { // a number, say, ends where the text after it begins
			return false
		}
		w.stage = 2
	}
	if w.pos >= len(w.after) || w.after[w.pos] != c {
		return false
	}
	w.pos++
	return true
}

func (w *wrappedValue) allows(b []byte) bool {
	try := *w
	for _, c := range b {
		if !try.step(c) {
			return false
		}
	}
	return true
}

func (w *wrappedValue) complete() bool {
	return w.stage == 2 && w.pos == len(w.after) || w.stage == 1 && w.after == "" && w.s.Complete()
}

func (w *wrappedValue) final() bool {
	return w.stage == 2 && w.pos == len(w.after) || w.stage == 1 && w.after == "" && w.s.Done()
}

func (w *wrappedValue) feed(b []byte) {
	for _, c := range b {
		w.step(c)
	}
}

// regexMatch keeps the output on its way to a full match of its expression.
type regexMatch struct{ s regexmode.State }

func (j *regexMatch) allows(b []byte) bool { st := j.s; return st.FeedAll(b) }
func (j *regexMatch) complete() bool       { return j.s.Complete() }
func (j *regexMatch) final() bool          { return j.s.Done() }
func (j *regexMatch) feed(b []byte)        { j.s.FeedAll(b) }

// MaxChoices bounds a guided choice: each sampled token checks every vocabulary token against
// every option.
const MaxChoices = 256

// choice keeps the output a prefix of one of the strings, complete when it is one.
type choice struct {
	options []string
	out     []byte
}

func (c *choice) allows(b []byte) bool {
	for _, o := range c.options {
		if len(c.out)+len(b) <= len(o) && o[:len(c.out)] == string(c.out) && o[len(c.out):len(c.out)+len(b)] == string(b) {
			return true
		}
	}
	return false
}

func (c *choice) complete() bool {
	for _, o := range c.options {
		if o == string(c.out) {
			return true
		}
	}
	return false
}

func (c *choice) final() bool {
	for _, o := range c.options {
		if len(o) > len(c.out) && o[:len(c.out)] == string(c.out) {
			return false
		}
	}
	return true
}

func (c *choice) feed(b []byte) { c.out = append(c.out, b...) }

// byteDecoder is a tokenizer that gives each token's bytes (byte-level BPE), so the stop-string
// check costs one token per step instead of decoding the whole output again.
type byteDecoder interface {
	TokenBytes(id int, skipSpecial bool) ([]byte, error)
}

// New sizes the KV cache from cfg.KVCacheBytes and builds the scheduler.
func New(m *qwen3.Model, cfg Config) (*Engine, error) {
	if cfg.BlockSize < 1 {
		return nil, fmt.Errorf("engine: block size %d must be positive", cfg.BlockSize)
	}
	per := m.BytesPerBlock(cfg.BlockSize)
	n := int(cfg.KVCacheBytes / per)
	if n < 1 {
		return nil, fmt.Errorf("engine: %d bytes of KV cache hold no %d-token block (one needs %d bytes)", cfg.KVCacheBytes, cfg.BlockSize, per)
	}
	if cfg.MaxModelLen == 0 {
		cfg.MaxModelLen = m.Cfg.MaxPositions
	}
	return NewWithExecutor(&localExecutor{m: m, kv: m.NewPagedKV(n, cfg.BlockSize)}, m.Cfg.Vocab, n, cfg)
}

// NewWithExecutor builds an engine over x, whose KV cache holds numBlocks blocks of
// cfg.BlockSize tokens; vocab bounds prompt token ids.
func NewWithExecutor(x Executor, vocab, numBlocks int, cfg Config) (*Engine, error) {
	n := numBlocks
	if cfg.BlockSize < 1 {
		return nil, fmt.Errorf("engine: block size %d must be positive", cfg.BlockSize)
	}
	if cfg.MaxModelLen < 1 {
		return nil, fmt.Errorf("engine: max-model-len %d must be positive", cfg.MaxModelLen)
	}
	if n*cfg.BlockSize < cfg.MaxModelLen {
		return nil, fmt.Errorf("engine: max-model-len %d is more than the %d tokens the KV cache holds (%d blocks of %d): give the KV cache more memory or lower max-model-len", cfg.MaxModelLen, n*cfg.BlockSize, n, cfg.BlockSize)
	}
	bm := kvcache.NewManager(n, cfg.BlockSize, cfg.PrefixCaching)
	s, err := NewScheduler(cfg.SchedulerConfig, bm)
	if err != nil {
		return nil, err
	}
	return &Engine{x: x, vocab: vocab, bm: bm, sched: s, reqs: map[*Sequence]*active{}}, nil
}

// Stats is a snapshot for metrics.
type Stats struct {
	Running, Waiting        int
	BlocksTotal, BlocksFree int
	PrefixQueryTokens       int64
	PrefixHitTokens         int64
}

// Stats reports what the scheduler and block pool hold now.
func (e *Engine) Stats() Stats {
	return Stats{
		Running: e.sched.NumRunning(), Waiting: e.sched.NumWaiting(),
		BlocksTotal: e.bm.NumBlocks(), BlocksFree: e.bm.FreeBlocks(),
		PrefixQueryTokens: e.bm.QueryTokens, PrefixHitTokens: e.bm.HitTokens,
	}
}

// Stuck says whether requests wait that nothing running will ever make room for: the last
// Step scheduled nothing and no sequence runs.
func (e *Engine) Stuck() bool {
	return e.Pending() > 0 && e.sched.NumRunning() == 0 && len(e.inflight) == 0
}

// MaxModelLen is the longest sequence (prompt plus output) the engine accepts.
func (e *Engine) MaxModelLen() int { return e.sched.cfg.MaxModelLen }

// Blocks reports the pool: total and free.
func (e *Engine) Blocks() (total, free int) { return e.bm.NumBlocks(), e.bm.FreeBlocks() }

// Add queues a request.
func (e *Engine) Add(r Request) error {
	if err := r.Sampling.Validate(); err != nil {
		return fmt.Errorf("request %s: %w", r.ID, err)
	}
	if r.MaxTokens < 1 {
		return fmt.Errorf("request %s: max tokens %d must be at least 1", r.ID, r.MaxTokens)
	}
	if len(r.StopText) > 0 && e.tok == nil {
		return fmt.Errorf("request %s: stop strings need a tokenizer", r.ID)
	}
	guided := 0
	for _, on := range []bool{r.JSONObject, len(r.Choices) > 0, r.JSONSchema != nil, r.Regex != nil} {
		if on {
			guided++
		}
	}
	if _, ok := e.tok.(byteDecoder); guided > 0 && !ok {
		return fmt.Errorf("request %s: JSON output and guided choice need a byte-level tokenizer", r.ID)
	}
	if guided > 1 {
		return fmt.Errorf("request %s: JSON object, JSON schema, regex and guided choice exclude each other", r.ID)
	}
	if t := r.Think; t != nil && (t.Start < 0 || t.Start >= e.vocab || t.End < 0 || t.End >= e.vocab) {
		return fmt.Errorf("request %s: reasoning tokens %d and %d are outside the vocabulary", r.ID, t.Start, t.End)
	}
	if (r.Before != "" || r.After != "") && r.JSONSchema == nil {
		return fmt.Errorf("request %s: text around a value needs a JSON schema", r.ID)
	}
	if r.CompactJSON && !r.JSONObject && r.JSONSchema == nil {
		return fmt.Errorf("request %s: compact JSON needs JSON output (a JSON object or schema)", r.ID)
	}
	if len(r.Choices) > MaxChoices {
		return fmt.Errorf("request %s: %d guided choices, at most %d are supported", r.ID, len(r.Choices), MaxChoices)
	}
	for _, c := range r.Choices {
		if c == "" {
			return fmt.Errorf("request %s: a guided choice is empty", r.ID)
		}
	}
	if r.MinTokens < 0 || r.MinTokens > r.MaxTokens {
		return fmt.Errorf("request %s: min tokens %d must be between 0 and max tokens %d", r.ID, r.MinTokens, r.MaxTokens)
	}
	if r.PromptLogprobs < -1 || r.PromptLogprobs > 20 {
		return fmt.Errorf("request %s: prompt logprobs %d must be between 0 and 20", r.ID, r.PromptLogprobs)
	}
	if _, ok := e.x.(AllLogitsExecutor); r.PromptLogprobs != 0 && !ok {
		return fmt.Errorf("request %s: %w", r.ID, ErrNoPromptLogprobs)
	}
	if r.Logprobs < -1 || r.Logprobs > 20 {
		return fmt.Errorf("request %s: logprobs %d must be between 0 and 20", r.ID, r.Logprobs)
	}
	for _, id := range r.Prompt {
		if id < 0 || id >= e.vocab {
			return fmt.Errorf("request %s: prompt token %d is outside the vocabulary (0..%d)", r.ID, id, e.vocab-1)
		}
	}
	for id := range r.Sampling.LogitBias {
		if id >= e.vocab {
			return fmt.Errorf("request %s: logit bias for token %d, outside the vocabulary (0..%d)", r.ID, id, e.vocab-1)
		}
	}
	for _, w := range r.BadWords {
		if len(w) == 0 {
			return fmt.Errorf("request %s: an empty bad word", r.ID)
		}
		for _, id := range w {
			if id < 0 || id >= e.vocab {
				return fmt.Errorf("request %s: bad word token %d is outside the vocabulary (0..%d)", r.ID, id, e.vocab-1)
			}
		}
	}
	for _, id := range r.Sampling.AllowedTokens {
		if id >= e.vocab {
			return fmt.Errorf("request %s: allowed token %d is outside the vocabulary (0..%d)", r.ID, id, e.vocab-1)
		}
	}
	seq := &Sequence{ID: r.ID, Tokens: append([]int(nil), r.Prompt...), MaxTokens: r.MaxTokens, PromptLogits: r.PromptLogprobs != 0}
	if err := e.sched.Add(seq); err != nil {
		return err
	}
	a := &active{req: r, sampler: sampling.New(r.Sampling, r.Prompt...), stop: map[int]bool{}}
	switch {
	case r.JSONObject && r.CompactJSON:
		a.con = &jsonObject{s: jsonmode.Compact()}
	case r.JSONObject:
		a.con = &jsonObject{}
	case r.JSONSchema != nil && (r.Before != "" || r.After != ""):
		st := r.JSONSchema.Start()
		if r.CompactJSON {
			st = r.JSONSchema.StartCompact()
		}
		w := &wrappedValue{before: r.Before, after: r.After, s: st}
		if r.Before == "" {
			w.stage = 1
		}
		a.con = w
	case r.JSONSchema != nil && r.CompactJSON:
		a.con = &schemaValue{s: r.JSONSchema.StartCompact()}
	case len(r.Choices) > 0:
		a.con = &choice{options: r.Choices}
	case r.JSONSchema != nil:
		a.con = &schemaValue{s: r.JSONSchema.Start()}
	case r.Regex != nil:
		a.con = &regexMatch{s: r.Regex.Start()}
	}
	if r.Think != nil && a.con != nil {
		a.thinking = r.Think.Open
	}
	for _, id := range r.StopIDs {
		a.stop[id] = true
	}
	e.reqs[seq] = a
	return nil
}

// Abort ends a request and frees its blocks.
func (e *Engine) Abort(id string) bool {
	for seq := range e.reqs {
		if seq.ID == id {
			delete(e.reqs, seq)
			return e.sched.Abort(id)
		}
	}
	return false
}

// Pending is the number of requests not finished.
func (e *Engine) Pending() int { return len(e.reqs) }

// PipelinedExecutor can take a step before the last one's results are back: a pipeline of
// stages keeps Depth steps in flight, one per stage, so no stage waits for the others.
type PipelinedExecutor interface {
	Executor
	// Submit starts a step; wait returns its logits. Waits are called in Submit order.
	Submit(items []qwen3.BatchItem) (wait func() ([][]float32, error), err error)
	Depth() int
}

type flight struct {
	st   Step
	wait func() ([][]float32, error)
}

func (e *Engine) batchItems(st Step) []qwen3.BatchItem {
	items := make([]qwen3.BatchItem, len(st.Items))
	for i, it := range st.Items {
		table := make([]int32, len(it.Seq.Table))
		for j, b := range it.Seq.Table {
			table[j] = int32(b)
		}
		items[i] = qwen3.BatchItem{Tokens: it.Seq.Tokens[it.Start:it.End], Start: it.Start, Table: table, WantLogits: it.Samples(),
			AllLogits: it.promptRows(), TopK: e.readsTop(it)}
	}
	return items
}

// readsTop is how many of its largest logits the item's draw reads (qwen3.BatchItem.TopK),
// or 0 when finish reads more of the row: for logprobs, for a constraint's mask, or to drop
// tokens min_tokens or bad words exclude (the next ones down would then be read).
func (e *Engine) readsTop(it Item) int {
	a := e.reqs[it.Seq]
	if a == nil || !it.Samples() || it.promptRows() || a.con != nil || a.req.Logprobs != 0 {
		return 0
	}
	if exclude, _ := a.excluded(it); len(exclude) > 0 {
		return 0
	}
	return a.req.Sampling.ReadsTop()
}

// Step runs one scheduled forward pass and returns the tokens it produced. With a pipelined
// executor it first fills the pipeline (steps over sequences not already in flight), then
// finishes the oldest step.
func (e *Engine) Step() ([]Event, error) {
	px, ok := e.x.(PipelinedExecutor)
	if !ok || px.Depth() <= 1 {
		st := e.sched.Schedule()
		if len(st.Items) == 0 {
			return nil, nil
		}
		logits, err := e.x.Forward(e.batchItems(st))
		if err != nil {
			return nil, err
		}
		return e.finish(st, logits), nil
	}
	depth := px.Depth()
	share := max(1, (len(e.reqs)+depth-1)/depth) // each micro-batch takes its share of the requests
	for len(e.inflight) < depth {
		st := e.sched.ScheduleAtMost(share)
		if len(st.Items) == 0 {
			break
		}
		wait, err := px.Submit(e.batchItems(st))
		if err != nil {
			e.dropInflight()
			return nil, err
		}
		e.sched.SetBusy(st, true)
		e.inflight = append(e.inflight, flight{st, wait})
	}
	if len(e.inflight) == 0 {
		return nil, nil
	}
	f := e.inflight[0]
	e.inflight = e.inflight[1:]
	logits, err := f.wait()
	e.sched.SetBusy(f.st, false)
	if err != nil {
		e.dropInflight()
		return nil, err
	}
	return e.finish(f.st, logits), nil
}

// dropInflight forgets steps whose results will not come (the executor failed); their
// sequences can be scheduled or aborted again.
func (e *Engine) dropInflight() {
	for _, f := range e.inflight {
		e.sched.SetBusy(f.st, false)
	}
	e.inflight = nil
}

// drawn is a token sampled ahead of finish's main loop, with its logprobs.
type drawn struct {
	ok      bool
	nan     bool // the row was not numbers: no token was drawn
	tok     int
	early   bool // the token is one min_tokens asks for
	logprob float32
	top     []sampling.TokenLogprob
}

// promptRows says whether it carries the rows of a prompt whose logprobs were asked for.
func (it Item) promptRows() bool { return it.Seq.PromptLogits && it.Start < it.Seq.PromptLen-1 }

// drawPlain samples, across the cores, the items whose draw needs nothing but their own row
// and sampler: each draw is a pass over the vocabulary (0.2–1 ms at 152k tokens), and a
// batch of 32 in a row on one core would add a good part of a decode step.
func (e *Engine) drawPlain(st Step, logits [][]float32) []drawn {
	var plain []int
	for i, it := range st.Items {
		a := e.reqs[it.Seq]
		if a == nil || !it.Samples() || a.con != nil || it.promptRows() {
			continue
		}
		plain = append(plain, i)
	}
	if len(plain) < 2 {
		return nil
	}
	out := make([]drawn, len(st.Items))
	kernels.ParallelFor(len(plain), 1, func(lo, hi int) {
		for _, i := range plain[lo:hi] {
			it := st.Items[i]
			a := e.reqs[it.Seq] // read only: the map changes after the draws
			if notNumbers(logits[i]) {
				out[i] = drawn{ok: true, nan: true}
				continue
			}
			exclude, early := a.excluded(it)
			d := drawn{ok: true, tok: a.sampler.NextExcluding(logits[i], exclude), early: early}
			if a.req.Logprobs != 0 {
				d.logprob, d.top = sampling.Logprobs(logits[i], d.tok, max(a.req.Logprobs, 0))
			}
			out[i] = d
		}
	})
	return out
}

// excluded is the tokens this step's draw for it must not give, and whether the token is
// one min_tokens asks for.
func (a *active) excluded(it Item) (exclude []int, early bool) {
	early = it.Seq.Generated() < a.req.MinTokens
	if a.con != nil && a.con.final() {
		early = false // a complete JSON object or choice can only end: that beats min_tokens
	}
	if early {
		exclude = a.req.StopIDs
	}
	if len(a.req.BadWords) > 0 {
		exclude = append(badWordEnds(a.req.BadWords, it.Seq.Tokens[it.Seq.PromptLen:]), exclude...)
	}
	return exclude, early
}

// finish samples a completed step's tokens and records them.
func (e *Engine) finish(st Step, logits [][]float32) []Event {
	sampled := map[*Sequence]int{}
	finished := map[*Sequence]bool{}
	var events []Event
	pre := e.drawPlain(st, logits)
	for i, it := range st.Items {
		a := e.reqs[it.Seq]
		if a == nil {
			continue // aborted while its step was in flight
		}
		if pre != nil && pre[i].nan {
			events = append(events, fail(it, finished))
			continue
		}
		if pre != nil && pre[i].ok {
			d := pre[i]
			ev := Event{ID: it.Seq.ID, Token: d.tok, Logprob: d.logprob, TopLogprobs: d.top}
			events = append(events, e.record(it, a, d.tok, d.early, ev, sampled, finished))
			continue
		}
		row := logits[i]
		if it.promptRows() {
			row = a.promptRows(it, logits[i])
		}
		if !it.Samples() {
			continue
		}
		if notNumbers(row) {
			events = append(events, fail(it, finished))
			continue
		}
		exclude, early := a.excluded(it)
		sampleFrom := row
		if a.con != nil && !a.thinking {
			e.buildTokenBytes()
			sampleFrom = e.constrain(a, row)
			if t := a.req.Think; t != nil && it.Seq.Generated() == 0 {
				sampleFrom[t.Start] = row[t.Start] // a reasoning block may open first
			}
		}
		tok := a.sampler.NextExcluding(sampleFrom, exclude)
		if a.con != nil && math.IsInf(float64(sampleFrom[tok]), -1) {
			// the request's own restrictions (allowed tokens, bad words, biases) left nothing
			// the constraint allows: the constraint wins, so the output stays valid
			tok = argmax(sampleFrom)
		}
		switch t := a.req.Think; {
		case a.con == nil || a.stop[tok]:
		case a.thinking:
			a.thinking = tok != t.End
		case t != nil && tok == t.Start && it.Seq.Generated() == 0:
			a.thinking = true
		default:
			a.con.feed(e.tokenBytes[tok])
		}
		ev := Event{ID: it.Seq.ID, Token: tok}
		if a.req.Logprobs != 0 {
			// under a constraint, over the tokens it allows, as vLLM masks before its sampler
			ev.Logprob, ev.TopLogprobs = sampling.Logprobs(sampleFrom, tok, max(a.req.Logprobs, 0))
		}
		events = append(events, e.record(it, a, tok, early, ev, sampled, finished))
	}
	for _, seq := range e.sched.Complete(st, sampled, finished) {
		delete(e.reqs, seq)
	}
	return events
}

// notNumbers reports whether a row of logits is NaN. Weights that are corrupt (bytes
// overwritten in a safetensors file) or too large for float32 make a NaN or an infinity in
// some activation, and the final RMSNorm spreads it to every logit: the first one tells, and
// a sampler given such a row would quietly return token 0 again and again.
func notNumbers(row []float32) bool { return len(row) > 0 && row[0] != row[0] }

// fail ends it.Seq with an error event in place of a token.
func fail(it Item, finished map[*Sequence]bool) Event {
	finished[it.Seq] = true
	return Event{ID: it.Seq.ID, Token: -1, Finished: true, Reason: "error",
		Err: fmt.Errorf("engine: request %s, output token %d: %w: its weights are probably corrupt or too large for float32; check the safetensors files against their source",
			it.Seq.ID, it.Seq.Generated()+1, ErrNotNumbers)}
}

// ErrNotNumbers is the error of a request whose logits came out NaN.
var ErrNotNumbers = errors.New("the model's logits are NaN")

// record notes tok as its new token and fills in how ev ends, if it does.
func (e *Engine) record(it Item, a *active, tok int, early bool, ev Event, sampled map[*Sequence]int, finished map[*Sequence]bool) Event {
	sampled[it.Seq] = tok
	if !a.sent {
		a.sent = true
		ev.PromptLogprobs = a.prompt
	}
	switch {
	case a.stop[tok] && !early:
		finished[it.Seq], ev.Finished, ev.Reason = true, true, "stop"
	default:
		// stopString also keeps the text it searches, so it runs for every token
		if s := e.stopString(it.Seq, a, tok); s != "" && it.Seq.Generated()+1 >= a.req.MinTokens {
			finished[it.Seq], ev.Finished, ev.Reason, ev.StopText = true, true, "stop", s
		} else if a.con != nil && a.con.final() && len(a.req.StopIDs) == 0 {
			// complete, and no stop token to end on (ignore_eos): end with this token
			finished[it.Seq], ev.Finished, ev.Reason = true, true, "stop"
		} else if it.Seq.Generated()+1 >= it.Seq.MaxTokens {
			ev.Finished, ev.Reason = true, "length"
		}
	}
	return ev
}

// promptRows records the prompt logprobs an AllLogits item's rows give (row j predicts the
// token after position Start+j) and returns the last row, whose logits choose the next token.
func (a *active) promptRows(it Item, logits []float32) []float32 {
	n := it.End - it.Start
	V := len(logits) / n
	// the rows predicting prompt positions not known yet (a preempted request has some)
	first := max(len(a.prompt)+1, it.Start+1) - (it.Start + 1)
	last := min(it.Start+n, it.Seq.PromptLen-1) - it.Start // rows [first, last)
	if last > first {
		rows := make([]PromptLogprob, last-first)
		// a row is a pass over the vocabulary: the cores take rows in parallel
		kernels.ParallelFor(len(rows), 1, func(lo, hi int) {
			for k := lo; k < hi; k++ {
				j := first + k
				r := logits[j*V : (j+1)*V]
				tok := it.Seq.Tokens[it.Start+j+1]
				lp, top := sampling.Logprobs(r, tok, max(a.req.PromptLogprobs, 0))
				rows[k] = PromptLogprob{Token: tok, Logprob: lp, Rank: sampling.Rank(r, tok), Top: top}
			}
		})
		a.prompt = append(a.prompt, rows...)
	}
	return logits[(n-1)*V:]
}

// buildTokenBytes makes, once, the table of each token's bytes that JSON mode checks tokens
// against. Special tokens have none here: they never appear inside the JSON.
func (e *Engine) buildTokenBytes() {
	if e.tokenBytes != nil {
		return
	}
	bd := e.tok.(byteDecoder)
	e.tokenBytes = make([][]byte, e.vocab)
	for id := range e.tokenBytes {
		e.tokenBytes[id], _ = bd.TokenBytes(id, true)
	}
}

// constrain is row with every token the request's constraint rules out set to -Inf: a stop
// token until the output is complete, any other token whose bytes do not continue it (and
// every one once it is final). Special tokens (no bytes here) are never drawn.
func (e *Engine) constrain(a *active, row []float32) []float32 {
	out := make([]float32, len(row))
	neg := float32(math.Inf(-1))
	complete, final := a.con.complete(), a.con.final()
	// A pass over the vocabulary feeds every token's bytes to a copy of the constraint's
	// state (2-7 ms for 150k tokens on one core): a token whose first byte is refused is
	// refused without that, and the rest are split across the cores, since allows only
	// reads the state.
	var first [256]bool
	for c := range first {
		first[c] = !final && a.con.allows([]byte{byte(c)})
	}
	var allowed atomic.Bool
	kernels.ParallelFor(len(out), 8192, func(lo, hi int) {
		any := false
		for id := lo; id < hi; id++ {
			if b := e.tokenBytes[id]; len(b) > 0 && first[b[0]] && a.con.allows(b) {
				out[id], any = row[id], true
			} else {
				out[id] = neg
			}
		}
		if any {
			allowed.Store(true)
		}
	})
	// A stop token without bytes (EOS) only once the output is complete; one with bytes (a
	// user's stop_token_ids) also where its bytes would continue the output, as any token:
	// drawn, it ends the output there, as vLLM's stop ids do.
	for id := range a.stop {
		if complete || len(e.tokenBytes[id]) > 0 && first[e.tokenBytes[id][0]] && a.con.allows(e.tokenBytes[id]) {
			out[id] = row[id]
			allowed.Store(true)
		} else {
			out[id] = neg
		}
	}
	if !allowed.Load() { // complete, and no stop token to end on (finish ends the sequence with it)
		return row
	}
	return out
}

// argmax is the index of row's largest value.
func argmax(row []float32) int { return kernels.ArgmaxF32(row) }

// badWordEnds lists the tokens that would complete a bad word after out: each word's last
// token, when out ends with the tokens before it (always, for a one-token word).
func badWordEnds(words [][]int, out []int) []int {
	var ban []int
	for _, w := range words {
		head := w[:len(w)-1]
		if len(out) < len(head) {
			continue
		}
		match := true
		for k, t := range head {
			if out[len(out)-len(head)+k] != t {
				match = false
				break
			}
		}
		if match {
			ban = append(ban, w[len(w)-1])
		}
	}
	return ban
}

// RunAll steps until every request has finished and returns each request's tokens. When a
// request fails (its logits came out NaN) it returns that error and aborts the requests
// still running, so their blocks come back and the engine can be used again.
func (e *Engine) RunAll() (map[string][]int, error) {
	out := map[string][]int{}
	for e.Pending() > 0 {
		evs, err := e.Step()
		if err != nil {
			return out, err
		}
		if len(evs) == 0 && e.sched.NumRunning() == 0 {
			return out, fmt.Errorf("engine: %d requests wait but none can be scheduled", e.Pending())
		}
		for _, ev := range evs {
			if ev.Err != nil {
				for seq := range e.reqs {
					e.Abort(seq.ID)
				}
				return out, ev.Err
			}
			out[ev.ID] = append(out[ev.ID], ev.Token)
		}
	}
	return out, nil
}

// stopString reports the first of the request's stop strings that the generated text ends
// up containing once tok is added. Only the tail that could hold a new match is decoded.
func (e *Engine) stopString(seq *Sequence, a *active, tok int) string {
	if len(a.req.StopText) == 0 {
		return ""
	}
	longest := 0
	for _, s := range a.req.StopText {
		longest = max(longest, len(s))
	}
	if bd, ok := e.tok.(byteDecoder); ok {
		b, err := bd.TokenBytes(tok, true)
		if err != nil {
			return ""
		}
		// a match must end in the new bytes: search from just before where the old ones ended
		from := max(0, len(a.out)-longest+1)
		a.out = append(a.out, b...)
		for _, s := range a.req.StopText {
			if s != "" && bytes.Contains(a.out[from:], []byte(s)) {
				return s
			}
		}
		return ""
	}
	out := append(append([]int(nil), seq.Tokens[seq.PromptLen:]...), tok)
	text, err := e.tok.Decode(out, true)
	if err != nil {
		return ""
	}
	prev, _ := e.tok.Decode(out[:len(out)-1], true)
	// a match must end in the new text: search from just before where the old text ended
	from := max(0, len(prev)-longest)
	for _, s := range a.req.StopText {
		if s != "" && strings.Contains(text[from:], s) {
			return s
		}
	}
	return ""
}
