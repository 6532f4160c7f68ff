package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/strata-ai/strata/internal/jsonschema"
	"math"
)

// optFloat and friends tell "absent" from zero, so generation_config.json defaults apply only
// where the request says nothing.
type optFloat = *float64
type optInt = *int64

// stringList is OpenAI's "string or array of strings" (stop).
type stringList []string

func (s *stringList) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or an array of strings")
	}
	*s = many
	return nil
}

// promptList is /v1/completions' prompt: a string, an array of strings, an array of token
// ids, or an array of arrays of token ids.
type promptList struct {
	texts []string
	ids   [][]int
}

func (p *promptList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		p.texts = []string{one}
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("want a string, an array of strings, an array of token ids or an array of arrays of token ids")
	}
	if len(raw) == 0 {
		return fmt.Errorf("is empty")
	}
	var ids []int
	if err := json.Unmarshal(b, &ids); err == nil {
		p.ids = [][]int{ids}
		return nil
	}
	var texts []string
	if err := json.Unmarshal(b, &texts); err == nil {
		p.texts = texts
		return nil
	}
	var lists [][]int
	if err := json.Unmarshal(b, &lists); err == nil {
		p.ids = lists
		return nil
	}
	return fmt.Errorf("want a string, an array of strings, an array of token ids or an array of arrays of token ids")
}

type streamOptions struct {
	IncludeUsage         *bool `json:"include_usage"`
	ContinuousUsageStats bool  `json:"continuous_usage_stats"`
}

// includeUsage: vLLM sends the usage chunk when stream_options is given, unless it says
// include_usage: false.
func (o *streamOptions) includeUsage() bool {
	return o != nil && (o.IncludeUsage == nil || *o.IncludeUsage)
}

// continuousUsage: vLLM's continuous_usage_stats puts the usage so far in every chunk.
func (o *streamOptions) continuousUsage() bool {
	return o.includeUsage() && o.ContinuousUsageStats
}

// usageSoFar counts a job's prompt tokens and the tokens its choices have generated.
func (j *job) usageSoFar() *usage {
	u := &usage{PromptTokens: j.prompts}
	for _, c := range j.choices {
		u.CompletionTokens += len(c.tokens)
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// samplingFields are the sampling parameters both endpoints take (OpenAI's and vLLM's extras).
type samplingFields struct {
	Model             string         `json:"model"`
	MaxTokens         optInt         `json:"max_tokens"`
	Temperature       optFloat       `json:"temperature"`
	TopP              optFloat       `json:"top_p"`
	TopK              optInt         `json:"top_k"`
	MinP              optFloat       `json:"min_p"`
	PresencePenalty   optFloat       `json:"presence_penalty"`
	FrequencyPenalty  optFloat       `json:"frequency_penalty"`
	RepetitionPenalty optFloat       `json:"repetition_penalty"`
	N                 optInt         `json:"n"`
	Seed              optInt         `json:"seed"`
	Stop              stringList     `json:"stop"`
	StopTokenIDs      []int          `json:"stop_token_ids"`
	IgnoreEOS         bool           `json:"ignore_eos"`
	Stream            bool           `json:"stream"`
	StreamOptions     *streamOptions `json:"stream_options"`
	ReturnTokenIDs    bool           `json:"return_token_ids"`
	SkipSpecialTokens *bool          `json:"skip_special_tokens"`
	User              string         `json:"user"`

	MinTokens              optInt             `json:"min_tokens"`
	LogitBias              map[string]float64 `json:"logit_bias"`
	AllowedTokenIDs        []int              `json:"allowed_token_ids"`
	IncludeStopStrInOutput bool               `json:"include_stop_str_in_output"`
	TruncatePromptTokens   optInt             `json:"truncate_prompt_tokens"`
	BadWords               []string           `json:"bad_words"`

	// vLLM parameters strata does not implement: refused with a 400 rather than ignored (see
	// unsupported), so a client never gets output that silently ignores what it asked for
	PromptLogprobs    optInt          `json:"prompt_logprobs"`
	ResponseFormat    json.RawMessage `json:"response_format"`
	GuidedJSON        json.RawMessage `json:"guided_json"`
	GuidedRegex       json.RawMessage `json:"guided_regex"`
	GuidedChoice      json.RawMessage `json:"guided_choice"`
	GuidedGrammar     json.RawMessage `json:"guided_grammar"`
	GuidedWhitespace  json.RawMessage `json:"guided_whitespace_pattern"`
	StructuredOutputs json.RawMessage `json:"structured_outputs"`
	UseBeamSearch     bool            `json:"use_beam_search"`
	BestOf            optInt          `json:"best_of"`
}

type completionRequest struct {
	samplingFields
	Prompt   *promptList `json:"prompt"`
	Logprobs optInt      `json:"logprobs"`
	Echo     bool        `json:"echo"`
	Suffix   *string     `json:"suffix"`
}

type chatRequest struct {
	samplingFields
	// forced is the schema of the one tool call a required or named tool_choice asks for
	forced              *jsonschema.Schema `json:"-"`
	forcedNamed         bool               `json:"-"` // named, not "required": finish_reason stays "stop"
	Messages            json.RawMessage    `json:"messages"`
	Tools               json.RawMessage    `json:"tools"`
	ToolChoice          json.RawMessage    `json:"tool_choice"`
	MaxCompletionTokens optInt             `json:"max_completion_tokens"`
	Logprobs            bool               `json:"logprobs"`
	TopLogprobs         optInt             `json:"top_logprobs"`
	ChatTemplateKwargs  json.RawMessage    `json:"chat_template_kwargs"`
	AddGenerationPrompt *bool              `json:"add_generation_prompt"`
	ParallelToolCalls   *bool              `json:"parallel_tool_calls"`
	// the prompt ends inside the last (assistant) message, which the answer continues
	ContinueFinalMessage bool `json:"continue_final_message"`
	// refused when set (see chatRequest.unsupported)
	Echo bool `json:"echo"`
}

type tokenizeRequest struct {
	Model                string          `json:"model"`
	Prompt               *string         `json:"prompt"`
	Messages             json.RawMessage `json:"messages"`
	Tools                json.RawMessage `json:"tools"`
	AddGenerationPrompt  *bool           `json:"add_generation_prompt"`
	ContinueFinalMessage bool            `json:"continue_final_message"`
	AddSpecialTokens     *bool           `json:"add_special_tokens"`
	ChatTemplateKwargs   json.RawMessage `json:"chat_template_kwargs"`
	ReturnTokenStrs      bool            `json:"return_token_strs"`
}

type detokenizeRequest struct {
	Model  string `json:"model"`
	Tokens []int  `json:"tokens"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	TotalTokens      int `json:"total_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// completionLogprobs is the legacy completions logprobs object.
// completionLogprobs is the legacy logprobs object; with echo the prompt's tokens come first,
// the very first with null logprob and alternatives (nothing predicts it).
type completionLogprobs struct {
	TextOffset    []int                `json:"text_offset"`
	TokenLogprobs []*float64           `json:"token_logprobs"`
	Tokens        []string             `json:"tokens"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
}

// promptLogprob is one entry of vLLM's prompt_logprobs: a token id's logprob, its rank in the
// distribution and its text.
type promptLogprob struct {
	Logprob      float64 `json:"logprob"`
	Rank         int     `json:"rank"`
	DecodedToken string  `json:"decoded_token"`
}

type completionChoice struct {
	Index          int                        `json:"index"`
	Text           string                     `json:"text"`
	Logprobs       *completionLogprobs        `json:"logprobs"`
	FinishReason   *string                    `json:"finish_reason"`
	StopReason     any                        `json:"stop_reason"`
	PromptTokenIDs []int                      `json:"prompt_token_ids,omitempty"`
	TokenIDs       []int                      `json:"token_ids,omitempty"`
	PromptLogprobs []map[string]promptLogprob `json:"prompt_logprobs,omitempty"`
}

type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage"`
}

type toolCallFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type toolCall struct {
	Index    *int             `json:"index,omitempty"`
	ID       string           `json:"id,omitempty"`
	Type     string           `json:"type,omitempty"`
	Function toolCallFunction `json:"function"`
}

type chatMessage struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	Reasoning        *string    `json:"reasoning,omitempty"` // vLLM's newer name; both are sent
	ToolCalls        []toolCall `json:"tool_calls,omitempty"`
}

type topLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type tokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
}

type chatLogprobs struct {
	Content []tokenLogprob `json:"content"`
}

type chatChoice struct {
	Index        int           `json:"index"`
	Message      chatMessage   `json:"message"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
	StopReason   any           `json:"stop_reason"`
	TokenIDs     []int         `json:"token_ids,omitempty"`
}

type chatResponse struct {
	ID             string                     `json:"id"`
	Object         string                     `json:"object"`
	Created        int64                      `json:"created"`
	Model          string                     `json:"model"`
	Choices        []chatChoice               `json:"choices"`
	Usage          *usage                     `json:"usage"`
	PromptTokenIDs []int                      `json:"prompt_token_ids,omitempty"`
	PromptLogprobs []map[string]promptLogprob `json:"prompt_logprobs,omitempty"`
}

// chatDelta is a streamed piece of a message; Content is a pointer so the first chunk can
// carry "" (as vLLM sends) and later ones omit it.
type chatDelta struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content,omitempty"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	Reasoning        *string    `json:"reasoning,omitempty"`
	ToolCalls        []toolCall `json:"tool_calls,omitempty"`
}

type chatChunkChoice struct {
	Index        int           `json:"index"`
	Delta        chatDelta     `json:"delta"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
	StopReason   any           `json:"stop_reason,omitempty"`
	TokenIDs     []int         `json:"token_ids,omitempty"`
}

type chatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []chatChunkChoice `json:"choices"`
	Usage   *usage            `json:"usage,omitempty"`
}

type completionChunkChoice struct {
	Index        int                 `json:"index"`
	Text         string              `json:"text"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
	StopReason   any                 `json:"stop_reason,omitempty"`
	TokenIDs     []int               `json:"token_ids,omitempty"`
}

type completionChunk struct {
	ID      string                  `json:"id"`
	Object  string                  `json:"object"`
	Created int64                   `json:"created"`
	Model   string                  `json:"model"`
	Choices []completionChunkChoice `json:"choices"`
	Usage   *usage                  `json:"usage,omitempty"`
}

// finiteLogprob keeps -Inf (a token the distribution rules out) representable in JSON, as
// Python's json would write -9999.0 for vLLM.
func finiteLogprob(f float32) float64 {
	if math.IsInf(float64(f), -1) || math.IsNaN(float64(f)) {
		return -9999
	}
	return float64(f)
}

func strPtr(s string) *string { return &s }
