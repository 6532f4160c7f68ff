package api

import (
	"github.com/strata-ai/strata/internal/engine"
	"github.com/strata-ai/strata/internal/jsonschema"

	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/strata-ai/strata/internal/chattemplate"
)

var roles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}

// thinkTokens are the reasoning block's delimiters for a prompt, nil where the tokenizer has
// no single token for each.
func (s *Server) thinkTokens(prompt string) *engine.Think {
	id := func(t string) int {
		ids, err := s.cfg.Tokenizer.Encode(t)
		if err != nil || len(ids) != 1 {
			return -1
		}
		return ids[0]
	}
	start, end := id(thinkOpen), id(thinkClose)
	if start < 0 || end < 0 {
		return nil
	}
	if strings.HasSuffix(strings.TrimRight(prompt, " \n"), thinkClose) {
		return nil // the prompt closed the block (enable_thinking false): constrained at once
	}
	return &engine.Think{Start: start, End: end, Open: newReasoningSplitter(prompt).phase == 1}
}

// forcedCall reads a forced tool call: the exact frame the constraint wrote around the call's
// JSON.
func forcedCall(content string) (parsedCall, bool) {
	body, ok := strings.CutPrefix(content, toolOpen+"\n")
	if !ok {
		return parsedCall{}, false
	}
	if body, ok = strings.CutSuffix(body, "\n"+toolClose); !ok {
		return parsedCall{}, false
	}
	call, err := parseToolCall(body)
	return call, err == nil
}

// renderChat turns OpenAI messages (and tools) into the prompt text through the model's chat
// template, as vLLM does: content parts joined, tool-call arguments given to the template as
// objects.
func (s *Server) renderChat(messagesRaw, toolsRaw json.RawMessage, addGen, continueFinal bool, kwargsRaw json.RawMessage) (string, error) {
	if addGen && continueFinal {
		return "", badRequest("continue_final_message", "continue_final_message and add_generation_prompt cannot both be true: set \"add_generation_prompt\": false to continue the last message")
	}
	if s.cfg.Template == nil {
		return "", badRequest("messages", "the model folder has no chat template (tokenizer_config.json): use /v1/completions")
	}
	mv, err := chattemplate.DecodeJSON(messagesRaw)
	if err != nil {
		return "", badRequest("messages", "messages: %v", err)
	}
	defer chattemplate.Forget(mv)
	list, ok := mv.([]any)
	if !ok || len(list) == 0 {
		return "", badRequest("messages", "messages must be a non-empty array of {\"role\", \"content\"} objects")
	}
	for i, m := range list {
		mm, ok := m.(map[string]any)
		if !ok {
			return "", badRequest("messages", "messages[%d] is not an object", i)
		}
		role, _ := mm["role"].(string)
		if !roles[role] {
			return "", badRequest("messages", "messages[%d].role %v: want system, developer, user, assistant or tool", i, mm["role"])
		}
		switch c := mm["content"].(type) {
		case nil: // an assistant turn that only calls tools: vLLM gives the template ""
			mm["content"] = ""
		case string:
		case []any:
			var parts []string
			for k, p := range c {
				pm, _ := p.(map[string]any)
				if pm == nil || pm["type"] != "text" {
					return "", badRequest("messages", "messages[%d].content[%d]: only {\"type\": \"text\"} parts are supported", i, k)
				}
				t, ok := pm["text"].(string)
				if !ok {
					return "", badRequest("messages", "messages[%d].content[%d].text must be a string", i, k)
				}
				parts = append(parts, t)
			}
			chattemplate.Forget(c) // the parts leave the messages, and the deferred Forget with them
			mm["content"] = strings.Join(parts, "\n")
		default:
			return "", badRequest("messages", "messages[%d].content must be a string or an array of text parts", i)
		}
		if r, ok := mm["reasoning"].(string); ok && role == "assistant" {
			// vLLM's name for the reasoning a reply came with (its responses carry it so);
			// templates read reasoning_content
			mm["reasoning_content"] = r
		}
		if calls, ok := mm["tool_calls"].([]any); ok {
			for k, tc := range calls {
				tm, _ := tc.(map[string]any)
				fn, _ := tm["function"].(map[string]any)
				if fn == nil {
					return "", badRequest("messages", "messages[%d].tool_calls[%d] has no function", i, k)
				}
				switch a := fn["arguments"].(type) {
				case string:
					if strings.TrimSpace(a) == "" { // no arguments: vLLM gives the template {}
						fn["arguments"] = map[string]any{}
						break
					}
					v, err := chattemplate.DecodeJSON([]byte(a))
					if err != nil {
						return "", badRequest("messages", "messages[%d].tool_calls[%d].function.arguments is not JSON: %v", i, k, err)
					}
					fn["arguments"] = v
				case map[string]any, []any:
				default: // absent or null: no arguments, as vLLM gives the template
					fn["arguments"] = map[string]any{}
				}
			}
		}
	}
	// chat_template_kwargs first, so they cannot replace the checked messages or tools; decoded
	// as the messages are (ints stay ints, objects keep their order)
	vars := map[string]any{}
	var kwargs map[string]any
	if len(kwargsRaw) > 0 && !bytes.Equal(bytes.TrimSpace(kwargsRaw), []byte("null")) {
		kv, err := chattemplate.DecodeJSON(kwargsRaw)
		if err != nil {
			return "", badRequest("chat_template_kwargs", "chat_template_kwargs: %v", err)
		}
		defer chattemplate.Forget(kv)
		if kwargs, ok = kv.(map[string]any); !ok {
			return "", badRequest("chat_template_kwargs", "chat_template_kwargs must be an object of template variables, like {\"enable_thinking\": false}")
		}
	}
	for k, v := range kwargs {
		vars[k] = v
	}
	vars["messages"], vars["add_generation_prompt"] = list, addGen
	delete(vars, "tools")
	if len(toolsRaw) > 0 && !bytes.Equal(bytes.TrimSpace(toolsRaw), []byte("null")) {
		tv, err := chattemplate.DecodeJSON(toolsRaw)
		if err != nil {
			return "", badRequest("tools", "tools: %v", err)
		}
		defer chattemplate.Forget(tv)
		tools, ok := tv.([]any)
		if !ok {
			return "", badRequest("tools", "tools must be an array of {\"type\": \"function\", \"function\": {...}}")
		}
		for i, t := range tools {
			tm, _ := t.(map[string]any)
			fn, _ := tm["function"].(map[string]any)
			if tm == nil || tm["type"] != "function" || fn == nil {
				return "", badRequest("tools", "tools[%d] must be {\"type\": \"function\", \"function\": {\"name\": ...}}", i)
			}
			if name, _ := fn["name"].(string); name == "" {
				return "", badRequest("tools", "tools[%d].function.name is required", i)
			}
		}
		if len(tools) > 0 {
			vars["tools"] = tools
		}
	}
	text, err := s.cfg.Template.Render(vars)
	if err != nil {
		return "", badRequest("messages", "%v", err)
	}
	if continueFinal {
		final, _ := list[len(list)-1].(map[string]any)["content"].(string) // made a string above
		if text, err = chattemplate.ContinueFinal(text, final); err != nil {
			return "", badRequest("continue_final_message", "%v", err)
		}
	}
	return text, nil
}

// forceTool makes the answer one call of the named tool: its arguments follow the tool's
// parameters (a JSON schema), inside the tool-call tags the hermes parser reads back, as
// vLLM constrains a named tool_choice.
func (s *Server) forceTool(req *chatRequest, name string, named bool) (bool, error) {
	var tools []struct {
		Function struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"function"`
	}
	if err := json.Unmarshal(req.Tools, &tools); err != nil {
		return false, badRequest("tools", "tools must be an array of function tools")
	}
	for _, t := range tools {
		if t.Function.Name != name {
			continue
		}
		params := t.Function.Parameters
		if len(params) == 0 || string(params) == "null" {
			params = json.RawMessage(`{"type": "object", "properties": {}}`)
		}
		nameJSON, _ := json.Marshal(name)
		// the parameters' definitions move to the root, where their $refs point
		var defs string
		var top map[string]json.RawMessage
		if json.Unmarshal(params, &top) == nil {
			for _, k := range []string{"$defs", "definitions"} {
				if d, ok := top[k]; ok {
					defs += `"` + k + `": ` + string(d) + `, `
				}
			}
		}
		schema := `{` + defs + `"type": "object", "properties": {"name": {"const": ` + string(nameJSON) + `}, "arguments": ` + string(params) + `}, "required": ["name", "arguments"]}`
		sc, err := jsonschema.Compile([]byte(schema))
		if err != nil {
			return false, badRequest("tools", "the parameters of tool %q: %v", name, err)
		}
		req.forced, req.forcedNamed = sc, named
		return true, nil
	}
	return false, badRequest("tool_choice", "tool_choice names %q, which is not among the tools", name)
}

// toolMode reads tool_choice: whether the tools go into the prompt and calls are parsed.
func (s *Server) toolMode(req *chatRequest) (bool, error) {
	hasTools := len(req.Tools) > 0 && !bytes.Equal(bytes.TrimSpace(req.Tools), []byte("null")) && !bytes.Equal(bytes.TrimSpace(req.Tools), []byte("[]"))
	choice := "auto"
	if len(req.ToolChoice) > 0 && !bytes.Equal(bytes.TrimSpace(req.ToolChoice), []byte("null")) {
		if err := json.Unmarshal(req.ToolChoice, &choice); err != nil {
			var named struct {
				Type     string `json:"type"`
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			if json.Unmarshal(req.ToolChoice, &named) != nil || named.Type != "function" || named.Function.Name == "" {
				return false, badRequest("tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}")
			}
			return s.forceTool(req, named.Function.Name, true)
		}
	}
	switch choice {
	case "none":
		return false, nil
	case "auto":
		if !hasTools {
			return false, nil
		}
		if !s.cfg.AutoTools || s.cfg.ToolParser == "" {
			return false, badRequest("tool_choice", "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set")
		}
		return true, nil
	case "required":
		var tools []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(req.Tools, &tools) != nil || len(tools) != 1 {
			return false, badRequest("tool_choice", "tool_choice \"required\" is supported with one tool (it is then that tool, named); name the tool to call, or use \"auto\"")
		}
		return s.forceTool(req, tools[0].Function.Name, false)
	}
	return false, badRequest("tool_choice", "tool_choice %q: want \"none\", \"auto\" or \"required\"", choice)
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := s.admit(r, &req, &req.samplingFields); err != nil {
		writeAPIError(w, err)
		return
	}
	if s.cfg.Tokenizer == nil {
		writeError(w, http.StatusBadRequest, "this server runs with --skip-tokenizer-init: chat needs a tokenizer; use /v1/completions with token ids", "")
		return
	}
	if len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "\"messages\" is required", "messages")
		return
	}
	if req.Echo {
		writeError(w, http.StatusBadRequest, "echo is not supported for chat completions", "echo")
		return
	}
	tools, err := s.toolMode(&req)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	toolsRaw := req.Tools
	if !tools {
		toolsRaw = nil
	}
	addGen := req.AddGenerationPrompt == nil || *req.AddGenerationPrompt
	text, err := s.renderChat(req.Messages, toolsRaw, addGen, req.ContinueFinalMessage, req.ChatTemplateKwargs)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	ids, err := s.cfg.Tokenizer.Encode(text)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "messages")
		return
	}
	if ids, err = s.truncatePrompt(ids, &req.samplingFields); err != nil {
		writeAPIError(w, err)
		return
	}
	if err := s.checkPromptIDs(ids, "messages"); err != nil {
		writeAPIError(w, err)
		return
	}
	maxTokens, maxParam := req.MaxCompletionTokens, "max_completion_tokens"
	if maxTokens == nil {
		maxTokens, maxParam = req.MaxTokens, "max_tokens"
	}
	p, err := s.buildParams(&req.samplingFields, maxTokens, len(ids), 0, "messages", maxParam)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	if req.TopLogprobs != nil {
		if !req.Logprobs {
			writeError(w, http.StatusBadRequest, "top_logprobs needs logprobs: true", "top_logprobs")
			return
		}
		if *req.TopLogprobs < 0 || *req.TopLogprobs > 20 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("top_logprobs %d must be between 0 and 20", *req.TopLogprobs), "top_logprobs")
			return
		}
	}
	if req.Logprobs {
		p.logprobs = -1
		if req.TopLogprobs != nil && *req.TopLogprobs > 0 {
			p.logprobs = int(*req.TopLogprobs)
		}
	}
	if req.forced != nil {
		if p.jsonObject || p.choices != nil || p.jsonSchema != nil || p.regex != nil {
			writeAPIError(w, badRequest("tool_choice", "a required or named tool_choice and other guided decoding exclude each other"))
			return
		}
		if s.cfg.ToolParser == "" {
			writeAPIError(w, badRequest("tool_choice", "a required or named tool_choice needs --tool-call-parser to read the call back"))
			return
		}
		// compact: a call's JSON has no use for whitespace, and a model that favours it
		// would spend its tokens there
		p.jsonSchema, p.before, p.after, p.compactJSON = req.forced, toolOpen+"\n", "\n"+toolClose, true
	}
	if s.cfg.Reasoning != "" && (p.jsonObject || p.choices != nil || p.jsonSchema != nil || p.regex != nil) {
		// the model reasons first, unconstrained, as with vLLM's reasoning-aware guidance
		p.think = s.thinkTokens(text)
	}
	id := newID("chatcmpl-")
	j := s.newJob(r.Context())
	defer j.abort() // whatever ends the handler (error, panic, a client gone), nothing keeps generating
	if err := j.add(id, ids, p, 0); err != nil {
		writeAPIError(w, err)
		return
	}
	model := s.cfg.ModelNames[0]
	if req.Model != "" {
		model = req.Model
	}
	created := time.Now().Unix()
	if req.Stream {
		s.streamChat(w, j, &req, tools, id, model, created, len(ids), text)
		return
	}
	if err := j.wait(); err != nil {
		if j.ctx.Err() == nil {
			s.cfg.Log.Warn("request failed", "id", id, "err", err)
		}
		writeAPIError(w, statusFor(err))
		return
	}
	resp := chatResponse{ID: id, Object: "chat.completion", Created: created, Model: model, Usage: &usage{PromptTokens: len(ids)}, PromptLogprobs: s.promptLogprobs(j.choices[0])}
	if p.returnTokens {
		resp.PromptTokenIDs = ids
	}
	for _, c := range j.choices {
		msg := chatMessage{Role: "assistant"}
		content := c.finalText()
		thinking := false
		if s.cfg.Reasoning != "" {
			rs := newReasoningSplitter(text)
			startsThinking := rs.phase == 1 || strings.HasPrefix(strings.TrimLeft(content, " \n"), thinkOpen)
			reasoning, rest := rs.feed(content, true)
			if startsThinking || reasoning != "" {
				msg.ReasoningContent, msg.Reasoning = strPtr(reasoning), strPtr(reasoning)
				thinking = true
			}
			content = rest
		}
		finish := c.finish
		if call, ok := forcedCall(content); req.forced != nil && ok {
			// the constraint wrote the frame: read the JSON inside it, whatever its strings hold
			msg.ToolCalls = []toolCall{{ID: newID("chatcmpl-tool-"), Type: "function", Function: toolCallFunction{Name: call.name, Arguments: call.arguments}}}
			content = ""
			if !req.forcedNamed {
				finish = "tool_calls" // OpenAI reports a named choice's call as "stop"
			}
		} else if tools && req.forced == nil {
			if before, calls, ok := parseToolCallsWhole(content); ok {
				for _, call := range calls {
					msg.ToolCalls = append(msg.ToolCalls, toolCall{ID: newID("chatcmpl-tool-"), Type: "function", Function: toolCallFunction{Name: call.name, Arguments: call.arguments}})
				}
				finish = "tool_calls"
				content = before
			}
		}
		// no content at all after reasoning (cut off while thinking) is null, as in vLLM
		if content != "" || (len(msg.ToolCalls) == 0 && !thinking) {
			msg.Content = strPtr(content)
		}
		ch := chatChoice{Index: c.index, Message: msg, FinishReason: strPtr(finish), StopReason: c.stopReason()}
		if p.returnTokens {
			ch.TokenIDs = c.tokens
		}
		if p.logprobs != 0 {
			ch.Logprobs = s.chatLogprobs(c, 0, len(c.events))
		}
		resp.Choices = append(resp.Choices, ch)
		resp.Usage.CompletionTokens += len(c.tokens)
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens + resp.Usage.CompletionTokens
	writeJSON(w, http.StatusOK, resp)
}

func tokenBytes(t string) []int {
	b := make([]int, len(t))
	for i := range len(t) {
		b[i] = int(t[i])
	}
	return b
}

func (s *Server) chatLogprobs(c *choice, from, to int) *chatLogprobs {
	out := &chatLogprobs{Content: []tokenLogprob{}}
	for _, ev := range c.events[from:to] {
		t := s.tokenText(ev.Token)
		tl := tokenLogprob{Token: t, Logprob: finiteLogprob(ev.Logprob), Bytes: tokenBytes(t), TopLogprobs: []topLogprob{}}
		for _, a := range ev.TopLogprobs {
			at := s.tokenText(a.Token)
			tl.TopLogprobs = append(tl.TopLogprobs, topLogprob{Token: at, Logprob: finiteLogprob(a.Logprob), Bytes: tokenBytes(at)})
		}
		out.Content = append(out.Content, tl)
	}
	return out
}

// chatStreamState is one choice's parsers while streaming.
type chatStreamState struct {
	rs     reasoningSplitter
	ts     toolSplitter
	forced strings.Builder // a forced call's text, read at the end
	nCalls int
	events int
	tokens int
}

func (s *Server) streamChat(w http.ResponseWriter, j *job, req *chatRequest, tools bool, id, model string, created int64, promptLen int, prompt string) {
	out := startSSE(w)
	chunk := func(ch chatChunkChoice) chatChunk {
		cc := chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model, Choices: []chatChunkChoice{ch}}
		if req.StreamOptions.continuousUsage() {
			cc.Usage = j.usageSoFar()
		}
		return cc
	}
	states := map[*choice]*chatStreamState{}
	for _, c := range j.choices {
		states[c] = &chatStreamState{rs: newReasoningSplitter(prompt)}
		if err := out.send(chunk(chatChunkChoice{Index: c.index, Delta: chatDelta{Role: "assistant", Content: strPtr("")}})); err != nil {
			j.abort()
			return
		}
	}
	remaining := len(j.choices)
	for {
		c, err := j.next(&remaining)
		if err != nil {
			if j.ctx.Err() != nil {
				return
			}
			s.cfg.Log.Warn("request failed while streaming", "id", id, "err", err)
			out.fail(err)
			return
		}
		if c == nil {
			break
		}
		st := states[c]
		final := c.finish != ""
		text := c.newText(c.p.stop)
		var reasoning, content string
		if s.cfg.Reasoning != "" {
			reasoning, content = st.rs.feed(text, final)
		} else {
			content = text
		}
		var calls []parsedCall
		switch {
		case req.forced != nil:
			// a forced call comes whole at the end, read from inside its frame; cut off, the
			// text comes as content
			st.forced.WriteString(content)
			content = ""
			if final {
				if call, ok := forcedCall(st.forced.String()); ok {
					calls = []parsedCall{call}
				} else {
					content = st.forced.String()
				}
			}
		case tools:
			content, calls = st.ts.feed(content, final)
		}
		var lp *chatLogprobs
		if c.p.logprobs != 0 && len(c.events) > st.events {
			lp = s.chatLogprobs(c, st.events, len(c.events))
		}
		st.events = len(c.events)
		var tokenIDs []int
		if c.p.returnTokens {
			tokenIDs = c.tokens[st.tokens:]
		}
		st.tokens = len(c.tokens)
		if reasoning != "" || content != "" || lp != nil || len(tokenIDs) > 0 {
			d := chatDelta{}
			if reasoning != "" {
				d.ReasoningContent, d.Reasoning = strPtr(reasoning), strPtr(reasoning)
			}
			if content != "" {
				d.Content = strPtr(content)
			}
			if err := out.send(chunk(chatChunkChoice{Index: c.index, Delta: d, Logprobs: lp, TokenIDs: tokenIDs})); err != nil {
				j.abort()
				return
			}
		}
		for _, call := range calls {
			k := st.nCalls
			st.nCalls++
			d := chatDelta{ToolCalls: []toolCall{{Index: &k, ID: newID("chatcmpl-tool-"), Type: "function", Function: toolCallFunction{Name: call.name, Arguments: call.arguments}}}}
			if err := out.send(chunk(chatChunkChoice{Index: c.index, Delta: d})); err != nil {
				j.abort()
				return
			}
		}
		if final {
			finish := c.finish
			if st.nCalls > 0 && !req.forcedNamed {
				finish = "tool_calls"
			}
			if err := out.send(chunk(chatChunkChoice{Index: c.index, Delta: chatDelta{}, FinishReason: strPtr(finish), StopReason: c.stopReason()})); err != nil {
				j.abort()
				return
			}
		}
	}
	if req.StreamOptions.includeUsage() {
		u := &usage{PromptTokens: promptLen}
		for _, c := range j.choices {
			u.CompletionTokens += len(c.tokens)
		}
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		_ = out.send(chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model, Choices: []chatChunkChoice{}, Usage: u})
	}
	out.done()
}
