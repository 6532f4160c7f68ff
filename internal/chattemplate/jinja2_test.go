package chattemplate

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The fixtures here come from Python's Jinja2 itself, set up as transformers sets it up
// (testdata/tokenizer/crosscheck_jinja2.py): an independent reference for the engine.

func readFixture(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../../testdata/tokenizer/" + name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]any)
}

// firstDiff shows where two renderings part.
func firstDiff(got, want string) string {
	n := 0
	for n < len(got) && n < len(want) && got[n] == want[n] {
		n++
	}
	lo := max(0, n-40)
	return fmt.Sprintf("at byte %d:\n got …%q\nwant …%q", n, got[lo:min(len(got), n+40)], want[lo:min(len(want), n+40)])
}

// TestJinja2Chats renders seeded random conversations through Qwen3's template and requires
// Jinja2's text for each: tool calls with dict or string arguments, tool responses, system
// prompts in any place, reasoning given apart or inside <think>, tools with floats, unicode
// and escapes in their schemas.
func TestJinja2Chats(t *testing.T) {
	tpl, err := Load("../../testdata/tokenizer/qwen3/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := readFixture(t, "chat-template-jinja2.json")["cases"].([]any)
	if len(cases) < 100 {
		t.Fatalf("only %d cases", len(cases))
	}
	for i, c := range cases {
		cm := c.(map[string]any)
		got, err := tpl.Render(cm["input"].(map[string]any))
		if err != nil {
			t.Errorf("case %d: %v", i, err)
			continue
		}
		if want := cm["rendered"].(string); got != want {
			t.Errorf("case %d differs %s", i, firstDiff(got, want))
		}
	}
}

// TestJinja2Snippets renders template snippets (subscripts, string methods, filters, tests,
// tojson's options) on one context and requires Jinja2's text, or an error where Jinja2
// raised one. Lines marked as differences gonja keeps (printing None, dict reprs) are only
// rendered.
func TestJinja2Snippets(t *testing.T) {
	f := readFixture(t, "jinja2-snippets.json")
	ctx := f["context"].(map[string]any)
	compared := 0
	for i, c := range f["cases"].([]any) {
		cm := c.(map[string]any)
		src := cm["template"].(string)
		tpl, err := Parse(src)
		if err != nil {
			t.Errorf("snippet %d %q does not parse: %v", i, src, err)
			continue
		}
		got, err := tpl.Render(ctx)
		if cm["gonja_differs"] == true {
			t.Logf("snippet %d %q: %q (a known difference; Jinja2: %q)", i, src, got, cm["rendered"])
			continue
		}
		compared++
		want, ok := cm["rendered"].(string)
		switch {
		case !ok && err == nil:
			t.Errorf("snippet %d %q rendered %q; Jinja2 raised %v", i, src, got, cm["error"])
		case ok && err != nil:
			t.Errorf("snippet %d %q: %v", i, src, err)
		case ok && got != want:
			t.Errorf("snippet %d %q differs %s", i, src, firstDiff(got, want))
		}
	}
	if compared < 30 {
		t.Fatalf("only %d snippets compared", compared)
	}
}

// FuzzTemplate parses and renders arbitrary template sources (a model folder's chat
// template is input like any other): an error is fine, a panic is not.
func FuzzTemplate(f *testing.F) {
	fx := readFixture(f, "jinja2-snippets.json")
	for _, c := range fx["cases"].([]any) {
		f.Add(c.(map[string]any)["template"].(string))
	}
	ctx := fx["context"].(map[string]any)
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := Parse(src)
		if err != nil {
			return
		}
		_, _ = tpl.Render(ctx)
	})
}

// TestMalformedTemplates: sources that crashed (a nil dereference in gonja's parser) or hung
// (its lexer, on invalid UTF-8 inside a tag) the engine come back as errors that say so.
func TestMalformedTemplates(t *testing.T) {
	for _, ok := range []string{`{{ "0.é" }}`, `{# 0.é #}`, `{% raw %}0.é{% endraw %}`, `{{ 'a' ~ "1.ü" }}`} {
		if _, err := Parse(ok); err != nil {
			t.Errorf("Parse(%q): %v", ok, err)
		}
	}
	for src, want := range map[string]string{
		`{{ "" is `:      "does not parse",
		"{%\xe60.刋":      "not valid UTF-8 (first bad byte at offset 2)",
		"ok\xff{{ x }}":  "offset 2",
		`{% for x in %}`: "does not parse",
		`{{ x[ }}`:       "does not parse",
	} {
		_, err := Parse(src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", src, err, want)
		}
	}
}

// TestContinueFinal follows transformers' continue_final_message on the cases its code
// distinguishes: spacing kept, trailing space trimmed by the template, leading space, the
// content appearing earlier too (the last one counts), an empty message, a missing one.
func TestContinueFinal(t *testing.T) {
	const r = "<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\nHi<|im_end|>\n"
	for _, c := range []struct{ rendered, final, want, err string }{
		{r, "Hi", "<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\nHi", ""},
		{r, "Hi  ", "<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\nHi", ""},
		{"<a>\n Hi there \n<b>", " Hi there ", "<a>\n Hi there", ""},
		{"<a>x Hi there <b>", "Hi there ", "<a>x Hi there ", ""},
		{"<u>Hi</u><a>Hi</a>", "Hi", "<u>Hi</u><a>Hi", ""},
		{r, "", r, ""},
		{r, "Bye", "", "does not appear"},
	} {
		got, err := ContinueFinal(c.rendered, c.final)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ContinueFinal(%q, %q) = %q, %v; want an error with %q", c.rendered, c.final, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ContinueFinal(%q, %q) = %q, %v; want %q", c.rendered, c.final, got, err, c.want)
		}
	}
}

// TestRenderErrorsSayWhere: a template that fails on the data names the line and the cause
// in one sentence, with the engine's nested trail still behind Unwrap.
func TestRenderErrorsSayWhere(t *testing.T) {
	tpl, err := Load("../../testdata/tokenizer/qwen3/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	for js, want := range map[string]string{
		`{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": null}]}`: "failed at line 41: 'lstrip' is not callable on None",
		`{"messages": [{"role": "user", "content": 5}]}`:                                            "failed at line 20: unknown method 'startswith' for '5'",
	} {
		v, _ := DecodeJSON([]byte(js))
		_, err := tpl.Render(v.(map[string]any))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "controlStructure") {
			t.Errorf("%s: %v; want one line with %q", js, err, want)
		}
		if err != nil && (errors.Unwrap(err) == nil || !strings.Contains(errors.Unwrap(err).Error(), "controlStructure")) {
			t.Errorf("%s: the engine's trail is not behind Unwrap", js)
		}
	}
}

func recordedOrders() int {
	n := 0
	keyOrder.Range(func(_, _ any) bool { n++; return true })
	return n
}

// TestDecodeJSONKeepsNothingOnError: objects decoded before a syntax error leave no key
// order behind (no caller can Forget them; a client could grow the table with bad requests).
func TestDecodeJSONKeepsNothingOnError(t *testing.T) {
	// a failed decode's maps may reuse the addresses of maps other tests never forgot, so
	// the table can shrink; 200 rounds that each left 5 entries would grow it by about 1000
	before := recordedOrders()
	for range 200 {
		for _, bad := range []string{`[{"a": 1}, {"b": {"c": 2}}, oops`, `{"a": {"b": 1}} trailing`, `[{"x": 1}, ` + strings.Repeat("[", MaxDepth+1)} {
			if _, err := DecodeJSON([]byte(bad)); err == nil {
				t.Fatalf("%.40q decoded", bad)
			}
		}
	}
	if after := recordedOrders(); after > before {
		t.Fatalf("%d key orders left behind by failed decodes", after-before)
	}
}

// TestAddedKeysFollow: a key a server adds to a decoded object (vLLM's empty arguments,
// reasoning_content) goes after the client's keys, as Python appends it, and the client's
// keys keep their order.
func TestAddedKeysFollow(t *testing.T) {
	v, err := DecodeJSON([]byte(`{"name": "f", "id": "c1"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer Forget(v)
	m := v.(map[string]any)
	m["arguments"] = map[string]any{}
	delete(m, "id")
	got, err := PythonJSON(m)
	if want := `{"name": "f", "arguments": {}}`; err != nil || got != want {
		t.Fatalf("got %s (%v), want %s", got, err, want)
	}
}

// TestRangeSandboxed: range() refuses what Jinja2's sandbox refuses, with its limit.
func TestRangeSandboxed(t *testing.T) {
	tpl, err := Parse(`{% for i in range(100001) %}{% endfor %}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.Render(map[string]any{}); err == nil || !strings.Contains(errors.Unwrap(err).Error(), "larger than 100000") {
		t.Fatalf("range(100001): %v", err)
	}
}

// TestPythonJSONLikeJSONDumps: numbers in every JSON spelling come out as Python's
// json.dumps(json.loads(s)) writes them (testdata/tokenizer/crosscheck_json.py).
func TestPythonJSONLikeJSONDumps(t *testing.T) {
	cases := readFixture(t, "json-dumps-numbers.json")["cases"].([]any)
	if len(cases) < 500 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		cm := c.(map[string]any)
		in, want := cm["in"].(string), cm["out"].(string)
		v, err := DecodeJSON([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got, err := PythonJSON(v); err != nil || got != want {
			t.Errorf("%s: got %s (%v), want %s", in, got, err, want)
		}
	}
}

// TestJinja2Expressions renders 1500 seeded random expressions (string methods, slices,
// filters, tests, comparisons, arithmetic, conditionals, nested) and requires Jinja2's text
// for each (testdata/tokenizer/crosscheck_jinja2_expr.py).
func TestJinja2Expressions(t *testing.T) { renderAllLikeJinja2(t, "jinja2-expressions.json", 1000) }

// TestJinja2Statements renders 600 seeded random templates (nested loops over lists,
// messages and mappings, if/elif/else, namespaces, comments, raw blocks, text of spaces,
// tabs and CR/LF, every tag with and without -/+ markers) and requires Jinja2's text under
// transformers' whitespace settings (testdata/tokenizer/crosscheck_jinja2_stmt.py).
func TestJinja2Statements(t *testing.T) { renderAllLikeJinja2(t, "jinja2-statements.json", 500) }

// renderAllLikeJinja2 renders every template {"t", "r"} of a fixture on its context and
// requires the text Jinja2 rendered; the fixture must hold at least min of them.
func renderAllLikeJinja2(t *testing.T, fixture string, min int) {
	f := readFixture(t, fixture)
	ctx := f["context"].(map[string]any)
	cases := f["cases"].([]any)
	if len(cases) < min {
		t.Fatalf("%s: only %d cases", fixture, len(cases))
	}
	for i, c := range cases {
		cm := c.(map[string]any)
		src, want := cm["t"].(string), cm["r"].(string)
		tpl, err := Parse(src)
		var got string
		if err == nil {
			got, err = tpl.Render(ctx)
		}
		if err != nil || got != want {
			t.Errorf("template %d %q: got %q (%v), want %q", i, src, got, err, want)
		}
	}
}

// TestEndlessRecursionIsAnError: a macro or recursive loop that calls itself without end
// fails the render (in Go it would overflow the stack and kill the server); deep but finite
// recursion still renders.
func TestEndlessRecursionIsAnError(t *testing.T) {
	nest := map[string]any{"nest": map[string]any{"z": map[string]any{"y": 1}}}
	for _, src := range []string{
		`{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}`,
		`{% for k in nest recursive %}{% if nest[k] %}{{ loop([k]) }}{% endif %}{% endfor %}`,
	} {
		tpl, err := Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tpl.Render(nest); err == nil || !strings.Contains(err.Error(), "calls itself without end") {
			t.Errorf("%s: %v", src, err)
		}
	}
	tpl, err := Parse(`{% macro m(n) %}{% if n > 0 %}{{ n }},{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(300) | length }}`)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := tpl.Render(nil); err != nil || out != "1092" {
		t.Fatalf("300 levels: %q %v", out, err)
	}
	// bodies that end early leave nothing behind: 500 continues are not 500 levels
	big := make([]any, 500)
	for i := range big {
		big[i] = i
	}
	tpl, err = Parse(`{% for i in big recursive %}{% if i > 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}`)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := tpl.Render(map[string]any{"big": big}); err != nil || out != "01" {
		t.Fatalf("continue in a recursive loop: %q %v", out, err)
	}
}
