package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/strata-ai/strata/internal/jsonmode"
	"github.com/strata-ai/strata/internal/jsonschema"
	"github.com/strata-ai/strata/internal/model/qwen3"
	"github.com/strata-ai/strata/internal/regexmode"
	"github.com/strata-ai/strata/internal/safetensors"
	"github.com/strata-ai/strata/internal/sampling"
	"github.com/strata-ai/strata/internal/tokenizer"
)

type goldenFile struct {
	Prompts [][]int `json:"prompts"`
	Greedy  [][]int `json:"greedy"`
}

func loadModel(t testing.TB, name string) (*qwen3.Model, goldenFile) {
	t.Helper()
	dir := filepath.Join("../../testdata/models", name)
	m, err := qwen3.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	b, _ := os.ReadFile(filepath.Join(dir, "golden.json"))
	var g goldenFile
	json.Unmarshal(b, &g)
	return m, g
}

// TestEngineMatchesAlone: every golden prompt submitted at once, decoded greedily by the
// batched engine, gives exactly the tokens transformers gives for it alone, under every
// scheduling regime: plain, chunked prefill with a small budget, prefix caching with repeated
// prompts, and a cache so small that sequences are preempted and recomputed.
func TestEngineMatchesAlone(t *testing.T) {
	regimes := []struct {
		name string
		cfg  Config
		dup  bool
	}{
		{"plain", Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 8, MaxNumBatchedTokens: 512, MaxModelLen: 512}, BlockSize: 16, KVCacheBytes: 64 << 20}, false},
		{"chunked", Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 8, MaxNumBatchedTokens: 20, ChunkedPrefill: true, MaxModelLen: 512}, BlockSize: 4, KVCacheBytes: 64 << 20}, false},
		{"prefix", Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 3, MaxNumBatchedTokens: 512, MaxModelLen: 512}, BlockSize: 4, KVCacheBytes: 64 << 20, PrefixCaching: true}, true},
		{"preempt", Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 8, MaxNumBatchedTokens: 40, ChunkedPrefill: true, MaxModelLen: 160}, BlockSize: 4}, false},
	}
	for _, name := range []string{"qwen3-dense-tiny", "qwen3-moe-tiny"} {
		m, g := loadModel(t, name)
		for _, rg := range regimes {
			t.Run(name+"/"+rg.name, func(t *testing.T) {
				cfg := rg.cfg
				if cfg.KVCacheBytes == 0 {
					// room for the longest sequence plus a little: forces preemption
					cfg.KVCacheBytes = int64(45) * m.BytesPerBlock(cfg.BlockSize)
				}
				e, err := New(m, cfg)
				if err != nil {
					t.Fatal(err)
				}
				copies := 1
				if rg.dup {
					copies = 2
				}
				for c := range copies {
					for p, prompt := range g.Prompts {
						if err := e.Add(Request{ID: fmt.Sprintf("%d/%d", p, c), Prompt: prompt, MaxTokens: len(g.Greedy[p]), Sampling: sampling.Params{TopP: 1}}); err != nil {
							t.Fatal(err)
						}
					}
				}
				got, err := e.RunAll()
				if err != nil {
					t.Fatal(err)
				}
				for c := range copies {
					for p := range g.Prompts {
						id := fmt.Sprintf("%d/%d", p, c)
						if fmt.Sprint(got[id]) != fmt.Sprint(g.Greedy[p]) {
							t.Errorf("%s: got %v, want %v", id, got[id], g.Greedy[p])
						}
					}
				}
				if total, free := e.Blocks(); total != free {
					t.Errorf("%d of %d blocks still held after every request finished", total-free, total)
				}
				if rg.name == "prefix" && e.bm.Hits == 0 {
					t.Error("repeated prompts never hit the prefix cache")
				}
				if rg.name == "preempt" && e.sched.Preemptions == 0 {
					t.Error("the small cache never forced a preemption: the regime tests nothing")
				}
			})
		}
	}
}

func TestEngineAbortFreesBlocks(t *testing.T) {
	m, g := loadModel(t, "qwen3-dense-tiny")
	e, err := New(m, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 512, MaxModelLen: 512}, BlockSize: 4, KVCacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e.Add(Request{ID: "a", Prompt: g.Prompts[2], MaxTokens: 50, Sampling: sampling.Params{TopP: 1}})
	e.Add(Request{ID: "b", Prompt: g.Prompts[1], MaxTokens: 50, Sampling: sampling.Params{TopP: 1}})
	for range 3 {
		if _, err := e.Step(); err != nil {
			t.Fatal(err)
		}
	}
	if !e.Abort("a") || e.Abort("nope") {
		t.Fatal("abort")
	}
	got, err := e.RunAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(got["b"]) == 0 {
		t.Fatal("b produced nothing after a was aborted")
	}
	if total, free := e.Blocks(); total != free {
		t.Fatalf("%d blocks leaked", total-free)
	}
	if err := e.Add(Request{ID: "c", Prompt: []int{5000}, MaxTokens: 1, Sampling: sampling.Params{TopP: 1}}); err == nil {
		t.Fatal("out-of-vocabulary prompt accepted")
	}
}

// TestStopStringsAndLogprobs: a request ends at the token whose text completes a stop string,
// and reports log-probabilities with the top alternatives when asked.
func TestStopStringsAndLogprobs(t *testing.T) {
	m, g := loadModel(t, "qwen3-dense-tiny")
	tk, err := tokenizer.Load("../../testdata/tokenizer/qwen3/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	want := g.Greedy[0] // the model's ids are all inside Qwen3's vocabulary, so they decode
	stopAt := 11        // the first 654
	one, _ := tk.Decode(want[stopAt:stopAt+1], true)
	two, _ := tk.Decode(want[stopAt-1:stopAt+1], true) // spans two tokens
	for _, stop := range []string{one, two} {
		before, _ := tk.Decode(want[:stopAt], true)
		if strings.Contains(before, stop) {
			t.Fatalf("test data: %q already occurs before token %d; pick another stop token", stop, stopAt)
		}
		e, err := New(m, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 2, MaxNumBatchedTokens: 256, MaxModelLen: 256}, BlockSize: 4, KVCacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Add(Request{ID: "s", Prompt: g.Prompts[0], MaxTokens: 24, Sampling: sampling.Params{TopP: 1}, StopText: []string{stop}}); err == nil {
			t.Fatal("stop strings accepted without a tokenizer")
		}
		e.SetTokenizer(tk)
		if err := e.Add(Request{ID: "s", Prompt: g.Prompts[0], MaxTokens: 24, Sampling: sampling.Params{TopP: 1}, StopText: []string{stop}, Logprobs: 3}); err != nil {
			t.Fatal(err)
		}
		var evs []Event
		for e.Pending() > 0 {
			got, err := e.Step()
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, got...)
		}
		if len(evs) != stopAt+1 {
			t.Fatalf("stop %q: stopped after %d tokens, want %d", stop, len(evs), stopAt+1)
		}
		last := evs[len(evs)-1]
		if !last.Finished || last.Reason != "stop" || last.StopText != stop {
			t.Fatalf("last event %+v", last)
		}
		for i, ev := range evs {
			if ev.Token != want[i] || ev.Logprob > 0 || len(ev.TopLogprobs) != 3 || ev.TopLogprobs[0].Token != ev.Token {
				t.Fatalf("event %d: %+v (greedy token must be the top alternative)", i, ev)
			}
		}
	}
}

// TestMinTokens: with min_tokens, a stop token is never drawn and a stop string never ends
// the sequence before that many tokens are out; after them both work as usual.
func TestMinTokens(t *testing.T) {
	m, g := loadModel(t, "qwen3-dense-tiny")
	tk, err := tokenizer.Load("../../testdata/tokenizer/qwen3/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	want := g.Greedy[0]
	const at = 11 // where greedy decoding first gives the token used as a stop token
	for _, tok := range want[:at] {
		if tok == want[at] {
			t.Fatalf("test data: token %d occurs before position %d", tok, at)
		}
	}
	run := func(r Request) []Event {
		t.Helper()
		e, err := New(m, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 2, MaxNumBatchedTokens: 256, MaxModelLen: 256}, BlockSize: 4, KVCacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		e.SetTokenizer(tk)
		if err := e.Add(r); err != nil {
			t.Fatal(err)
		}
		var evs []Event
		for e.Pending() > 0 {
			got, err := e.Step()
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, got...)
		}
		return evs
	}
	base := Request{ID: "m", Prompt: g.Prompts[0], MaxTokens: 20, Sampling: sampling.Params{TopP: 1}}
	r := base
	r.StopIDs = []int{want[at]}
	if evs := run(r); len(evs) != at+1 || evs[at].Reason != "stop" {
		t.Fatalf("without min_tokens: %d tokens, want a stop after %d", len(evs), at+1)
	}
	for _, min := range []int{at + 1, 15} {
		r.MinTokens = min
		evs := run(r)
		for i, ev := range evs[:min] {
			if ev.Token == want[at] || ev.Finished && i < min-1 {
				t.Fatalf("min_tokens %d: event %d is %+v before the minimum", min, i, ev)
			}
		}
		if len(evs) < min {
			t.Fatalf("min_tokens %d: only %d tokens", min, len(evs))
		}
		if last := evs[len(evs)-1]; last.Reason == "stop" && last.Token != want[at] {
			t.Fatalf("min_tokens %d: stopped on %d, not the stop token", min, last.Token)
		}
	}
	// a stop string matching the second token: ends at 2 tokens, or no earlier than min_tokens
	stop, _ := tk.Decode(want[1:2], true)
	r = base
	r.StopText = []string{stop}
	if evs := run(r); len(evs) != 2 || evs[1].StopText != stop {
		t.Fatalf("stop string %q without min_tokens: %d tokens", stop, len(evs))
	}
	r.MinTokens = 5
	if evs := run(r); len(evs) < 5 {
		t.Fatalf("stop string %q with min_tokens 5: stopped after %d tokens", stop, len(evs))
	}
	e, err := New(m, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 2, MaxNumBatchedTokens: 256, MaxModelLen: 256}, BlockSize: 4, KVCacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e.SetTokenizer(tk)
	r.MinTokens = 21
	if err := e.Add(r); err == nil || !strings.Contains(err.Error(), "min tokens 21") {
		t.Fatalf("min_tokens above max_tokens: %v", err)
	}
	r.MinTokens = 0
	r.Sampling.LogitBias = map[int]float64{1 << 20: 5}
	if err := e.Add(r); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Fatalf("a logit bias beyond the vocabulary: %v", err)
	}
	r.Sampling.LogitBias, r.Sampling.AllowedTokens = nil, []int{1 << 20}
	if err := e.Add(r); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Fatalf("an allowed token beyond the vocabulary: %v", err)
	}
}

// TestBadWords: a one-token bad word is never drawn; a two-token one only loses its second
// token right after its first; both against the model's greedy decoding.
func TestBadWords(t *testing.T) {
	m, g := loadModel(t, "qwen3-dense-tiny")
	want := g.Greedy[0] // 12, then 388 ten times, ...
	run := func(bad [][]int) []int {
		t.Helper()
		e, err := New(m, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 2, MaxNumBatchedTokens: 256, MaxModelLen: 256}, BlockSize: 4, KVCacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Add(Request{ID: "b", Prompt: g.Prompts[0], MaxTokens: 12, Sampling: sampling.Params{TopP: 1}, BadWords: bad}); err != nil {
			t.Fatal(err)
		}
		out, err := e.RunAll()
		if err != nil {
			t.Fatal(err)
		}
		return out["b"]
	}
	got := run([][]int{{want[1]}})
	for i, tok := range got {
		if tok == want[1] {
			t.Fatalf("one-token bad word %d drawn at %d: %v", want[1], i, got)
		}
	}
	got = run([][]int{{want[0], want[1]}})
	if got[0] != want[0] || got[1] == want[1] {
		t.Fatalf("bad word %v: generated %v, want %d then anything but %d", want[:2], got, want[0], want[1])
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] == want[0] && got[i] == want[1] {
			t.Fatalf("bad word %v appears at %d: %v", want[:2], i-1, got)
		}
	}
	if fmt.Sprint(run(nil)) != fmt.Sprint(want[:12]) {
		t.Fatal("without bad words the output is not greedy decoding")
	}
}

// TestPromptLogprobs: every prompt token's logprob (and rank and top alternatives) matches
// log-softmax of transformers' logits at the position before it, under each scheduling
// regime: plain, chunked prefill, prefix caching (which a prompt-logprobs request must not
// use) and preemption (whose recomputation must not report a position twice).
func TestPromptLogprobs(t *testing.T) {
	m, g := loadModel(t, "qwen3-dense-tiny")
	ref, err := safetensors.Open("../../testdata/models/qwen3-dense-tiny/golden.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	V := m.Cfg.Vocab
	logSoftmax := func(row []float32) []float64 {
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - mx)
		}
		out := make([]float64, len(row))
		for i, v := range row {
			out[i] = float64(v) - mx - math.Log(sum)
		}
		return out
	}
	regimes := []Config{
		{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 8, MaxNumBatchedTokens: 512, MaxModelLen: 512}, BlockSize: 16, KVCacheBytes: 64 << 20},
		{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 8, MaxNumBatchedTokens: 7, ChunkedPrefill: true, MaxModelLen: 512}, BlockSize: 4, KVCacheBytes: 64 << 20},
		{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 3, MaxNumBatchedTokens: 512, MaxModelLen: 512}, BlockSize: 4, KVCacheBytes: 64 << 20, PrefixCaching: true},
		{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 8, MaxNumBatchedTokens: 40, ChunkedPrefill: true, MaxModelLen: 160}, BlockSize: 4, KVCacheBytes: int64(45) * m.BytesPerBlock(4)},
	}
	for ri, cfg := range regimes {
		e, err := New(m, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for p, prompt := range g.Prompts {
			// the same prompt first without prompt logprobs, so a prefix cache holds it
			if err := e.Add(Request{ID: fmt.Sprintf("plain%d", p), Prompt: prompt, MaxTokens: len(g.Greedy[p]), Sampling: sampling.Params{TopP: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.RunAll(); err != nil {
			t.Fatal(err)
		}
		for p, prompt := range g.Prompts {
			if err := e.Add(Request{ID: fmt.Sprint(p), Prompt: prompt, MaxTokens: len(g.Greedy[p]), Sampling: sampling.Params{TopP: 1}, PromptLogprobs: 3}); err != nil {
				t.Fatal(err)
			}
		}
		first := map[string]Event{}
		for e.Pending() > 0 {
			evs, err := e.Step()
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range evs {
				if _, ok := first[ev.ID]; !ok {
					first[ev.ID] = ev
				} else if ev.PromptLogprobs != nil {
					t.Fatalf("regime %d: %s: prompt logprobs on a later event", ri, ev.ID)
				}
			}
		}
		for p, prompt := range g.Prompts {
			_, want, err := ref.Float32s(fmt.Sprintf("logits.%d", p))
			if err != nil {
				t.Fatal(err)
			}
			got := first[fmt.Sprint(p)].PromptLogprobs
			if len(got) != len(prompt)-1 {
				t.Fatalf("regime %d prompt %d: %d prompt logprobs for %d tokens", ri, p, len(got), len(prompt))
			}
			for j, pl := range got {
				ls := logSoftmax(want[j*V : (j+1)*V])
				tok := prompt[j+1]
				// the rank, up to tokens within the logits' tolerance of this one
				lo, hi := 1, 1
				for _, v := range ls {
					if v > ls[tok]+1e-3 {
						lo++
					}
					if v > ls[tok]-1e-3 {
						hi++
					}
				}
				if pl.Token != tok || math.Abs(float64(pl.Logprob)-ls[tok]) > 1e-3 || len(pl.Top) != 3 || pl.Rank < lo || pl.Rank > hi {
					t.Fatalf("regime %d prompt %d position %d: %+v, want token %d logprob %v rank %d..%d", ri, p, j+1, pl, tok, ls[tok], lo, hi)
				}
				for k, alt := range pl.Top {
					if math.Abs(float64(alt.Logprob)-ls[alt.Token]) > 1e-3 || k > 0 && alt.Logprob > pl.Top[k-1].Logprob {
						t.Fatalf("regime %d prompt %d position %d: top %v", ri, p, j+1, pl.Top)
					}
				}
			}
		}
		if ri == 3 && e.sched.Preemptions == 0 {
			t.Error("the small cache never forced a preemption: the regime tests nothing")
		}
	}
}

type noLogitsExecutor struct{}

func (noLogitsExecutor) Forward(items []qwen3.BatchItem) ([][]float32, error) {
	return nil, fmt.Errorf("not run")
}

// TestPromptLogprobsNeedAllLogits: an executor that cannot return every position's logits
// (not an AllLogitsExecutor) refuses prompt logprobs at Add.
func TestPromptLogprobsNeedAllLogits(t *testing.T) {
	e, err := NewWithExecutor(noLogitsExecutor{}, 100, 16, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 2, MaxNumBatchedTokens: 64, MaxModelLen: 64}, BlockSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Add(Request{ID: "p", Prompt: []int{1, 2}, MaxTokens: 2, Sampling: sampling.Params{TopP: 1}, PromptLogprobs: 1})
	if !errors.Is(err, ErrNoPromptLogprobs) {
		t.Fatalf("prompt logprobs on a remote executor: %v", err)
	}
}

// TestJSONObject: sampled output under JSON mode is, byte by byte, the start of a JSON object,
// and where it ends on the stop token it is a whole one that encoding/json accepts. A bias
// on "}" lets some samples finish within the token budget.
func TestJSONObject(t *testing.T) {
	m, g := loadModel(t, "qwen3-dense-tiny")
	tk, err := tokenizer.Load("../../testdata/tokenizer/qwen3/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	closing, err := tk.Encode("}")
	if err != nil || len(closing) != 1 {
		t.Fatalf("test data: \"}\" is %v (%v), want one token", closing, err)
	}
	const eos = 0 // any token will do as the stop token; "!" also appears inside strings
	e, err := New(m, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 8, MaxNumBatchedTokens: 256, MaxModelLen: 256}, BlockSize: 4, KVCacheBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Add(Request{ID: "x", Prompt: g.Prompts[0], MaxTokens: 4, Sampling: sampling.Params{TopP: 1}, JSONObject: true}); err == nil {
		t.Fatal("JSON mode accepted without a tokenizer")
	}
	e.SetTokenizer(tk)
	const n = 8
	for i := range n {
		bias := map[int]float64{}
		if i%2 == 1 {
			bias[closing[0]] = 6
		}
		r := Request{ID: fmt.Sprint(i), Prompt: g.Prompts[i%len(g.Prompts)], MaxTokens: 40, StopIDs: []int{eos},
			Sampling: sampling.Params{Temperature: 1, TopP: 1, Seed: uint64(i), LogitBias: bias}, JSONObject: true}
		if err := e.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	out, reason := drain(t, e)
	complete := 0
	for i := range n {
		id := fmt.Sprint(i)
		toks := out[id]
		if reason[id] == "stop" {
			toks = toks[:len(toks)-1] // the stop token is not part of the text
		}
		text, err := tk.Decode(toks, true)
		if err != nil {
			t.Fatal(err)
		}
		var s jsonmode.State
		if !s.FeedAll([]byte(text)) {
			t.Fatalf("%s: %q is not the start of a JSON object", id, text)
		}
		if reason[id] == "stop" {
			if !s.Done() || !json.Valid([]byte(text)) {
				t.Fatalf("%s: stopped on %q, not a whole JSON object", id, text)
			}
			complete++
		}
	}
	if complete == 0 {
		t.Fatal("no sample finished its object: the test checks no whole object")
	}
}

// TestJSONSchema: sampled output under a JSON schema is always a prefix the schema's State
// accepts, and the samples that stop are whole values: JSON with the required keys and the
// declared types.
func TestJSONSchema(t *testing.T) {
	e, tk, g := guidedEngine(t)
	schema, err := jsonschema.Compile([]byte(`{"type": "object", "properties": {
		"name": {"type": "string", "maxLength": 4},
		"ok": {"type": "boolean"},
		"tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
		"n": {"anyOf": [{"type": "integer"}, {"type": "null"}]}
	}, "required": ["name", "ok"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Add(Request{ID: "both", Prompt: g.Prompts[0], MaxTokens: 4, Sampling: sampling.Params{TopP: 1}, JSONSchema: schema, JSONObject: true}); err == nil {
		t.Fatal("a JSON schema and JSON object mode together accepted")
	}
	if err := e.Add(Request{ID: "compact", Prompt: g.Prompts[0], MaxTokens: 4, Sampling: sampling.Params{TopP: 1}, CompactJSON: true}); err == nil {
		t.Fatal("compact JSON without JSON output accepted")
	}
	const n = 12
	for i := range n {
		r := Request{ID: fmt.Sprint(i), Prompt: g.Prompts[i%len(g.Prompts)], MaxTokens: 60, StopIDs: []int{0},
			Sampling: sampling.Params{Temperature: 1, TopP: 1, Seed: uint64(i)}, JSONSchema: schema}
		if err := e.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	out, reason := drain(t, e)
	complete := 0
	for i := range n {
		id := fmt.Sprint(i)
		toks := out[id]
		if reason[id] == "stop" {
			toks = toks[:len(toks)-1]
		}
		text, err := tk.Decode(toks, true)
		if err != nil {
			t.Fatal(err)
		}
		st := schema.Start()
		if !st.FeedAll([]byte(text)) {
			t.Fatalf("%s: %q is not the start of a value the schema accepts", id, text)
		}
		if reason[id] != "stop" {
			continue
		}
		var v struct {
			Name *string
			OK   *bool `json:"ok"`
			Tags []string
			N    *int
		}
		if !st.Done() || json.Unmarshal([]byte(text), &v) != nil || v.Name == nil || v.OK == nil || len([]rune(*v.Name)) > 4 || len(v.Tags) > 2 {
			t.Fatalf("%s: stopped on %q, not a whole value of the schema", id, text)
		}
		complete++
	}
	if complete == 0 {
		t.Fatal("no sample finished its value: the test checks no whole one")
	}
}

// TestGuidedRegex: sampled output under a regex stays on its way to a full match, and the
// samples that stop match it by Go's regexp.
func TestGuidedRegex(t *testing.T) {
	e, tk, g := guidedEngine(t)
	const expr = `[a-z]{1,6}@[a-z]{2,5}\.(com|org)`
	re, err := regexmode.Compile(expr)
	if err != nil {
		t.Fatal(err)
	}
	ref := regexp.MustCompile(`^(?:` + expr + `)$`)
	const n = 10
	for i := range n {
		r := Request{ID: fmt.Sprint(i), Prompt: g.Prompts[i%len(g.Prompts)], MaxTokens: 40, StopIDs: []int{0},
			Sampling: sampling.Params{Temperature: 1, TopP: 1, Seed: uint64(i)}, Regex: re}
		if err := e.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	out, reason := drain(t, e)
	whole := 0
	for i := range n {
		id := fmt.Sprint(i)
		toks := out[id]
		if reason[id] == "stop" {
			toks = toks[:len(toks)-1]
		}
		text, _ := tk.Decode(toks, true)
		st := re.Start()
		if !st.FeedAll([]byte(text)) {
			t.Fatalf("%s: %q is not on its way to a match", id, text)
		}
		if reason[id] == "stop" {
			if !ref.MatchString(text) {
				t.Fatalf("%s: stopped on %q, which does not match", id, text)
			}
			whole++
		}
	}
	if whole == 0 {
		t.Fatal("no sample finished its match: the test checks no whole one")
	}
}

// TestConstraintStopIDsAndLogprobs: a user's stop id with bytes the constraint allows may be
// drawn and ends the output (the constraint is never dropped because the only allowed tokens
// are stop ids), and logprobs under a constraint are over the tokens it allows.
func TestConstraintStopIDsAndLogprobs(t *testing.T) {
	e, tk, g := guidedEngine(t)
	a, err := tk.Encode("a")
	if err != nil || len(a) != 1 {
		t.Fatalf("test data: \"a\" is %v (%v)", a, err)
	}
	for i := range 3 {
		r := Request{ID: fmt.Sprint("stop", i), Prompt: g.Prompts[i], MaxTokens: 8, StopIDs: []int{0, a[0]},
			Sampling: sampling.Params{Temperature: 1, TopP: 1, Seed: uint64(i)}, Choices: []string{"a"}}
		if err := e.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	choices := []string{"yes", "no way"}
	for i := range 3 {
		r := Request{ID: fmt.Sprint("lp", i), Prompt: g.Prompts[i], MaxTokens: 8, StopIDs: []int{0}, Logprobs: 5,
			Sampling: sampling.Params{Temperature: 1, TopP: 1, Seed: uint64(i)}, Choices: choices}
		if err := e.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	text := map[string]string{}
	for e.Pending() > 0 {
		evs, err := e.Step()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.ID[:2] == "st" {
				if ev.Token != a[0] || !ev.Finished || ev.Reason != "stop" {
					t.Fatalf("%s: token %d (finished %v, %q), want the stop id %d at once", ev.ID, ev.Token, ev.Finished, ev.Reason, a[0])
				}
				continue
			}
			for _, alt := range ev.TopLogprobs {
				b, _ := tk.Decode([]int{alt.Token}, false)
				ok := alt.Token == 0
				for _, c := range choices {
					ok = ok || strings.HasPrefix(c, text[ev.ID]+b)
				}
				if !ok {
					t.Fatalf("%s after %q: alternative %q (%d) is one the constraint refuses", ev.ID, text[ev.ID], b, alt.Token)
				}
			}
			if !ev.Finished || ev.Reason != "stop" {
				b, _ := tk.Decode([]int{ev.Token}, false)
				text[ev.ID] += b
			}
		}
	}
}

// TestGuidedAfterReasoning: with Think set, a reasoning block goes unconstrained and the
// constraint holds from the token after its end; without an open block the first token may
// open one or start the constrained answer.
func TestGuidedAfterReasoning(t *testing.T) {
	e, tk, g := guidedEngine(t)
	one := func(s string) int {
		ids, err := tk.Encode(s)
		if err != nil || len(ids) != 1 {
			t.Fatalf("test data: %q is %v (%v)", s, ids, err)
		}
		return ids[0]
	}
	start, end := one("S"), one("E") // stand-ins for <think> and </think> in the tiny vocabulary
	choices := []string{"yes", "no"}
	const n = 6
	for i := range n {
		r := Request{ID: fmt.Sprint(i), Prompt: g.Prompts[i%len(g.Prompts)], MaxTokens: 40, StopIDs: []int{0},
			Sampling: sampling.Params{Temperature: 1, TopP: 1, Seed: uint64(i), LogitBias: map[int]float64{end: 8}},
			Choices:  choices, Think: &Think{Start: start, End: end, Open: i%2 == 0}}
		if err := e.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	out, reason := drain(t, e)
	reasoned := 0
	for i := range n {
		id := fmt.Sprint(i)
		toks := out[id]
		if reason[id] != "stop" {
			t.Fatalf("%s: ended with %q on %v", id, reason[id], toks)
		}
		toks = toks[:len(toks)-1]
		answer := toks
		if k := slices.Index(toks, end); i%2 == 0 || len(toks) > 0 && toks[0] == start {
			if k < 0 {
				t.Fatalf("%s: an open block that never ended: %v", id, toks)
			}
			answer = toks[k+1:]
			reasoned++
		}
		text, _ := tk.Decode(answer, true)
		if text != choices[0] && text != choices[1] {
			t.Fatalf("%s: the answer after reasoning is %q (all %v)", id, text, toks)
		}
	}
	if reasoned == 0 {
		t.Fatal("no sample reasoned first: nothing checks the block")
	}
}

// TestGuidedChoice: sampled output under a guided choice is exactly one of the choices, ending
// on the stop token (a choice that is a prefix of another may end there or go on).
func TestGuidedChoice(t *testing.T) {
	e, tk, g := guidedEngine(t)
	choices := []string{"yes", "no", "no way", "maybe, later"}
	if err := e.Add(Request{ID: "bad", Prompt: g.Prompts[0], MaxTokens: 4, Sampling: sampling.Params{TopP: 1}, Choices: []string{"a", ""}}); err == nil {
		t.Fatal("an empty choice accepted")
	}
	const n = 12
	for i := range n {
		r := Request{ID: fmt.Sprint(i), Prompt: g.Prompts[i%len(g.Prompts)], MaxTokens: 20, StopIDs: []int{0},
			Sampling: sampling.Params{Temperature: 1, TopP: 1, Seed: uint64(i)}, Choices: choices}
		if err := e.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	out, reason := drain(t, e)
	seen := map[string]bool{}
	for i := range n {
		id := fmt.Sprint(i)
		toks := out[id]
		if reason[id] != "stop" || toks[len(toks)-1] != 0 {
			t.Fatalf("%s: ended with %q on %v, want the stop token", id, reason[id], toks)
		}
		text, _ := tk.Decode(toks[:len(toks)-1], true)
		ok := false
		for _, c := range choices {
			ok = ok || text == c
		}
		if !ok {
			t.Fatalf("%s: %q is none of %q", id, text, choices)
		}
		seen[text] = true
	}
	if len(seen) < 2 {
		t.Fatalf("12 samples all chose %v", seen)
	}
}

// TestConstraintEdges: a constraint's output stays valid when other options pull against it:
// min_tokens past the end of the object or choice (the constraint ends it anyway), no stop
// token at all (it ends on the token that completes it), and allowed tokens that leave
// nothing the constraint allows (the constraint wins).
func TestConstraintEdges(t *testing.T) {
	m, g := loadModel(t, "qwen3-dense-tiny")
	tk, err := tokenizer.Load("../../testdata/tokenizer/qwen3/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	closing, _ := tk.Encode("}")
	run := func(r Request) (string, []int, string) {
		t.Helper()
		e, err := New(m, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 2, MaxNumBatchedTokens: 256, MaxModelLen: 256}, BlockSize: 4, KVCacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		e.SetTokenizer(tk)
		r.ID, r.Prompt = "c", g.Prompts[0]
		if err := e.Add(r); err != nil {
			t.Fatal(err)
		}
		outs, reasons := drain(t, e)
		toks, reason := outs["c"], reasons["c"]
		text := toks
		if len(r.StopIDs) > 0 && reason == "stop" && toks[len(toks)-1] == r.StopIDs[0] {
			text = toks[:len(toks)-1]
		}
		s, _ := tk.Decode(text, true)
		return s, toks, reason
	}
	isChoice := func(s string, cs []string) bool {
		for _, c := range cs {
			if s == c {
				return true
			}
		}
		return false
	}
	hot := sampling.Params{Temperature: 1, TopP: 1, Seed: 1, LogitBias: map[int]float64{closing[0]: 8}}
	if s, _, reason := run(Request{MaxTokens: 40, MinTokens: 30, StopIDs: []int{0}, Sampling: hot, JSONObject: true}); reason != "stop" || !json.Valid([]byte(s)) {
		t.Fatalf("JSON with min_tokens past its end: %q (%s)", s, reason)
	}
	choices := []string{"yes", "no"}
	cold := sampling.Params{Temperature: 1, TopP: 1, Seed: 1}
	if s, _, reason := run(Request{MaxTokens: 10, MinTokens: 6, StopIDs: []int{0}, Sampling: cold, Choices: choices}); reason != "stop" || !isChoice(s, choices) {
		t.Fatalf("choice with min_tokens past its end: %q (%s)", s, reason)
	}
	if s, _, reason := run(Request{MaxTokens: 10, Sampling: cold, Choices: choices}); reason != "stop" || !isChoice(s, choices) {
		t.Fatalf("choice without a stop token: %q (%s)", s, reason)
	}
	if s, _, reason := run(Request{MaxTokens: 40, Sampling: hot, JSONObject: true}); reason != "stop" || !json.Valid([]byte(s)) {
		t.Fatalf("JSON without a stop token: %q (%s)", s, reason)
	}
	restricted := cold
	restricted.AllowedTokens = []int{100, 200}
	if s, _, reason := run(Request{MaxTokens: 10, StopIDs: []int{0}, Sampling: restricted, Choices: choices}); reason != "stop" || !isChoice(s, choices) {
		t.Fatalf("choice under allowed tokens it cannot use: %q (%s)", s, reason)
	}
}

// guidedEngine is an engine over the tiny dense model with Qwen3's tokenizer set, as the
// constraint tests use it.
func guidedEngine(t testing.TB) (*Engine, *tokenizer.Tokenizer, goldenFile) {
	t.Helper()
	m, g := loadModel(t, "qwen3-dense-tiny")
	tk, err := tokenizer.Load("../../testdata/tokenizer/qwen3/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(m, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 8, MaxNumBatchedTokens: 256, MaxModelLen: 256}, BlockSize: 4, KVCacheBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e.SetTokenizer(tk)
	return e, tk, g
}

// drain steps e until every request is done and returns each request's tokens and the reason
// it finished.
func drain(t *testing.T, e *Engine) (tokens map[string][]int, reason map[string]string) {
	t.Helper()
	tokens, reason = map[string][]int{}, map[string]string{}
	for e.Pending() > 0 {
		evs, err := e.Step()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			tokens[ev.ID] = append(tokens[ev.ID], ev.Token)
			if ev.Finished {
				reason[ev.ID] = ev.Reason
			}
		}
	}
	return tokens, reason
}

// BenchmarkConstrain is one step's mask for a JSON-mode request over Qwen3's 151k-token
// vocabulary, inside a string (where most tokens are allowed) and after a key (where few are).
func BenchmarkConstrain(b *testing.B) {
	m, _ := loadModel(b, "qwen3-dense-tiny")
	tk, err := tokenizer.Load("../../testdata/tokenizer/qwen3/tokenizer.json")
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(m, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 2, MaxNumBatchedTokens: 64, MaxModelLen: 64}, BlockSize: 4, KVCacheBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	e.SetTokenizer(tk)
	e.vocab = 151936 // Qwen3's, not the tiny model's: the mask's cost is per vocabulary token
	e.buildTokenBytes()
	row := make([]float32, len(e.tokenBytes))
	for _, c := range []struct{ name, prefix string }{{"in-string", `{"a": "xy`}, {"after-key", `{"a"`}} {
		b.Run(c.name, func(b *testing.B) {
			con := &jsonObject{}
			con.feed([]byte(c.prefix))
			a := &active{con: con, stop: map[int]bool{0: true}}
			for b.Loop() {
				e.constrain(a, row)
			}
		})
	}
}

// TestWrappedValue: exact text, a value of the schema, exact text; complete only at the end.
func TestWrappedValue(t *testing.T) {
	sc, err := jsonschema.Compile([]byte(`{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}`))
	if err != nil {
		t.Fatal(err)
	}
	whole := "<x>\n" + `{"a": 12}` + "\n</x>"
	w := &wrappedValue{before: "<x>\n", after: "\n</x>", s: sc.Start()}
	for i := range len(whole) {
		if w.complete() {
			t.Fatalf("complete after %q", whole[:i])
		}
		if !w.allows([]byte(whole[i : i+1])) {
			t.Fatalf("refused byte %d of %q", i, whole)
		}
		w.feed([]byte(whole[i : i+1]))
	}
	if !w.complete() || !w.final() || w.allows([]byte("\n")) {
		t.Fatal("not complete and final at the end")
	}
	// a number ends where the text after it begins; with no text after, it may end anywhere
	num, err := jsonschema.Compile([]byte(`{"type": "integer"}`))
	if err != nil {
		t.Fatal(err)
	}
	wn := &wrappedValue{before: "<", after: ">", s: num.Start()}
	if wn.feed([]byte("<12>")); !wn.complete() {
		t.Fatal("<12> not complete")
	}
	wn = &wrappedValue{stage: 1, s: num.Start()}
	if wn.feed([]byte("12")); !wn.complete() || wn.final() {
		t.Fatal("12 with nothing after: want complete, not final")
	}
	for _, bad := range []string{"<y>", "<x>\n{}", `<x>` + "\n" + `{"a": 1}}`, "<x>\n{\"a\": 1}\n</y>"} {
		w := &wrappedValue{before: "<x>\n", after: "\n</x>", s: sc.Start()}
		if w.allows([]byte(bad)) {
			t.Errorf("%q allowed", bad)
		}
	}
}

// TestSampledBatchMatchesAlone: seeded sampled requests drawn together (their draws run
// across the cores) give the tokens and logprobs each gives alone, under penalties, filters,
// min_tokens and logprobs.
func TestSampledBatchMatchesAlone(t *testing.T) {
	m, g := loadModel(t, "qwen3-dense-tiny")
	stop := g.Greedy[0][3]
	reqs := []Request{
		{Sampling: sampling.Params{Temperature: 0.8, TopP: 0.9, Seed: 1}, Logprobs: 2},
		{Sampling: sampling.Params{Temperature: 1.2, TopP: 1, TopK: 5, Seed: 2}},
		{Sampling: sampling.Params{Temperature: 1, TopP: 1, MinP: 0.05, RepetitionPenalty: 1.3, Seed: 3}},
		{Sampling: sampling.Params{Temperature: 0.7, TopP: 0.95, TopK: 20, PresencePenalty: 0.5, FrequencyPenalty: 0.3, Seed: 4}, Logprobs: 1},
		{Sampling: sampling.Params{TopP: 1}, MinTokens: 6, StopIDs: []int{stop}},
		{Sampling: sampling.Params{Temperature: 2, TopP: 1, Seed: 6}},
	}
	run := func(idx []int) map[string][]Event {
		e, err := New(m, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 8, MaxNumBatchedTokens: 512, MaxModelLen: 512}, BlockSize: 4, KVCacheBytes: 32 << 20})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range idx {
			r := reqs[i]
			r.ID, r.Prompt, r.MaxTokens = fmt.Sprint(i), g.Prompts[i%len(g.Prompts)], 12
			if err := e.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		out := map[string][]Event{}
		for e.Pending() > 0 {
			evs, err := e.Step()
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range evs {
				out[ev.ID] = append(out[ev.ID], ev)
			}
		}
		return out
	}
	all := make([]int, len(reqs))
	for i := range all {
		all[i] = i
	}
	together := run(all)
	for i := range reqs {
		alone := run([]int{i})[fmt.Sprint(i)]
		got := together[fmt.Sprint(i)]
		if len(got) != len(alone) || len(alone) == 0 {
			t.Fatalf("request %d: %d events in the batch, %d alone", i, len(got), len(alone))
		}
		for j := range alone {
			// the logits of a batch differ from one row's in the last bits: alone a row takes
			// the float32 GEMV, in a batch of four or more on AVX-512 BF16 the split-bfloat16
			// kernels, within about 1e-5 relative of float32 (kernels.Float32). A 2-vCPU Zen 5
			// put a logprob of -7.36 1.0e-5 apart, so logprobs must agree to 1e-4.
			a, b := alone[j], got[j]
			same := a.Token == b.Token && a.Reason == b.Reason && near(a.Logprob, b.Logprob) && len(a.TopLogprobs) == len(b.TopLogprobs)
			for k := range a.TopLogprobs {
				same = same && k < len(b.TopLogprobs) && a.TopLogprobs[k].Token == b.TopLogprobs[k].Token && near(a.TopLogprobs[k].Logprob, b.TopLogprobs[k].Logprob)
			}
			if !same {
				t.Fatalf("request %d token %d: batch %+v, alone %+v", i, j, b, a)
			}
		}
	}
}

func near(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-4 }

// poisonExecutor gives each row a peak at a token from 50 up, chosen by the row's last input
// token, and gives NaN logits to any item whose tokens include 13: the row a model with
// corrupt weights returns.
type poisonExecutor struct{ vocab int }

func (x poisonExecutor) Forward(items []qwen3.BatchItem) ([][]float32, error) {
	out := make([][]float32, len(items))
	for i, it := range items {
		row := make([]float32, x.vocab)
		last := it.Tokens[len(it.Tokens)-1]
		row[50+(last*7+3)%50] = 5
		if slices.Contains(it.Tokens, 13) {
			for j := range row {
				row[j] = float32(math.NaN())
			}
		}
		out[i] = row
	}
	return out, nil
}

// TestNaNLogitsFailTheRequest: a request whose logits come out NaN ends at once with an error
// event that names it and carries no token, its blocks come back, and the requests batched
// with it go on to their full length, sampled or greedy.
func TestNaNLogitsFailTheRequest(t *testing.T) {
	for _, temp := range []float64{0, 0.8} {
		t.Run(fmt.Sprint("temperature ", temp), func(t *testing.T) {
			e, err := NewWithExecutor(poisonExecutor{100}, 100, 64, Config{SchedulerConfig: SchedulerConfig{MaxNumSeqs: 8, MaxNumBatchedTokens: 64, MaxModelLen: 64}, BlockSize: 4})
			if err != nil {
				t.Fatal(err)
			}
			sp := sampling.Params{Temperature: temp, TopP: 1, Seed: 1}
			reqs := map[string][]int{"good0": {1, 2, 3}, "bad": {4, 13, 5}, "good1": {6, 7}, "good2": {8}}
			for _, id := range []string{"good0", "bad", "good1", "good2"} {
				if err := e.Add(Request{ID: id, Prompt: reqs[id], MaxTokens: 6, Sampling: sp}); err != nil {
					t.Fatal(err)
				}
			}
			got := map[string][]int{}
			var failed []Event
			for e.Pending() > 0 {
				evs, err := e.Step()
				if err != nil {
					t.Fatal(err)
				}
				for _, ev := range evs {
					if ev.Err != nil {
						failed = append(failed, ev)
						continue
					}
					got[ev.ID] = append(got[ev.ID], ev.Token)
				}
			}
			if len(failed) != 1 || failed[0].ID != "bad" || !failed[0].Finished || failed[0].Reason != "error" ||
				!errors.Is(failed[0].Err, ErrNotNumbers) || !strings.Contains(failed[0].Err.Error(), "request bad") {
				t.Fatalf("failures: %+v", failed)
			}
			if len(got["bad"]) != 0 {
				t.Errorf("the failed request gave tokens %v", got["bad"])
			}
			for _, id := range []string{"good0", "good1", "good2"} {
				if len(got[id]) != 6 {
					t.Errorf("%s: %d tokens, want 6", id, len(got[id]))
				}
				for _, tok := range got[id] {
					if temp == 0 && tok < 50 {
						t.Errorf("%s drew %d, below the rows' peaks", id, tok)
					}
				}
			}
			if total, free := e.Blocks(); total != free {
				t.Errorf("%d of %d blocks still held", total-free, total)
			}
			// RunAll, as strata generate uses it, returns the failure
			for _, r := range []Request{{ID: "bad2", Prompt: []int{13}}, {ID: "good3", Prompt: []int{9, 10, 11, 12, 14, 15, 16}}} {
				r.MaxTokens, r.Sampling = 3, sp
				if err := e.Add(r); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := e.RunAll(); !errors.Is(err, ErrNotNumbers) {
				t.Fatalf("RunAll: %v", err)
			}
			// and leaves the engine clean: the request still running was aborted
			if total, free := e.Blocks(); total != free || e.Pending() != 0 {
				t.Errorf("after RunAll's failure: %d of %d blocks held, %d requests pending", total-free, total, e.Pending())
			}
		})
	}
}
