package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/strata-ai/strata/internal/api"
	"github.com/strata-ai/strata/internal/chattemplate"
	"github.com/strata-ai/strata/internal/demo"
	"github.com/strata-ai/strata/internal/engine"
	"github.com/strata-ai/strata/internal/jsonmode"
	"github.com/strata-ai/strata/internal/jsonschema"
	"github.com/strata-ai/strata/internal/model/qwen3"
	"github.com/strata-ai/strata/internal/regexmode"
	"github.com/strata-ai/strata/internal/serve"
	"github.com/strata-ai/strata/internal/tokenizer"
)

const key = "test-key"

// fixture is a running server over the demo model (one rank) or a scripted engine.
type fixture struct {
	url   string
	run   *serve.Runner
	model *qwen3.Model
	tok   *tokenizer.Tokenizer
	eng   *engine.Engine
}

func demoFolder(t *testing.T) string {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir, err := demo.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// startServer serves eng (any serve.Engine) with the demo folder's tokenizer and template.
func startServer(t *testing.T, dir string, eng serve.Engine, maxLen int, mutate func(*api.Config)) *fixture {
	t.Helper()
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := chattemplate.Load(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	run := serve.NewRunner(eng)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { run.Run(ctx); close(done) }()
	cfg := api.Config{
		ModelNames: []string{"demo"}, APIKey: key, MaxModelLen: maxLen, Vocab: tok.VocabSize(),
		Tokenizer: tok, Template: tpl, EOS: []int{must(tok.TokenID("<|im_end|>"))},
		AutoTools: true, ToolParser: "hermes", Reasoning: "qwen3",
	}
	if mutate != nil {
		mutate(&cfg)
	}
	ts := httptest.NewServer(api.New(cfg, run).Handler())
	t.Cleanup(func() {
		ts.Close()
		cancel()
		<-done
	})
	return &fixture{url: ts.URL, run: run, tok: tok}
}

func must(id int, ok bool) int {
	if !ok {
		panic("token missing")
	}
	return id
}

// demoServer serves the demo model through the real engine, one rank.
func demoServer(t *testing.T) *fixture { return demoServerLen(t, 256) }

// demoServerLen is demoServer with a context of maxLen tokens.
func demoServerLen(t *testing.T, maxLen int) *fixture {
	dir := demoFolder(t)
	m, err := qwen3.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	eng, err := engine.New(m, engine.Config{
		SchedulerConfig: engine.SchedulerConfig{MaxNumSeqs: 16, MaxNumBatchedTokens: 256, ChunkedPrefill: true, MaxModelLen: maxLen},
		BlockSize:       16, KVCacheBytes: 32 << 20, PrefixCaching: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := startServer(t, dir, eng, maxLen, nil)
	tok := f.tok
	eng.SetTokenizer(tok)
	f.model, f.eng = m, eng
	return f
}

func client(f *fixture, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{option.WithBaseURL(f.url + "/v1"), option.WithAPIKey(key), option.WithMaxRetries(0)}, opts...)...)
}

func TestModelsHealthVersion(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	page, err := c.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != "demo" {
		t.Fatalf("models: %+v", page.Data)
	}
	for path, want := range map[string]int{"/health": 200, "/version": 200, "/nope": 404} {
		resp, err := http.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestCompletionsMatchEngine: greedy completions over token ids return the model's own greedy
// tokens, with return_token_ids, and text prompts are tokenized the same way.
func TestCompletionsMatchEngine(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	prompt := []int64{39, 301, 385, 12, 99}
	ids := make([]int, len(prompt))
	for i, p := range prompt {
		ids[i] = int(p)
	}
	want, err := f.model.Greedy(ids, 12)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
		Model:       openai.CompletionNewParamsModel("demo"),
		Prompt:      openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: prompt},
		MaxTokens:   openai.Int(12),
		Temperature: openai.Float(0),
	}, option.WithJSONSet("return_token_ids", true), option.WithJSONSet("ignore_eos", true))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Choices []struct {
			TokenIDs       []int `json:"token_ids"`
			PromptTokenIDs []int `json:"prompt_token_ids"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(res.RawJSON()), &raw); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(raw.Choices[0].TokenIDs) != fmt.Sprint(want) || fmt.Sprint(raw.Choices[0].PromptTokenIDs) != fmt.Sprint(ids) {
		t.Fatalf("token ids %v (prompt %v), want %v", raw.Choices[0].TokenIDs, raw.Choices[0].PromptTokenIDs, want)
	}
	text, _ := f.tok.Decode(want, true)
	if res.Choices[0].Text != text || res.Usage.CompletionTokens != 12 || res.Usage.PromptTokens != 5 {
		t.Fatalf("text %q usage %+v, want %q", res.Choices[0].Text, res.Usage, text)
	}
	// n=3 with a seed: three choices, deterministic across calls
	params := openai.CompletionNewParams{
		Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hello there")},
		MaxTokens: openai.Int(6), N: openai.Int(3), Seed: openai.Int(7), Temperature: openai.Float(1),
	}
	a, err := c.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Choices) != 3 {
		t.Fatalf("%d choices, want 3", len(a.Choices))
	}
	for i := range a.Choices {
		if a.Choices[i].Text != b.Choices[i].Text {
			t.Fatalf("seeded choice %d differs: %q vs %q", i, a.Choices[i].Text, b.Choices[i].Text)
		}
	}
}

// TestChatStreamingMatchesNonStreaming streams a greedy chat with usage and logprobs and
// checks the accumulated message equals the non-streamed one.
func TestChatStreamingMatchesNonStreaming(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	params := openai.ChatCompletionNewParams{
		Model:       "demo",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("Hello, who are you?")},
		MaxTokens:   openai.Int(10),
		Temperature: openai.Float(0),
		Logprobs:    openai.Bool(true),
		TopLogprobs: openai.Int(3),
	}
	full, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Choices[0].Logprobs.Content) != int(full.Usage.CompletionTokens) || len(full.Choices[0].Logprobs.Content[0].TopLogprobs) != 3 {
		t.Fatalf("logprobs: %d entries for %d tokens", len(full.Choices[0].Logprobs.Content), full.Usage.CompletionTokens)
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(context.Background(), params)
	acc := openai.ChatCompletionAccumulator{}
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks < 3 {
		t.Fatalf("only %d chunks", chunks)
	}
	got := acc.Choices[0].Message.Content
	if got != full.Choices[0].Message.Content || acc.Usage.TotalTokens != full.Usage.TotalTokens || acc.Choices[0].FinishReason != full.Choices[0].FinishReason {
		t.Fatalf("streamed %q (usage %+v, %s), non-streamed %q (usage %+v, %s)", got, acc.Usage, acc.Choices[0].FinishReason, full.Choices[0].Message.Content, full.Usage, full.Choices[0].FinishReason)
	}
}

// scripted is an engine that answers every request with a fixed text, token by token: the
// way to test tool and reasoning parsing through real clients, whatever the model would say.
type scripted struct {
	mu      sync.Mutex
	tokens  []int
	reqs    map[string]*scriptedReq
	order   []string
	aborted []string
}

type scriptedReq struct {
	req  engine.Request
	next int
}

func (s *scripted) Add(r engine.Request) error {
	if s.reqs == nil {
		s.reqs = map[string]*scriptedReq{}
	}
	s.reqs[r.ID] = &scriptedReq{req: r}
	s.order = append(s.order, r.ID)
	return nil
}

func (s *scripted) Abort(id string) bool {
	s.mu.Lock()
	s.aborted = append(s.aborted, id)
	s.mu.Unlock()
	_, ok := s.reqs[id]
	delete(s.reqs, id)
	return ok
}

func (s *scripted) Step() ([]engine.Event, error) {
	var evs []engine.Event
	for _, id := range s.order {
		r := s.reqs[id]
		if r == nil {
			continue
		}
		// two tokens per step, to exercise multi-token deliveries
		for range 2 {
			tok := s.tokens[r.next]
			r.next++
			ev := engine.Event{ID: id, Token: tok}
			if r.next == len(s.tokens) || r.next == r.req.MaxTokens {
				ev.Finished, ev.Reason = true, "stop"
				if r.next == r.req.MaxTokens && r.next < len(s.tokens) {
					ev.Reason = "length"
				}
				delete(s.reqs, id)
				evs = append(evs, ev)
				break
			}
			evs = append(evs, ev)
		}
	}
	return evs, nil
}

func (s *scripted) Pending() int        { return len(s.reqs) }
func (s *scripted) Stuck() bool         { return false }
func (s *scripted) Stats() engine.Stats { return engine.Stats{Running: len(s.reqs)} }

func scriptedServer(t *testing.T, text string) *fixture {
	dir := demoFolder(t)
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tok.Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, dir, &scripted{tokens: ids}, 4096, nil)
}

var weatherTool = openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name:        "get_weather",
	Description: openai.String("Weather in a city"),
	Parameters: shared.FunctionParameters{
		"type":       "object",
		"properties": map[string]any{"city": map[string]any{"type": "string"}, "unit": map[string]any{"type": "string"}},
		"required":   []string{"city"},
	},
})

// TestToolsAndReasoning: Qwen3's <think> block becomes reasoning_content and its
// <tool_call> blocks tool_calls, streamed and not, as vLLM's qwen3 and hermes parsers do.
func TestToolsAndReasoning(t *testing.T) {
	out := "<think>\nThe user wants weather.\n</think>\n\nLet me check.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"C\"}}\n</tool_call>"
	f := scriptedServer(t, out)
	c := client(f)
	params := openai.ChatCompletionNewParams{
		Model:    "demo",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?")},
		Tools:    []openai.ChatCompletionToolUnionParam{weatherTool},
	}
	res, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	msg := res.Choices[0].Message
	if res.Choices[0].FinishReason != "tool_calls" || len(msg.ToolCalls) != 1 {
		t.Fatalf("finish %q, tool calls %+v", res.Choices[0].FinishReason, msg.ToolCalls)
	}
	call := msg.ToolCalls[0]
	if call.Function.Name != "get_weather" || call.Function.Arguments != `{"city": "Paris", "unit": "C"}` || call.ID == "" || call.Type != "function" {
		t.Fatalf("tool call %+v", call)
	}
	if msg.Content != "\n\nLet me check." {
		t.Fatalf("content %q", msg.Content)
	}
	var reasoning struct {
		R string `json:"reasoning_content"`
	}
	if err := json.Unmarshal([]byte(msg.RawJSON()), &reasoning); err != nil || reasoning.R != "\nThe user wants weather.\n" {
		t.Fatalf("reasoning_content %q (%v) in %s", reasoning.R, err, msg.RawJSON())
	}

	stream := c.Chat.Completions.NewStreaming(context.Background(), params)
	acc := openai.ChatCompletionAccumulator{}
	var streamedReasoning strings.Builder
	for stream.Next() {
		ch := stream.Current()
		acc.AddChunk(ch)
		if len(ch.Choices) > 0 {
			var d struct {
				R string `json:"reasoning_content"`
			}
			_ = json.Unmarshal([]byte(ch.Choices[0].Delta.RawJSON()), &d)
			streamedReasoning.WriteString(d.R)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	sm := acc.Choices[0].Message
	if len(sm.ToolCalls) != 1 || sm.ToolCalls[0].Function.Name != "get_weather" || sm.ToolCalls[0].Function.Arguments != call.Function.Arguments || acc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("streamed tool calls %+v finish %q", sm.ToolCalls, acc.Choices[0].FinishReason)
	}
	if sm.Content != msg.Content || streamedReasoning.String() != reasoning.R {
		t.Fatalf("streamed content %q reasoning %q", sm.Content, streamedReasoning.String())
	}

	// a multi-turn conversation carrying the call and its result renders and runs
	params.Messages = append(params.Messages, msg.ToParam(), openai.ToolMessage(`{"temp": 12}`, call.ID))
	if _, err := c.Chat.Completions.New(context.Background(), params); err != nil {
		t.Fatal(err)
	}
	// tool_choice none: no parsing, the raw text comes back as content
	params.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("none")}
	res, err = c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices[0].Message.ToolCalls) != 0 || !strings.Contains(res.Choices[0].Message.Content, "<tool_call>") {
		t.Fatalf("tool_choice none: %+v", res.Choices[0].Message)
	}
}

// TestErrors: OpenAI-shaped errors with the right status, through the official client.
func TestErrors(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	ctx := context.Background()
	check := func(name string, err error, status int) {
		t.Helper()
		var ae *openai.Error
		if !errors.As(err, &ae) {
			t.Fatalf("%s: %v is not an API error", name, err)
		}
		if ae.StatusCode != status || ae.Message == "" {
			t.Fatalf("%s: status %d message %q, want %d", name, ae.StatusCode, ae.Message, status)
		}
	}
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}
	_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "demo", Messages: msgs, MaxTokens: openai.Int(-1)})
	check("negative max_tokens", err, 400)
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "demo", Messages: msgs, MaxTokens: openai.Int(100000)})
	check("huge max_tokens", err, 400)
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "demo", Messages: msgs, TopP: openai.Float(1.5)})
	check("top_p", err, 400)
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "nope", Messages: msgs})
	check("unknown model", err, 404)
	bad := client(f, option.WithAPIKey("wrong"))
	_, err = bad.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "demo", Messages: msgs})
	check("wrong key", err, 401)
	long := strings.Repeat("hello world ", 400)
	_, err = c.Completions.New(ctx, openai.CompletionNewParams{Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(long)}})
	check("prompt longer than max-model-len", err, 400)
	if ae := (*openai.Error)(nil); errors.As(err, &ae) && ae.Param != "prompt" {
		t.Fatalf("a too-long completions prompt is blamed on %q, want prompt", ae.Param)
	}
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "demo", Messages: msgs, MaxCompletionTokens: openai.Int(-1)})
	check("negative max_completion_tokens", err, 400)
	if ae := (*openai.Error)(nil); errors.As(err, &ae) && ae.Param != "max_completion_tokens" {
		t.Fatalf("a bad max_completion_tokens is blamed on %q", ae.Param)
	}
	resp, err := http.Get(f.url + "/v1/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET /v1/completions: %d (Allow %q), want 405 with Allow: POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestMalformedRequests sends 200 broken requests: each gets a 4xx in OpenAI's shape, none a
// 5xx, and the server still answers afterwards.
func TestMalformedRequests(t *testing.T) {
	f := demoServer(t)
	bodies := []string{
		``, `{`, `[]`, `42`, `"x"`, `null`, `{"messages": 5}`, `{"messages": []}`, `{"messages": [1]}`,
		`{"messages": [{"content": "x"}]}`, `{"messages": [{"role": "alien", "content": "x"}]}`,
		`{"messages": [{"role": "user", "content": 7}]}`, `{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}`,
		`{"prompt": 5}`, `{"prompt": []}`, `{"prompt": [[]]}`, `{"prompt": [-1]}`, `{"prompt": [99999999]}`, `{"prompt": [1.5]}`,
		`{"prompt": "x", "max_tokens": "ten"}`, `{"prompt": "x", "max_tokens": -5}`, `{"prompt": "x", "max_tokens": 0}`,
		`{"prompt": "x", "max_tokens": 1e30}`, `{"prompt": "x", "temperature": -1}`, `{"prompt": "x", "temperature": 9}`,
		`{"prompt": "x", "top_p": 0}`, `{"prompt": "x", "top_k": -7}`, `{"prompt": "x", "min_p": 2}`,
		`{"prompt": "x", "presence_penalty": 3}`, `{"prompt": "x", "frequency_penalty": -3}`, `{"prompt": "x", "repetition_penalty": -1}`, `{"prompt": "x", "repetition_penalty": 0}`,
		`{"prompt": "x", "n": 0}`, `{"prompt": "x", "n": 100000}`, `{"prompt": "x", "logprobs": 50}`, `{"prompt": "x", "stop": [""]}`,
		`{"prompt": "x", "stop": 5}`, `{"prompt": "x", "stop_token_ids": [-3]}`, `{"prompt": "x", "seed": "abc"}`,
		`{"prompt": "x", "stream": "yes"}`, `{"prompt": "x", "stream_options": {"include_usage": true}}`, `{"prompt": "x", "model": "other"}`, `{"prompt": "x", "model": 5}`,
		`{"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}`,
		`{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}`,
		`{"messages": [{"role": "user", "content": "x"}], "tools": 3}`, `{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 5}`,
		`{"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{bad"}}]}]}`,
		// vLLM parameters strata refuses rather than ignores, and bad values of those it takes
		`{"prompt": "x", "prompt_logprobs": 50}`, `{"prompt": "x", "prompt_logprobs": 1, "stream": true}`, `{"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {}}}`, `{"prompt": "x", "response_format": 5}`,
		`{"prompt": "x", "guided_json": {"type": "string", "format": "hostname"}}`, `{"prompt": "x", "guided_json": "{not json"}`,
		`{"prompt": "x", "guided_json": {"type": "integer"}, "guided_choice": ["a"]}`, `{"prompt": "x", "structured_outputs": {"grammar": "root ::= \"a\""}}`,
		`{"prompt": "x", "structured_outputs": 5}`, `{"prompt": "x", "structured_outputs": {"jsn": {"type": "integer"}}}`,
		`{"prompt": "x", "structured_outputs": {"disable_any_whitespace": true}}`, `{"prompt": "x", "structured_outputs": {"json_object": 1}}`,
		`{"prompt": "x", "structured_outputs": {"json": {"type": "null"}, "disable_any_whitespace": "yes"}}`,
		`{"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "null"}}}}`,
		`{"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": "{\"type\": \"null\"}"}}}`, `{"prompt": "x", "guided_regex": "a", "structured_outputs": {"disable_any_whitespace": true}}`,
		`{"prompt": "x", "structured_outputs": {"json": {"type": "integer"}, "disable_additional_properties": true}}`,
		`{"prompt": "x", "guided_json": {"type": "integer"}, "guided_whitespace_pattern": " *"}`, `{"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "array"}}}}`,
		`{"prompt": "x", "guided_choice": []}`, `{"prompt": "x", "guided_choice": ["a", ""]}`, `{"prompt": "x", "guided_choice": "a"}`,
		`{"prompt": "x", "guided_choice": ["a"], "response_format": {"type": "json_object"}}`, `{"prompt": "x", "guided_regex": "(a"}`,
		`{"prompt": "x", "guided_regex": 5}`, `{"prompt": "x", "guided_regex": "\\bx"}`, `{"prompt": "x", "guided_regex": "a+", "guided_choice": ["a"]}`,
		`{"prompt": "x", "use_beam_search": true}`, `{"prompt": "x", "best_of": 3}`, `{"prompt": "x", "bad_words": ["  "]}`,
		`{"prompt": "x", "echo": true, "logprobs": 1, "stream": true}`, `{"prompt": "x", "min_tokens": 20, "max_tokens": 5}`,
		`{"prompt": "x", "min_tokens": -1}`, `{"prompt": "x", "logit_bias": {"abc": 5}}`, `{"prompt": "x", "logit_bias": {"99999999": 5}}`,
		`{"prompt": "x", "allowed_token_ids": []}`, `{"prompt": "x", "allowed_token_ids": [-1]}`, `{"prompt": "x", "truncate_prompt_tokens": 0}`,
		`{"messages": [{"role": "user", "content": "x"}], "continue_final_message": true}`,
		`{"messages": [{"role": "user", "content": "x"}], "echo": true}`,
	}
	paths := []string{"/v1/completions", "/v1/chat/completions"}
	sent := 0
	send := func(path string, body io.Reader, size int) {
		t.Helper()
		req, _ := http.NewRequest("POST", f.url+path, body)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s (%d bytes): %v", path, size, err)
		}
		defer resp.Body.Close()
		var e struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
				Code    int    `json:"code"`
			} `json:"error"`
		}
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("%s %.80q: status %d, want 4xx (%s)", path, fmt.Sprint(body), resp.StatusCode, raw)
		}
		if json.Unmarshal(raw, &e) != nil || e.Error.Message == "" || e.Error.Code != resp.StatusCode {
			t.Fatalf("%s: error body %s is not OpenAI's shape", path, raw)
		}
		sent++
	}
	for sent < 200 {
		for _, b := range bodies {
			for _, p := range paths {
				if sent < 196 {
					send(p, strings.NewReader(b), len(b))
				}
			}
		}
		if sent >= 196 {
			break
		}
	}
	// 10 MB bodies: a huge prompt and plain junk
	big := `{"prompt": "` + strings.Repeat("a", 10<<20) + `"}`
	send("/v1/completions", strings.NewReader(big), len(big))
	send("/v1/chat/completions", bytes.NewReader(bytes.Repeat([]byte("x"), 10<<20)), 10<<20)
	send("/tokenize", strings.NewReader(`{"prompt": 5}`), 13)
	send("/detokenize", strings.NewReader(`{"tokens": [-1]}`), 16)
	if sent < 200 {
		t.Fatalf("sent %d", sent)
	}
	after := client(f)
	if _, err := after.Models.List(context.Background()); err != nil {
		t.Fatalf("after malformed requests: %v", err)
	}
	// a key of the wrong type is named (as the client spelt it, embedded structs or not) in
	// the message and as the error's param
	for body, want := range map[string][2]string{
		`{"prompt": "x", "max_tokens": "ten"}`:        {"max_tokens", "max_tokens: got a JSON string, want an integer"},
		`{"prompt": "x", "temperature": "hot"}`:       {"temperature", "temperature: got a JSON string, want a number"},
		`{"prompt": "x", "stop_token_ids": [1, "2"]}`: {"stop_token_ids", "stop_token_ids: an element is a JSON string, want an integer"},
	} {
		req, _ := http.NewRequest("POST", f.url+"/v1/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct {
				Message string  `json:"message"`
				Param   *string `json:"param"`
			} `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if err != nil || e.Error.Message != want[1] || e.Error.Param == nil || *e.Error.Param != want[0] {
			t.Errorf("%s: got %+v (%v), want param %q and message %q", body, e.Error, err, want[0], want[1])
		}
	}
}

// TestDisconnectFreesBlocks: a client that goes away mid-stream aborts its request; the
// engine ends with every KV block free.
func TestDisconnectFreesBlocks(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	ctx, cancel := context.WithCancel(context.Background())
	stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("tell me a long story")},
		MaxTokens: openai.Int(200),
	}, option.WithJSONSet("ignore_eos", true))
	for i := 0; i < 3 && stream.Next(); i++ {
	}
	if f.run.Stats().Running == 0 {
		t.Fatal("the request is not running after three chunks")
	}
	cancel()
	stream.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := f.run.Stats()
		if st.Running == 0 && st.Waiting == 0 && st.BlocksFree == st.BlocksTotal {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the client left: %+v", st)
		}
		time.Sleep(10 * time.Millisecond) // polling the engine's state, not synchronising with it
	}
}

// TestTokenizeAndMetrics: /tokenize and /detokenize agree with the tokenizer; /metrics carries
// vLLM's series and counts the tokens served.
func TestTokenizeAndMetrics(t *testing.T) {
	f := demoServer(t)
	post := func(path, body string) map[string]any {
		resp, err := http.Post(f.url+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		return out
	}
	want, _ := f.tok.Encode("Hello world")
	got := post("/tokenize", `{"prompt": "Hello world"}`)
	if fmt.Sprint(got["tokens"]) != fmt.Sprint(want) || int(got["count"].(float64)) != len(want) {
		t.Fatalf("tokenize: %v, want %v", got, want)
	}
	back := post("/detokenize", fmt.Sprintf(`{"tokens": %s}`, strings.ReplaceAll(fmt.Sprint(want), " ", ",")))
	if back["prompt"] != "Hello world" {
		t.Fatalf("detokenize: %v", back)
	}
	chat := post("/tokenize", `{"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true}`)
	wantChat, _ := f.tok.Encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
	if fmt.Sprint(chat["tokens"]) != fmt.Sprint(wantChat) {
		t.Fatalf("chat tokenize: %v, want %v", chat["tokens"], wantChat)
	}
	c := client(f)
	if _, err := c.Completions.New(context.Background(), openai.CompletionNewParams{Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hi")}, MaxTokens: openai.Int(3)}, option.WithJSONSet("ignore_eos", true)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(f.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	series := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "vllm:") {
			name, rest, _ := strings.Cut(line, "{")
			_, val, _ := strings.Cut(rest, "} ")
			series[name] = val
		}
	}
	for _, name := range []string{"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
		"vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:time_to_first_token_seconds_count",
		"vllm:inter_token_latency_seconds_count", "vllm:e2e_request_latency_seconds_count",
		"vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"} {
		if _, ok := series[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if series["vllm:generation_tokens_total"] != "3" || series["vllm:e2e_request_latency_seconds_count"] != "1" {
		t.Errorf("generation tokens %s, e2e count %s; want 3 and 1", series["vllm:generation_tokens_total"], series["vllm:e2e_request_latency_seconds_count"])
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}

// TestNodeClient runs the official OpenAI Node client (testdata/node, installed by .ci/run
// with npm ci) against the server: chat, streaming with usage, tools and reasoning, errors.
func TestNodeClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("needs node (Node.js) for the OpenAI Node client")
	}
	if _, err := os.Stat("testdata/node/node_modules/openai"); err != nil {
		t.Skip("needs the openai npm package: cd internal/api/testdata/node && npm ci (.ci/run does it)")
	}
	f := demoServer(t)
	tools := scriptedServer(t, "<think>\nThe user wants the weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs")
	cmd.Dir = "testdata/node"
	cmd.Env = append(os.Environ(), "STRATA_URL="+f.url, "STRATA_TOOLS_URL="+tools.url, "STRATA_KEY="+key)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("node client: %v\n%s", err, out)
	}
}

// TestServerSeed: with --seed, unseeded sampled requests repeat across server runs, and
// seed -1 counts as no seed (vLLM's convention).
func TestServerSeed(t *testing.T) {
	dir := demoFolder(t)
	m, err := qwen3.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	first := func(opts ...option.RequestOption) string {
		eng, err := engine.New(m, engine.Config{
			SchedulerConfig: engine.SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 256, ChunkedPrefill: true, MaxModelLen: 256},
			BlockSize:       16, KVCacheBytes: 16 << 20,
		})
		if err != nil {
			t.Fatal(err)
		}
		f := startServer(t, dir, eng, 256, func(c *api.Config) { c.Seed = 42 })
		c := client(f)
		res, err := c.Completions.New(context.Background(), openai.CompletionNewParams{Model: "demo",
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once")}, MaxTokens: openai.Int(8), Temperature: openai.Float(1)},
			append(opts, option.WithJSONSet("ignore_eos", true))...)
		if err != nil {
			t.Fatal(err)
		}
		return res.Choices[0].Text
	}
	if a, b := first(), first(); a != b {
		t.Fatalf("same --seed, different first completions: %q vs %q", a, b)
	}
	if a, b := first(), first(option.WithJSONSet("seed", -1)); a != b {
		t.Fatalf("seed -1 should sample as no seed does: %q vs %q", b, a)
	}
}

// TestCompletionLogprobs checks the legacy logprobs object as vLLM fills it: every
// top_logprobs entry holds the sampled token (alone for logprobs: 0, beside the top N
// otherwise), and text_offset advances by the characters of each token, not its bytes.
func TestCompletionLogprobs(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	for _, n := range []int64{0, 1, 3} {
		res, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
			Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Héllo wörld ☃")},
			MaxTokens: openai.Int(20), Temperature: openai.Float(1.5), Seed: openai.Int(3), Logprobs: openai.Int(n),
		}, option.WithJSONSet("ignore_eos", true))
		if err != nil {
			t.Fatal(err)
		}
		lp := res.Choices[0].Logprobs
		if len(lp.Tokens) != 20 || len(lp.TopLogprobs) != 20 || len(lp.TextOffset) != 20 || len(lp.TokenLogprobs) != 20 {
			t.Fatalf("logprobs %d: %d tokens, %d top entries, %d offsets, %d logprobs; want 20 of each", n, len(lp.Tokens), len(lp.TopLogprobs), len(lp.TextOffset), len(lp.TokenLogprobs))
		}
		for i, tok := range lp.Tokens {
			top := lp.TopLogprobs[i]
			v, ok := top[tok]
			if !ok || v != lp.TokenLogprobs[i] {
				t.Fatalf("logprobs %d, token %d %q: top_logprobs %v lacks it with its logprob %v", n, i, tok, top, lp.TokenLogprobs[i])
			}
			if len(top) < max(int(n), 1) || len(top) > int(n)+1 {
				t.Fatalf("logprobs %d, token %d: %d top entries, want the sampled token and the top %d", n, i, len(top), n)
			}
			if i > 0 && lp.TextOffset[i]-lp.TextOffset[i-1] != int64(utf8.RuneCountInString(lp.Tokens[i-1])) {
				t.Fatalf("text_offset %v does not advance by the characters of tokens %q", lp.TextOffset, lp.Tokens)
			}
		}
	}
}

// TestVLLMExtras checks vLLM's sampling extras against the model's own greedy decoding:
// logit_bias, allowed_token_ids, min_tokens, include_stop_str_in_output,
// truncate_prompt_tokens, echo with max_tokens 0 and a streamed echo.
func TestVLLMExtras(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	ctx := context.Background()
	prompt := []int64{39, 301, 385, 12, 99, 7, 250, 31}
	ids := make([]int, len(prompt))
	for i, p := range prompt {
		ids[i] = int(p)
	}
	complete := func(maxTokens int64, opts ...option.RequestOption) (openai.Completion, []int) {
		t.Helper()
		res, err := c.Completions.New(ctx, openai.CompletionNewParams{
			Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: prompt},
			MaxTokens: openai.Int(maxTokens), Temperature: openai.Float(0),
		}, append(opts, option.WithJSONSet("return_token_ids", true), option.WithJSONSet("ignore_eos", true))...)
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			Choices []struct {
				TokenIDs []int `json:"token_ids"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(res.RawJSON()), &raw); err != nil {
			t.Fatal(err)
		}
		return *res, raw.Choices[0].TokenIDs
	}
	greedy, err := f.model.Greedy(ids, 10)
	if err != nil {
		t.Fatal(err)
	}

	// logit_bias +100 on a token the model would not pick makes greedy decoding pick only it
	_, got := complete(6, option.WithJSONSet("logit_bias", map[string]float64{"777": 100}))
	for _, tok := range got {
		if tok != 777 {
			t.Fatalf("logit_bias +100 on 777: generated %v", got)
		}
	}
	// allowed_token_ids: sampled tokens stay inside the set
	_, got = complete(12, option.WithJSONSet("allowed_token_ids", []int{5, 9, 300}), option.WithJSONSet("temperature", 1), option.WithJSONSet("seed", 1))
	for _, tok := range got {
		if tok != 5 && tok != 9 && tok != 300 {
			t.Fatalf("allowed_token_ids [5 9 300]: generated %v", got)
		}
	}
	// min_tokens: greedy's first token as a stop token cannot end the sequence before 4 tokens
	res, got := complete(10, option.WithJSONSet("stop_token_ids", []int{greedy[0]}), option.WithJSONSet("min_tokens", 4))
	if len(got) < 4 || got[0] == greedy[0] || got[1] == greedy[0] || got[2] == greedy[0] || got[3] == greedy[0] {
		t.Fatalf("min_tokens 4 with stop token %d: generated %v (%s)", greedy[0], got, res.Choices[0].FinishReason)
	}
	// include_stop_str_in_output: cut after the stop string instead of before it
	full, _ := f.tok.Decode(greedy, true)
	second, _ := f.tok.Decode(greedy[:2], true)
	stop := full[len(second)-2 : len(second)]
	if !strings.Contains(full, stop) || strings.Index(full, stop) != len(second)-2 {
		t.Fatalf("test data: stop string %q occurs earlier in %q; pick another", stop, full)
	}
	without, _ := complete(10, option.WithJSONSet("stop", []string{stop}))
	with, _ := complete(10, option.WithJSONSet("stop", []string{stop}), option.WithJSONSet("include_stop_str_in_output", true))
	if without.Choices[0].Text != full[:len(second)-2] || with.Choices[0].Text != second {
		t.Fatalf("stop %q in %q: %q without, %q with include_stop_str_in_output", stop, full, without.Choices[0].Text, with.Choices[0].Text)
	}
	// bad_words: a word that is one token of greedy decoding never comes out
	banned := -1
	for _, tok := range greedy {
		w, _ := f.tok.Decode([]int{tok}, true)
		w = strings.TrimLeft(w, " ")
		bare, _ := f.tok.Encode(w)
		spaced, _ := f.tok.Encode(" " + w)
		if w != "" && (fmt.Sprint(bare) == fmt.Sprint([]int{tok}) || fmt.Sprint(spaced) == fmt.Sprint([]int{tok})) {
			_, got = complete(10, option.WithJSONSet("bad_words", []string{w}))
			for _, g := range got {
				if g == tok {
					t.Fatalf("bad word %q (token %d) generated: %v", w, tok, got)
				}
			}
			banned = tok
			break
		}
	}
	if banned < 0 {
		t.Fatalf("test data: no greedy token %v is a word on its own", greedy)
	}
	// truncate_prompt_tokens keeps the prompt's last k tokens
	res, got = complete(5, option.WithJSONSet("truncate_prompt_tokens", 3))
	want, err := f.model.Greedy(ids[len(ids)-3:], 5)
	if err != nil {
		t.Fatal(err)
	}
	if res.Usage.PromptTokens != 3 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("truncate_prompt_tokens 3: %d prompt tokens, generated %v, want 3 and %v", res.Usage.PromptTokens, got, want)
	}
	// echo with max_tokens 0 returns the prompt alone; a streamed echo starts with it
	text, _ := f.tok.Decode(ids, true)
	res, _ = complete(0, option.WithJSONSet("echo", true))
	if res.Choices[0].Text != text || res.Usage.CompletionTokens != 0 {
		t.Fatalf("echo, max_tokens 0: %q (%d tokens), want the prompt %q", res.Choices[0].Text, res.Usage.CompletionTokens, text)
	}
	stream := c.Completions.NewStreaming(ctx, openai.CompletionNewParams{
		Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: prompt},
		MaxTokens: openai.Int(6), Temperature: openai.Float(0), Echo: openai.Bool(true),
	}, option.WithJSONSet("ignore_eos", true))
	var streamed strings.Builder
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			streamed.WriteString(ch.Text)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	six, _ := f.tok.Decode(greedy[:6], true)
	if streamed.String() != text+six {
		t.Fatalf("streamed echo %q, want %q", streamed.String(), text+six)
	}
}

// TestContinuousUsageStats: with stream_options.continuous_usage_stats every chunk carries the
// usage so far, its completion count growing to the final one.
func TestContinuousUsageStats(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	prompt := []int64{39, 301, 385, 12, 99}
	stream := c.Completions.NewStreaming(context.Background(), openai.CompletionNewParams{
		Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: prompt},
		MaxTokens: openai.Int(6), Temperature: openai.Float(0),
	}, option.WithJSONSet("ignore_eos", true), option.WithJSONSet("stream_options", map[string]bool{"include_usage": true, "continuous_usage_stats": true}))
	last, chunks := int64(0), 0
	for stream.Next() {
		ch := stream.Current()
		if len(ch.Choices) == 0 {
			continue
		}
		chunks++
		u := ch.Usage
		if u.PromptTokens != 5 || u.CompletionTokens < last || u.CompletionTokens > 6 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
			t.Fatalf("chunk %d: usage %+v after %d completion tokens", chunks, u, last)
		}
		last = u.CompletionTokens
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks == 0 || last != 6 {
		t.Fatalf("%d chunks, last usage %d completion tokens, want 6", chunks, last)
	}
}

// TestPromptLogprobsAndScoring: prompt_logprobs and echo with logprobs and max_tokens 0 (how
// lm-eval scores a text) report each prompt token's logprob as the model's own forward pass
// gives it, the first token null.
func TestPromptLogprobsAndScoring(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	prompt := []int64{39, 301, 385, 12, 99, 7, 250, 31}
	ids := make([]int, len(prompt))
	for i, p := range prompt {
		ids[i] = int(p)
	}
	full, err := f.model.Forward(ids)
	if err != nil {
		t.Fatal(err)
	}
	want := func(pos int) float64 { // log-softmax at pos-1 of the token at pos
		row := full.Logits[pos-1]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - mx)
		}
		return float64(row[ids[pos]]) - mx - math.Log(sum)
	}
	res, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
		Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: prompt},
		MaxTokens: openai.Int(2), Temperature: openai.Float(0),
	}, option.WithJSONSet("prompt_logprobs", 2))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Choices []struct {
			PromptLogprobs []map[string]struct {
				Logprob float64 `json:"logprob"`
				Rank    int     `json:"rank"`
			} `json:"prompt_logprobs"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(res.RawJSON()), &raw); err != nil {
		t.Fatal(err)
	}
	pl := raw.Choices[0].PromptLogprobs
	if len(pl) != len(ids) || pl[0] != nil {
		t.Fatalf("prompt_logprobs: %d entries (first %v), want %d with the first null", len(pl), pl[0], len(ids))
	}
	for pos := 1; pos < len(ids); pos++ {
		e, ok := pl[pos][fmt.Sprint(ids[pos])]
		if !ok || math.Abs(e.Logprob-want(pos)) > 1e-3 || e.Rank < 1 || len(pl[pos]) > 3 {
			t.Fatalf("position %d: %v, want token %d with logprob %v among at most 3", pos, pl[pos], ids[pos], want(pos))
		}
	}
	// prompt_logprobs 0 beside echo with 3 logprobs: the prompt logprobs hold the token alone
	res0, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
		Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: prompt},
		MaxTokens: openai.Int(1), Temperature: openai.Float(0), Echo: openai.Bool(true), Logprobs: openai.Int(3),
	}, option.WithJSONSet("prompt_logprobs", 0))
	if err != nil {
		t.Fatal(err)
	}
	var raw0 struct {
		Choices []struct {
			PromptLogprobs []map[string]any `json:"prompt_logprobs"`
			Logprobs       struct {
				TopLogprobs []map[string]float64 `json:"top_logprobs"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(res0.RawJSON()), &raw0); err != nil {
		t.Fatal(err)
	}
	for pos, m := range raw0.Choices[0].PromptLogprobs[1:] {
		if len(m) != 1 {
			t.Fatalf("prompt_logprobs 0 with echo logprobs 3, position %d: %v", pos+1, m)
		}
	}
	if top := raw0.Choices[0].Logprobs.TopLogprobs; len(top) < 2 || top[0] != nil || len(top[1]) < 3 {
		t.Fatalf("echo with logprobs 3: the prompt's top_logprobs %v", top)
	}
	// lm-eval's scoring request: the prompt back, its logprobs, nothing generated
	res, err = c.Completions.New(context.Background(), openai.CompletionNewParams{
		Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: prompt},
		MaxTokens: openai.Int(0), Temperature: openai.Float(0), Echo: openai.Bool(true), Logprobs: openai.Int(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := f.tok.Decode(ids, true)
	lp := res.Choices[0].Logprobs
	if res.Choices[0].Text != text || res.Usage.CompletionTokens != 0 || len(lp.TokenLogprobs) != len(ids) {
		t.Fatalf("scoring: text %q, %d completion tokens, %d logprobs; want the prompt, 0 and %d", res.Choices[0].Text, res.Usage.CompletionTokens, len(lp.TokenLogprobs), len(ids))
	}
	var rawLP struct {
		Choices []struct {
			Logprobs struct {
				TokenLogprobs []*float64 `json:"token_logprobs"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(res.RawJSON()), &rawLP); err != nil {
		t.Fatal(err)
	}
	tl := rawLP.Choices[0].Logprobs.TokenLogprobs
	if tl[0] != nil {
		t.Fatalf("the first prompt token's logprob is %v, want null", *tl[0])
	}
	for pos := 1; pos < len(ids); pos++ {
		if tl[pos] == nil || math.Abs(*tl[pos]-want(pos)) > 1e-3 {
			t.Fatalf("scoring position %d: %v, want %v", pos, tl[pos], want(pos))
		}
	}
}

// TestJSONSchemaResponse: a JSON schema, given as OpenAI's response_format json_schema, as
// vLLM's guided_json (an object or a string) and as structured_outputs.json, keeps the answer
// a prefix of a value the schema accepts; the answers that stop are whole values with the
// required keys and values of their types.
func TestJSONSchemaResponse(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	schemaText := `{"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}, "score": {"type": "integer"}, "why": {"type": "string", "maxLength": 3}}, "required": ["answer"]}`
	var schema map[string]any
	if err := json.Unmarshal([]byte(schemaText), &schema); err != nil {
		t.Fatal(err)
	}
	compiled, err := jsonschema.Compile([]byte(schemaText))
	if err != nil {
		t.Fatal(err)
	}
	check := func(how, text, finish string) bool {
		t.Helper()
		st := compiled.Start()
		if !st.FeedAll([]byte(text)) {
			t.Fatalf("%s: %q is not the start of a value the schema accepts", how, text)
		}
		if finish != "stop" {
			return false
		}
		var v struct {
			Answer *string
			Score  *int
			Why    *string
		}
		if err := json.Unmarshal([]byte(text), &v); err != nil || v.Answer == nil || *v.Answer != "yes" && *v.Answer != "no" || v.Why != nil && len([]rune(*v.Why)) > 3 {
			t.Fatalf("%s: finished on %q, not a whole value of the schema (%v)", how, text, err)
		}
		return true
	}
	whole := 0
	for seed := range int64(4) {
		res, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Answer in JSON")},
			MaxTokens: openai.Int(40), Seed: openai.Int(seed), Temperature: openai.Float(1),
			ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "answer", Schema: schema, Strict: openai.Bool(true)}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if check("response_format", res.Choices[0].Message.Content, string(res.Choices[0].FinishReason)) {
			whole++
		}
	}
	for i, opt := range []option.RequestOption{
		option.WithJSONSet("guided_json", schema),
		option.WithJSONSet("guided_json", schemaText),
		option.WithJSONSet("structured_outputs", map[string]any{"json": schema}),
	} {
		res, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
			Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("JSON:")},
			MaxTokens: openai.Int(40), Seed: openai.Int(int64(i)), Temperature: openai.Float(1),
		}, opt)
		if err != nil {
			t.Fatal(err)
		}
		if check(fmt.Sprintf("completions form %d", i), res.Choices[0].Text, string(res.Choices[0].FinishReason)) {
			whole++
		}
	}
	if whole == 0 {
		t.Fatal("no answer finished its value: nothing checks a whole one")
	}
	// disable_any_whitespace: the same value with no whitespace between its tokens
	for seed := range int64(3) {
		res, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
			Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("JSON:")},
			MaxTokens: openai.Int(40), Seed: openai.Int(seed), Temperature: openai.Float(1),
		}, option.WithJSONSet("structured_outputs", map[string]any{"json": schema, "disable_any_whitespace": true}))
		if err != nil {
			t.Fatal(err)
		}
		text := res.Choices[0].Text
		st := compiled.StartCompact()
		if !st.FeedAll([]byte(text)) {
			t.Fatalf("disable_any_whitespace, seed %d: %q has whitespace between tokens or breaks the schema", seed, text)
		}
		check("disable_any_whitespace", text, string(res.Choices[0].FinishReason))
	}
}

// TestGuidedRegexResponse: guided_regex and structured_outputs.regex keep the answer on its
// way to a full match, and an answer that stops matches (Go's regexp is the reference).
func TestGuidedRegexResponse(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	const expr = `(yes|no), [0-9]{1,2} (cats|dogs)`
	ref := regexp.MustCompile(`^(?:` + expr + `)$`)
	whole := 0
	for i, opt := range []option.RequestOption{
		option.WithJSONSet("guided_regex", expr),
		option.WithJSONSet("structured_outputs", map[string]any{"regex": expr}),
		option.WithJSONSet("guided_regex", expr),
	} {
		res, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
			Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Answer:")},
			MaxTokens: openai.Int(24), Seed: openai.Int(int64(i)), Temperature: openai.Float(1),
		}, opt)
		if err != nil {
			t.Fatal(err)
		}
		text, finish := res.Choices[0].Text, res.Choices[0].FinishReason
		re, _ := regexmode.Compile(expr)
		st := re.Start()
		if !st.FeedAll([]byte(text)) {
			t.Fatalf("form %d: %q is not on its way to a match of %s", i, text, expr)
		}
		if finish == "stop" {
			if !ref.MatchString(text) {
				t.Fatalf("form %d: stopped on %q, which does not match %s", i, text, expr)
			}
			whole++
		}
	}
	if whole == 0 {
		t.Fatal("no answer finished its match: nothing checks a whole one")
	}
}

// TestGuidedAfterThinking: in chat with a reasoning parser, a guided answer may come after a
// <think> block, which goes unconstrained into reasoning_content; the content is the choice.
func TestGuidedAfterThinking(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	open, close := must(f.tok.TokenID("<think>")), must(f.tok.TokenID("</think>"))
	choices := []string{"yes", "no"}
	res, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Yes or no?")},
		MaxTokens: openai.Int(20), Seed: openai.Int(1), Temperature: openai.Float(1),
	}, option.WithJSONSet("guided_choice", choices),
		option.WithJSONSet("logit_bias", map[string]float64{fmt.Sprint(open): 30, fmt.Sprint(close): 40}))
	if err != nil {
		t.Fatal(err)
	}
	msg := res.Choices[0].Message
	if msg.Content != "yes" && msg.Content != "no" {
		t.Fatalf("content %q (finish %s), want a choice after the reasoning", msg.Content, res.Choices[0].FinishReason)
	}
	if raw := msg.RawJSON(); !strings.Contains(raw, `"reasoning_content":""`) {
		t.Fatalf("no (empty) reasoning block in %s", raw)
	}
}

// TestForcedToolChoice: a named tool_choice, and "required" with one tool, make the answer a
// call of that tool whose arguments follow its parameters, read back as tool_calls, streamed
// and not.
func TestForcedToolChoice(t *testing.T) {
	f := demoServerLen(t, 1024) // the tools preamble takes most of 256 tokens
	c := client(f)
	// a small tool: the demo's context is 256 tokens, and the tools preamble takes most of it
	w := openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "w", Parameters: shared.FunctionParameters{
		"type": "object", "properties": map[string]any{"c": map[string]any{"type": "string", "maxLength": 2}}, "required": []string{"c"}}})
	named := openai.ChatCompletionToolChoiceOptionUnionParam{OfFunctionToolChoice: &openai.ChatCompletionNamedToolChoiceParam{
		Function: openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "w"}}}
	required := openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")}
	other := openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "other"})
	calls := 0
	for i, choice := range []openai.ChatCompletionToolChoiceOptionUnionParam{named, required, named} {
		tools := []openai.ChatCompletionToolUnionParam{w}
		if i == 2 {
			tools = append(tools, other)
		}
		params := openai.ChatCompletionNewParams{
			Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
			Tools: tools, ToolChoice: choice, MaxTokens: openai.Int(120), Seed: openai.Int(int64(i)), Temperature: openai.Float(1),
		}
		res, err := c.Chat.Completions.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		ch := res.Choices[0]
		if ch.FinishReason == "length" {
			continue // cut off inside the call: nothing to read back
		}
		if len(ch.Message.ToolCalls) != 1 || ch.Message.ToolCalls[0].Function.Name != "w" {
			t.Fatalf("form %d: %+v (finish %s), want one call of w", i, ch.Message, ch.FinishReason)
		}
		var args struct {
			C *string `json:"c"`
		}
		if err := json.Unmarshal([]byte(ch.Message.ToolCalls[0].Function.Arguments), &args); err != nil || args.C == nil || len([]rune(*args.C)) > 2 {
			t.Fatalf("form %d: arguments %q do not follow the parameters (%v)", i, ch.Message.ToolCalls[0].Function.Arguments, err)
		}
		calls++
		// streamed, the same call comes back as tool-call deltas
		stream := c.Chat.Completions.NewStreaming(context.Background(), params)
		acc := openai.ChatCompletionAccumulator{}
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		sm := acc.Choices[0].Message
		if len(sm.ToolCalls) != 1 || sm.ToolCalls[0].Function.Name != "w" || sm.ToolCalls[0].Function.Arguments != ch.Message.ToolCalls[0].Function.Arguments {
			t.Fatalf("form %d streamed: %+v, want the call %+v", i, sm.ToolCalls, ch.Message.ToolCalls)
		}
	}
	if calls == 0 {
		t.Fatal("no answer finished its call: nothing checks one")
	}
	// a named call reports "stop", a required one "tool_calls" (as OpenAI does); arguments
	// whose text holds the closing tag are read from inside the frame; parameters with $refs
	// into their own $defs work
	closeTag := must(f.tok.TokenID("</tool_call>"))
	refTool := openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "r", Parameters: shared.FunctionParameters{
		"$defs": map[string]any{"S": map[string]any{"type": "string", "maxLength": 20}},
		"type":  "object", "properties": map[string]any{"c": map[string]any{"$ref": "#/$defs/S"}}, "required": []string{"c"}}})
	for i, choice := range []openai.ChatCompletionToolChoiceOptionUnionParam{
		{OfFunctionToolChoice: &openai.ChatCompletionNamedToolChoiceParam{Function: openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "r"}}},
		required,
	} {
		res, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
			Tools: []openai.ChatCompletionToolUnionParam{refTool}, ToolChoice: choice, MaxTokens: openai.Int(120), Seed: openai.Int(3),
		}, option.WithJSONSet("logit_bias", map[string]float64{fmt.Sprint(closeTag): 15}))
		if err != nil {
			t.Fatal(err)
		}
		ch := res.Choices[0]
		want := []string{"stop", "tool_calls"}[i]
		if len(ch.Message.ToolCalls) != 1 || ch.FinishReason != want {
			t.Fatalf("choice %d: %s (finish %q), want one call and %q", i, ch.Message.RawJSON(), ch.FinishReason, want)
		}
		var args struct{ C string }
		if err := json.Unmarshal([]byte(ch.Message.ToolCalls[0].Function.Arguments), &args); err != nil || len([]rune(args.C)) > 20 || !strings.Contains(args.C, "</tool_call>") {
			t.Fatalf("choice %d: arguments %q", i, ch.Message.ToolCalls[0].Function.Arguments)
		}
	}
	// "required" with two tools, and a name that is not a tool, are refused
	for _, choice := range []openai.ChatCompletionToolChoiceOptionUnionParam{required, {OfFunctionToolChoice: &openai.ChatCompletionNamedToolChoiceParam{
		Function: openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "nope"}}}} {
		_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
			Tools: []openai.ChatCompletionToolUnionParam{w, other}, ToolChoice: choice,
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
			t.Fatalf("tool_choice %+v with two tools: %v, want a 400", choice, err)
		}
	}
}

// TestGuidedThinkingOff: with enable_thinking false the prompt closes the block, so the
// constraint holds from the first token: no <think> opens, however favoured.
func TestGuidedThinkingOff(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	open, close := must(f.tok.TokenID("<think>")), must(f.tok.TokenID("</think>"))
	res, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Yes or no?")},
		MaxTokens: openai.Int(20), Seed: openai.Int(1), Temperature: openai.Float(1),
	}, option.WithJSONSet("guided_choice", []string{"yes", "no"}),
		option.WithJSONSet("chat_template_kwargs", map[string]any{"enable_thinking": false}),
		option.WithJSONSet("logit_bias", map[string]float64{fmt.Sprint(open): 30, fmt.Sprint(close): 40}))
	if err != nil {
		t.Fatal(err)
	}
	msg := res.Choices[0].Message
	if (msg.Content != "yes" && msg.Content != "no") || strings.Contains(msg.RawJSON(), "reasoning_content") {
		t.Fatalf("%s, want a choice and no reasoning", msg.RawJSON())
	}
}

// TestGuidedErrorsClipped: an error about a huge input does not echo it, and too many
// choices are refused.
func TestGuidedErrorsClipped(t *testing.T) {
	f := demoServer(t)
	huge := strings.Repeat("x", 300<<10)
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprint("c", i)
	}
	manyJSON, _ := json.Marshal(many)
	for _, body := range []string{
		`{"prompt": "x", "response_format": {"type": "` + huge + `"}}`,
		`{"prompt": "x", "structured_outputs": {"` + huge + `": 1}}`,
		`{"prompt": "x", "guided_json": {"type": "string", "format": "` + huge + `"}}`,
		`{"prompt": "x", "guided_choice": ` + string(manyJSON) + `}`,
	} {
		req, _ := http.NewRequest("POST", f.url+"/v1/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || len(b) > 2000 {
			t.Fatalf("%.60s...: status %d, %d bytes of answer", body, res.StatusCode, len(b))
		}
	}
}

// TestJSONObjectResponse: response_format json_object keeps chat output, streamed or not, the
// start of a JSON object; with a bias towards "}" the object closes, and the answer that ends
// on the stop token is a whole object encoding/json accepts.
func TestJSONObjectResponse(t *testing.T) {
	f := demoServer(t)
	c := client(f)
	closing, err := f.tok.Encode("}")
	if err != nil || len(closing) != 1 {
		t.Fatalf("test data: \"}\" is %v (%v)", closing, err)
	}
	whole := 0
	for seed := range int64(6) {
		res, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Give me JSON")},
			MaxTokens: openai.Int(48), Seed: openai.Int(seed), Temperature: openai.Float(1),
		}, option.WithJSONSet("response_format", map[string]string{"type": "json_object"}),
			option.WithJSONSet("logit_bias", map[string]float64{fmt.Sprint(closing[0]): 4}))
		if err != nil {
			t.Fatal(err)
		}
		text := res.Choices[0].Message.Content
		var s jsonmode.State
		if !s.FeedAll([]byte(text)) {
			t.Fatalf("seed %d: %q is not the start of a JSON object", seed, text)
		}
		if res.Choices[0].FinishReason == "stop" {
			if !json.Valid([]byte(text)) {
				t.Fatalf("seed %d: finished on %q, not a whole JSON object", seed, text)
			}
			whole++
		}
	}
	if whole == 0 {
		t.Fatal("no answer closed its object: nothing checks a whole one")
	}
	// guided_choice: the answer is one of the choices
	choices := []string{"positive", "negative", "neutral"}
	for seed := range int64(4) {
		res, err := c.Completions.New(context.Background(), openai.CompletionNewParams{
			Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("The review is")},
			MaxTokens: openai.Int(16), Seed: openai.Int(seed), Temperature: openai.Float(1),
		}, option.WithJSONSet("guided_choice", choices))
		if err != nil {
			t.Fatal(err)
		}
		if text := res.Choices[0].Text; text != choices[0] && text != choices[1] && text != choices[2] {
			t.Fatalf("guided_choice, seed %d: %q (%s)", seed, text, res.Choices[0].FinishReason)
		}
	}
}

// nanExecutor is a model whose weights are corrupt: every row of logits is NaN.
type nanExecutor struct{ vocab int }

func (x nanExecutor) Forward(items []qwen3.BatchItem) ([][]float32, error) {
	out := make([][]float32, len(items))
	for i := range out {
		out[i] = make([]float32, x.vocab)
		for j := range out[i] {
			out[i][j] = float32(math.NaN())
		}
	}
	return out, nil
}

// TestNaNLogitsAreAServerError: a model whose logits come out NaN fails each request with a
// 500 that says why, streamed or not, instead of answering with token 0 again and again; the
// server stays up.
func TestNaNLogitsAreAServerError(t *testing.T) {
	dir := demoFolder(t)
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.NewWithExecutor(nanExecutor{tok.VocabSize()}, tok.VocabSize(), 64, engine.Config{
		SchedulerConfig: engine.SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 256, MaxModelLen: 256}, BlockSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	f := startServer(t, dir, eng, 256, nil)
	c := client(f)
	params := openai.ChatCompletionNewParams{
		Model:     "demo",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
		MaxTokens: openai.Int(4),
	}
	_, err = c.Chat.Completions.New(context.Background(), params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusInternalServerError || !strings.Contains(apiErr.Message, "logits are NaN") {
		t.Fatalf("chat on a NaN model: %v", err)
	}
	stream := c.Completions.NewStreaming(context.Background(), openai.CompletionNewParams{
		Model: "demo", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hello")}, MaxTokens: openai.Int(4)})
	for stream.Next() {
		if stream.Current().Choices[0].Text != "" {
			t.Errorf("the stream gave text %q", stream.Current().Choices[0].Text)
		}
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "logits are NaN") {
		t.Fatalf("streamed completion on a NaN model: %v", err)
	}
	res, err := http.Get(f.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("health after failed requests: %d", res.StatusCode)
	}
	if total, free := eng.Blocks(); total != free {
		t.Fatalf("%d of %d blocks still held", total-free, total)
	}
}
