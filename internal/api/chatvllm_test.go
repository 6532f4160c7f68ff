package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestChatMessagesLikeVLLM sends conversations as OpenAI clients send them (null content
// beside tool calls, arguments as JSON strings or null, vLLM's `reasoning`, content as text
// parts) and requires the prompt Python's Jinja2 renders from them after vLLM's own
// normalisation (testdata/tokenizer/crosscheck_jinja2.py).
func TestChatMessagesLikeVLLM(t *testing.T) {
	f := startServer(t, "../../testdata/tokenizer/qwen3", &scripted{}, 4096, nil)
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
	}
}
