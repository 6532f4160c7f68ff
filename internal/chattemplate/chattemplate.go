// Package chattemplate renders a model's Jinja chat template (tokenizer_config.json's
// chat_template) as transformers' apply_chat_template does, with gonja as the Jinja engine
// and transformers' tojson filter: JSON with Python's separators, non-ASCII kept, and object
// keys in the order the request gave them.
package chattemplate

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// Template is a parsed chat template.
type Template struct {
	tpl     *exec.Template
	special map[string]any // bos_token, eos_token, ... as transformers passes them
}

var (
	envOnce sync.Once
	env     *exec.Environment
)

// environment is gonja's default with transformers' tojson in place of gonja's.
func environment() *exec.Environment {
	envOnce.Do(func() {
		filters := exec.NewFilterSet(map[string]exec.FilterFunction{}).Update(builtins.Filters)
		_ = filters.Replace("tojson", toJSONFilter)
		env = &exec.Environment{
			Context:           gonja.DefaultContext,
			Filters:           filters,
			Tests:             builtins.Tests,
			ControlStructures: builtins.ControlStructures,
			Methods:           builtins.Methods,
		}
	})
	return env
}

// templateConfig is how transformers compiles chat templates: trim_blocks (the newline after
// a block tag goes) and lstrip_blocks (so does the indentation before one), which templates
// written without whitespace control rely on.
func templateConfig() *config.Config {
	c := gonja.DefaultConfig.Inherit()
	c.TrimBlocks, c.LeftStripBlocks = true, true
	return c
}

// Parse compiles template source.
func Parse(src string) (*Template, error) {
	id := fmt.Sprintf("/chat-%x", sha256.Sum256([]byte(src)))
	// The loader knows this one template and nothing else: a template shipped with a model
	// must not {% include %} files from the machine.
	ld, err := loaders.NewMemoryLoader(map[string]string{id: src})
	if err != nil {
		return nil, err
	}
	tpl, err := exec.NewTemplate(id, templateConfig(), ld, environment())
	if err != nil {
		return nil, fmt.Errorf("chat template does not parse: %w", err)
	}
	return &Template{tpl: tpl, special: map[string]any{}}, nil
}

// Load reads chat_template (and the special tokens templates refer to) from a
// tokenizer_config.json, or a chat_template.jinja beside it when the config has none.
func Load(tokenizerConfig string) (*Template, error) {
	b, err := os.ReadFile(tokenizerConfig)
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", tokenizerConfig, err)
	}
	var src string
	switch ct := cfg["chat_template"].(type) {
	case string:
		src = ct
	case []any: // [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
		for _, e := range ct {
			if m, ok := e.(map[string]any); ok && m["name"] == "default" {
				src, _ = m["template"].(string)
			}
		}
	}
	if src == "" {
		jinja := filepath.Join(filepath.Dir(tokenizerConfig), "chat_template.jinja")
		if jb, err := os.ReadFile(jinja); err == nil {
			src = string(jb)
		}
	}
	if src == "" {
		return nil, fmt.Errorf("%s has no chat_template (and there is no chat_template.jinja beside it)", tokenizerConfig)
	}
	t, err := Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tokenizerConfig, err)
	}
	for _, k := range []string{"bos_token", "eos_token", "unk_token", "pad_token"} {
		switch v := cfg[k].(type) {
		case string:
			t.special[k] = v
		case map[string]any: // {"content": "<|endoftext|>", ...}
			if c, ok := v["content"].(string); ok {
				t.special[k] = c
			}
		}
	}
	return t, nil
}

// Render fills the template. vars holds messages, tools, add_generation_prompt,
// enable_thinking and anything else the template reads, decoded with DecodeJSON so that
// tojson keeps the caller's key order.
func (t *Template) Render(vars map[string]any) (string, error) {
	// the globals transformers' apply_chat_template gives every template
	ctx := map[string]any{"raise_exception": raiseException, "strftime_now": strftimeNow}
	for k, v := range t.special {
		ctx[k] = v
	}
	for k, v := range vars {
		ctx[k] = v
	}
	out, err := t.tpl.ExecuteToString(exec.NewContext(ctx))
	if err != nil {
		if i := strings.Index(err.Error(), raisedPrefix); i >= 0 {
			// the template's own verdict on the messages, without the engine's trail
			return "", fmt.Errorf("the chat template refused the messages: %s", err.Error()[i+len(raisedPrefix):])
		}
		return "", fmt.Errorf("rendering the chat template: %w", err)
	}
	return out, nil
}

// raisedPrefix marks the message of a template's raise_exception in the engine's error.
const raisedPrefix = "raise_exception: "

// raiseException is transformers' raise_exception(message): templates call it to refuse
// messages they cannot render (no user turn, roles out of order, ...).
func raiseException(args *exec.VarArgs) (string, error) {
	msg := "raise_exception called"
	if len(args.Args) > 0 {
		msg = args.Args[0].String()
	}
	return "", errors.New(raisedPrefix + msg)
}

// strftimeNow is transformers' strftime_now(format): the local time in Python's strftime
// format, which templates use for "today's date".
func strftimeNow(args *exec.VarArgs) (string, error) {
	if len(args.Args) != 1 || !args.Args[0].IsString() {
		return "", errors.New("strftime_now takes one format string")
	}
	return strftime(args.Args[0].String(), time.Now()), nil
}

// strftime formats t as Python's time.strftime does for the C locale's common directives;
// an unknown directive is kept as written, as glibc does.
func strftime(format string, t time.Time) string {
	var sb strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			sb.WriteByte(format[i])
			continue
		}
		i++
		switch format[i] {
		case 'Y':
			fmt.Fprintf(&sb, "%d", t.Year())
		case 'y':
			fmt.Fprintf(&sb, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&sb, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&sb, "%02d", t.Day())
		case 'e':
			fmt.Fprintf(&sb, "%2d", t.Day())
		case 'H':
			fmt.Fprintf(&sb, "%02d", t.Hour())
		case 'I':
			fmt.Fprintf(&sb, "%02d", (t.Hour()+11)%12+1)
		case 'M':
			fmt.Fprintf(&sb, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&sb, "%02d", t.Second())
		case 'p':
			sb.WriteString(t.Format("PM"))
		case 'j':
			fmt.Fprintf(&sb, "%03d", t.YearDay())
		case 'b', 'h':
			sb.WriteString(t.Format("Jan"))
		case 'B':
			sb.WriteString(t.Format("January"))
		case 'a':
			sb.WriteString(t.Format("Mon"))
		case 'A':
			sb.WriteString(t.Format("Monday"))
		case 'Z':
			sb.WriteString(t.Format("MST"))
		case 'z':
			sb.WriteString(t.Format("-0700"))
		case '%':
			sb.WriteByte('%')
		default:
			sb.WriteByte('%')
			sb.WriteByte(format[i])
		}
	}
	return sb.String()
}

// keyOrder remembers, for every object DecodeJSON built, the order its keys came in (Go maps
// have none; Python dicts keep insertion order and transformers' tojson shows it).
var keyOrder sync.Map // map address (uintptr, which keeps nothing alive) -> []string

// DecodeJSON decodes JSON into maps, slices, strings, json.Number, bools and nil, recording
// each object's key order for tojson.
func DecodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// MaxDepth bounds the nesting DecodeJSON accepts: chat messages and tool schemas need a
// handful of levels, and the decoder, the template engine and tojson all recurse per level.
const MaxDepth = 128

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch d := tok.(type) {
	case json.Delim:
		if depth >= MaxDepth {
			return nil, fmt.Errorf("JSON nested deeper than %d levels", MaxDepth)
		}
		switch d {
		case '{':
			m := map[string]any{}
			var keys []string
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				if _, dup := m[k]; !dup {
					keys = append(keys, k)
				}
				m[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			// keyed by address, which keeps nothing alive; Forget drops the entries, and a map
			// that reuses a stale address is caught by orderOf's key check
			keyOrder.Store(uintptr(reflect.ValueOf(m).UnsafePointer()), keys)
			return m, nil
		case '[':
			s := []any{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				s = append(s, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return s, nil
		}
		return nil, fmt.Errorf("unexpected %v", d)
	default:
		return tok, nil
	}
}

// toJSONFilter is transformers' tojson: json.dumps(x, ensure_ascii=False, indent=indent,
// separators=None, sort_keys=False).
func toJSONFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	indent := -1
	if v, ok := params.KwArgs["indent"]; ok && !v.IsNil() {
		if !v.IsInteger() {
			return exec.AsValue(exec.ErrInvalidCall(errors.New("tojson: indent must be an integer")))
		}
		indent = v.Integer()
	}
	var sb strings.Builder
	if err := writePyJSON(&sb, in.Interface(), indent, 0); err != nil {
		return exec.AsValue(exec.ErrInvalidCall(err))
	}
	return exec.AsSafeValue(sb.String())
}

func writePyJSON(sb *strings.Builder, v any, indent, depth int) error {
	nl := func(d int) {
		if indent >= 0 {
			sb.WriteByte('\n')
			sb.WriteString(strings.Repeat(" ", indent*d))
		}
	}
	itemSep := ", "
	if indent >= 0 {
		itemSep = ","
	}
	switch x := v.(type) {
	case nil:
		sb.WriteString("null")
	case bool:
		sb.WriteString(strconv.FormatBool(x))
	case string:
		writePyString(sb, x)
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") { // Python parsed it as a float
			f, err := x.Float64()
			if err != nil {
				return err
			}
			sb.WriteString(pyFloat(f))
		} else {
			sb.WriteString(string(x))
		}
	case int:
		sb.WriteString(strconv.Itoa(x))
	case int64:
		sb.WriteString(strconv.FormatInt(x, 10))
	case float64:
		sb.WriteString(pyFloat(x))
	case []any:
		if len(x) == 0 {
			sb.WriteString("[]")
			return nil
		}
		sb.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				sb.WriteString(itemSep)
			}
			nl(depth + 1)
			if err := writePyJSON(sb, e, indent, depth+1); err != nil {
				return err
			}
		}
		nl(depth)
		sb.WriteByte(']')
	case map[string]any:
		if len(x) == 0 {
			sb.WriteString("{}")
			return nil
		}
		keys := orderOf(x)
		if keys == nil {
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
		}
		sb.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				sb.WriteString(itemSep)
			}
			nl(depth + 1)
			writePyString(sb, k)
			sb.WriteString(": ")
			if err := writePyJSON(sb, x[k], indent, depth+1); err != nil {
				return err
			}
		}
		nl(depth)
		sb.WriteByte('}')
	default:
		// values gonja built itself (its own maps, lists, numbers): go through encoding/json
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Errorf("tojson: %T: %w", x, err)
		}
		var back any
		if err := json.Unmarshal(b, &back); err != nil {
			return err
		}
		return writePyJSON(sb, back, indent, depth)
	}
	return nil
}

// Forget drops the key orders DecodeJSON recorded for v and everything inside it; a server
// calls it once a request's template has been rendered.
func Forget(v any) {
	switch x := v.(type) {
	case map[string]any:
		keyOrder.Delete(uintptr(reflect.ValueOf(x).UnsafePointer()))
		for _, e := range x {
			Forget(e)
		}
	case []any:
		for _, e := range x {
			Forget(e)
		}
	}
}

// orderOf returns the key order DecodeJSON recorded for m, if it still describes m exactly.
func orderOf(m map[string]any) []string {
	ko, ok := keyOrder.Load(uintptr(reflect.ValueOf(m).UnsafePointer()))
	if !ok {
		return nil
	}
	keys := ko.([]string)
	if len(keys) != len(m) {
		return nil
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return nil
		}
	}
	return keys
}

// writePyString quotes like Python's json.dumps with ensure_ascii=False.
func writePyString(sb *strings.Builder, s string) {
	sb.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			sb.WriteString(`\\`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(sb, `\u%04x`, r)
			} else {
				sb.WriteRune(r)
			}
		}
	}
	sb.WriteByte('"')
}

// pyFloat formats like Python's repr of a float.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	// repr takes the shortest digits that read back, in exponent form when the decimal
	// exponent is below -4 or at least 16, else positional with at least one decimal
	s := strconv.FormatFloat(f, 'e', -1, 64)
	if exp, err := strconv.Atoi(s[strings.IndexByte(s, 'e')+1:]); err == nil && (exp < -4 || exp >= 16) {
		return s
	}
	s = strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// PythonJSON writes v as Python's json.dumps(v, ensure_ascii=False) does (", " and ": "
// separators, DecodeJSON's key order): what vLLM's tool parsers put in tool-call arguments.
func PythonJSON(v any) (string, error) {
	var sb strings.Builder
	if err := writePyJSON(&sb, v, -1, 0); err != nil {
		return "", err
	}
	return sb.String(), nil
}
