package chattemplate

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
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

func TestNumbersListTemplatesAndForget(t *testing.T) {
	// as Python's json.loads then json.dumps: floats stay floats in repr's spelling, integers
	// keep every digit
	v, _ := DecodeJSON([]byte(`{"a": 1e2, "b": 1.50, "c": 7, "d": 1e-07, "e": -0.0, "f": 12345678901234567890, "g": 1.5e300, "h": 0.0001, "i": 1e6, "j": 123456789.0, "k": 1e15, "l": 1e16, "m": 1e-5, "n": 12345.678}`))
	tpl, _ := Parse(`{{ x | tojson }}`)
	got, err := tpl.Render(map[string]any{"x": v})
	if err != nil || got != `{"a": 100.0, "b": 1.5, "c": 7, "d": 1e-07, "e": -0.0, "f": 12345678901234567890, "g": 1.5e+300, "h": 0.0001, "i": 1000000.0, "j": 123456789.0, "k": 1000000000000000.0, "l": 1e+16, "m": 1e-05, "n": 12345.678}` {
		t.Fatalf("got %q %v", got, err)
	}
	Forget(v)
	if orderOf(v.(map[string]any)) != nil {
		t.Fatal("Forget left the key order behind")
	}
	dir := t.TempDir()
	cfg := `{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ messages|length }}"}]}`
	os.WriteFile(dir+"/tokenizer_config.json", []byte(cfg), 0o644)
	lt, err := Load(dir + "/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := lt.Render(map[string]any{"messages": []any{1, 2}}); out != "D2" {
		t.Fatalf("list-form template rendered %q", out)
	}
}

// TestNoFileIncludes: a model's template cannot read files from the machine.
func TestNoFileIncludes(t *testing.T) {
	tpl, err := Parse(`{% include "/etc/hostname" %}`)
	if err == nil {
		if out, err := tpl.Render(map[string]any{}); err == nil {
			t.Fatalf("the template included a file from disk: %q", out)
		}
	}
}

// TestTransformersGlobals: raise_exception refuses with the template's own message, and
// strftime_now formats as Python's time.strftime (checked here on a fixed time).
func TestTransformersGlobals(t *testing.T) {
	tpl, err := Parse(`{% if messages[0].role != 'user' %}{{ raise_exception('Conversation roles must start with user') }}{% endif %}ok`)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := tpl.Render(map[string]any{"messages": []any{map[string]any{"role": "user"}}}); err != nil || out != "ok" {
		t.Fatalf("a user-first conversation: %q %v", out, err)
	}
	_, err = tpl.Render(map[string]any{"messages": []any{map[string]any{"role": "assistant"}}})
	if err == nil || !strings.HasSuffix(err.Error(), "refused the messages: Conversation roles must start with user") {
		t.Fatalf("want the template's message, got %v", err)
	}
	when := time.Date(2024, 3, 5, 14, 7, 9, 0, time.UTC)
	for format, want := range map[string]string{
		"%Y-%m-%d %H:%M:%S": "2024-03-05 14:07:09",
		"%d %b %Y":          "05 Mar 2024",
		"%A %B %j %I%p %y":  "Tuesday March 065 02PM 24",
		"%e|%a|%h|100%%|%Q": " 5|Tue|Mar|100%|%Q",
	} {
		if got := strftime(format, when); got != want {
			t.Errorf("strftime(%q) = %q, want %q", format, got, want)
		}
	}
	now, err := Parse(`{{ strftime_now("%Y") }}`)
	if err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprint(time.Now().Year())
	out, err := now.Render(nil)
	if after := fmt.Sprint(time.Now().Year()); err != nil || (out != before && out != after) {
		t.Fatalf("strftime_now: %q %v", out, err)
	}
}

// TestTrimAndLstripBlocks: templates compile as transformers compiles them, with trim_blocks
// and lstrip_blocks, so a template without whitespace control loses the lines that hold only
// block tags (the expected text is what Jinja2 and Hugging Face's Jinja for JavaScript give).
func TestTrimAndLstripBlocks(t *testing.T) {
	tpl, err := Parse("{% for m in messages %}\n  {% if m.role == 'user' %}\nU:{{ m.content }}\n  {% endif %}\n  {# comment #}\n{% endfor %}\nend  {% if true %}  x {% endif %}\n")
	if err != nil {
		t.Fatal(err)
	}
	msgs := []any{map[string]any{"role": "user", "content": "hi"}, map[string]any{"role": "assistant", "content": "yo"}, map[string]any{"role": "user", "content": "again"}}
	out, err := tpl.Render(map[string]any{"messages": msgs})
	if want := "U:hi\nU:again\nend    x "; err != nil || out != want {
		t.Fatalf("got %q (%v), want %q", out, err, want)
	}
}

// FuzzRender: whatever JSON a client sends as the template's variables (messages of any
// shape, tools, flags), the Qwen3 template renders or refuses with an error, never a
// panic, and renders the same variables the same way twice (no map order leaking into a
// prompt, which would defeat prefix caching). Seeds are the golden cases' inputs.
func FuzzRender(f *testing.F) {
	tpl, err := Load("../../testdata/tokenizer/qwen3/tokenizer_config.json")
	if err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile("../../testdata/tokenizer/chat-template-golden.json")
	if err != nil {
		f.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Input json.RawMessage `json:"input"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		f.Fatal(err)
	}
	for _, c := range g.Cases {
		f.Add([]byte(c.Input))
	}
	f.Add([]byte(`{"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}, {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "{\"a\": 1}"}}]}]}`))
	f.Add([]byte(`{"messages": [{"role": "tool", "content": 5}], "tools": [1, "x", null], "add_generation_prompt": "yes"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeJSON(b)
		if err != nil {
			return
		}
		vars, ok := v.(map[string]any)
		if !ok {
			return
		}
		out, err := tpl.Render(vars)
		again, err2 := tpl.Render(vars)
		if out != again || (err == nil) != (err2 == nil) {
			t.Fatalf("two renders differ: %q (%v) and %q (%v)", out, err, again, err2)
		}
	})
}
