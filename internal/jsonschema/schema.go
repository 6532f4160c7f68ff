// Package jsonschema keeps generated text a JSON value that a JSON schema accepts, byte by
// byte: vLLM's response_format {"type": "json_schema"} and guided_json. Compile takes a
// schema; a State says whether a byte can extend the text toward a value the schema
// accepts, so a sampler can mask every token whose bytes cannot.
//
// What is generated is a subset of what the schema accepts, the one structured-output
// engines generate: an object's properties in the schema's order, only the declared ones
// (required ones always, optional ones or not), enum and const values in compact JSON.
// Keywords that constrain values in ways a State does not follow (multipleOf, fractional
// bounds on numbers, most formats, ...) are refused by Compile, by name, rather than ignored:
// the output would break them.
package jsonschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"strings"

	"github.com/strata-ai/strata/internal/regexmode"
)

// MaxDepth is the deepest nesting of schema objects and arrays a State follows.
const MaxDepth = 16

// MaxSpaces is the longest run of whitespace between JSON tokens a State accepts: a model
// that keeps choosing whitespace would otherwise never finish.
const MaxSpaces = 4

// maxProps and maxLiterals bound an object's properties and an enum's values: a State keeps
// its candidates in a 64-bit mask.
const maxProps, maxLiterals = 64, 64

type kind uint8

const (
	kObject    kind = iota // declared properties in order
	kAnyObject             // any JSON object (type object without properties)
	kArray
	kString
	kNumber
	kInteger
	kLiterals // enum, const, boolean, null: one of a few JSON texts
	kRanged   // an integer between bounds, followed by its expression (re)
	kUnion    // alternatives told apart by their first byte
)

type prop struct {
	key  []byte // the JSON-encoded name, quotes included
	node int
}

type node struct {
	kind     kind
	props    []prop
	required uint64 // bit i: props[i] is required
	items    int    // array: the items' node (after the prefix), -1 for none
	prefix   []int  // array: the first items' nodes, in turn (prefixItems)
	minItems int
	maxItems int              // -1: no limit
	minLen   int              // string: characters
	maxLen   int              // -1: no limit
	re       *regexmode.Regex // string: its pattern or format, nil for any; ranged: its bounds
	lits     [][]byte
	alts     *[256]int16 // union: node by first byte, -1 none
}

// Schema is a compiled schema; it is read-only and may be shared by many States.
type Schema struct {
	nodes []node
	root  int
}

// annotations are keywords that describe without constraining.
var annotations = map[string]bool{
	"$schema": true, "$id": true, "$comment": true, "title": true, "description": true,
	"default": true, "examples": true, "deprecated": true, "readOnly": true, "writeOnly": true,
	"$defs": true, "definitions": true,
	// they apply only to properties a State never generates
	"additionalProperties": true, "patternProperties": true, "propertyNames": true,
	"unevaluatedProperties": true, "strict": true,
}

// obj is a JSON object that keeps its keys' order: properties are generated in it.
type obj struct {
	keys []string
	m    map[string]any
}

// compact writes v (from decode) as compact JSON, keys in order and without Go's HTML
// escaping, which a model would not write.
func compact(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case *obj:
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			compact(b, k)
			b.WriteByte(':')
			compact(b, v.m[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			compact(b, x)
		}
		b.WriteByte(']')
	case string:
		e := json.NewEncoder(b)
		e.SetEscapeHTML(false)
		e.Encode(v)
		b.Truncate(b.Len() - 1) // Encode's newline
	case json.Number:
		b.WriteString(v.String())
	case bool:
		fmt.Fprint(b, v)
	case nil:
		b.WriteString("null")
	}
}

func compactBytes(v any) []byte {
	var b bytes.Buffer
	compact(&b, v)
	return b.Bytes()
}

// maxNesting bounds the nesting of the schema's own JSON: a schema sent as a JSON string
// escapes the request decoder's limit, and decode recurses.
const maxNesting = 128

// decode reads one JSON value with objects as *obj and numbers as json.Number.
func decode(d *json.Decoder, depth int) (any, error) {
	if depth > maxNesting {
		return nil, fmt.Errorf("it nests deeper than %d levels", maxNesting)
	}
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t {
	case json.Delim('{'):
		o := &obj{m: map[string]any{}}
		for d.More() {
			kt, err := d.Token()
			if err != nil {
				return nil, err
			}
			k := kt.(string)
			v, err := decode(d, depth+1)
			if err != nil {
				return nil, err
			}
			if _, dup := o.m[k]; dup {
				return nil, fmt.Errorf("the key %q appears twice in one object", k)
			}
			o.keys = append(o.keys, k)
			o.m[k] = v
		}
		_, err := d.Token()
		return o, err
	case json.Delim('['):
		a := []any{}
		for d.More() {
			v, err := decode(d, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := d.Token()
		return a, err
	}
	return t, nil
}

type compiler struct {
	s        *Schema
	root     *obj
	visited  map[string]bool // $refs being expanded, to refuse recursion
	refs     map[string]int  // $refs compiled, shared by every use
	overflow bool
}

// maxNodes bounds a compiled schema (a State holds node numbers as int16).
const maxNodes = 1 << 14

// Compile checks a JSON schema and compiles it. Its errors say which keyword, at which
// path, is not supported.
func Compile(raw []byte) (*Schema, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	v, err := decode(d, 0)
	if err != nil {
		return nil, fmt.Errorf("the schema is not JSON: %w", err)
	}
	if rest := bytes.TrimSpace(raw[d.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf("the schema is followed by %q", string(rest[:min(len(rest), 20)]))
	}
	m, ok := v.(*obj)
	if !ok {
		return nil, fmt.Errorf("the schema is not a JSON object")
	}
	c := &compiler{s: &Schema{}, root: m, visited: map[string]bool{}, refs: map[string]int{}}
	root, err := c.node(m, "#")
	if err != nil {
		return nil, err
	}
	c.s.root = root
	if d := c.s.depth(root); d > MaxDepth {
		return nil, fmt.Errorf("the schema nests %d objects and arrays, at most %d are supported", d, MaxDepth)
	}
	return c.s, nil
}

var errTooBig = fmt.Errorf("the schema has more than %d parts", maxNodes)

// add appends n; past maxNodes it reports overflow, which node turns into errTooBig.
func (c *compiler) add(n node) int {
	if len(c.s.nodes) >= maxNodes {
		c.overflow = true
		return 0
	}
	c.s.nodes = append(c.s.nodes, n)
	return len(c.s.nodes) - 1
}

// typeKeywords are the keywords that apply to values of one type only.
var typeKeywords = map[string]string{
	"properties": "object", "required": "object",
	"items": "array", "minItems": "array", "maxItems": "array", "uniqueItems": "array", "prefixItems": "array",
	"minLength": "string", "maxLength": "string", "pattern": "string", "format": "string",
	"minimum": "integer", "maximum": "integer", "exclusiveMinimum": "integer", "exclusiveMaximum": "integer",
}

// formats are the string formats a State follows, as full matches of these expressions:
// each accepts a subset of what its RFC allows (date-time is RFC 3339's, with its offset;
// an email's local part is at most 63 characters and its domain labels 22).
var formats = map[string]string{
	"date":      date,
	"time":      clock,
	"date-time": date + "T" + clock,
	"uuid":      `[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`,
	"email":     `[A-Za-z0-9_%+-]{1,15}(\.[A-Za-z0-9_%+-]{1,15}){0,3}@[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?){1,4}`,
	"ipv4":      `((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)`,
}

// date is a calendar date with the days its month always has (February 28: a leap day
// needs the year's arithmetic); clock is RFC 3339's full-time, without leap seconds.
const (
	date  = `\d{4}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))`
	clock = `([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)`
)

// applies says keyword k constrains values of type t (the bounds apply to integers and to
// numbers).
func applies(k, t string) bool {
	want, ok := typeKeywords[k]
	return !ok || want == t || want == "integer" && t == "number"
}

// constraining are the keywords that restrict an object's other properties: harmless beside
// properties (a State generates no others), but they would be ignored on an object without.
var constraining = []string{"additionalProperties", "patternProperties", "propertyNames", "unevaluatedProperties"}

func (c *compiler) node(o *obj, path string) (int, error) {
	if c.overflow {
		return 0, errTooBig
	}
	m := o.m
	if ref, ok := m["$ref"]; ok {
		return c.ref(ref, o, path)
	}
	var structural []string // the keywords besides annotations
	for _, k := range o.keys {
		switch k {
		case "type", "properties", "required", "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "enum", "allOf",
			"const", "anyOf", "oneOf", "minLength", "maxLength", "pattern", "format",
			"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
			structural = append(structural, k)
		default:
			if !annotations[k] {
				return 0, fmt.Errorf("%s: the keyword %q is not supported (supported: type, properties, required, items, prefixItems, allOf of one schema, minItems, maxItems, enum, const, anyOf, oneOf, minLength, maxLength, pattern, format, minimum and maximum (on numbers whole and inclusive), $ref to $defs)", path, k)
			}
		}
	}
	if u, ok := m["uniqueItems"]; ok && u != false {
		return 0, fmt.Errorf("%s/uniqueItems: only false is supported", path)
	}
	// enum, const, anyOf and oneOf stand alone: beside other keywords (type aside, for
	// literals that all have it) a State would follow them and ignore the rest
	alone := func(k string, allowType bool) error {
		for _, other := range structural {
			if other != k && !(allowType && other == "type") {
				return fmt.Errorf("%s: %q beside %q is not supported: give one of them", path, other, k)
			}
		}
		return nil
	}
	if v, ok := m["const"]; ok {
		if err := alone("const", true); err != nil {
			return 0, err
		}
		return c.literals([]any{v}, m["type"], path+"/const")
	}
	if v, ok := m["enum"]; ok {
		if err := alone("enum", true); err != nil {
			return 0, err
		}
		vs, ok := v.([]any)
		if !ok || len(vs) == 0 {
			return 0, fmt.Errorf("%s/enum: want a non-empty array", path)
		}
		return c.literals(vs, m["type"], path+"/enum")
	}
	if v, ok := m["allOf"]; ok { // allOf of one schema: Pydantic wraps a $ref so
		if err := alone("allOf", false); err != nil {
			return 0, err
		}
		vs, ok := v.([]any)
		if !ok || len(vs) != 1 {
			return 0, fmt.Errorf("%s/allOf: only an allOf of one schema is supported", path)
		}
		am, ok := vs[0].(*obj)
		if !ok {
			return 0, fmt.Errorf("%s/allOf/0: want a schema object", path)
		}
		return c.node(am, path+"/allOf/0")
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		if v, ok := m[key]; ok {
			if err := alone(key, false); err != nil {
				return 0, err
			}
			vs, ok := v.([]any)
			if !ok || len(vs) == 0 {
				return 0, fmt.Errorf("%s/%s: want a non-empty array of schemas", path, key)
			}
			var alts []int
			for i, a := range vs {
				am, ok := a.(*obj)
				if !ok {
					return 0, fmt.Errorf("%s/%s/%d: want a schema object", path, key, i)
				}
				n, err := c.node(am, fmt.Sprintf("%s/%s/%d", path, key, i))
				if err != nil {
					return 0, err
				}
				alts = append(alts, n)
			}
			return c.union(alts, path+"/"+key)
		}
	}
	t, ok := m["type"]
	if !ok {
		return 0, fmt.Errorf("%s: a schema without \"type\" (or enum, const, anyOf) accepts any value, which is not supported: give its type", path)
	}
	if ts, ok := t.([]any); ok { // ["string", "null"]: each type with its own keywords
		if len(ts) == 0 {
			return 0, fmt.Errorf("%s/type: an empty list of types accepts nothing", path)
		}
		names := map[string]bool{}
		for i, tv := range ts {
			s, ok := tv.(string)
			if !ok {
				return 0, fmt.Errorf("%s/type/%d: want a type name", path, i)
			}
			names[s] = true
		}
		for _, k := range structural {
			if want, ok := typeKeywords[k]; ok && !names[want] && !(want == "integer" && names["number"]) {
				return 0, fmt.Errorf("%s/%s: applies to %s, which is not among the types %v", path, k, want, ts)
			}
		}
		var alts []int
		for _, tv := range ts {
			tname := tv.(string)
			sub := &obj{m: map[string]any{}}
			for _, k := range o.keys {
				if !applies(k, tname) {
					continue
				}
				sub.keys = append(sub.keys, k)
				sub.m[k] = m[k]
			}
			sub.m["type"] = tname
			n, err := c.node(sub, path)
			if err != nil {
				return 0, err
			}
			alts = append(alts, n)
		}
		return c.union(alts, path+"/type")
	}
	ts, ok := t.(string)
	if !ok {
		return 0, fmt.Errorf("%s/type: want a type name or an array of them", path)
	}
	for _, k := range structural {
		if want := typeKeywords[k]; !applies(k, ts) {
			return 0, fmt.Errorf("%s/%s: applies to %s, not to type %q", path, k, want, ts)
		}
	}
	switch ts {
	case "object":
		return c.object(o, path)
	case "array":
		return c.array(m, path)
	case "string":
		n := node{kind: kString, maxLen: -1}
		var err error
		if n.minLen, err = count(m, "minLength", 0, path); err != nil {
			return 0, err
		}
		if n.maxLen, err = count(m, "maxLength", -1, path); err != nil {
			return 0, err
		}
		if n.maxLen >= 0 && n.maxLen < n.minLen {
			return 0, fmt.Errorf("%s: maxLength %d is below minLength %d", path, n.maxLen, n.minLen)
		}
		if n.re, err = stringRegex(m, path); err != nil {
			return 0, err
		}
		return c.add(n), nil
	case "number":
		re, err := bounds(m, path, false)
		if err != nil || re == nil {
			return c.add(node{kind: kNumber}), err
		}
		return c.add(node{kind: kRanged, re: re}), nil
	case "integer":
		re, err := bounds(m, path, true)
		if err != nil || re == nil {
			return c.add(node{kind: kInteger}), err
		}
		return c.add(node{kind: kRanged, re: re}), nil
	case "boolean":
		return c.literals([]any{true, false}, nil, path)
	case "null":
		return c.literals([]any{nil}, nil, path)
	}
	return 0, fmt.Errorf("%s/type: unknown type %q", path, ts)
}

// stringRegex compiles a string schema's pattern (a search, as JSON Schema defines it) or
// format (a full match) for regexmode. Either beside minLength or maxLength is refused: a
// length the pattern cannot meet would leave the text nowhere to go.
func stringRegex(m map[string]any, path string) (*regexmode.Regex, error) {
	p, hasP := m["pattern"]
	f, hasF := m["format"]
	if !hasP && !hasF {
		return nil, nil
	}
	_, minL := m["minLength"]
	_, maxL := m["maxLength"]
	switch {
	case hasP && hasF:
		return nil, fmt.Errorf("%s: pattern beside format is not supported: give one", path)
	case minL || maxL:
		return nil, fmt.Errorf("%s: minLength or maxLength beside pattern or format is not supported: fold the length into the pattern", path)
	}
	if hasF {
		name, _ := f.(string)
		expr, ok := formats[name]
		if !ok {
			return nil, fmt.Errorf("%s/format: %q is not supported (supported: date, time, date-time, uuid, email, ipv4)", path, f)
		}
		re, err := regexmode.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("%s/format: %w", path, err)
		}
		return re, nil
	}
	ps, ok := p.(string)
	if !ok {
		return nil, fmt.Errorf("%s/pattern: want a string", path)
	}
	re2, err := ecmaToRE2(ps)
	if err != nil {
		return nil, fmt.Errorf("%s/pattern: %w", path, err)
	}
	// a search, as JSON Schema defines it; the empty string may be what the pattern wants
	re, err := regexmode.CompileInner(`(?s:.*)(?:` + re2 + `)(?s:.*)`)
	if err != nil {
		return nil, fmt.Errorf("%s/pattern: %w", path, err)
	}
	return re, nil
}

// bounds compiles a schema's minimum, maximum, exclusiveMinimum and exclusiveMaximum
// (numbers, as since draft 6) into an expression for the values between them; nil when there
// are none. For integers every bound is rounded inward; for numbers (written without an
// exponent) only whole-number inclusive bounds are supported: a fractional or exclusive one
// would need decimal arithmetic on the digits.
func bounds(m map[string]any, path string, integer bool) (*regexmode.Regex, error) {
	var lo, hi int64
	var hasLo, hasHi bool
	for _, k := range []string{"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"} {
		v, ok := m[k]
		if !ok {
			continue
		}
		if !integer && (k == "exclusiveMinimum" || k == "exclusiveMaximum") {
			return nil, fmt.Errorf("%s/%s: exclusive bounds on numbers are not supported (on integers they are)", path, k)
		}
		r, err := exactBound(v, path, k)
		if err != nil {
			return nil, err
		}
		if !integer && !r.IsInt() {
			return nil, fmt.Errorf("%s/%s: on numbers only whole-number bounds are supported, not %v", path, k, v)
		}
		switch k { // the integer bound each one makes, from the decimal's exact value
		case "minimum":
			if b := ceil(r); !hasLo || b > lo {
				lo = b
			}
			hasLo = true
		case "exclusiveMinimum":
			if b := floor(r) + 1; !hasLo || b > lo {
				lo = b
			}
			hasLo = true
		case "maximum":
			if b := floor(r); !hasHi || b < hi {
				hi = b
			}
			hasHi = true
		case "exclusiveMaximum":
			if b := ceil(r) - 1; !hasHi || b < hi {
				hi = b
			}
			hasHi = true
		}
	}
	if !hasLo && !hasHi {
		return nil, nil
	}
	rangeRegex := intRangeRegex
	if !integer {
		rangeRegex = numRangeRegex
	}
	expr, err := rangeRegex(lo, hi, hasLo, hasHi)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	re, err := regexmode.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s: the bounds: %w", path, err)
	}
	return re, nil
}

// exactBound reads a bound as the exact decimal JSON wrote (not the float64 nearest it),
// within ±1e15.
func exactBound(v any, path, k string) (*big.Rat, error) {
	num, ok := v.(json.Number)
	r, okRat := new(big.Rat).SetString(string(num))
	if !ok || !okRat || new(big.Rat).Abs(r).Cmp(big.NewRat(1e15, 1)) > 0 {
		return nil, fmt.Errorf("%s/%s: want a number within ±1e15, not %v", path, k, v)
	}
	return r, nil
}

// floor and ceil of a rational within ±1e15 (big.Int's Div rounds toward -∞ for a positive
// divisor, and a Rat's denominator is positive).
func floor(r *big.Rat) int64 { return new(big.Int).Div(r.Num(), r.Denom()).Int64() }

func ceil(r *big.Rat) int64 {
	f := floor(r)
	if !r.IsInt() {
		f++
	}
	return f
}

// count reads a non-negative whole-number keyword (2 or 2.0), def when absent.
func count(m map[string]any, k string, def int, path string) (int, error) {
	v, ok := m[k]
	if !ok {
		return def, nil
	}
	n, ok := v.(json.Number)
	f, err := n.Float64()
	if !ok || err != nil || f != math.Trunc(f) || f < 0 || f > 1<<20 {
		return 0, fmt.Errorf("%s/%s: want a whole number from 0 to %d, not %v", path, k, 1<<20, v)
	}
	return int(f), nil
}

func (c *compiler) ref(ref any, o *obj, path string) (int, error) {
	for _, k := range o.keys {
		if k != "$ref" && !annotations[k] {
			return 0, fmt.Errorf("%s: %q beside $ref is not supported", path, k)
		}
	}
	s, ok := ref.(string)
	if !ok {
		return 0, fmt.Errorf("%s/$ref: want a string", path)
	}
	if n, ok := c.refs[s]; ok {
		return n, nil
	}
	var target any
	if s == "#" {
		target = c.root
	}
	for _, prefix := range []string{"#/$defs/", "#/definitions/"} {
		name, ok := strings.CutPrefix(s, prefix)
		if !ok {
			continue
		}
		// a JSON pointer token, URI-encoded: ~1 is '/', ~0 is '~'
		if u, err := url.PathUnescape(name); err == nil {
			name = u
		}
		name = strings.ReplaceAll(strings.ReplaceAll(name, "~1", "/"), "~0", "~")
		if defs, ok := c.root.m[strings.Trim(prefix[1:], "/")].(*obj); ok {
			target = defs.m[name]
		}
	}
	tm, ok := target.(*obj)
	if !ok {
		return 0, fmt.Errorf("%s/$ref: %q does not name a schema under #/$defs or #/definitions", path, s)
	}
	if c.visited[s] {
		return 0, fmt.Errorf("%s/$ref: %q refers to itself: recursive schemas are not supported", path, s)
	}
	c.visited[s] = true
	defer delete(c.visited, s)
	n, err := c.node(tm, s)
	if err != nil {
		return 0, err
	}
	c.refs[s] = n // the same compiled part for every use: no expansion blow-up
	return n, nil
}

func (c *compiler) object(o *obj, path string) (int, error) {
	m := o.m
	ps, hasProps := m["properties"]
	if !hasProps {
		if _, ok := m["required"]; ok {
			return 0, fmt.Errorf("%s/required: needs properties", path)
		}
		for _, k := range constraining {
			v, ok := m[k]
			if e, empty := v.(*obj); !ok || v == true || empty && len(e.keys) == 0 {
				continue
			}
			return 0, fmt.Errorf("%s/%s: an object without properties takes any keys and values; constraining them is not supported: list its properties", path, k)
		}
		return c.add(node{kind: kAnyObject}), nil
	}
	po, ok := ps.(*obj)
	if !ok {
		return 0, fmt.Errorf("%s/properties: want an object of schemas", path)
	}
	pm := po.m
	if len(po.keys) > maxProps {
		return 0, fmt.Errorf("%s/properties: %d properties, at most %d are supported", path, len(po.keys), maxProps)
	}
	names := po.keys
	req := map[string]bool{}
	if r, ok := m["required"]; ok {
		rs, ok := r.([]any)
		if !ok {
			return 0, fmt.Errorf("%s/required: want an array of property names", path)
		}
		for _, x := range rs {
			s, ok := x.(string)
			if !ok {
				return 0, fmt.Errorf("%s/required: want an array of property names", path)
			}
			if _, ok := pm[s]; !ok {
				return 0, fmt.Errorf("%s/required: %q is not among the properties", path, s)
			}
			req[s] = true
		}
	}
	n := node{kind: kObject}
	for i, name := range names {
		sub, ok := pm[name].(*obj)
		if !ok {
			return 0, fmt.Errorf("%s/properties/%s: want a schema object", path, name)
		}
		child, err := c.node(sub, path+"/properties/"+name)
		if err != nil {
			return 0, err
		}
		n.props = append(n.props, prop{key: compactBytes(name), node: child})
		if req[name] {
			n.required |= 1 << i
		}
	}
	return c.add(n), nil
}

func (c *compiler) array(m map[string]any, path string) (int, error) {
	n := node{kind: kArray, items: -1}
	var err error
	if n.minItems, err = count(m, "minItems", 0, path); err != nil {
		return 0, err
	}
	if n.maxItems, err = count(m, "maxItems", -1, path); err != nil {
		return 0, err
	}
	// prefixItems (a tuple, as Pydantic writes one): the first items' schemas in turn
	if p, ok := m["prefixItems"]; ok {
		ps, ok := p.([]any)
		if !ok {
			return 0, fmt.Errorf("%s/prefixItems: want an array of schemas", path)
		}
		for i, x := range ps {
			xo, ok := x.(*obj)
			if !ok {
				return 0, fmt.Errorf("%s/prefixItems/%d: want a schema object", path, i)
			}
			k, err := c.node(xo, fmt.Sprintf("%s/prefixItems/%d", path, i))
			if err != nil {
				return 0, err
			}
			n.prefix = append(n.prefix, k)
		}
	}
	switch it, ok := m["items"]; {
	case ok && it == false: // nothing after the prefix
		if n.maxItems < 0 || n.maxItems > len(n.prefix) {
			n.maxItems = len(n.prefix)
		}
	case ok:
		im, isObj := it.(*obj)
		if !isObj {
			return 0, fmt.Errorf("%s/items: want a schema object, or false after prefixItems", path)
		}
		if n.items, err = c.node(im, path+"/items"); err != nil {
			return 0, err
		}
	case len(n.prefix) > 0 && n.maxItems >= 0 && n.maxItems <= len(n.prefix):
		// a tuple whose maxItems leaves no room for others
	default:
		return 0, fmt.Errorf("%s: an array without \"items\" may hold any value, which is not supported: give its items' schema", path)
	}
	if n.maxItems >= 0 && n.maxItems < n.minItems {
		return 0, fmt.Errorf("%s: maxItems %d is below minItems %d", path, n.maxItems, n.minItems)
	}
	return c.add(n), nil
}

func (c *compiler) literals(vs []any, typ any, path string) (int, error) {
	if len(vs) > maxLiterals {
		return 0, fmt.Errorf("%s: %d values, at most %d are supported", path, len(vs), maxLiterals)
	}
	if typ != nil {
		t, ok := typ.(string)
		if !ok {
			return 0, fmt.Errorf("%s: a list of types beside it is not supported", path)
		}
		for _, v := range vs {
			if !hasType(t, v) {
				return 0, fmt.Errorf("%s: %s is not of type %q", path, compactBytes(v), t)
			}
		}
	}
	n := node{kind: kLiterals}
	for _, v := range vs {
		n.lits = append(n.lits, compactBytes(v))
	}
	return c.add(n), nil
}

// hasType says whether decoded value v is of JSON Schema type t.
func hasType(t string, v any) bool {
	switch v := v.(type) {
	case *obj:
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
		f, err := v.Float64()
		return t == "integer" && err == nil && f == math.Trunc(f)
	}
	return false
}

// union makes alternatives that start with different bytes one node.
func (c *compiler) union(alts []int, path string) (int, error) {
	n := node{kind: kUnion, alts: new([256]int16)}
	for i := range n.alts {
		n.alts[i] = -1
	}
	for _, a := range alts {
		for b := range 256 {
			if !c.s.startsWith(a, byte(b)) {
				continue
			}
			if n.alts[b] >= 0 && int(n.alts[b]) != a {
				return 0, fmt.Errorf("%s: two alternatives can both start with %q: only alternatives of different types are supported", path, string(rune(b)))
			}
			n.alts[b] = int16(a)
		}
	}
	return c.add(n), nil
}

// depth is how many frames a value of node i can stack up.
func (s *Schema) depth(i int) int {
	n := &s.nodes[i]
	switch n.kind {
	case kObject:
		d := 0
		for _, p := range n.props {
			d = max(d, s.depth(p.node))
		}
		return 1 + d
	case kArray:
		d := 0
		if n.items >= 0 {
			d = s.depth(n.items)
		}
		for _, p := range n.prefix {
			d = max(d, s.depth(p))
		}
		return 1 + d
	case kUnion:
		d, seen := 0, map[int16]bool{}
		for _, a := range n.alts {
			if a >= 0 && !seen[a] {
				seen[a] = true
				d = max(d, s.depth(int(a)))
			}
		}
		return d
	}
	return 1
}

// startsWith says whether a value of node i can start with byte b.
func (s *Schema) startsWith(i int, b byte) bool {
	n := &s.nodes[i]
	switch n.kind {
	case kObject, kAnyObject:
		return b == '{'
	case kArray:
		return b == '['
	case kString:
		return b == '"'
	case kNumber, kInteger:
		return b == '-' || b >= '0' && b <= '9'
	case kRanged:
		st := n.re.Start()
		return st.Feed(b)
	case kLiterals:
		for _, l := range n.lits {
			if l[0] == b {
				return true
			}
		}
	case kUnion:
		return n.alts[b] >= 0
	}
	return false
}
