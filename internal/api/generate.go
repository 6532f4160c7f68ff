package api

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strata-ai/strata/internal/engine"
	"github.com/strata-ai/strata/internal/jsonschema"
	"github.com/strata-ai/strata/internal/regexmode"
	"github.com/strata-ai/strata/internal/sampling"
	"github.com/strata-ai/strata/internal/serve"
	"github.com/strata-ai/strata/internal/tokenizer"
)

// admit decodes a generation request and checks what both endpoints check before any work:
// the model name, stream_options only with stream, and that the cluster is whole.
func (s *Server) admit(r *http.Request, req any, f *samplingFields) error {
	if err := s.decode(r, req); err != nil {
		return err
	}
	if err := s.checkModel(f.Model); err != nil {
		return err
	}
	if f.StreamOptions != nil && !f.Stream {
		return badRequest("stream_options", "stream_options can only be given with stream: true")
	}
	if err := f.unsupported(); err != nil {
		return err
	}
	if err := s.clusterErr(); err != nil {
		return &apiError{http.StatusServiceUnavailable, err.Error(), ""}
	}
	return nil
}

// responseFormat is response_format's type ("" when absent or not an object with one).
func (f *samplingFields) responseFormat() string {
	var rf struct {
		Type string `json:"type"`
	}
	if len(f.ResponseFormat) == 0 || json.Unmarshal(f.ResponseFormat, &rf) != nil {
		return ""
	}
	return rf.Type
}

// unsupported refuses the vLLM parameters strata does not implement, naming what to do.
func (f *samplingFields) unsupported() error {
	set := func(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }
	if set(f.ResponseFormat) {
		if rf := f.responseFormat(); rf != "text" && rf != "json_object" && rf != "json_schema" {
			return badRequest("response_format", "response_format %.80s is not supported: use {\"type\": \"json_schema\", \"json_schema\": {\"name\": ..., \"schema\": {...}}}, {\"type\": \"json_object\"} (any JSON object) or {\"type\": \"text\"}", f.ResponseFormat)
		}
	}
	for _, g := range []struct {
		name string
		raw  json.RawMessage
	}{{"guided_grammar", f.GuidedGrammar}, {"guided_whitespace_pattern", f.GuidedWhitespace}} {
		if set(g.raw) && string(g.raw) != `""` {
			return badRequest(g.name, "%s is not supported: of guided decoding strata implements guided_json, guided_regex, guided_choice and response_format json_object and json_schema; leave it out", g.name)
		}
	}
	if f.UseBeamSearch {
		return badRequest("use_beam_search", "use_beam_search is not supported: beam search is not implemented; sample with n instead")
	}
	n := int64(1)
	if f.N != nil {
		n = *f.N
	}
	if f.BestOf != nil && *f.BestOf != n && *f.BestOf != 1 {
		return badRequest("best_of", "best_of %d is not supported: strata returns every sequence it samples; use n", *f.BestOf)
	}
	return nil
}

// guided reads the guided-decoding fields into p: guided_choice, guided_json, guided_regex,
// response_format json_object and json_schema, and structured_outputs' json, regex, choice
// and json_object (vLLM's newer form of the same). At most one may be given.
func (s *Server) guided(f *samplingFields, p *genParams) error {
	set := func(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }
	var given []string
	choice := func(param string, raw json.RawMessage) error {
		if err := json.Unmarshal(raw, &p.choices); err != nil || len(p.choices) == 0 {
			return badRequest(param, "%s must be a non-empty array of strings", param)
		}
		if len(p.choices) > engine.MaxChoices {
			return badRequest(param, "%s has %d strings, at most %d are supported", param, len(p.choices), engine.MaxChoices)
		}
		for _, c := range p.choices {
			if c == "" {
				return badRequest(param, "%s must not hold an empty string", param)
			}
		}
		given = append(given, param)
		return nil
	}
	schema := func(param string, raw json.RawMessage) error {
		var text string
		if json.Unmarshal(raw, &text) == nil { // vLLM also takes the schema as a JSON string
			raw = json.RawMessage(text)
		}
		sc, err := jsonschema.Compile(raw)
		if err != nil {
			return badRequest(param, "%s: %v", param, err)
		}
		p.jsonSchema = sc
		given = append(given, param)
		return nil
	}
	regex := func(param string, raw json.RawMessage) error {
		var expr string
		if err := json.Unmarshal(raw, &expr); err != nil {
			return badRequest(param, "%s must be a string: a regular expression the whole output must match", param)
		}
		re, err := regexmode.Compile(expr)
		if err != nil {
			return badRequest(param, "%s: %v", param, err)
		}
		p.regex = re
		given = append(given, param)
		return nil
	}
	if set(f.GuidedChoice) {
		if err := choice("guided_choice", f.GuidedChoice); err != nil {
			return err
		}
	}
	if set(f.GuidedJSON) {
		if err := schema("guided_json", f.GuidedJSON); err != nil {
			return err
		}
	}
	if set(f.GuidedRegex) {
		if err := regex("guided_regex", f.GuidedRegex); err != nil {
			return err
		}
	}
	switch f.responseFormat() {
	case "json_object":
		p.jsonObject = true
		given = append(given, "response_format")
	case "json_schema":
		var rf struct {
			JSONSchema *struct {
				Name   *string         `json:"name"`
				Schema json.RawMessage `json:"schema"`
			} `json:"json_schema"`
		}
		if json.Unmarshal(f.ResponseFormat, &rf) != nil || rf.JSONSchema == nil || !set(rf.JSONSchema.Schema) || rf.JSONSchema.Schema[0] != '{' {
			return badRequest("response_format", "response_format json_schema needs json_schema.schema, the JSON schema (an object) the output must follow")
		}
		if rf.JSONSchema.Name == nil || *rf.JSONSchema.Name == "" {
			return badRequest("response_format", "response_format json_schema needs json_schema.name, as OpenAI's API does")
		}
		if err := schema("response_format", rf.JSONSchema.Schema); err != nil {
			return err
		}
	}
	if set(f.StructuredOutputs) {
		var so map[string]json.RawMessage
		if err := json.Unmarshal(f.StructuredOutputs, &so); err != nil {
			return badRequest("structured_outputs", "structured_outputs must be an object such as {\"json\": {...}} or {\"choice\": [...]}")
		}
		keys := make([]string, 0, len(so))
		for k := range so {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := so[k]
			if !set(v) {
				continue
			}
			param := "structured_outputs." + k
			var err error
			switch k {
			case "json":
				err = schema(param, v)
			case "choice":
				err = choice(param, v)
			case "json_object":
				switch string(v) {
				case "true":
					p.jsonObject = true
					given = append(given, param)
				case "false":
				default:
					err = badRequest(param, "%s must be true or false", param)
				}
			case "disable_any_whitespace":
				if string(v) != "true" && string(v) != "false" {
					err = badRequest(param, "%s must be true or false", param)
				}
				p.compactJSON = string(v) == "true"
			case "disable_additional_properties", "disable_fallback":
				if string(v) != "false" {
					err = badRequest(param, "%s is not supported; leave it out", param)
				}
			case "regex":
				err = regex(param, v)
			case "grammar", "structural_tag", "whitespace_pattern":
				err = badRequest(param, "%s is not supported: strata implements json, regex, choice and json_object", param)
			default:
				err = badRequest(param, "%s is not a structured_outputs field (strata implements json, regex, choice and json_object)", param)
			}
			if err != nil {
				return err
			}
		}
	}
	if p.compactJSON && !p.jsonObject && p.jsonSchema == nil {
		return badRequest("structured_outputs.disable_any_whitespace", "disable_any_whitespace applies to JSON output: give a JSON schema or json_object")
	}
	if len(given) == 0 {
		return nil
	}
	if len(given) > 1 {
		return badRequest(given[1], "%s and %s exclude each other: give one kind of guided decoding", given[0], given[1])
	}
	if s.cfg.Tokenizer == nil {
		return badRequest(given[0], "guided decoding needs a tokenizer; this server runs with --skip-tokenizer-init")
	}
	return nil
}

// truncatePrompt applies truncate_prompt_tokens: the last k tokens of the prompt (vLLM's left
// truncation; -1 means the model's context length).
func (s *Server) truncatePrompt(ids []int, f *samplingFields) ([]int, error) {
	if f.TruncatePromptTokens == nil {
		return ids, nil
	}
	k := *f.TruncatePromptTokens
	if k == -1 {
		k = int64(s.cfg.MaxModelLen)
	}
	if k < 1 {
		return nil, badRequest("truncate_prompt_tokens", "truncate_prompt_tokens %d must be a positive number of tokens, or -1 for the model's context length", *f.TruncatePromptTokens)
	}
	if int64(len(ids)) > k {
		ids = ids[int64(len(ids))-k:]
	}
	return ids, nil
}

// genParams is a validated request, ready for the engine.
type genParams struct {
	sampling     sampling.Params
	maxTokens    int
	n            int
	stop         []string
	stopIDs      []int
	userStopIDs  []int // stop_token_ids: reported as stop_reason (EOS is not)
	logprobs     int   // -1 chosen token only, 0 none, k top-k
	skipSpecial  bool
	returnTokens bool
	minTokens    int
	promptLP     int                // prompt_logprobs as the engine takes it: 0 none, -1 the token's own, k top-k
	echoLP       bool               // echo with logprobs: the prompt's logprobs head the legacy logprobs
	promptLPOut  bool               // prompt_logprobs was asked for, so the answer carries it
	promptLPTop  int                // the alternatives it asked for (echo with more logprobs may compute more)
	jsonObject   bool               // response_format json_object
	choices      []string           // guided_choice
	jsonSchema   *jsonschema.Schema // guided_json, response_format json_schema
	regex        *regexmode.Regex   // guided_regex
	compactJSON  bool               // structured_outputs.disable_any_whitespace
	think        *engine.Think      // chat with a reasoning parser: guidance after the reasoning
	before       string             // a forced tool call: text around jsonSchema's value
	after        string
	includeStop  bool    // include_stop_str_in_output
	badWords     [][]int // bad_words, tokenized with and without a leading space
}

// buildParams validates the fields both endpoints share. maxDefault is the max_tokens to use
// when the request gives none (16 for completions, the rest of the context for chat).
//
// promptParam and maxParam name the request's fields in errors: "prompt" or "messages",
// "max_tokens" or "max_completion_tokens".
func (s *Server) buildParams(f *samplingFields, maxTokens optInt, promptLen, maxDefault int, promptParam, maxParam string) (*genParams, error) {
	d := s.cfg.Defaults
	p := &genParams{n: 1, skipSpecial: true, returnTokens: f.ReturnTokenIDs}
	pick := func(v, def *float64, fallback float64) float64 {
		if v != nil {
			return *v
		}
		if def != nil {
			return *def
		}
		return fallback
	}
	p.sampling.Temperature = pick(f.Temperature, d.Temperature, 1)
	p.sampling.TopP = pick(f.TopP, d.TopP, 1)
	p.sampling.MinP = pick(f.MinP, d.MinP, 0)
	p.sampling.PresencePenalty = pick(f.PresencePenalty, nil, 0)
	p.sampling.FrequencyPenalty = pick(f.FrequencyPenalty, nil, 0)
	p.sampling.RepetitionPenalty = pick(f.RepetitionPenalty, d.RepetitionPenalty, 1)
	switch {
	case f.TopK != nil:
		p.sampling.TopK = int(*f.TopK)
	case d.TopK != nil:
		p.sampling.TopK = int(*d.TopK)
	}
	if f.TopK != nil && (*f.TopK < -1 || *f.TopK > math.MaxInt32) {
		return nil, badRequest("top_k", "top_k %d must be -1 or 0 (off) or a positive number of tokens", *f.TopK)
	}
	if t := p.sampling.Temperature; t > 2 {
		return nil, badRequest("temperature", "temperature %v must be between 0 and 2", t)
	}
	if f.RepetitionPenalty != nil && !(*f.RepetitionPenalty > 0) {
		// inside strata 0 means "off"; vLLM refuses it, and so does the API
		return nil, badRequest("repetition_penalty", "repetition_penalty %v must be greater than zero (1 is off)", *f.RepetitionPenalty)
	}
	if err := p.sampling.Validate(); err != nil {
		param, _, _ := strings.Cut(err.Error(), " ")
		return nil, badRequest(param, "%v", err)
	}
	switch {
	case f.Seed != nil && *f.Seed != -1: // -1 asks for no seed, as in vLLM
		p.sampling.Seed = uint64(*f.Seed)
	case s.cfg.Seed != 0:
		p.sampling.Seed = uint64(s.cfg.Seed + s.seeds.Add(1) - 1)
	default:
		var b [8]byte
		_, _ = rand.Read(b[:])
		for _, c := range b {
			p.sampling.Seed = p.sampling.Seed<<8 | uint64(c)
		}
	}
	if f.N != nil {
		if *f.N < 1 || *f.N > 128 {
			return nil, badRequest("n", "n %d must be between 1 and 128", *f.N)
		}
		p.n = int(*f.N)
	}
	room := s.cfg.MaxModelLen - promptLen
	if room < 1 {
		return nil, badRequest(promptParam, "This model's maximum context length is %d tokens. However, your prompt has %d tokens: shorten it", s.cfg.MaxModelLen, promptLen)
	}
	switch {
	case maxTokens != nil:
		if *maxTokens < 1 {
			return nil, badRequest(maxParam, "%s %d must be at least 1", maxParam, *maxTokens)
		}
		if *maxTokens > int64(room) {
			return nil, badRequest(maxParam, "This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the prompt, %d for the completion). Please reduce the length of the prompt or the completion.", s.cfg.MaxModelLen, int64(promptLen)+*maxTokens, promptLen, *maxTokens)
		}
		p.maxTokens = int(*maxTokens)
	case maxDefault > 0:
		p.maxTokens = min(maxDefault, room)
	default:
		p.maxTokens = room
		if d.MaxNewTokens != nil && *d.MaxNewTokens > 0 {
			p.maxTokens = min(room, int(*d.MaxNewTokens))
		}
	}
	for _, st := range f.Stop {
		if st == "" {
			return nil, badRequest("stop", "stop strings must not be empty")
		}
	}
	if len(f.Stop) > 0 && s.cfg.Tokenizer == nil {
		return nil, badRequest("stop", "stop strings need a tokenizer; this server runs with --skip-tokenizer-init (use stop_token_ids)")
	}
	p.stop = f.Stop
	for _, id := range f.StopTokenIDs {
		if id < 0 || id >= s.cfg.Vocab {
			return nil, badRequest("stop_token_ids", "stop token id %d is outside the vocabulary (0..%d)", id, s.cfg.Vocab-1)
		}
	}
	p.stopIDs = append(p.stopIDs, f.StopTokenIDs...)
	p.userStopIDs = f.StopTokenIDs
	if !f.IgnoreEOS {
		p.stopIDs = append(p.stopIDs, s.cfg.EOS...)
	}
	if f.SkipSpecialTokens != nil {
		p.skipSpecial = *f.SkipSpecialTokens
	}
	p.includeStop = f.IncludeStopStrInOutput
	if err := s.guided(f, p); err != nil {
		return nil, err
	}
	if f.PromptLogprobs != nil {
		if *f.PromptLogprobs < 0 || *f.PromptLogprobs > 20 {
			return nil, badRequest("prompt_logprobs", "prompt_logprobs %d must be between 0 and 20", *f.PromptLogprobs)
		}
		if f.Stream {
			return nil, badRequest("prompt_logprobs", "prompt_logprobs is not available when streaming; send the request with stream: false")
		}
		p.promptLP, p.promptLPOut, p.promptLPTop = max(int(*f.PromptLogprobs), -1), true, int(*f.PromptLogprobs)
		if p.promptLP == 0 {
			p.promptLP = -1
		}
	}
	if f.MinTokens != nil {
		if *f.MinTokens < 0 || *f.MinTokens > int64(p.maxTokens) {
			return nil, badRequest("min_tokens", "min_tokens %d must be between 0 and max_tokens (%d)", *f.MinTokens, p.maxTokens)
		}
		p.minTokens = int(*f.MinTokens)
	}
	if len(f.LogitBias) > 0 {
		p.sampling.LogitBias = map[int]float64{}
		for k, v := range f.LogitBias {
			id, err := strconv.Atoi(k)
			if err != nil || id < 0 || id >= s.cfg.Vocab {
				return nil, badRequest("logit_bias", "logit_bias key %q is not a token id of this model (0..%d)", k, s.cfg.Vocab-1)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, badRequest("logit_bias", "logit_bias for token %d is %v: give a number from -100 to 100", id, v)
			}
			p.sampling.LogitBias[id] = max(-100, min(100, v)) // clamped, as vLLM does
		}
	}
	if f.AllowedTokenIDs != nil {
		if len(f.AllowedTokenIDs) == 0 {
			return nil, badRequest("allowed_token_ids", "allowed_token_ids is empty: list the token ids that may be generated, or leave it out")
		}
		for _, id := range f.AllowedTokenIDs {
			if id < 0 || id >= s.cfg.Vocab {
				return nil, badRequest("allowed_token_ids", "allowed token id %d is outside the vocabulary (0..%d)", id, s.cfg.Vocab-1)
			}
		}
		p.sampling.AllowedTokens = f.AllowedTokenIDs
	}
	if len(f.BadWords) > 0 {
		if s.cfg.Tokenizer == nil {
			return nil, badRequest("bad_words", "bad_words need a tokenizer; this server runs with --skip-tokenizer-init")
		}
		for _, w := range f.BadWords {
			w = strings.TrimLeft(w, " ")
			if w == "" {
				return nil, badRequest("bad_words", "bad_words must not be empty or all spaces")
			}
			// as vLLM: the word as it starts a text, and with a leading space as it follows
			// another word, when that tokenizes to a different first token of the same length
			bare, err := s.cfg.Tokenizer.Encode(w)
			if err != nil || len(bare) == 0 {
				return nil, badRequest("bad_words", "bad word %q does not tokenize", w)
			}
			p.badWords = append(p.badWords, bare)
			if spaced, err := s.cfg.Tokenizer.Encode(" " + w); err == nil && len(spaced) == len(bare) && spaced[0] != bare[0] {
				p.badWords = append(p.badWords, spaced)
			}
		}
	}
	return p, nil
}

func (s *Server) checkPromptIDs(ids []int, param string) error {
	if len(ids) == 0 {
		return badRequest(param, "the prompt is empty")
	}
	for _, id := range ids {
		if id < 0 || id >= s.cfg.Vocab {
			return badRequest(param, "prompt token id %d is outside the vocabulary (0..%d)", id, s.cfg.Vocab-1)
		}
	}
	return nil
}

// choice is one sequence being generated.
type choice struct {
	index    int
	engineID string
	p        *genParams
	prompt   []int
	stream   *serve.Stream
	detok    *tokenizer.Stream
	tokens   []int
	events   []engine.Event
	promptLP []engine.PromptLogprob // prompt positions 1 onward, when asked for
	text     strings.Builder        // decoded text so far (stop strings not yet cut)
	lastFrom int                    // where in text the latest token's piece began
	sent     int                    // bytes of text handed to the client
	finish   string
	stopText string
	stopTok  int
	err      error
	first    time.Time
	last     time.Time
}

// job is one HTTP request's choices (n per prompt, for every prompt) in flight.
type job struct {
	s       *Server
	ctx     context.Context
	start   time.Time
	choices []*choice
	updates chan update
	prompts int // prompt tokens, each prompt counted once (n choices share it)
}

// update is what one read of a choice's stream brought.
type update struct {
	c    *choice
	evs  []engine.Event
	done bool
	err  error
}

func (s *Server) newJob(ctx context.Context) *job {
	return &job{s: s, ctx: ctx, start: time.Now(), updates: make(chan update, 64)}
}

// add submits a prompt's n choices, numbered from firstIndex.
func (j *job) add(id string, prompt []int, p *genParams, firstIndex int) error {
	j.prompts += len(prompt)
	s := j.s
	for i := range p.n {
		c := &choice{index: firstIndex + i, engineID: fmt.Sprintf("%s-%d", id, firstIndex+i), p: p, prompt: prompt, stopTok: -1}
		if s.cfg.Tokenizer != nil {
			c.detok = s.cfg.Tokenizer.NewStream(p.skipSpecial)
		}
		sp := p.sampling
		sp.Seed += uint64(i)
		req := engine.Request{ID: c.engineID, Prompt: prompt, MaxTokens: p.maxTokens, Sampling: sp, StopIDs: p.stopIDs, StopText: p.stop, Logprobs: p.logprobs, MinTokens: p.minTokens, BadWords: p.badWords, PromptLogprobs: p.promptLP, JSONObject: p.jsonObject, Choices: p.choices, JSONSchema: p.jsonSchema, Regex: p.regex, CompactJSON: p.compactJSON, Think: p.think, Before: p.before, After: p.after}
		st, err := s.run.Submit(j.ctx, req)
		if err != nil {
			j.abort()
			return engineRequestError(err)
		}
		c.stream = st
		j.choices = append(j.choices, c)
		go j.follow(c)
	}
	s.m.promptTokens.Add(float64(len(prompt) * p.n))
	return nil
}

// follow forwards a choice's stream to the job's consumer, which alone touches the choice.
func (j *job) follow(c *choice) {
	for {
		evs, done, err := c.stream.Next(j.ctx)
		if j.ctx.Err() != nil {
			return
		}
		select {
		case j.updates <- update{c, evs, done, err}:
		case <-j.ctx.Done():
			return
		}
		if done {
			return
		}
	}
}

func (j *job) absorb(c *choice, evs []engine.Event, done bool, err error) {
	c.err = err
	now := time.Now()
	m := j.s.m
	prev, gap := c.last, 0.0
	if !prev.IsZero() && len(evs) > 0 {
		gap = now.Sub(prev).Seconds() / float64(len(evs)) // tokens that arrived together share the wait
	}
	for _, ev := range evs {
		if ev.PromptLogprobs != nil {
			c.promptLP = ev.PromptLogprobs
		}
		if c.first.IsZero() {
			c.first = now
			m.ttft.Observe(now.Sub(j.start).Seconds())
		} else {
			m.itl.Observe(gap)
		}
		c.last = now
		c.tokens = append(c.tokens, ev.Token)
		c.events = append(c.events, ev)
		// the token that ended the sequence (EOS or a stop_token_ids entry) is not part of
		// the text, as in vLLM
		stopTok := ev.Finished && ev.Reason == "stop" && ev.StopText == "" && contains(c.p.stopIDs, ev.Token)
		if c.detok != nil && !stopTok {
			c.lastFrom = c.text.Len()
			if piece, err := c.detok.Add(ev.Token); err == nil {
				c.text.WriteString(piece)
			}
		}
		if ev.Finished {
			c.finish = ev.Reason
			c.stopText = ev.StopText
			if stopTok && contains(c.p.userStopIDs, ev.Token) {
				c.stopTok = ev.Token
			}
		}
	}
	m.genTokens.Add(float64(len(evs)))
	if done {
		if c.detok != nil {
			c.text.WriteString(c.detok.Flush())
		}
		if c.err == nil && c.finish == "" {
			c.err = errors.New("the request ended without finishing")
		}
		m.e2e.Observe(now.Sub(j.start).Seconds())
	}
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// abort stops every choice still running (the client left or the request failed).
func (j *job) abort() {
	for _, c := range j.choices {
		if c.finish == "" {
			j.s.run.Abort(c.engineID)
		}
	}
}

// next returns the next choice with news, or an error when one failed or ctx ended (then
// every choice is aborted); nil, nil once all are finished.
func (j *job) next(remaining *int) (*choice, error) {
	if *remaining == 0 {
		return nil, nil
	}
	select {
	case u := <-j.updates:
		c := u.c
		j.absorb(c, u.evs, u.done, u.err)
		if c.err != nil {
			j.abort()
			return nil, c.err
		}
		if c.finish != "" {
			*remaining--
		}
		return c, nil
	case <-j.ctx.Done():
		j.abort()
		return nil, j.ctx.Err()
	}
}

// wait blocks until every choice is done.
func (j *job) wait() error {
	remaining := len(j.choices)
	for {
		c, err := j.next(&remaining)
		if err != nil || c == nil {
			return err
		}
	}
}

// promptLogprobs is vLLM's prompt_logprobs for a choice: null for the first token, then per
// position a map from token id to logprob, rank and text, holding the prompt's token and its
// top alternatives.
func (s *Server) promptLogprobs(c *choice) []map[string]promptLogprob {
	if !c.p.promptLPOut {
		return nil
	}
	out := []map[string]promptLogprob{nil}
	for _, pl := range c.promptLP {
		m := map[string]promptLogprob{strconv.Itoa(pl.Token): {Logprob: finiteLogprob(pl.Logprob), Rank: pl.Rank, DecodedToken: s.tokenText(pl.Token)}}
		for k, alt := range pl.Top[:min(c.p.promptLPTop, len(pl.Top))] {
			if _, ok := m[strconv.Itoa(alt.Token)]; !ok {
				m[strconv.Itoa(alt.Token)] = promptLogprob{Logprob: finiteLogprob(alt.Logprob), Rank: k + 1, DecodedToken: s.tokenText(alt.Token)}
			}
		}
		out = append(out, m)
	}
	return out
}

// finalText is a finished choice's text, cut before the stop string that ended it (after
// it with include_stop_str_in_output). That occurrence ends in the last token's text: with
// min_tokens the string may also occur earlier, where it did not stop the sequence.
func (c *choice) finalText() string {
	t := c.text.String()
	if c.stopText != "" {
		from := max(0, c.lastFrom-len(c.stopText)+1)
		if i := strings.Index(t[from:], c.stopText); i >= 0 {
			i += from
			if c.p.includeStop {
				i += len(c.stopText)
			}
			t = t[:i]
		}
	}
	return t
}

// newText returns text not yet sent, holding back a tail that may still become a stop
// string (it is released, or cut, once the choice finishes).
func (c *choice) newText(stops []string) string {
	t := c.text.String()
	end := len(t)
	if c.finish != "" {
		t = c.finalText()
		end = len(t)
	} else {
		for _, st := range stops {
			if i := strings.Index(t[c.sent:], st); i >= 0 {
				end = min(end, c.sent+i)
			}
			for k := min(len(st)-1, len(t)); k > 0; k-- {
				if strings.HasSuffix(t, st[:k]) {
					end = min(end, len(t)-k)
					break
				}
			}
		}
	}
	if end <= c.sent {
		return ""
	}
	out := t[c.sent:end]
	c.sent = end
	return out
}

// stopReason is vLLM's stop_reason: the stop string or stop token that ended the choice
// (EOS is reported as null).
func (c *choice) stopReason() any {
	switch {
	case c.stopText != "":
		return c.stopText
	case c.stopTok >= 0:
		return c.stopTok
	}
	return nil
}

// statusFor maps a generation failure to an HTTP status.
func statusFor(err error) error {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return err
	case errors.Is(err, serve.ErrClosed):
		return &apiError{http.StatusServiceUnavailable, err.Error(), ""}
	case errors.Is(err, engine.ErrTooLong):
		return &apiError{http.StatusBadRequest, err.Error(), "max_tokens"}
	case errors.Is(err, engine.ErrNotNumbers):
		return &apiError{http.StatusInternalServerError, "generation failed: " + err.Error(), ""}
	}
	return &apiError{http.StatusServiceUnavailable, "generation failed: " + err.Error(), ""}
}
