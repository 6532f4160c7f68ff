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
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

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
		_ = filters.Replace("items", itemsFilter)
		_ = filters.Replace("reverse", reverseFilter)
		_ = filters.Replace("dictsort", dictsortFilter)
		_ = filters.Replace("round", roundFilter)
		_ = filters.Replace("format", formatFilter)
		_ = filters.Replace("title", titleFilter)
		_ = filters.Replace("trim", trimFilter)
		for _, name := range keyOrderFilters {
			if f, ok := filters.Get(name); ok {
				_ = filters.Replace(name, inKeyOrder(f))
			}
		}
		tests := exec.NewTestSet(map[string]exec.TestFunction{}).Update(builtins.Tests)
		_ = tests.Replace("true", boolTest(true))
		_ = tests.Replace("false", boolTest(false))
		_ = tests.Replace("sequence", sequenceTest)
		_ = tests.Replace("odd", parityTest(true))
		_ = tests.Replace("even", parityTest(false))
		env = &exec.Environment{
			Context:           gonja.DefaultContext,
			Filters:           filters,
			Tests:             tests,
			ControlStructures: builtins.ControlStructures,
			Methods:           pythonMethods(),
		}
	})
	return env
}

// templateConfig leaves the source's layout alone: transformers compiles chat templates with
// trim_blocks and lstrip_blocks, which jinjaLayout applies before gonja sees the source, and
// without keep_trailing_newline, which jinjaLayout applies too.
func templateConfig() *config.Config {
	c := gonja.DefaultConfig.Inherit()
	c.TrimBlocks, c.LeftStripBlocks, c.KeepTrailingNewline = false, false, true
	return c
}

// Parse compiles template source.
func Parse(src string) (t *Template, err error) {
	// gonja's parser dereferences nil on some malformed sources ("{{ x is "): a model
	// folder's template is input, so that is an error, not a crash
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("chat template does not parse (the Jinja engine failed on it: %v)", p)
		}
	}()
	if !utf8.ValidString(src) {
		// as transformers, which reads templates as UTF-8; gonja's lexer also spins forever
		// on some invalid bytes inside a tag ("{%\xe60.刋")
		return nil, fmt.Errorf("chat template is not valid UTF-8 (first bad byte at offset %d)", firstInvalid(src))
	}
	id := fmt.Sprintf("/chat-%x", sha256.Sum256([]byte(src)))
	laid, err := jinjaLayout(src)
	if err != nil {
		return nil, fmt.Errorf("chat template does not parse: %w", err)
	}
	// The loader knows this one template and nothing else: a template shipped with a model
	// must not {% include %} files from the machine.
	ld, err := loaders.NewMemoryLoader(map[string]string{id: laid})
	if err != nil {
		return nil, err
	}
	tpl, err := exec.NewTemplate(id, templateConfig(), ld, environment())
	if err != nil {
		return nil, fmt.Errorf("chat template does not parse: %w", err)
	}
	pythonize(tpl, src)
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
func (t *Template) Render(vars map[string]any) (out string, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = "", fmt.Errorf("rendering the chat template: the Jinja engine failed (%v)", p)
		}
	}()
	// the globals transformers' apply_chat_template gives every template, and range as its
	// sandbox caps it
	ctx := map[string]any{"raise_exception": raiseException, "strftime_now": strftimeNow, "range": rangeCall, "namespace": namespaceCall}
	for k, v := range t.special {
		ctx[k] = v
	}
	for k, v := range vars {
		ctx[k] = v
	}
	// the rewritten template's own helpers, which no variable may replace
	ctx[subscriptFunc], ctx[iterFunc], ctx[dictFunc] = subscriptTarget, iterTarget, dictCall
	ctx[enterFunc] = (&bodies{}).enter
	out, err = t.tpl.ExecuteToString(exec.NewContext(ctx))
	if err != nil {
		if i := strings.Index(err.Error(), raisedPrefix); i >= 0 {
			// the template's own verdict on the messages, without the engine's trail
			return "", fmt.Errorf("the chat template refused the messages: %s", err.Error()[i+len(raisedPrefix):])
		}
		return "", &renderError{err: err}
	}
	return out, nil
}

// renderError says where and why a template failed in one line; the engine's own message
// nests every enclosing block ("Unable to execute controlStructure at line 26: ...") and
// stays reachable through Unwrap.
type renderError struct{ err error }

var (
	atLine    = regexp.MustCompile(`(?i)at line (\d+)`)
	wrapCalls = regexp.MustCompile(`call\(\[([^\]]*)\], map\[\]\)`)
)

func (e *renderError) Unwrap() error { return e.err }

func (e *renderError) Error() string {
	msg := e.err.Error()
	where := ""
	if m := atLine.FindAllStringSubmatch(msg, -1); m != nil {
		where = " at line " + m[len(m)-1][1]
	}
	parts := strings.Split(msg, ": ")
	cause := strings.TrimSpace(parts[len(parts)-1])
	for i := len(parts) - 1; cause == "" && i > 0; i-- {
		cause = strings.TrimSpace(parts[i-1])
	}
	if strings.HasSuffix(cause, " on") || strings.HasSuffix(cause, " of") {
		cause += " None" // gonja prints None as nothing
	}
	// the subscript and loop rewrites show as calls in gonja's messages
	cause = wrapCalls.ReplaceAllString(cause, "$1")
	if strings.Contains(msg, errTooDeep.Error()) {
		return "rendering the chat template failed" + where + ": " + errTooDeep.Error()
	}
	return "rendering the chat template failed" + where + ": " + cause + " (a value the template needs is missing, null or of another type)"
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

// DecodeJSON decodes JSON as Python's json.loads does, into maps, slices, strings, ints
// (json.Number for integers beyond int64), float64s, bools and nil, recording each object's
// key order for tojson, items() and keys().
func DecodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var recorded []map[string]any // the maps themselves: alive until their entries go
	v, err := decodeValue(dec, 0, &recorded)
	if err == nil {
		if _, end := dec.Token(); !errors.Is(end, io.EOF) {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		// the objects finished before the error were recorded, and no caller will Forget them
		for _, m := range recorded {
			keyOrder.Delete(uintptr(reflect.ValueOf(m).UnsafePointer()))
		}
		return nil, err
	}
	return v, nil
}

// MaxDepth bounds the nesting DecodeJSON accepts: chat messages and tool schemas need a
// handful of levels, and the decoder, the template engine and tojson all recurse per level.
const MaxDepth = 128

func decodeValue(dec *json.Decoder, depth int, recorded *[]map[string]any) (any, error) {
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
				v, err := decodeValue(dec, depth+1, recorded)
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
			*recorded = append(*recorded, m)
			return m, nil
		case '[':
			s := []any{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1, recorded)
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
	case json.Number:
		// Python reads a number with a point or exponent as a float, else as an int: the
		// template's `is integer`, arithmetic and tojson (1.0 stays 1.0) depend on which
		if !strings.ContainsAny(string(d), ".eE") {
			if i, err := strconv.ParseInt(string(d), 10, 64); err == nil {
				return int(i), nil
			}
			return d, nil // an int beyond int64: tojson writes it as given
		}
		f, err := strconv.ParseFloat(string(d), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) { // out of range: ±Inf, as Python
			return nil, err
		}
		return f, nil
	default:
		return tok, nil
	}
}

// toJSONFilter is transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None,
// separators=None, sort_keys=False), each a keyword the template may set.
func toJSONFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	bad := func(err error) *exec.Value { return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("tojson: %w", err))) }
	// transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None,
	// sort_keys=False), positionally or by name
	order := []string{"ensure_ascii", "indent", "separators", "sort_keys"}
	if len(params.Args) > len(order) {
		return bad(fmt.Errorf("takes at most %d arguments", len(order)))
	}
	given := map[string]*exec.Value{}
	for i, v := range params.Args {
		given[order[i]] = v
	}
	for k, v := range params.KwArgs {
		if !slices.Contains(order, k) {
			return bad(fmt.Errorf("unexpected keyword %s", k))
		}
		if _, dup := given[k]; dup {
			return bad(fmt.Errorf("%s given twice", k))
		}
		given[k] = v
	}
	o := pyJSON{itemSep: ", ", keySep: ": "}
	for k, v := range given {
		if v.IsNil() {
			continue
		}
		switch {
		case k == "indent" && v.IsString(): // Python indents with the string itself
			o.indentStr, o.indented = v.String(), true
		case k == "indent" && (v.IsInteger() || v.IsBool()): // json.dumps: ' ' * indent
			n := 0
			if v.IsBool() {
				if v.Bool() {
					n = 1
				}
			} else {
				n = v.Integer()
			}
			o.indentStr, o.indented = strings.Repeat(" ", max(n, 0)), true
		case k == "sort_keys" || k == "ensure_ascii": // json.dumps goes by truthiness
			if k == "sort_keys" {
				o.sortKeys = v.IsTrue()
			} else {
				o.ascii = v.IsTrue()
			}
		case k == "separators":
			seps, ok := v.ToGoSimpleType(false).([]any)
			if !ok || len(seps) != 2 {
				return bad(errors.New("separators must be a pair of strings"))
			}
			item, ok1 := seps[0].(string)
			key, ok2 := seps[1].(string)
			if !ok1 || !ok2 {
				return bad(errors.New("separators must be a pair of strings"))
			}
			o.itemSep, o.keySep, o.sepsGiven = item, key, true
		default:
			return bad(fmt.Errorf("%s=%s: not a value json.dumps takes", k, v.String()))
		}
	}
	if o.indented && !o.sepsGiven {
		o.itemSep = "," // json.dumps drops the space after commas when it indents
	}
	var sb strings.Builder
	if err := o.write(&sb, in.Interface(), 0); err != nil {
		return bad(err)
	}
	return exec.AsSafeValue(sb.String())
}

// pyJSON is json.dumps's formatting options.
type pyJSON struct {
	indented        bool   // a newline before every item (indent given, even as 0 or "")
	indentStr       string // what each level indents by
	itemSep, keySep string
	sepsGiven       bool
	sortKeys, ascii bool
}

func (o *pyJSON) newline(sb *strings.Builder, depth int) {
	if o.indented {
		sb.WriteByte('\n')
		sb.WriteString(strings.Repeat(o.indentStr, depth))
	}
}

func (o *pyJSON) write(sb *strings.Builder, v any, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("nested deeper than %d levels", MaxDepth)
	}
	switch x := v.(type) {
	case nil:
		sb.WriteString("null")
	case bool:
		if x {
			sb.WriteString("true")
		} else {
			sb.WriteString("false")
		}
	case string:
		writePyString(sb, x, o.ascii)
	case json.Number: // an int beyond int64, as the request wrote it
		sb.WriteString(string(x))
	case int:
		sb.WriteString(strconv.Itoa(x))
	case int64:
		sb.WriteString(strconv.FormatInt(x, 10))
	case float64:
		sb.WriteString(pyFloat(x))
	case *exec.Value:
		if x == nil || x.IsNil() {
			sb.WriteString("null")
			return nil
		}
		return o.write(sb, x.Interface(), depth)
	case exec.Dict:
		return o.write(sb, &x, depth)
	case *exec.Dict: // a {...} literal in the template, in its written order
		keys, vals := dictPairs(x)
		return o.writeObject(sb, keys, vals, depth)
	case []any:
		return o.writeArray(sb, len(x), func(i int) any { return x[i] }, depth)
	case pyTuple:
		return o.writeArray(sb, len(x), func(i int) any { return x[i] }, depth)
	case map[string]any:
		return o.writeObject(sb, keysInOrder(x), x, depth)
	default:
		// values gonja built itself ([]*exec.Value lists, typed slices and maps, other numbers)
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Pointer:
			if rv.IsNil() {
				sb.WriteString("null")
				return nil
			}
			return o.write(sb, rv.Elem().Interface(), depth)
		case reflect.Slice, reflect.Array:
			return o.writeArray(sb, rv.Len(), func(i int) any { return rv.Index(i).Interface() }, depth)
		case reflect.Map:
			if rv.Type().Key().Kind() != reflect.String {
				return fmt.Errorf("%T: keys must be strings", v)
			}
			m := make(map[string]any, rv.Len())
			for it := rv.MapRange(); it.Next(); {
				m[it.Key().String()] = it.Value().Interface()
			}
			return o.writeObject(sb, keysInOrder(m), m, depth)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			sb.WriteString(strconv.FormatInt(rv.Int(), 10))
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			sb.WriteString(strconv.FormatUint(rv.Uint(), 10))
		case reflect.Float32, reflect.Float64:
			sb.WriteString(pyFloat(rv.Float()))
		case reflect.String:
			writePyString(sb, rv.String(), o.ascii)
		case reflect.Bool:
			return o.write(sb, rv.Bool(), depth)
		default:
			return fmt.Errorf("%T is not JSON serializable", v)
		}
	}
	return nil
}

func (o *pyJSON) writeArray(sb *strings.Builder, n int, at func(int) any, depth int) error {
	if n == 0 {
		sb.WriteString("[]")
		return nil
	}
	sb.WriteByte('[')
	for i := range n {
		if i > 0 {
			sb.WriteString(o.itemSep)
		}
		o.newline(sb, depth+1)
		if err := o.write(sb, at(i), depth+1); err != nil {
			return err
		}
	}
	o.newline(sb, depth)
	sb.WriteByte(']')
	return nil
}

func (o *pyJSON) writeObject(sb *strings.Builder, keys []string, m map[string]any, depth int) error {
	if len(keys) == 0 {
		sb.WriteString("{}")
		return nil
	}
	if o.sortKeys {
		keys = slices.Clone(keys)
		sort.Strings(keys) // Python sorts str keys by code point, as Go sorts UTF-8 bytes
	}
	sb.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			sb.WriteString(o.itemSep)
		}
		o.newline(sb, depth+1)
		writePyString(sb, k, o.ascii)
		sb.WriteString(o.keySep)
		if err := o.write(sb, m[k], depth+1); err != nil {
			return err
		}
	}
	o.newline(sb, depth)
	sb.WriteByte('}')
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

// orderOf returns m's keys in the order DecodeJSON recorded, as Python keeps a dict's:
// keys since deleted are skipped and keys added since (a server adding reasoning_content
// or empty arguments) follow, as Python appends them (sorted among themselves, having no
// recorded order). nil when nothing was recorded for m.
func orderOf(m map[string]any) []string {
	ko, ok := keyOrder.Load(uintptr(reflect.ValueOf(m).UnsafePointer()))
	if !ok {
		return nil
	}
	recorded := ko.([]string)
	keys := make([]string, 0, len(m))
	seen := make(map[string]bool, len(recorded))
	for _, k := range recorded {
		if _, ok := m[k]; ok && !seen[k] {
			keys, seen[k] = append(keys, k), true
		}
	}
	if len(keys) == len(m) {
		return keys
	}
	var added []string
	for k := range m {
		if !seen[k] {
			added = append(added, k)
		}
	}
	sort.Strings(added)
	return append(keys, added...)
}

// writePyString quotes like Python's json.dumps: with ascii (ensure_ascii=True) everything
// past ASCII as \uXXXX, in surrogate pairs beyond the BMP.
func writePyString(sb *strings.Builder, s string, ascii bool) {
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
			switch {
			case r < 0x20:
				fmt.Fprintf(sb, `\u%04x`, r)
			case ascii && r > 0xffff:
				hi, lo := utf16.EncodeRune(r)
				fmt.Fprintf(sb, `\u%04x\u%04x`, hi, lo)
			case ascii && r > 0x7e:
				fmt.Fprintf(sb, `\u%04x`, r)
			default:
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
	o := pyJSON{itemSep: ", ", keySep: ": "}
	if err := o.write(&sb, v, 0); err != nil {
		return "", err
	}
	return sb.String(), nil
}

// firstInvalid is the offset of src's first byte that is not part of valid UTF-8.
func firstInvalid(src string) int {
	for i, r := range src {
		if r == utf8.RuneError {
			if _, w := utf8.DecodeRuneInString(src[i:]); w == 1 {
				return i
			}
		}
	}
	return len(src)
}

// ContinueFinal cuts a rendered chat right after its final message's content, as
// transformers' apply_chat_template does with continue_final_message: the model then goes on
// writing that message (a prefilled answer) instead of closing it. final is that content.
func ContinueFinal(rendered, final string) (string, error) {
	stripped := strings.TrimFunc(final, pyIsSpace)
	loc := strings.LastIndex(rendered, stripped)
	if loc < 0 {
		return "", errors.New("continue_final_message: the final message does not appear in the rendered chat (the template changes it); end with a message the template keeps as it is")
	}
	keep := len(strings.TrimLeftFunc(final, pyIsSpace))
	if loc+keep > len(rendered) || rendered[loc:loc+keep] != final {
		// the template trimmed the message's trailing space: continue from its last character
		keep = len(stripped)
	}
	return rendered[:loc+keep], nil
}
