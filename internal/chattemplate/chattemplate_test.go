package chattemplate

import (
	"encoding/json"
	"os"
	"testing"
)

// TestGolden renders every case of chat-template-golden.json (messages, tools, flags) and
// requires transformers' exact text.
func TestGolden(t *testing.T) {
	tpl, err := Load("../../testdata/tokenizer/qwen3/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../testdata/tokenizer/chat-template-golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Input    json.RawMessage `json:"input"`
			Rendered string          `json:"rendered"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	for i, c := range g.Cases {
		in, err := DecodeJSON(c.Input)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tpl.Render(in.(map[string]any))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got != c.Rendered {
			t.Errorf("case %d:\n got %q\nwant %q", i, got, c.Rendered)
		}
	}
}

func TestToJSONLikePython(t *testing.T) {
	v, err := DecodeJSON([]byte(`{"b": 1, "a": [1.5, "é\n\"<>&", null, true], "z": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := Parse(`{{ x | tojson }}|{{ x | tojson(indent=2) }}`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.Render(map[string]any{"x": v})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"b": 1, "a": [1.5, "é\n\"<>&", null, true], "z": {}}|{
  "b": 1,
  "a": [
    1.5,
    "é\n\"<>&",
    null,
    true
  ],
  "z": {}
}`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
