package jsonschema

import (
	"net"
	"net/mail"
	"regexp"
	"time"

	"bytes"
	"encoding/json"
	"fmt"
	"github.com/strata-ai/strata/internal/regexmode"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

var testSchemas = map[string]string{
	"pydantic": `{
		"$defs": {
			"Color": {"enum": ["red", "green", "blue"], "title": "Color", "type": "string"},
			"Point": {"properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"], "title": "Point", "type": "object"}
		},
		"properties": {
			"name": {"title": "Name", "type": "string", "minLength": 1, "maxLength": 12},
			"age": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null},
			"color": {"$ref": "#/$defs/Color"},
			"tags": {"items": {"type": "string", "maxLength": 5}, "type": "array", "maxItems": 3},
			"path": {"items": {"$ref": "#/$defs/Point"}, "type": "array", "minItems": 1},
			"ok": {"type": "boolean"},
			"extra": {"type": "object"},
			"kind": {"const": "v1"}
		},
		"required": ["name", "color", "path", "kind"],
		"title": "Thing", "type": "object"
	}`,
	"nested-arrays": `{"type": "array", "items": {"type": "array", "items": {"type": ["integer", "string"]}, "maxItems": 4}, "minItems": 2, "maxItems": 3}`,
	"root-number":   `{"type": "number"}`,
	"tuples": `{"$defs": {"P": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
		"type": "object", "properties": {
		"pair": {"type": "array", "prefixItems": [{"type": "string", "maxLength": 3}, {"type": "integer"}], "minItems": 2, "maxItems": 2},
		"head": {"type": "array", "prefixItems": [{"type": "boolean"}], "items": {"type": "null"}, "maxItems": 3},
		"only": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "integer"}], "items": false},
		"wrapped": {"allOf": [{"$ref": "#/$defs/P"}], "description": "Pydantic v1 style"}
	}, "required": ["pair", "only", "wrapped"]}`,
	"root-enum":    `{"enum": [1, 12, 123, "a b", "a", null, {"k": [1, true]}]}`,
	"all-optional": `{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": ["number", "null"]}}}`,
	"patterns": `{"type": "object", "properties": {
		"code": {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"},
		"note": {"type": "string", "pattern": "é|\"|\\\\n|\\u4e2d|x\\u0001"},
		"when": {"type": "string", "format": "date-time"},
		"day": {"type": "string", "format": "date"},
		"at": {"type": "string", "format": "time"},
		"id": {"type": "string", "format": "uuid"},
		"mail": {"type": "string", "format": "email"},
		"ip": {"type": "string", "format": "ipv4"}
	}, "required": ["code", "note", "when"]}`,
	"unicode": `{"type": "object", "properties": {"ключ": {"type": "string", "minLength": 2, "maxLength": 3}, "<&>": {"type": "null"}}, "required": ["ключ", "<&>"]}`,
}

// validate checks v (decoded with UseNumber) against schema s (decoded the same way) as JSON
// Schema defines the keywords Compile supports: the reference the automaton is tested against.
func validate(root, s map[string]any, v any) error {
	if ref, ok := s["$ref"].(string); ok {
		parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		return validate(root, root[parts[0]].(map[string]any)[parts[1]].(map[string]any), v)
	}
	if c, ok := s["const"]; ok && !jsonEqual(c, v) {
		return fmt.Errorf("%v is not the const %v", v, c)
	}
	if e, ok := s["enum"].([]any); ok {
		found := false
		for _, x := range e {
			found = found || jsonEqual(x, v)
		}
		if !found {
			return fmt.Errorf("%v is not in the enum", v)
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, a := range all {
			if err := validate(root, a.(map[string]any), v); err != nil {
				return err
			}
		}
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		if alts, ok := s[k].([]any); ok {
			matched := 0
			for _, a := range alts {
				if validate(root, a.(map[string]any), v) == nil {
					matched++
				}
			}
			if matched == 0 || k == "oneOf" && matched > 1 {
				return fmt.Errorf("%v matches %d of %s", v, matched, k)
			}
		}
	}
	if t, ok := s["type"]; ok {
		types := []any{t}
		if ts, ok := t.([]any); ok {
			types = ts
		}
		okType := false
		for _, tt := range types {
			okType = okType || refHasType(tt.(string), v)
		}
		if !okType {
			return fmt.Errorf("%v is not of type %v", v, t)
		}
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for k, pv := range v {
			if ps, ok := props[k]; ok {
				if err := validate(root, ps.(map[string]any), pv); err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
			}
		}
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := v[r.(string)]; !ok {
					return fmt.Errorf("%q is missing", r)
				}
			}
		}
	case json.Number:
		f, _ := v.Float64()
		for k, bad := range map[string]func(b float64) bool{
			"minimum": func(b float64) bool { return f < b }, "maximum": func(b float64) bool { return f > b },
			"exclusiveMinimum": func(b float64) bool { return f <= b }, "exclusiveMaximum": func(b float64) bool { return f >= b },
		} {
			if bn, ok := s[k].(json.Number); ok {
				if b, _ := bn.Float64(); bad(b) {
					return fmt.Errorf("%v breaks %s %v", v, k, b)
				}
			}
		}
	case []any:
		prefix, _ := s["prefixItems"].([]any)
		for i, x := range v {
			sub, ok := s["items"].(map[string]any)
			if i < len(prefix) {
				sub, ok = prefix[i].(map[string]any), true
			} else if s["items"] == false {
				return fmt.Errorf("item %d after the prefix, with items false", i)
			}
			if ok {
				if err := validate(root, sub, x); err != nil {
					return fmt.Errorf("item %d: %w", i, err)
				}
			}
		}
		if m, ok := s["minItems"].(json.Number); ok && int64(len(v)) < must(m.Int64()) {
			return fmt.Errorf("%d items, under minItems", len(v))
		}
		if m, ok := s["maxItems"].(json.Number); ok && int64(len(v)) > must(m.Int64()) {
			return fmt.Errorf("%d items, over maxItems", len(v))
		}
	case string:
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(refEscape.ReplaceAllString(p, `\x{$1}`)).MatchString(v) {
			return fmt.Errorf("%q does not match the pattern %s", v, p)
		}
		if f, ok := s["format"].(string); ok && !validFormat(f, v) {
			return fmt.Errorf("%q is not a %s", v, f)
		}
		n := int64(utf8.RuneCountInString(v))
		if m, ok := s["minLength"].(json.Number); ok && n < must(m.Int64()) {
			return fmt.Errorf("%q under minLength", v)
		}
		if m, ok := s["maxLength"].(json.Number); ok && n > must(m.Int64()) {
			return fmt.Errorf("%q over maxLength", v)
		}
	}
	return nil
}

// refEscape is ECMA's \uXXXX, for the reference's RE2 (the test patterns have no \\u).
var refEscape = regexp.MustCompile(`\\u([0-9a-fA-F]{4})`)

// validFormat checks v by the standard library's own parsers.
func validFormat(f, v string) bool {
	var err error
	switch f {
	case "date":
		_, err = time.Parse(time.DateOnly, v)
	case "time":
		_, err = time.Parse("15:04:05.999999999Z07:00", v)
	case "date-time":
		_, err = time.Parse(time.RFC3339Nano, v)
	case "uuid":
		return len(v) == 36 && regexp.MustCompile(`^[0-9a-fA-F-]+$`).MatchString(v) && v[8] == '-' && v[13] == '-' && v[18] == '-' && v[23] == '-'
	case "email":
		var a *mail.Address
		a, err = mail.ParseAddress(v)
		return err == nil && a.Address == v
	case "ipv4":
		ip := net.ParseIP(v)
		return ip != nil && ip.To4() != nil && strings.Count(v, ".") == 3
	default:
		return false
	}
	return err == nil
}

func must(i int64, err error) int64 {
	if err != nil {
		panic(err)
	}
	return i
}

func refHasType(t string, v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return t == "object"
	case []any:
		return t == "array"
	case string:
		return t == "string"
	case bool:
		return t == "boolean"
	case nil:
		return t == "null"
	case json.Number:
		if t == "number" {
			return true
		}
		_, err := v.Int64()
		return t == "integer" && err == nil
	}
	return false
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	if bytes.Equal(x, y) {
		return true
	}
	// numbers: 1 and 1.0 are equal in JSON Schema
	if na, ok := a.(json.Number); ok {
		if nb, ok := b.(json.Number); ok {
			fa, _ := na.Float64()
			fb, _ := nb.Float64()
			return fa == fb
		}
	}
	return false
}

func decodeAny(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("more after the value")
	}
	return v, nil
}

// gen writes a random value that node i of s accepts, in the form a State generates.
func gen(r *rand.Rand, s *Schema, i int, b *bytes.Buffer) {
	ws := func() {
		for range r.IntN(3) {
			b.WriteByte(" \n\t"[r.IntN(3)])
		}
	}
	n := &s.nodes[i]
	switch n.kind {
	case kObject:
		b.WriteByte('{')
		ws()
		first := true
		for j, p := range n.props {
			if n.required&(1<<j) == 0 && r.IntN(2) == 0 {
				continue
			}
			if !first {
				b.WriteByte(',')
				ws()
			}
			first = false
			b.Write(p.key)
			ws()
			b.WriteByte(':')
			ws()
			gen(r, s, p.node, b)
			ws()
		}
		b.WriteByte('}')
	case kAnyObject:
		b.WriteString([]string{`{}`, `{"a": [1, {"b": null}], "c": "d"}`, `{ "x" : -0.5e3 }`}[r.IntN(3)])
	case kArray:
		hi := n.minItems + 3
		if n.maxItems >= 0 {
			hi = min(hi, n.maxItems)
		}
		k := n.minItems + r.IntN(hi-n.minItems+1)
		b.WriteByte('[')
		ws()
		for j := range k {
			if j > 0 {
				b.WriteByte(',')
				ws()
			}
			if j < len(n.prefix) {
				gen(r, s, n.prefix[j], b)
			} else {
				gen(r, s, n.items, b)
			}
			ws()
		}
		b.WriteByte(']')
	case kString:
		if n.re != nil {
			pool := patternPool[n.re]
			if len(pool) < 40 { // walks are slow: forty per pattern, reused
				pool = append(pool, genPattern(r, n.re))
				patternPool[n.re] = pool
			}
			b.Write(pool[r.IntN(len(pool))])
			return
		}
		hi := n.minLen + 4
		if n.maxLen >= 0 {
			hi = min(hi, n.maxLen)
		}
		k := n.minLen + r.IntN(hi-n.minLen+1)
		b.WriteByte('"')
		for range k {
			b.WriteString([]string{"a", "Z", " ", `\"`, `\\`, `\n`, `\u00e9`, "é", "中", "😀", `\ud83d\ude00`, "/", `\u4e2d`, `\uFFFD`, `\ud7ff`}[r.IntN(15)])
		}
		b.WriteByte('"')
	case kNumber, kInteger:
		if r.IntN(3) == 0 {
			b.WriteByte('-')
		}
		if r.IntN(4) == 0 {
			b.WriteByte('0')
		} else {
			fmt.Fprint(b, 1+r.IntN(9999))
		}
		if n.kind == kNumber && r.IntN(2) == 0 {
			fmt.Fprintf(b, ".%d", r.IntN(1000))
		}
		if n.kind == kNumber && r.IntN(3) == 0 {
			fmt.Fprintf(b, "e%s%d", []string{"", "+", "-"}[r.IntN(3)], r.IntN(20))
		}
	case kLiterals:
		b.Write(n.lits[r.IntN(len(n.lits))])
	case kRanged:
		for {
			st := n.re.Start()
			var digits []byte
			for range 12 {
				if st.Complete() && r.IntN(3) == 0 {
					break
				}
				var next []byte
				for _, c := range []byte("-0123456789.") {
					try := st
					if try.Feed(c) {
						next = append(next, c)
					}
				}
				if len(next) == 0 {
					break
				}
				c := next[r.IntN(len(next))]
				st.Feed(c)
				digits = append(digits, c)
			}
			if st.Complete() {
				b.Write(digits)
				return
			}
		}
	case kUnion:
		var alts []int
		for _, a := range n.alts {
			if a >= 0 {
				alts = append(alts, int(a))
			}
		}
		gen(r, s, alts[r.IntN(len(alts))], b)
	}
}

// patternPool holds genPattern's strings per pattern (tests run one at a time).
var patternPool = map[*regexmode.Regex][][]byte{}

// genPattern writes a JSON string whose content fully matches re: a random walk over the
// bytes re takes, until it matches, encoded by encoding/json (which escapes quotes, control
// characters and <, >, & as \u sequences, so escapes are exercised too).
func genPattern(r *rand.Rand, re *regexmode.Regex) []byte {
	for {
		st := re.Start()
		var raw []byte
		for range 300 {
			if st.Complete() && r.IntN(3) == 0 {
				break
			}
			var next []byte
			for x := range 0xF0 { // a pattern's strings hold no character beyond the BMP
				try := st
				if try.Feed(byte(x)) {
					next = append(next, byte(x))
				}
			}
			if len(next) == 0 {
				break
			}
			c := next[r.IntN(len(next))]
			st.Feed(c)
			raw = append(raw, c)
		}
		if st.Complete() && utf8.Valid(raw) {
			out, _ := json.Marshal(string(raw))
			return out
		}
	}
}

// TestGeneratedValuesAccepted: values in the generated form are accepted byte by byte, end
// complete, and are valid against the schema by the reference validator.
func TestGeneratedValuesAccepted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for name, src := range testSchemas {
		t.Run(name, func(t *testing.T) {
			s, err := Compile([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := decodeAny([]byte(src))
			for range 400 {
				var b bytes.Buffer
				gen(r, s, s.root, &b)
				st := s.Start()
				for i, c := range b.Bytes() {
					if !st.Feed(c) {
						t.Fatalf("refused byte %d (%q) of %s", i, c, b.String())
					}
				}
				if !st.Complete() {
					t.Fatalf("%s: not complete at its end", b.String())
				}
				v, err := decodeAny(b.Bytes())
				if err != nil {
					t.Fatalf("%s: not JSON: %v", b.String(), err)
				}
				if err := validate(raw.(map[string]any), raw.(map[string]any), v); err != nil {
					t.Fatalf("%s: the reference refuses it: %v", b.String(), err)
				}
			}
		})
	}
}

// TestAcceptedIsValid mutates generated values a byte at a time: whatever the State accepts
// as complete must be JSON that the schema accepts, and every prefix it accepts must still
// have a completion the State accepts (it never leads the model into a dead end).
func TestAcceptedIsValid(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte(`{}[]":,0123456789-+.eE tfnrulsax\é` + "\n")
	for name, src := range testSchemas {
		t.Run(name, func(t *testing.T) {
			s, err := Compile([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := decodeAny([]byte(src))
			accepted := 0
			for range 3000 {
				var b bytes.Buffer
				gen(r, s, s.root, &b)
				doc := b.Bytes()
				for range 1 + r.IntN(3) {
					p := r.IntN(len(doc) + 1)
					switch r.IntN(3) {
					case 0:
						doc = append(doc[:p:p], append([]byte{alphabet[r.IntN(len(alphabet))]}, doc[p:]...)...)
					case 1:
						if p < len(doc) {
							doc = append(doc[:p:p], doc[p+1:]...)
						}
					case 2:
						if p < len(doc) {
							doc[p] = alphabet[r.IntN(len(alphabet))]
						}
					}
				}
				st := s.Start()
				if !st.FeedAll(doc) || !st.Complete() {
					continue
				}
				accepted++
				v, err := decodeAny(doc)
				if err != nil {
					t.Fatalf("accepted %q, which is not JSON: %v", doc, err)
				}
				if err := validate(raw.(map[string]any), raw.(map[string]any), v); err != nil {
					t.Fatalf("accepted %q, which the schema refuses: %v", doc, err)
				}
			}
			if accepted == 0 {
				t.Fatal("no mutation was accepted: the test checks nothing")
			}
		})
	}
}

// TestNoDeadEnds: from every state a generated value passes through, some byte continues,
// unless the value may end there: a model held to the schema always has a way on.
func TestNoDeadEnds(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for name, src := range testSchemas {
		s, err := Compile([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			var b bytes.Buffer
			gen(r, s, s.root, &b)
			st := s.Start()
			for _, c := range b.Bytes() {
				if !st.Complete() {
					ok := false
					for x := range 256 {
						try := st
						if try.Feed(byte(x)) {
							ok = true
							break
						}
					}
					if !ok {
						t.Fatalf("%s: no byte continues after a prefix of %s", name, b.String())
					}
				}
				st.Feed(c)
			}
		}
	}
}

// TestRandomWalksNeverStick walks from the start on random bytes the State accepts: at every
// step some byte must continue the text, unless the value may end there, so a model held to
// the schema can never be left with no token to draw.
func TestRandomWalksNeverStick(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for name, src := range testSchemas {
		s, err := Compile([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		for range 300 {
			st := s.Start()
			var text []byte
			for range 300 {
				var next []byte
				for x := range 256 {
					try := st
					if try.Feed(byte(x)) {
						next = append(next, byte(x))
					}
				}
				if len(next) == 0 {
					if !st.Complete() {
						t.Fatalf("%s: no byte continues %q", name, text)
					}
					break
				}
				c := next[r.IntN(len(next))]
				st.Feed(c)
				text = append(text, c)
			}
		}
	}
}

// expectTexts compiles schema and checks that it takes each of ok as a complete value and
// none of bad.
func expectTexts(t *testing.T, schema string, ok, bad []string) {
	t.Helper()
	s, err := Compile([]byte(schema))
	if err != nil {
		t.Errorf("Compile(%s): %v", schema, err)
		return
	}
	for _, text := range ok {
		if st := s.Start(); !st.FeedAll([]byte(text)) || !st.Complete() {
			t.Errorf("%s refused %s", schema, text)
		}
	}
	for _, text := range bad {
		if st := s.Start(); st.FeedAll([]byte(text)) && st.Complete() {
			t.Errorf("%s accepted %s", schema, text)
		}
	}
}

// TestBoundsExact: bounds are the decimals JSON wrote, not the nearest float64, and wide
// ranges compile.
func TestBoundsExact(t *testing.T) {
	for _, c := range []struct {
		schema  string
		ok, bad []string
	}{
		{`{"type": "integer", "maximum": 2.99999999999999999}`, []string{"2"}, []string{"3"}},
		{`{"type": "integer", "minimum": 1.00000000000000001}`, []string{"2"}, []string{"1"}},
		{`{"type": "integer", "exclusiveMinimum": 0.99999999999999999}`, []string{"1"}, []string{"0"}},
		{`{"type": "integer", "exclusiveMaximum": 3.00000000000000001}`, []string{"3"}, []string{"4"}},
		{`{"type": "integer", "minimum": -2147483648, "maximum": 2147483647}`, []string{"-2147483648", "2147483647", "0"}, []string{"2147483648", "-2147483649"}},
		{`{"type": "integer", "minimum": -1e15, "maximum": 1e15}`, []string{"-1000000000000000", "999999999999999"}, []string{"1000000000000001"}},
		{`{"type": "number", "minimum": -9999999, "maximum": 9999999}`, []string{"-9999999", "1234.5"}, []string{"9999999.5"}},
		{`{"type": "integer", "minimum": 1e9}`, []string{"1000000000", "12345678901"}, []string{"999999999"}},
		{`{"anyOf": [{"type": "integer", "minimum": 0}, {"type": "integer", "maximum": -1}]}`, []string{"5", "-5"}, []string{"-"}},
	} {
		expectTexts(t, c.schema, c.ok, c.bad)
	}
	if _, err := Compile([]byte(`{"type": "number", "maximum": 0.99999999999999999}`)); err == nil || !strings.Contains(err.Error(), "whole-number") {
		t.Errorf("a fractional bound on a number: %v", err)
	}
}

func TestRootNumberAndLiterals(t *testing.T) {
	for _, c := range []struct {
		schema, text   string
		complete, done bool
	}{
		{`{"type": "number"}`, "12", true, false},
		{`{"type": "number"}`, "12.", false, false},
		{`{"type": "integer"}`, "-0", true, true},
		{`{"type": "integer"}`, "5", true, false},
		{`{"type": "number"}`, "0", true, false},
		{`{"type": "integer", "minimum": 0, "maximum": 5}`, "5", true, true},
		{`{"type": "integer", "minimum": 0, "maximum": 15}`, "1", true, false},
		{`{"type": "integer", "minimum": 10, "maximum": 15}`, "1", false, false},
		{`{"enum": [1, 12]}`, "1", true, false},
		{`{"enum": [1, 12]}`, "12", true, true},
		{`{"enum": ["a", "ab"]}`, `"a"`, true, true},
		{`{"type": "boolean"}`, "fals", false, false},
		{`{"type": "boolean"}`, "false", true, true},
		{`{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}`, `{"a": 5}`, true, true},
		{`{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}`, `{"a": 5`, false, false},
	} {
		s, err := Compile([]byte(c.schema))
		if err != nil {
			t.Fatal(err)
		}
		st := s.Start()
		if !st.FeedAll([]byte(c.text)) {
			t.Fatalf("%s refused %q", c.schema, c.text)
		}
		if st.Complete() != c.complete || st.Done() != c.done {
			t.Fatalf("%s after %q: complete %v done %v, want %v %v", c.schema, c.text, st.Complete(), st.Done(), c.complete, c.done)
		}
	}
	for _, c := range []struct{ schema, text string }{
		{`{"type": "integer"}`, "1.5"},
		{`{"type": "integer"}`, "1e3"},
		{`{"type": "number"}`, "01"},
		{`{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}`, `{"b": 1, "a": 2}`},
		{`{"type": "object", "properties": {"a": {"type": "integer"}}}`, `{"z": 1}`},
		{`{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}`, `{}`},
		{`{"type": "array", "items": {"type": "null"}, "maxItems": 1}`, `[null, null]`},
		{`{"type": "array", "items": {"type": "null"}, "minItems": 2}`, `[null]`},
		{`{"type": "string", "maxLength": 2}`, `"abc"`},
		{`{"type": "string", "minLength": 2}`, `"😀"`},
		{`{"type": "string", "minLength": 2}`, `"\ud83d\ude00"`},
		{`{"type": "string"}`, "\"a\nb\""},
		{`{"type": "number"}`, "1 "},
		{`{"type": "integer", "minimum": 10}`, "9"},
		{`{"type": "integer", "maximum": -1}`, "0"},
		{`{"type": "integer", "exclusiveMaximum": 3}`, "3"},
	} {
		s, err := Compile([]byte(c.schema))
		if err != nil {
			t.Fatal(err)
		}
		st := s.Start()
		if st.FeedAll([]byte(c.text)) && st.Complete() {
			t.Fatalf("%s accepted %q", c.schema, c.text)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct{ schema, want string }{
		{`{"type": "string", "format": "hostname"}`, `"hostname" is not supported`},
		{`{"type": "string", "pattern": "a(?=b)"}`, "(? groups"},
		{`{"type": "string", "pattern": "x)|(?:.*"}`, "does not parse"},
		{`{"type": "string", "pattern": "[[:digit:]]"}`, "POSIX"},
		{`{"type": "string", "pattern": "[^]a]"}`, "[^]"},
		{`{"type": "string", "pattern": "a\\z"}`, "means something else"},
		{`{"type": "string", "pattern": "\\pL"}`, "means something else"},
		{`{"type": "string", "pattern": "(?i)a"}`, "(? groups"},
		{`{"type": "string", "pattern": "😀"}`, "Basic Multilingual Plane"},
		{`{"type": "string", "pattern": "\\ud83d"}`, "surrogate"},
		{`{"type": "string", "pattern": "a", "maxLength": 3}`, "beside pattern"},
		{`{"type": "string", "pattern": "a", "format": "date"}`, "pattern beside format"},
		{`{"type": "integer", "format": "int32"}`, "applies to string"},
		{`{"type": "number", "minimum": 0.5}`, "whole-number bounds"},
		{`{"type": "number", "exclusiveMinimum": 0}`, "exclusive bounds on numbers"},
		{`{"type": "integer", "minimum": 5, "maximum": 4}`, "no integer lies between"},
		{`{"type": "integer", "minimum": 1e30}`, "within ±1e15"},
		{`{"type": "integer", "multipleOf": 2}`, `"multipleOf" is not supported`},
		{`{"properties": {"a": {"type": "string"}}}`, `without "type"`},
		{`{"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}}}}`, "recursive"},
		{`{"anyOf": [{"type": "integer"}, {"type": "number"}]}`, "two alternatives"},
		{`{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}`, `"b" is not among`},
		{`{"type": "array"}`, `without "items"`},
		{`{"type": "array", "prefixItems": [{"type": "null"}]}`, `without "items"`},
		{`{"allOf": [{"type": "null"}, {"type": "null"}]}`, "allOf of one"},
		{`{"allOf": [{"type": "null"}], "type": "null"}`, `beside "allOf"`},
		{`{"type": "array", "prefixItems": [{"type": "null"}], "items": false, "minItems": 2}`, "below minItems"},
		{`{"type": "array", "items": {"type": "null"}, "minItems": 3, "maxItems": 2}`, "below minItems"},
		{`{"type": "strin"}`, `unknown type "strin"`},
		{`{"$ref": "#/$defs/Nope"}`, "does not name"},
		{`[1]`, "not a JSON object"},
		{`{"type": "string"`, "not JSON"},
		{`{"type": "string", "maxLength": -1}`, "maxLength"},
		{`{"type": "number", "items": {"type": "null"}}`, "applies to array"},
		{strings.Repeat(`{"type": "array", "items": `, 17) + `{"type": "null"}` + strings.Repeat(`}`, 17), "nests 18"},
		{strings.Repeat("[", 200) + strings.Repeat("]", 200), "deeper than 128"},
		{`{"type": "null"} garbage`, "followed by"},
		{`{"type": "null"}}`, "followed by"},
		{`{"type": []}`, "empty list of types"},
		{`{"type": "string", "const": 5}`, "not of type"},
		{`{"type": "integer", "enum": [1.5]}`, "not of type"},
		{`{"type": "string", "enum": ["abc"], "maxLength": 2}`, `"maxLength" beside "enum"`},
		{`{"const": "a", "enum": ["b"]}`, `beside`},
		{`{"type": "string", "anyOf": [{"type": "integer"}, {"type": "string"}]}`, `"type" beside "anyOf"`},
		{`{"anyOf": [{"type": "string"}], "oneOf": [{"type": "string"}]}`, `beside`},
		{`{"type": "object", "additionalProperties": {"type": "integer"}}`, "additionalProperties"},
		{`{"type": "object", "additionalProperties": false}`, "additionalProperties"},
		{`{"type": "object", "propertyNames": {"maxLength": 2}}`, "propertyNames"},
		{`{"type": "array", "items": {"type": "null"}, "uniqueItems": true}`, "uniqueItems"},
		{`{"type": ["string", "null"], "items": {"type": "null"}}`, "applies to array"},
		{`{"type": "string", "maxLength": 1.5}`, "whole number"},
	} {
		_, err := Compile([]byte(c.schema))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Compile(%s) = %v, want an error containing %q", c.schema, err, c.want)
		}
	}
}

// TestCompileAccepts: schemas that are fine and must compile (forms OpenAI's strict mode and
// Pydantic write), and what they then accept.
func TestCompileAccepts(t *testing.T) {
	for _, c := range []struct{ schema, ok, bad string }{
		{`{"type": ["string", "null"], "maxLength": 2}`, `"ab"`, `"abc"`},
		{`{"type": ["array", "null"], "items": {"type": "integer"}, "maxItems": 1}`, `null`, `[1, 2]`},
		{`{"type": ["object", "null"], "properties": {"a": {"type": "integer"}}, "required": ["a"]}`, `{"a": 1}`, `{}`},
		{`{"type": "string", "minLength": 1.0}`, `"x"`, `""`},
		{`{"type": "array", "items": {"type": "null"}, "uniqueItems": false}`, `[null, null]`, `[1]`},
		{`{"$defs": {"a/b": {"type": "integer"}}, "$ref": "#/$defs/a~1b"}`, `5`, `"5"`},
		{`{"type": "object", "additionalProperties": true}`, `{"x": [1]}`, `[]`},
		{`{"type": "object", "properties": {"e": {"type": "object"}}, "required": ["e"]}`, `{"e": {"a": "中"}}`, "{\"e\": {\"a\": \"\xff\"}}"},
		{`{"type": "string"}`, `"\u4e2d\uac00\ufffd\ud83d\ude00"`, `"\udc00"`},
		{`{"type": "integer", "enum": [1, 2.0]}`, `2.0`, `3`},
	} {
		expectTexts(t, c.schema, []string{c.ok}, []string{c.bad})
	}
}

// TestECMAPatterns: a pattern means what ECMA-262 (without the u flag) says, where RE2 would
// read it otherwise; the expectations are the ECMA specification's.
func TestECMAPatterns(t *testing.T) {
	for _, c := range []struct {
		pattern string
		ok, bad []string
	}{
		{`^a.b$`, []string{"a b", "aéb"}, []string{"a\rb", "a\nb", "a\u2028b", "a\u2029b"}},
		{`^\s$`, []string{" ", "\u00a0", "\ufeff", "\\u000b", "\u3000"}, []string{"a", "\u0085"}},
		{`^\S$`, []string{"a", "\u0085"}, []string{"\\u000b", "\u00a0", " "}},
		{`^[\s,]+$`, []string{" ,\u00a0"}, []string{"x"}},
		{`^\u0041\u0042$`, []string{"AB"}, []string{"A"}},
		{`^[A-Za-z\u00C0-\u00D6\u00D8-\u00F6]+$`, []string{"Àbé"}, []string{"×"}},
		{`^\\u0041$`, []string{`\\u0041`}, []string{"A"}},
		{`^$`, []string{""}, []string{"a"}},
		{`[.]`, []string{"x.y"}, []string{"xy"}},
		{`^\x41$`, []string{"A"}, []string{"x41"}},
		{`^.$`, []string{"é", "中"}, []string{"😀", `\ud83d\ude00`}}, // one UTF-16 unit in ECMA
	} {
		quote := func(texts []string) []string {
			var q []string
			for _, x := range texts {
				q = append(q, `"`+x+`"`)
			}
			return q
		}
		expectTexts(t, fmt.Sprintf(`{"type": "string", "pattern": %q}`, c.pattern), quote(c.ok), quote(c.bad))
	}
}

// TestSharedRefs: a $ref used many times is compiled once, so a small schema whose
// definitions each use the next one eight times compiles at once into a few parts.
func TestSharedRefs(t *testing.T) {
	defs := map[string]any{"L7": map[string]any{"type": "integer"}}
	for l := 6; l >= 0; l-- {
		props := map[string]any{}
		for p := range 8 {
			props[fmt.Sprint("p", p)] = map[string]any{"$ref": fmt.Sprintf("#/$defs/L%d", l+1)}
		}
		defs[fmt.Sprint("L", l)] = map[string]any{"type": "object", "properties": props}
	}
	raw, _ := json.Marshal(map[string]any{"$defs": defs, "$ref": "#/$defs/L0"})
	s, err := Compile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.nodes) > 20 {
		t.Fatalf("%d parts for 8 definitions", len(s.nodes))
	}
}

// BenchmarkVocabularyMask is one step of masking a 150k-token vocabulary inside a string
// value, where most tokens are allowed.
func BenchmarkVocabularyMask(b *testing.B) {
	s, err := Compile([]byte(testSchemas["pydantic"]))
	if err != nil {
		b.Fatal(err)
	}
	st := s.Start()
	st.FeedAll([]byte(`{"name": "ab`))
	r := rand.New(rand.NewPCG(1, 1))
	vocab := make([][]byte, 150000)
	for i := range vocab {
		t := make([]byte, 1+r.IntN(8))
		for j := range t {
			t[j] = byte(32 + r.IntN(95))
		}
		vocab[i] = t
	}
	for b.Loop() {
		n := 0
		for _, t := range vocab {
			try := st
			if try.FeedAll(t) {
				n++
			}
		}
	}
}

// TestCompact: a compact State takes the generated values with their whitespace removed, and
// refuses any whitespace between tokens (inside strings it is content).
func TestCompact(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for name, src := range testSchemas {
		s, err := Compile([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		for range 100 {
			var b bytes.Buffer
			gen(r, s, s.root, &b)
			var c bytes.Buffer
			if err := json.Compact(&c, b.Bytes()); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			st := s.StartCompact()
			if !st.FeedAll(c.Bytes()) || !st.Complete() {
				t.Fatalf("%s: compact refused %s", name, c.String())
			}
			// whitespace before the value, or after its first token
			for _, ws := range []string{" ", "\n"} {
				st := s.StartCompact()
				if st.FeedAll([]byte(ws)) {
					t.Fatalf("%s: compact took leading %q", name, ws)
				}
				if c.Bytes()[0] == '{' || c.Bytes()[0] == '[' {
					st := s.StartCompact()
					if st.FeedAll(append(c.Bytes()[:1:1], ws...)) {
						t.Fatalf("%s: compact took %q after %c", name, ws, c.Bytes()[0])
					}
				}
			}
		}
	}
}
