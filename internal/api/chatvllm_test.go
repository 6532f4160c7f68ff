package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/strata-ai/strata/internal/tokenizer"
)

// TestChatMessagesLikeVLLM sends conversations as OpenAI clients send them (null content
// beside tool calls, arguments as JSON strings or null, vLLM's `reasoning`, content as text
// parts) and requires the prompt Python's Jinja2 renders from them after vLLM's own
// normalisation (testdata/tokenizer/crosscheck_jinja2.py).
func TestChatMessagesLikeVLLM(t *testing.T) {
	const qwen = "../../testdata/tokenizer/qwen3"
	tok, err := tokenizer.Load(qwen + "/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := tok.Encode(" blue.")
	f := startServer(t, qwen, &scripted{tokens: answer}, 4096, nil)
	b, err := os.ReadFile("../../testdata/tokenizer/chat-template-vllm.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Input    json.RawMessage `json:"input"`
			Rendered string          `json:"rendered"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil || len(g.Cases) == 0 {
		t.Fatalf("fixture: %v", err)
	}
	for i, c := range g.Cases {
		resp, err := http.Post(f.url+"/tokenize", "application/json", strings.NewReader(string(c.Input)))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Tokens []int `json:"tokens"`
			Error  any   `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("case %d: status %d, %v %v", i, resp.StatusCode, out.Error, err)
			continue
		}
		want, _ := f.tok.Encode(c.Rendered)
		if fmt.Sprint(out.Tokens) != fmt.Sprint(want) {
			got, _ := f.tok.Decode(out.Tokens, false)
			t.Errorf("case %d:\n got %q\nwant %q", i, got, c.Rendered)
		}
		// the same conversation as a chat completion: the prompt is the same, the answer
		// continues the last message where continue_final_message asks
		var in map[string]any
		json.Unmarshal(c.Input, &in)
		in["model"], in["max_tokens"] = "demo", 10
		body, _ := json.Marshal(in)
		req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var comp struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		err = json.NewDecoder(resp.Body).Decode(&comp)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(comp.Choices) != 1 {
			t.Errorf("case %d: chat completion status %d, %v", i, resp.StatusCode, err)
			continue
		}
		if comp.Usage.PromptTokens != len(want) || comp.Choices[0].Message.Content != " blue." {
			t.Errorf("case %d: chat completion prompt of %d tokens (want %d), answer %q", i, comp.Usage.PromptTokens, len(want), comp.Choices[0].Message.Content)
		}
	}
}

// TestChatTemplateKwargsDecodedAsJSON: chat_template_kwargs reach the template as the
// messages do: integers stay integers and objects keep the client's key order.
func TestChatTemplateKwargsDecodedAsJSON(t *testing.T) {
	dir := t.TempDir()
	tokJSON, err := os.ReadFile("../../testdata/tokenizer/qwen3/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(dir+"/tokenizer.json", tokJSON, 0o644)
	cfg, _ := json.Marshal(map[string]any{"eos_token": "<|im_end|>", "chat_template": "{{ budget }}|{{ budget is integer }}|{{ range(budget) | length }}|{{ opts | tojson }}|{% for k in opts %}{{ k }}{% endfor %}"})
	os.WriteFile(dir+"/tokenizer_config.json", cfg, 0o644)
	f := startServer(t, dir, &scripted{}, 4096, nil)
	body := `{"messages": [{"role": "user", "content": "x"}], "add_generation_prompt": false, "chat_template_kwargs": {"budget": 3, "opts": {"z": 1.0, "a": [2]}}}`
	resp, err := http.Post(f.url+"/tokenize", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Tokens []int }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	got, _ := f.tok.Decode(out.Tokens, false)
	if want := `3|True|3|{"z": 1.0, "a": [2]}|za`; got != want {
		t.Fatalf("rendered %q, want %q", got, want)
	}
	resp2, err := http.Post(f.url+"/tokenize", "application/json", strings.NewReader(`{"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": [1]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 400 {
		t.Fatalf("chat_template_kwargs [1]: status %d, want 400", resp2.StatusCode)
	}
}
