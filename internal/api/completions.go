package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"
)

// sse writes server-sent events as OpenAI streams them.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	return &sse{w: w, rc: http.NewResponseController(w)}
}

func (e *sse) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(e.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return e.rc.Flush()
}

// fail reports an error inside a stream that has already started (the status is sent), as
// vLLM does: an error event, then [DONE].
func (e *sse) fail(err error) {
	status := http.StatusInternalServerError
	if ae, ok := statusFor(err).(*apiError); ok {
		status = ae.status
	}
	_ = e.send(map[string]any{"error": map[string]any{"message": err.Error(), "type": errTypes[status], "param": nil, "code": status}})
	e.done()
}

func (e *sse) done() {
	fmt.Fprint(e.w, "data: [DONE]\n\n")
	_ = e.rc.Flush()
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if err := s.admit(r, &req, &req.samplingFields); err != nil {
		writeAPIError(w, err)
		return
	}
	if req.Prompt == nil {
		writeError(w, http.StatusBadRequest, "\"prompt\" is required", "prompt")
		return
	}
	if req.Suffix != nil && *req.Suffix != "" {
		writeError(w, http.StatusBadRequest, "suffix is not supported", "suffix")
		return
	}
	var prompts [][]int
	if len(req.Prompt.texts) > 0 {
		if s.cfg.Tokenizer == nil {
			writeError(w, http.StatusBadRequest, "this server runs with --skip-tokenizer-init: give the prompt as token ids", "prompt")
			return
		}
		for _, t := range req.Prompt.texts {
			ids, err := s.cfg.Tokenizer.Encode(t)
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error(), "prompt")
				return
			}
			prompts = append(prompts, ids)
		}
	} else {
		prompts = req.Prompt.ids
	}
	if len(prompts) > 64 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d prompts in one request; send at most 64", len(prompts)), "prompt")
		return
	}
	logprobs := 0
	if req.Logprobs != nil {
		if *req.Logprobs < 0 || *req.Logprobs > 20 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("logprobs %d must be between 0 and 20", *req.Logprobs), "logprobs")
			return
		}
		logprobs = max(int(*req.Logprobs), -1)
		if logprobs == 0 {
			logprobs = -1
		}
	}
	if req.Echo && logprobs != 0 && req.Stream {
		writeError(w, http.StatusBadRequest, "echo with logprobs is not available when streaming; send the request with stream: false", "echo")
		return
	}
	for i := range prompts {
		var err error
		if prompts[i], err = s.truncatePrompt(prompts[i], &req.samplingFields); err != nil {
			writeAPIError(w, err)
			return
		}
	}
	// echo with max_tokens 0 scores the prompt: with logprobs (as lm-eval asks), one token is
	// generated for the engine's sake and left out of the answer
	scoreOnly := req.Echo && req.MaxTokens != nil && *req.MaxTokens == 0
	if scoreOnly && logprobs == 0 {
		s.echoOnly(w, &req, prompts)
		return
	}
	maxTokens := req.MaxTokens
	if scoreOnly {
		one := int64(1)
		maxTokens = &one
	}
	var params []*genParams
	for _, ids := range prompts {
		if err := s.checkPromptIDs(ids, "prompt"); err != nil {
			writeAPIError(w, err)
			return
		}
		p, err := s.buildParams(&req.samplingFields, maxTokens, len(ids), 16, "prompt", "max_tokens")
		if err != nil {
			writeAPIError(w, err)
			return
		}
		p.logprobs = logprobs
		if req.Echo && logprobs != 0 {
			p.echoLP = true
			if p.promptLP == 0 || logprobs > p.promptLP {
				p.promptLP = logprobs
			}
		}
		params = append(params, p)
	}
	id := newID("cmpl-")
	j := s.newJob(r.Context())
	defer j.abort() // whatever ends the handler (error, panic, a client gone), nothing keeps generating
	for i, ids := range prompts {
		if err := j.add(fmt.Sprintf("%s-%d", id, i), ids, params[i], i*params[i].n); err != nil {
			writeAPIError(w, err)
			return
		}
	}
	created := time.Now().Unix()
	model := s.cfg.ModelNames[0]
	if req.Model != "" {
		model = req.Model
	}
	if req.Stream {
		s.streamCompletions(w, j, &req, id, model, created)
		return
	}
	if err := j.wait(); err != nil {
		if j.ctx.Err() == nil {
			s.cfg.Log.Warn("request failed", "id", id, "err", err)
		}
		writeAPIError(w, statusFor(err))
		return
	}
	resp := completionResponse{ID: id, Object: "text_completion", Created: created, Model: model, Usage: &usage{PromptTokens: j.prompts}}
	for _, c := range j.choices {
		text, events, tokens := c.finalText(), len(c.events), c.tokens
		finish, stop := c.finish, c.stopReason()
		if scoreOnly {
			text, events, tokens, finish, stop = "", 0, []int{}, "length", nil
		}
		if req.Echo && s.cfg.Tokenizer != nil {
			pre, _ := s.cfg.Tokenizer.Decode(c.prompt, c.p.skipSpecial)
			text = pre + text
		}
		ch := completionChoice{Index: c.index, Text: text, FinishReason: strPtr(finish), StopReason: stop, PromptLogprobs: s.promptLogprobs(c)}
		if c.p.returnTokens {
			ch.PromptTokenIDs, ch.TokenIDs = c.prompt, tokens
		}
		if c.p.logprobs != 0 {
			offset := 0
			if c.p.echoLP {
				ch.Logprobs, offset = s.echoLogprobs(c)
			}
			gen := s.completionLogprobs(c, 0, events, offset)
			if ch.Logprobs == nil {
				ch.Logprobs = gen
			} else {
				ch.Logprobs.Tokens = append(ch.Logprobs.Tokens, gen.Tokens...)
				ch.Logprobs.TokenLogprobs = append(ch.Logprobs.TokenLogprobs, gen.TokenLogprobs...)
				ch.Logprobs.TopLogprobs = append(ch.Logprobs.TopLogprobs, gen.TopLogprobs...)
				ch.Logprobs.TextOffset = append(ch.Logprobs.TextOffset, gen.TextOffset...)
			}
		}
		resp.Choices = append(resp.Choices, ch)
		resp.Usage.CompletionTokens += len(tokens)
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens + resp.Usage.CompletionTokens
	writeJSON(w, http.StatusOK, resp)
}

// tokenText is how a token shows in logprobs: its own decoding.
func (s *Server) tokenText(id int) string {
	if s.cfg.Tokenizer == nil {
		return fmt.Sprintf("token_id:%d", id)
	}
	t, err := s.cfg.Tokenizer.Decode([]int{id}, false)
	if err != nil {
		return fmt.Sprintf("token_id:%d", id)
	}
	return t
}

// completionLogprobs is the legacy logprobs object for events [from, to) of a choice, as vLLM
// builds it: each top_logprobs entry holds the logprobs top alternatives and the sampled token
// too (so N+1 entries when it is not among them; only it for logprobs: 0), and text_offset
// counts characters (Python's len), not bytes.
func (s *Server) completionLogprobs(c *choice, from, to, offset int) *completionLogprobs {
	lp := &completionLogprobs{TextOffset: []int{}, TokenLogprobs: []*float64{}, Tokens: []string{}, TopLogprobs: []map[string]float64{}}
	for _, ev := range c.events[from:to] {
		t := s.tokenText(ev.Token)
		lp.Tokens = append(lp.Tokens, t)
		v := finiteLogprob(ev.Logprob)
		lp.TokenLogprobs = append(lp.TokenLogprobs, &v)
		lp.TextOffset = append(lp.TextOffset, offset)
		offset += utf8.RuneCountInString(t)
		top := map[string]float64{t: finiteLogprob(ev.Logprob)}
		for _, a := range ev.TopLogprobs {
			top[s.tokenText(a.Token)] = finiteLogprob(a.Logprob)
		}
		lp.TopLogprobs = append(lp.TopLogprobs, top)
	}
	return lp
}

// echoLogprobs is the legacy logprobs object of an echoed prompt: its tokens, the first with
// null logprob and alternatives, the rest with their prompt logprobs and the top logprobs
// alternatives (only the token for logprobs: 0). It returns the text offset after the prompt.
func (s *Server) echoLogprobs(c *choice) (*completionLogprobs, int) {
	lp := &completionLogprobs{TextOffset: []int{}, TokenLogprobs: []*float64{}, Tokens: []string{}, TopLogprobs: []map[string]float64{}}
	offset := 0
	for i, tok := range c.prompt {
		t := s.tokenText(tok)
		lp.Tokens = append(lp.Tokens, t)
		lp.TextOffset = append(lp.TextOffset, offset)
		offset += utf8.RuneCountInString(t)
		if i == 0 || i-1 >= len(c.promptLP) {
			lp.TokenLogprobs, lp.TopLogprobs = append(lp.TokenLogprobs, nil), append(lp.TopLogprobs, nil)
			continue
		}
		pl := c.promptLP[i-1]
		v := finiteLogprob(pl.Logprob)
		lp.TokenLogprobs = append(lp.TokenLogprobs, &v)
		top := map[string]float64{t: v}
		for k, alt := range pl.Top {
			if k < c.p.logprobs {
				top[s.tokenText(alt.Token)] = finiteLogprob(alt.Logprob)
			}
		}
		lp.TopLogprobs = append(lp.TopLogprobs, top)
	}
	return lp, offset
}

func (s *Server) streamCompletions(w http.ResponseWriter, j *job, req *completionRequest, id, model string, created int64) {
	out := startSSE(w)
	sentEvents := map[*choice]int{}
	offsets := map[*choice]int{} // text_offset continues across chunks
	remaining := len(j.choices)
	promptTokens := j.prompts
	if req.Echo && s.cfg.Tokenizer != nil {
		// the prompt first, as vLLM streams an echo
		for _, c := range j.choices {
			pre, _ := s.cfg.Tokenizer.Decode(c.prompt, c.p.skipSpecial)
			if err := out.send(completionChunk{ID: id, Object: "text_completion", Created: created, Model: model, Choices: []completionChunkChoice{{Index: c.index, Text: pre}}}); err != nil {
				j.abort()
				return
			}
		}
	}
	for {
		c, err := j.next(&remaining)
		if err != nil {
			if r := j.ctx.Err(); r != nil {
				return // the client left; its requests are aborted
			}
			s.cfg.Log.Warn("request failed while streaming", "id", id, "err", err)
			out.fail(err)
			return
		}
		if c == nil {
			break
		}
		from := sentEvents[c]
		ch := completionChunkChoice{Index: c.index, Text: c.newText(c.p.stop)}
		if c.p.returnTokens {
			ch.TokenIDs = c.tokens[from:]
		}
		if c.p.logprobs != 0 {
			ch.Logprobs = s.completionLogprobs(c, from, len(c.events), offsets[c])
			for _, tk := range ch.Logprobs.Tokens {
				offsets[c] += utf8.RuneCountInString(tk)
			}
		}
		sentEvents[c] = len(c.events)
		if c.finish != "" {
			ch.FinishReason = strPtr(c.finish)
			ch.StopReason = c.stopReason()
		}
		if ch.Text == "" && from == len(c.events) && ch.FinishReason == nil {
			continue
		}
		cc := completionChunk{ID: id, Object: "text_completion", Created: created, Model: model, Choices: []completionChunkChoice{ch}}
		if req.StreamOptions.continuousUsage() {
			cc.Usage = j.usageSoFar()
		}
		if err := out.send(cc); err != nil {
			j.abort()
			return
		}
	}
	if req.StreamOptions.includeUsage() {
		u := &usage{PromptTokens: promptTokens}
		for _, c := range j.choices {
			u.CompletionTokens += len(c.tokens)
		}
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		_ = out.send(completionChunk{ID: id, Object: "text_completion", Created: created, Model: model, Choices: []completionChunkChoice{}, Usage: u})
	}
	out.done()
}

// echoOnly answers echo with max_tokens 0: the prompts back and nothing generated, as vLLM
// does (a client scoring a text sends this).
func (s *Server) echoOnly(w http.ResponseWriter, req *completionRequest, prompts [][]int) {
	if s.cfg.Tokenizer == nil {
		writeError(w, http.StatusBadRequest, "echo needs a tokenizer; this server runs with --skip-tokenizer-init", "echo")
		return
	}
	n := 1
	if req.N != nil {
		if *req.N < 1 || *req.N > 128 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("n %d must be between 1 and 128", *req.N), "n")
			return
		}
		n = int(*req.N)
	}
	skip := req.SkipSpecialTokens == nil || *req.SkipSpecialTokens
	resp := completionResponse{ID: newID("cmpl-"), Object: "text_completion", Created: time.Now().Unix(), Model: s.cfg.ModelNames[0], Usage: &usage{}}
	if req.Model != "" {
		resp.Model = req.Model
	}
	for i, ids := range prompts {
		if err := s.checkPromptIDs(ids, "prompt"); err != nil {
			writeAPIError(w, err)
			return
		}
		text, err := s.cfg.Tokenizer.Decode(ids, skip)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), "prompt")
			return
		}
		for k := range n {
			ch := completionChoice{Index: i*n + k, Text: text, FinishReason: strPtr("length")}
			if req.ReturnTokenIDs {
				ch.PromptTokenIDs, ch.TokenIDs = ids, []int{}
			}
			resp.Choices = append(resp.Choices, ch)
		}
		resp.Usage.PromptTokens += len(ids) * n
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	if !req.Stream {
		writeJSON(w, http.StatusOK, resp)
		return
	}
	out := startSSE(w)
	for _, ch := range resp.Choices {
		c := completionChunkChoice{Index: ch.Index, Text: ch.Text, FinishReason: ch.FinishReason}
		if err := out.send(completionChunk{ID: resp.ID, Object: "text_completion", Created: resp.Created, Model: resp.Model, Choices: []completionChunkChoice{c}}); err != nil {
			return
		}
	}
	if req.StreamOptions.includeUsage() {
		_ = out.send(completionChunk{ID: resp.ID, Object: "text_completion", Created: resp.Created, Model: resp.Model, Choices: []completionChunkChoice{}, Usage: resp.Usage})
	}
	out.done()
}
