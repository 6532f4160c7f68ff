package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const qwenTok = "../../testdata/tokenizer/qwen3"

// TestTokenizeChatGolden runs every chat-template golden case through `strata tokenize` as a
// user would (messages and tools files, flags) and requires transformers' text and ids; then
// eleven more conversations rendered by Hugging Face's JavaScript Jinja engine (which agrees
// with the golden on every case): tool calls with string and object arguments, several calls
// and tool responses in a row, reasoning_content across turns, agentic turns after the last
// user message, think tags without newlines, tools without a system message; then the first
// 20 of the seeded random conversations Python's Jinja2 rendered (crosscheck_jinja2.py; the
// chattemplate package renders all of them).
func TestTokenizeChatGolden(t *testing.T) {
	for f, n := range map[string]int{"chat-template-golden.json": -1, "chat-template-jinjajs.json": -1, "chat-template-jinja2.json": 20} {
		t.Run(f, func(t *testing.T) { testTokenizeChatFile(t, f, n) })
	}
}

func testTokenizeChatFile(t *testing.T, file string, limit int) {
	b, err := os.ReadFile("../../testdata/tokenizer/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Input struct {
				Messages            json.RawMessage `json:"messages"`
				Tools               json.RawMessage `json:"tools"`
				AddGenerationPrompt bool            `json:"add_generation_prompt"`
				EnableThinking      *bool           `json:"enable_thinking"`
			} `json:"input"`
			Rendered string `json:"rendered"`
			IDs      []int  `json:"ids"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if limit >= 0 && len(g.Cases) > limit {
		g.Cases = g.Cases[:limit]
	}
	for i, c := range g.Cases {
		dir := t.TempDir()
		mf := filepath.Join(dir, "messages.json")
		os.WriteFile(mf, c.Input.Messages, 0o644)
		args := []string{"tokenize", "--model", qwenTok, "--messages", mf, "--print-text"}
		if len(c.Input.Tools) > 0 && string(c.Input.Tools) != "null" {
			tf := filepath.Join(dir, "tools.json")
			os.WriteFile(tf, c.Input.Tools, 0o644)
			args = append(args, "--tools", tf)
		}
		if c.Input.AddGenerationPrompt {
			args = append(args, "--add-generation-prompt")
		}
		if c.Input.EnableThinking != nil {
			args = append(args, fmt.Sprintf("--enable-thinking=%v", *c.Input.EnableThinking))
		}
		out, err := runCLI(args...)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		var res struct {
			Tokens []int  `json:"tokens"`
			Count  int    `json:"count"`
			Text   string `json:"text"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("case %d: printed %q", i, out)
		}
		if res.Text != c.Rendered {
			t.Errorf("case %d text:\n got %q\nwant %q", i, res.Text, c.Rendered)
		}
		if fmt.Sprint(res.Tokens) != fmt.Sprint(c.IDs) || res.Count != len(c.IDs) {
			t.Errorf("case %d ids: got %v, want %v", i, res.Tokens, c.IDs)
		}
	}
}

func TestTokenizeBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"role": "user"`), 0o644)
	obj := filepath.Join(dir, "obj.json")
	os.WriteFile(obj, []byte(`{"role": "user", "content": "hi"}`), 0o644)
	empty := filepath.Join(dir, "empty.json")
	os.WriteFile(empty, []byte(`[]`), 0o644)
	parts := filepath.Join(dir, "parts.json")
	os.WriteFile(parts, []byte(`[{"role": "user", "content": [{"type": "text", "text": "a"}]}]`), 0o644)
	null := filepath.Join(dir, "null.json")
	os.WriteFile(null, []byte(`[{"role": "user", "content": "hi"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]}]`), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"tokenize", "--model", qwenTok}, "exactly one of --text or --messages"},
		{[]string{"tokenize", "--model", qwenTok, "--messages", bad}, "not valid JSON"},
		{[]string{"tokenize", "--model", qwenTok, "--messages", obj}, "JSON array"},
		{[]string{"tokenize", "--model", qwenTok, "--messages", empty}, "the array is empty"},
		{[]string{"tokenize", "--model", qwenTok, "--messages", parts}, "join the text parts"},
		{[]string{"tokenize", "--model", qwenTok, "--messages", null}, `message 1's content is null`},
		{[]string{"tokenize", "--model", qwenTok, "--text", "hi", "--add-generation-prompt"}, "use it with --messages"},
		{[]string{"tokenize", "--model", "../../testdata/models/qwen3-dense-tiny", "--text", "hi"}, "tokenize needs one"},
		{[]string{"tokenize", "--model", "/no/such/folder", "--text", "hi"}, "no such model folder"},
		{[]string{"detokenize", "--model", "../../testdata/models/qwen3-dense-tiny", "--ids", "1"}, "detokenize needs one"},
		{[]string{"detokenize", "--model", qwenTok, "--ids", "999999999"}, "not in the vocabulary"},
		{[]string{"detokenize", "--model", qwenTok, "--ids", "1,,3"}, "entry 2"},
	}
	for _, c := range cases {
		_, err := runCLI(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want an error mentioning %q, got %v", c.args, c.want, err)
		}
	}
	// an empty text is a text, as for vLLM's /tokenize
	if out, err := runCLI("tokenize", "--model", qwenTok, "--text", ""); err != nil || !strings.Contains(out, `"count":0`) {
		t.Fatalf("tokenize --text '': %q %v", out, err)
	}
	out, err := runCLI("detokenize", "--model", qwenTok, "--ids", "9707,11,847,5562,374,18838")
	if err != nil || !strings.Contains(out, `"Hello, my dog is cute"`) {
		t.Fatalf("detokenize: %q %v", out, err)
	}
}

// TestTokenizeContinueFinal: --continue-final-message ends the prompt inside the last
// message, as transformers does (the cases of chat-template-vllm.json that need no vLLM
// normalisation: plain string contents), and refuses --add-generation-prompt beside it.
func TestTokenizeContinueFinal(t *testing.T) {
	b, err := os.ReadFile("../../testdata/tokenizer/chat-template-vllm.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Input struct {
				Messages []map[string]any `json:"messages"`
				Continue bool             `json:"continue_final_message"`
			} `json:"input"`
			Rendered string `json:"rendered"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	ran := 0
	for i, c := range g.Cases {
		plain := c.Input.Continue
		for _, m := range c.Input.Messages {
			if _, ok := m["content"].(string); !ok || m["reasoning"] != nil {
				plain = false
			}
		}
		if !plain {
			continue
		}
		mf := filepath.Join(t.TempDir(), "m.json")
		mb, _ := json.Marshal(c.Input.Messages)
		os.WriteFile(mf, mb, 0o644)
		out, err := runCLI("tokenize", "--model", qwenTok, "--messages", mf, "--continue-final-message", "--print-text")
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		var res struct{ Text string }
		if json.Unmarshal([]byte(out), &res) != nil || res.Text != c.Rendered {
			t.Errorf("case %d: printed %q, want text %q", i, out, c.Rendered)
		}
		ran++
		if _, err := runCLI("tokenize", "--model", qwenTok, "--messages", mf, "--continue-final-message", "--add-generation-prompt"); err == nil || !strings.Contains(err.Error(), "give one of them") {
			t.Errorf("both flags: %v", err)
		}
	}
	if ran < 2 {
		t.Fatalf("only %d cases", ran)
	}
}

// TestTokenizeThinkingFlagOnlyWhenGiven: without --enable-thinking the template sees no
// enable_thinking, as transformers' apply_chat_template called without it.
func TestTokenizeThinkingFlagOnlyWhenGiven(t *testing.T) {
	dir := t.TempDir()
	tj, err := os.ReadFile(filepath.Join(qwenTok, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644)
	cfg, _ := json.Marshal(map[string]any{"chat_template": "{{ enable_thinking is defined }}/{{ enable_thinking }}"})
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644)
	mf := filepath.Join(dir, "m.json")
	os.WriteFile(mf, []byte(`[{"role": "user", "content": "x"}]`), 0o644)
	for flag, want := range map[string]string{"": "False/", "--enable-thinking=true": "True/True", "--enable-thinking=false": "True/False"} {
		args := []string{"tokenize", "--model", dir, "--messages", mf, "--print-text"}
		if flag != "" {
			args = append(args, flag)
		}
		out, err := runCLI(args...)
		var res struct{ Text string }
		if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Text != want {
			t.Errorf("%q: %q %v, want text %q", flag, out, err, want)
		}
	}
}
