package chattemplate

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/nikolalohinski/gonja/v2/builtins"
	controlStructures "github.com/nikolalohinski/gonja/v2/builtins/control_structures"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// transformers renders chat templates with Python's Jinja2, and gonja 2.9.1 parts from it in
// places templates use. This file puts Jinja2's behaviour back where it can from outside the
// engine. testdata/tokenizer/jinja2-snippets.json holds what Jinja2 itself renders.

// subscriptFunc is the name under which every x[i] reaches its target, and iterFunc the
// one under which every {% for x in y %} reaches y (see pythonize).
const (
	subscriptFunc = "__strata_subscript__"
	iterFunc      = "__strata_iter__"
	dictFunc      = "__strata_dict__"
	enterFunc     = "__strata_enter__"
)

// pythonize rewrites a parsed template where gonja's evaluation parts from Jinja2's:
//   - the target of every subscript (x[i]) goes through subscriptFunc. gonja indexes
//     strings by byte, not code point, and refuses x[-n] when n is x's length (one-element
//     lists included: Qwen3's template takes content.split('<think>')[-1] of a reply with
//     no <think> in it). The evaluator asks an ItemGetter first, so wrapping the target
//     fixes both without touching the engine.
//   - what a one-variable for loop walks goes through iterFunc: gonja walks a Go map's keys
//     sorted, Jinja2 a dict's in insertion order (tool parameters, in the order given).
//   - dict(a=1, b=2) becomes dictFunc("a", 1, "b", 2): gonja hands keyword arguments over
//     in a Go map, so the dict came out in a different order on every render.
func pythonize(t *exec.Template, src string) {
	// a template that names something dict itself (a macro, a variable, a parameter) calls
	// that, not the builtin
	bindsDict := bindsDictRE.MatchString(src)
	var w walk
	w.seen = map[unsafe.Pointer]bool{}
	w.visit(reflect.ValueOf(t.Root()))
	for _, g := range w.getItems {
		g.Node = call(subscriptFunc, g.Location, g.Node)
	}
	for _, c := range w.calls {
		// gonja's parser records the object of a method call only after some expressions;
		// without it, (x | trim).strip() found no method "strip" to call
		if ga, ok := c.Func.(*nodes.GetAttribute); ok && c.Parent == nil && ga.Attribute != "" {
			c.Parent = ga.Node
		}
		n, ok := c.Func.(*nodes.Name)
		switch {
		case !ok:
		case n.Name.Val == "loop" && len(c.Args) == 1: // a recursive loop's next level
			c.Args[0] = call(iterFunc, c.Args[0].Position(), c.Args[0])
		case n.Name.Val == "dict" && !bindsDict:
			names := make([]string, 0, len(c.Kwargs))
			for k := range c.Kwargs {
				names = append(names, k)
			}
			sort.Slice(names, func(i, j int) bool { return c.Kwargs[names[i]].Position().Pos < c.Kwargs[names[j]].Position().Pos })
			args := []nodes.Expression{&nodes.Integer{Location: c.Location, Val: len(c.Args)}}
			args = append(args, c.Args...)
			for _, k := range names {
				args = append(args, &nodes.String{Location: &tokens.Token{Type: tokens.String, Val: k}, Val: k}, c.Kwargs[k])
			}
			c.Args, c.Kwargs = args, map[string]nodes.Expression{}
			c.Func = &nodes.Name{Name: &tokens.Token{Type: tokens.Name, Val: dictFunc, Pos: c.Location.Pos, Line: c.Location.Line, Col: c.Location.Col}}
		}
	}
	for _, m := range w.macros {
		guard(m.Wrapper)
	}
	for _, f := range w.fors {
		if f.Recursive {
			guard(f.BodyWrapper)
		}
		if f.Value == "" { // "for k, v in d" is gonja's own (Jinja2 wants d.items()): left as is
			f.ObjectEvaluator = call(iterFunc, f.ObjectEvaluator.Position(), f.ObjectEvaluator)
		}
	}
}

// bindsDictRE finds a template's own binding of the name dict: {% set dict %}, {% macro
// dict %}, a macro parameter, a loop variable, an import alias.
var bindsDictRE = regexp.MustCompile(`\b(set|macro)\s+dict\b|\bmacro\s+\w+\s*\([^)]*\bdict\b|\bfor\s+[\w\s,]*\bdict\b[\w\s,]*\bin\b|\bas\s+dict\b|\bimport\b[^%]*\bdict\b`)

// guard starts a macro's or recursive loop's body with enterFunc, which fails the render
// once calls nest deeper than maxFrames Go frames (checked every 32 bodies): one that calls itself without end would
// otherwise overflow the Go stack, which kills the process (Jinja2 stops at Python's
// recursion limit, under 200 macro levels). The depth is the goroutine's own, so loop
// bodies that end early ({% break %}, {% continue %}) leave nothing to undo.
func guard(body *nodes.Wrapper) {
	if body == nil {
		return
	}
	tok := &tokens.Token{Type: tokens.Name, Val: enterFunc}
	if body.Location != nil {
		tok.Pos, tok.Line, tok.Col = body.Location.Pos, body.Location.Line, body.Location.Col
	}
	enter := &nodes.Output{Start: tok, End: tok, Expression: &nodes.Call{Location: tok, Func: &nodes.Name{Name: tok}, Kwargs: map[string]nodes.Expression{}}}
	body.Nodes = append([]nodes.Node{enter}, body.Nodes...)
}

// maxFrames bounds the Go stack depth at which a macro or recursive loop may start: about
// 500 levels of gonja's evaluation (measured: 15 frames a level), well above what Jinja2
// allows and far below a Go stack overflow.
const maxFrames = 7500

// errTooDeep is what a render nested deeper than maxFrames fails with.
var errTooDeep = errors.New("macros or recursive loops nest too deep, so one calls itself without end")

// bodies counts the macro and recursive-loop bodies one render starts, so that the stack
// is measured only every 32nd time: a walk of deep stacks on every call made a thousand
// levels quadratic.
type bodies struct{ n int }

// enter is enterFunc.
func (b *bodies) enter(*exec.VarArgs) *exec.Value {
	if b.n++; b.n%32 != 0 {
		return exec.AsValue("")
	}
	var pc [1]uintptr
	if runtime.Callers(maxFrames, pc[:]) > 0 { // there is a frame maxFrames up
		return exec.AsValue(errTooDeep)
	}
	return exec.AsValue("")
}

// call is the expression name(arg), at the position of what it wraps.
func call(name string, at *tokens.Token, arg nodes.Expression) *nodes.Call {
	tok := &tokens.Token{Type: tokens.Name, Val: name}
	if at != nil {
		tok.Pos, tok.Line, tok.Col = at.Pos, at.Line, at.Col
	}
	return &nodes.Call{Location: tok, Func: &nodes.Name{Name: tok}, Args: []nodes.Expression{arg}, Kwargs: map[string]nodes.Expression{}}
}

var (
	getItemType = reflect.TypeFor[*nodes.GetItem]()
	forType     = reflect.TypeFor[*controlStructures.ForControlStructure]()
	callType    = reflect.TypeFor[*nodes.Call]()
	macroType   = reflect.TypeFor[*nodes.Macro]()
)

// walk finds every subscript and for loop reachable from a template's root. Control
// structures keep their expressions in unexported fields, which reflection may read but not
// hand out; the pointer itself is all that is needed, and the fields rewritten are exported.
type walk struct {
	seen     map[unsafe.Pointer]bool
	getItems []*nodes.GetItem
	fors     []*controlStructures.ForControlStructure
	calls    []*nodes.Call
	macros   []*nodes.Macro
}

func (w *walk) visit(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		p := v.UnsafePointer()
		if w.seen[p] {
			return
		}
		w.seen[p] = true
		switch v.Type() {
		case getItemType:
			w.getItems = append(w.getItems, (*nodes.GetItem)(p))
		case forType:
			w.fors = append(w.fors, (*controlStructures.ForControlStructure)(p))
		case callType:
			w.calls = append(w.calls, (*nodes.Call)(p))
		case macroType:
			w.macros = append(w.macros, (*nodes.Macro)(p))
		}
		w.visit(v.Elem())
	case reflect.Interface:
		if !v.IsNil() {
			w.visit(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			w.visit(v.Field(i))
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			w.visit(v.Index(i))
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			w.visit(it.Value())
		}
	}
}

// pyNamespace is what namespace() makes: a mapping that {% set ns.x = ... %} writes to.
// A template can put a namespace inside itself ({% set ns.a = ns %}), and printing one went
// round that loop until the Go stack overflowed, which kills the process; it prints as
// Jinja2's does, <Namespace {...}> where it comes round again.
type pyNamespace map[string]any

func (ns pyNamespace) String() string { return ns.repr(map[uintptr]bool{}) }

func (ns pyNamespace) repr(seen map[uintptr]bool) string {
	addr := reflect.ValueOf(ns).Pointer()
	if seen[addr] {
		return "<Namespace {...}>"
	}
	seen[addr] = true
	defer delete(seen, addr)
	keys := make([]string, 0, len(ns))
	for k := range ns {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := ns[k]
		if x, ok := v.(*exec.Value); ok {
			v = x.Interface()
		}
		var r string
		switch x := v.(type) {
		case pyNamespace:
			r = x.repr(seen)
		case string:
			r = pyRepr(x)
		default:
			r = exec.ToValue(v).String()
		}
		parts[i] = pyRepr(k) + ": " + r
	}
	return "<Namespace {" + strings.Join(parts, ", ") + "}>"
}

// namespaceCall is namespace(**kwargs), as a pyNamespace.
func namespaceCall(args *exec.VarArgs) *exec.Value {
	if len(args.Args) > 0 {
		return exec.AsValue(exec.ErrInvalidCall(errors.New("namespace() takes keyword arguments only")))
	}
	ns := pyNamespace{}
	for k, v := range args.KwArgs {
		ns[k] = v
	}
	return exec.AsValue(ns)
}

// dictCall is dictFunc: Python's dict(mapping_or_pairs=None, **kwargs) with the keyword
// arguments in their written order. Its arguments are the count of positional ones, those,
// then alternating keyword names and values.
func dictCall(args *exec.VarArgs) *exec.Value {
	bad := func(format string, a ...any) *exec.Value {
		return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("dict(): "+format, a...)))
	}
	if len(args.Args) == 0 || !args.Args[0].IsInteger() {
		return bad("malformed call")
	}
	npos := args.Args[0].Integer()
	if npos > 1 {
		return bad("expected at most 1 positional argument, got %d", npos)
	}
	var keys []string
	m := map[string]any{}
	put := func(k string, v any) {
		if _, dup := m[k]; !dup {
			keys = append(keys, k)
		}
		m[k] = v
	}
	if npos == 1 {
		src := args.Args[1]
		switch x := src.Interface().(type) {
		case map[string]any, *exec.Dict:
			ks, vs := ordered(nil, src)
			for _, k := range ks {
				put(k, vs[k])
			}
		default:
			rv := reflect.Indirect(reflect.ValueOf(x))
			if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
				return bad("%s is neither a mapping nor a list of pairs", src.String())
			}
			for i := range rv.Len() {
				pair := reflect.Indirect(reflect.ValueOf(exec.ToValue(rv.Index(i)).Interface()))
				if pair.Kind() != reflect.Slice && pair.Kind() != reflect.Array || pair.Len() != 2 {
					return bad("element %d is not a (key, value) pair", i)
				}
				put(exec.ToValue(pair.Index(0)).String(), exec.ToValue(pair.Index(1)).Interface())
			}
		}
	}
	for i := 1 + npos; i+1 < len(args.Args); i += 2 {
		put(args.Args[i].String(), args.Args[i+1].Interface())
	}
	d := exec.NewDict()
	for _, k := range keys {
		d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.ToValue(m[k])})
	}
	return exec.AsValue(d)
}

// maxRange is Jinja2's sandbox limit on range().
const maxRange = 100000

// rangeCall is Jinja2's sandboxed range(): a list, refused past maxRange items (gonja's fed
// a channel from a goroutine that a loop ending early left blocked forever).
func rangeCall(args *exec.VarArgs) *exec.Value {
	if len(args.KwArgs) > 0 || len(args.Args) == 0 || len(args.Args) > 3 {
		return exec.AsValue(exec.ErrInvalidCall(errors.New("range() takes 1 to 3 integers")))
	}
	n := make([]int, len(args.Args))
	for i, a := range args.Args {
		switch {
		case a.IsBool(): // Python's bool is an int
			if a.Bool() {
				n[i] = 1
			}
		case a.IsInteger():
			n[i] = a.Integer()
		default:
			return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("range(): %s is not an integer", a.String())))
		}
	}
	start, stop, step := 0, n[0], 1
	if len(n) > 1 {
		start, stop = n[0], n[1]
	}
	if len(n) > 2 {
		step = n[2]
	}
	if step == 0 {
		return exec.AsValue(exec.ErrInvalidCall(errors.New("range() arg 3 must not be zero")))
	}
	// the distance and the items in unsigned arithmetic: stop - start may not fit an int
	var count uint64
	if step > 0 && stop > start {
		dist, st := uint64(stop)-uint64(start), uint64(step)
		count = dist / st
		if dist%st != 0 {
			count++
		}
	} else if step < 0 && stop < start {
		dist, st := uint64(start)-uint64(stop), -uint64(step)
		count = dist / st
		if dist%st != 0 {
			count++
		}
	}
	if count > maxRange {
		return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("range of %d items: the sandbox blocks ranges larger than %d, as Jinja2's does", count, maxRange)))
	}
	out := make([]any, count)
	for i := range out {
		out[i] = int(uint64(start) + uint64(i)*uint64(step))
	}
	return exec.AsValue(out)
}

// iterTarget is iterFunc: a mapping DecodeJSON built becomes its keys in their order.
func iterTarget(args *exec.VarArgs) *exec.Value {
	if len(args.Args) != 1 {
		return exec.AsValue(errors.New("iterate: want one value"))
	}
	v := args.Args[0]
	if m, ok := v.Interface().(map[string]any); ok {
		keys := []any{}
		for _, k := range keysInOrder(m) {
			keys = append(keys, k)
		}
		return exec.AsValue(keys)
	}
	return v
}

// subscriptTarget is subscriptFunc: it hands back what can be subscripted as Python does.
func subscriptTarget(args *exec.VarArgs) *exec.Value {
	if len(args.Args) != 1 {
		return exec.AsValue(errors.New("subscript: want one target"))
	}
	v := args.Args[0]
	if v.IsNil() || v.IsError() {
		return v
	}
	return exec.AsValue(&pySubscript{v: v})
}

// pySubscript is a subscript's target: integer keys count from the end when negative and
// index code points of strings; everything else goes to gonja.
type pySubscript struct{ v *exec.Value }

func (s *pySubscript) GetItem(key any) (*exec.Value, bool) {
	i, ok := key.(int)
	if !ok {
		return s.v.GetItem(key)
	}
	rv := reflect.Indirect(s.v.Val)
	for rv.Kind() == reflect.Interface && !rv.IsNil() {
		rv = reflect.Indirect(rv.Elem())
	}
	switch rv.Kind() {
	case reflect.String:
		str := rv.String()
		n := utf8.RuneCountInString(str)
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			return exec.AsValue(nil), false
		}
		for j, r := range []rune(str) {
			if j == i {
				return exec.AsValue(string(r)), true
			}
		}
	case reflect.Slice, reflect.Array:
		if i < 0 {
			i += rv.Len()
		}
		if i < 0 || i >= rv.Len() {
			return exec.AsValue(nil), false
		}
		return exec.ToValue(rv.Index(i)), true
	}
	return s.v.GetItem(key)
}

func (s *pySubscript) GetAttribute(name string) (*exec.Value, bool) { return s.v.GetAttribute(name) }

// pyIsSpace is Python's str.isspace for one character: Go's unicode.IsSpace plus the
// information separators U+001C-U+001F.
func pyIsSpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// optString takes an optional string argument that may also be None, as Python's
// strip(chars=None) and split(sep=None) do.
func optString(args *exec.VarArgs, i int, name string) (s string, given bool, err error) {
	if i < len(args.Args) {
		a := args.Args[i]
		switch {
		case a.IsNil():
			return "", false, nil
		case a.IsString():
			return a.String(), true, nil
		}
		return "", false, fmt.Errorf("%s must be None or a string, not %s", name, a.String())
	}
	if a, ok := args.KwArgs[name]; ok && !a.IsNil() {
		if !a.IsString() {
			return "", false, fmt.Errorf("%s must be None or a string, not %s", name, a.String())
		}
		return a.String(), true, nil
	}
	return "", false, nil
}

// optInt takes an optional integer argument with a default.
func optInt(args *exec.VarArgs, i int, name string, def int) (int, error) {
	var a *exec.Value
	if i < len(args.Args) {
		a = args.Args[i]
	} else if k, ok := args.KwArgs[name]; ok {
		a = k
	} else {
		return def, nil
	}
	if !a.IsInteger() {
		return 0, fmt.Errorf("%s must be an integer, not %s", name, a.String())
	}
	return a.Integer(), nil
}

func maxArgs(args *exec.VarArgs, method string, n int) error {
	if len(args.Args) > n {
		return fmt.Errorf("%s() takes at most %d arguments (%d given)", method, n, len(args.Args))
	}
	return nil
}

// strip is Python's str.strip/lstrip/rstrip: whitespace without an argument, else any of
// the argument's characters.
func strip(method string, left, right bool) exec.Method[string] {
	return func(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
		if err := maxArgs(args, method, 1); err != nil {
			return nil, exec.ErrInvalidCall(err)
		}
		chars, given, err := optString(args, 0, "chars")
		if err != nil {
			return nil, exec.ErrInvalidCall(err)
		}
		cut := pyIsSpace
		if given {
			cut = func(r rune) bool { return strings.ContainsRune(chars, r) }
		}
		if left {
			self = strings.TrimLeftFunc(self, cut)
		}
		if right {
			self = strings.TrimRightFunc(self, cut)
		}
		return self, nil
	}
}

// split is Python's str.split and str.rsplit.
func split(method string, fromRight bool) exec.Method[string] {
	return func(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
		if err := maxArgs(args, method, 2); err != nil {
			return nil, exec.ErrInvalidCall(err)
		}
		sep, given, err := optString(args, 0, "sep")
		if err != nil {
			return nil, exec.ErrInvalidCall(err)
		}
		maxsplit, err := optInt(args, 1, "maxsplit", -1)
		if err != nil {
			return nil, exec.ErrInvalidCall(err)
		}
		if given && sep == "" {
			return nil, exec.ErrInvalidCall(errors.New("empty separator"))
		}
		var parts []string
		if given {
			parts = splitSep(self, sep, maxsplit, fromRight)
		} else {
			parts = splitSpace(self, maxsplit, fromRight)
		}
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	}
}

func splitSep(s, sep string, maxsplit int, fromRight bool) []string {
	if maxsplit < 0 {
		return strings.Split(s, sep)
	}
	if !fromRight {
		return strings.SplitN(s, sep, maxsplit+1) // SplitN counts pieces, maxsplit cuts
	}
	var rev []string
	for len(rev) < maxsplit {
		i := strings.LastIndex(s, sep)
		if i < 0 {
			break
		}
		rev = append(rev, s[i+len(sep):])
		s = s[:i]
	}
	rev = append(rev, s)
	slices.Reverse(rev)
	return rev
}

// splitSpace splits on runs of whitespace, dropping empty pieces; once maxsplit pieces are
// split off, the rest (with its inner whitespace) is the last piece, stripped only at the
// end the split came from.
func splitSpace(s string, maxsplit int, fromRight bool) []string {
	var out []string
	if fromRight {
		for {
			s = strings.TrimRightFunc(s, pyIsSpace)
			if s == "" {
				break
			}
			i := strings.LastIndexFunc(s, pyIsSpace)
			if i < 0 || (maxsplit >= 0 && len(out) == maxsplit) {
				out = append(out, s)
				break
			}
			_, w := utf8.DecodeRuneInString(s[i:])
			out = append(out, s[i+w:])
			s = s[:i]
		}
		slices.Reverse(out)
		return out
	}
	for {
		s = strings.TrimLeftFunc(s, pyIsSpace)
		if s == "" {
			break
		}
		if maxsplit >= 0 && len(out) == maxsplit {
			out = append(out, s)
			break
		}
		i := strings.IndexFunc(s, pyIsSpace)
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out
}

// replace is Python's str.replace(old, new, count=-1).
func replace(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
	if len(args.Args) < 2 || len(args.Args) > 3 {
		return nil, exec.ErrInvalidCall(fmt.Errorf("replace() takes 2 or 3 arguments (%d given)", len(args.Args)))
	}
	if !args.Args[0].IsString() || !args.Args[1].IsString() {
		return nil, exec.ErrInvalidCall(errors.New("replace() wants strings"))
	}
	count, err := optInt(args, 2, "count", -1)
	if err != nil {
		return nil, exec.ErrInvalidCall(err)
	}
	return strings.Replace(self, args.Args[0].String(), args.Args[1].String(), count), nil
}

// bounds reads the optional start and end arguments (from argument i on) of Python's
// find/index/count family as a code-point range of self, clamped as a slice is; ok is false
// when start lies past the end, where Python finds nothing.
func bounds(self []rune, args *exec.VarArgs, i int) (lo, hi int, ok bool, err error) {
	lo, hi = 0, len(self)
	for k, p := range []*int{&lo, &hi} {
		if i+k >= len(args.Args) || args.Args[i+k].IsNil() {
			continue
		}
		a := args.Args[i+k]
		if !a.IsInteger() {
			return 0, 0, false, fmt.Errorf("slice indices must be integers or None, not %s", a.String())
		}
		v := a.Integer()
		if v < 0 {
			v += len(self)
		}
		*p = min(max(v, 0), len(self))
		if k == 0 && a.Integer() > len(self) {
			return 0, 0, false, nil
		}
	}
	if hi < lo { // Python finds nothing, not even "", in a range that ends before it starts
		return lo, lo, false, nil
	}
	return lo, hi, true, nil
}

// affix is Python's str.startswith/endswith(prefix or tuple of them[, start[, end]]) (gonja's
// endswith found any suffix on an empty string).
func affix(method string, suffix bool) exec.Method[string] {
	return func(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
		if len(args.Args) < 1 || len(args.Args) > 3 {
			return nil, exec.ErrInvalidCall(fmt.Errorf("%s() takes 1 to 3 arguments", method))
		}
		var cands []string
		if args.Args[0].IsString() {
			cands = []string{args.Args[0].String()}
		} else if rv := reflect.Indirect(args.Args[0].Val); rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
			for i := range rv.Len() {
				c := exec.ToValue(rv.Index(i))
				if !c.IsString() {
					return nil, exec.ErrInvalidCall(fmt.Errorf("%s(): a tuple of strings, not %s", method, c.String()))
				}
				cands = append(cands, c.String())
			}
		} else {
			return nil, exec.ErrInvalidCall(fmt.Errorf("%s() wants a string or a tuple of strings, not %s", method, args.Args[0].String()))
		}
		runes := []rune(self)
		lo, hi, ok, err := bounds(runes, args, 1)
		if err != nil {
			return nil, exec.ErrInvalidCall(err)
		}
		if !ok {
			return false, nil
		}
		part := string(runes[lo:hi])
		for _, c := range cands {
			if (suffix && strings.HasSuffix(part, c)) || (!suffix && strings.HasPrefix(part, c)) {
				return true, nil
			}
		}
		return false, nil
	}
}

// join is Python's sep.join(iterable): a list, a string's characters or a mapping's keys,
// every item a string.
func join(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
	if len(args.Args) != 1 {
		return nil, exec.ErrInvalidCall(errors.New("join() takes exactly one argument"))
	}
	a := args.Args[0]
	var items []any
	switch x := a.Interface().(type) {
	case string:
		for _, r := range x {
			items = append(items, string(r))
		}
	case map[string]any, *exec.Dict:
		keys, _ := ordered(nil, a)
		for _, k := range keys {
			items = append(items, k)
		}
	default:
		rv := reflect.Indirect(a.Val)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return nil, exec.ErrInvalidCall(fmt.Errorf("join(): can only join an iterable, not %s", a.String()))
		}
		for i := range rv.Len() {
			items = append(items, exec.ToValue(rv.Index(i)).Interface())
		}
	}
	parts := make([]string, len(items))
	for i, it := range items {
		v := exec.ToValue(it)
		if !v.IsString() {
			return nil, exec.ErrInvalidCall(fmt.Errorf("join(): sequence item %d: expected str instance, got %s", i, v.String()))
		}
		parts[i] = v.String()
	}
	return strings.Join(parts, self), nil
}

// search is Python's str.find/rfind/index/rindex/count(sub[, start[, end]]), in code points.
func search(method string) exec.Method[string] {
	return func(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
		if len(args.Args) < 1 || len(args.Args) > 3 || !args.Args[0].IsString() {
			return nil, exec.ErrInvalidCall(fmt.Errorf("%s() wants a string and optional start and end", method))
		}
		sub := args.Args[0].String()
		runes := []rune(self)
		lo, hi, ok, err := bounds(runes, args, 1)
		if err != nil {
			return nil, exec.ErrInvalidCall(err)
		}
		hay := string(runes[lo:hi])
		at := -1
		switch {
		case !ok && method == "count":
			return 0, nil
		case !ok:
		case method == "count":
			return strings.Count(hay, sub), nil
		case method == "find" || method == "index":
			at = strings.Index(hay, sub)
		default:
			at = strings.LastIndex(hay, sub)
		}
		if at >= 0 {
			at = lo + utf8.RuneCountInString(hay[:at])
		}
		if at < 0 && (method == "index" || method == "rindex") {
			return nil, errors.New("substring not found")
		}
		return at, nil
	}
}

// pad is Python's str.center/ljust/rjust(width, fillchar=' ').
func pad(method string, where byte) exec.Method[string] {
	return func(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
		if len(args.Args) < 1 || len(args.Args) > 2 || !args.Args[0].IsInteger() {
			return nil, exec.ErrInvalidCall(fmt.Errorf("%s() wants a width and an optional fill character", method))
		}
		fill := " "
		if len(args.Args) == 2 {
			fill = args.Args[1].String()
			if utf8.RuneCountInString(fill) != 1 {
				return nil, exec.ErrInvalidCall(errors.New("the fill character must be exactly one character long"))
			}
		}
		n := args.Args[0].Integer() - utf8.RuneCountInString(self)
		if n <= 0 {
			return self, nil
		}
		switch where {
		case 'l':
			return self + strings.Repeat(fill, n), nil
		case 'r':
			return strings.Repeat(fill, n) + self, nil
		}
		// CPython's center puts the odd extra character on the left when the width is odd
		left := n/2 + (n & args.Args[0].Integer() & 1)
		return strings.Repeat(fill, left) + self + strings.Repeat(fill, n-left), nil
	}
}

// gonjaStrMethods are the string methods gonja 2.9.1 provides; MethodSet cannot list its own.
var gonjaStrMethods = []string{"capitalize", "capwords", "casefold", "center", "count", "encode",
	"endswith", "expandtabs", "find", "format", "format_map", "isalnum", "isalpha", "isascii",
	"isdecimal", "isdigit", "islower", "isnumeric", "isprintable", "isspace", "istitle",
	"isupper", "join", "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix",
	"replace", "rfind", "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines",
	"startswith", "strip", "swapcase", "title", "upper", "zfill"}

var gonjaDictMethods = []string{"keys", "values", "items", "get", "pop", "setdefault", "update", "copy", "clear"}

func methodSet[I any](base *exec.MethodSet[I], names []string, own map[string]exec.Method[I]) *exec.MethodSet[I] {
	all := map[string]exec.Method[I]{}
	for _, n := range names {
		if m, ok := base.Get(n); ok {
			all[n] = plainResult(m)
		}
	}
	for n, m := range own {
		all[n] = m
	}
	return exec.NewMethodSet(all)
}

// plainResult makes a gonja method hand back plain Go strings: its string methods return
// their own string type, which == never equals a plain string, so "a" == "a".lower() was
// false.
func plainResult[I any](m exec.Method[I]) exec.Method[I] {
	return func(self I, sv *exec.Value, args *exec.VarArgs) (any, error) {
		out, err := m(self, sv, args)
		if err != nil || out == nil {
			return out, err
		}
		rv := reflect.ValueOf(out)
		switch {
		case rv.Kind() == reflect.String && rv.Type() != reflect.TypeFor[string]():
			return rv.String(), nil
		case (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array) && rv.Type().Elem().Kind() == reflect.String:
			list := make([]any, rv.Len())
			for i := range list {
				list[i] = rv.Index(i).String()
			}
			return list, nil
		}
		return out, nil
	}
}

// pythonMethods is gonja's methods with Python's string and dict semantics where they differ.
func pythonMethods() exec.Methods {
	m := builtins.Methods
	m.Str = methodSet(builtins.Methods.Str, gonjaStrMethods, map[string]exec.Method[string]{
		"strip": strip("strip", true, true), "lstrip": strip("lstrip", true, false), "rstrip": strip("rstrip", false, true),
		"split": split("split", false), "rsplit": split("rsplit", true),
		"replace":    replace,
		"join":       join,
		"startswith": affix("startswith", false), "endswith": affix("endswith", true),
		"find": search("find"), "rfind": search("rfind"), "index": search("index"), "rindex": search("rindex"), "count": search("count"),
		"center": pad("center", 'c'), "ljust": pad("ljust", 'l'), "rjust": pad("rjust", 'r'),
	})
	m.List = methodSet(builtins.Methods.List, []string{"append", "reverse", "copy"}, map[string]exec.Method[[]any]{
		"append": immutable[[]any]("list", "append"), "extend": immutable[[]any]("list", "extend"),
		"insert": immutable[[]any]("list", "insert"), "pop": immutable[[]any]("list", "pop"),
		"remove": immutable[[]any]("list", "remove"), "reverse": immutable[[]any]("list", "reverse"),
		"sort": immutable[[]any]("list", "sort"), "clear": immutable[[]any]("list", "clear"),
	})
	m.Dict = methodSet(builtins.Methods.Dict, gonjaDictMethods, map[string]exec.Method[map[string]any]{
		"keys": func(self map[string]any, sv *exec.Value, args *exec.VarArgs) (any, error) {
			keys, _ := ordered(self, sv)
			if err := maxArgs(args, "keys", 0); err != nil {
				return nil, exec.ErrInvalidCall(err)
			}
			out := []any{}
			for _, k := range keys {
				out = append(out, k)
			}
			return out, nil
		},
		"values": func(self map[string]any, sv *exec.Value, args *exec.VarArgs) (any, error) {
			keys, self := ordered(self, sv)
			if err := maxArgs(args, "values", 0); err != nil {
				return nil, exec.ErrInvalidCall(err)
			}
			out := []any{}
			for _, k := range keys {
				out = append(out, self[k])
			}
			return out, nil
		},
		// get and copy hand back the original entries (gonja's work on a deep copy, whose
		// objects have lost their recorded key order)
		"get": func(self map[string]any, sv *exec.Value, args *exec.VarArgs) (any, error) {
			_, self = ordered(self, sv)
			if len(args.Args) < 1 || len(args.Args) > 2 {
				return nil, exec.ErrInvalidCall(errors.New("get() takes 1 or 2 arguments"))
			}
			if v, ok := self[args.Args[0].String()]; ok && args.Args[0].IsString() { // JSON keys are strings: d.get(1) finds nothing
				return v, nil
			}
			if len(args.Args) == 2 {
				return args.Args[1].Interface(), nil
			}
			return nil, nil
		},
		"copy": func(self map[string]any, sv *exec.Value, args *exec.VarArgs) (any, error) {
			if err := maxArgs(args, "copy", 0); err != nil {
				return nil, exec.ErrInvalidCall(err)
			}
			// nothing can change either (the sandbox is immutable), so the original serves,
			// key order and all
			_, self = ordered(self, sv)
			return self, nil
		},
		"pop": immutable[map[string]any]("dict", "pop"), "popitem": immutable[map[string]any]("dict", "popitem"),
		"setdefault": immutable[map[string]any]("dict", "setdefault"), "update": immutable[map[string]any]("dict", "update"),
		"clear": immutable[map[string]any]("dict", "clear"),
		"items": func(self map[string]any, sv *exec.Value, args *exec.VarArgs) (any, error) {
			keys, self := ordered(self, sv)
			if err := maxArgs(args, "items", 0); err != nil {
				return nil, exec.ErrInvalidCall(err)
			}
			return itemsOf(keys, self), nil
		},
	})
	return m
}

// ordered is a mapping's keys in their order and its entries. gonja hands dict methods a
// copy, which has lost the order DecodeJSON recorded for the original, and a {...} literal
// in the template is gonja's Dict, whose pairs keep the order they were written in.
func ordered(cp map[string]any, v *exec.Value) ([]string, map[string]any) {
	switch x := v.Interface().(type) {
	case map[string]any:
		return keysInOrder(x), x
	case *exec.Dict:
		return dictPairs(x)
	}
	return keysInOrder(cp), cp
}

// dictPairs is a template literal's keys and entries as Python builds the dict: a repeated
// key keeps its first place and takes its last value.
func dictPairs(d *exec.Dict) ([]string, map[string]any) {
	keys := make([]string, 0, len(d.Pairs))
	m := make(map[string]any, len(d.Pairs))
	for _, p := range d.Pairs {
		k := p.Key.String()
		if _, dup := m[k]; !dup {
			keys = append(keys, k)
		}
		m[k] = p.Value.Interface()
	}
	return keys, m
}

// immutable refuses a method that would change a list or dict, as transformers'
// ImmutableSandboxedEnvironment does (a template cannot append to the messages).
func immutable[I any](typ, method string) exec.Method[I] {
	return func(I, *exec.Value, *exec.VarArgs) (any, error) {
		return nil, fmt.Errorf("access to attribute %q of %q object is unsafe: the chat template sandbox is immutable, as transformers' is", method, typ)
	}
}

// keysInOrder is a map's keys in the order DecodeJSON met them, sorted for maps it did not
// build (there is no other order to keep).
func keysInOrder(m map[string]any) []string {
	if keys := orderOf(m); keys != nil {
		return keys
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// pyTuple prints as Python prints a tuple; iterating and unpacking it is a list's.
type pyTuple []any

func (t pyTuple) String() string {
	parts := make([]string, len(t))
	for i, e := range t {
		if s, ok := e.(string); ok {
			parts[i] = pyRepr(s)
		} else {
			parts[i] = exec.ToValue(e).String()
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// pyRepr quotes a string as Python's repr does in the common case.
func pyRepr(s string) string {
	q := "'"
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = `"`
	}
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`, q, `\`+q)
	return q + r.Replace(s) + q
}

func itemsOf(keys []string, m map[string]any) []any {
	out := []any{}
	for _, k := range keys {
		out = append(out, pyTuple{k, m[k]})
	}
	return out
}

// itemsFilter is Jinja2's items filter with the mapping's own order (gonja walks a Go map in
// random order, so a template iterating tool parameters rendered differently every time).
func itemsFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if len(params.Args) > 0 || len(params.KwArgs) > 0 {
		return exec.AsValue(exec.ErrInvalidCall(errors.New("items takes no arguments")))
	}
	switch in.Interface().(type) {
	case map[string]any, *exec.Dict:
		keys, m := ordered(nil, in)
		return exec.AsValue(itemsOf(keys, m))
	}
	return itemsFallback(e, in, params)
}

var itemsFallback, _ = builtins.Filters.Get("items")

// keyOrderFilters walk their input: given a mapping they walk its keys, which gonja takes
// sorted and Jinja2 in insertion order.
var keyOrderFilters = []string{"list", "first", "last", "join", "unique", "map", "select",
	"reject", "selectattr", "rejectattr", "batch", "slice", "sum", "min", "max"}

// inKeyOrder hands a filter a mapping DecodeJSON built as its keys in their order.
func inKeyOrder(f exec.FilterFunction) exec.FilterFunction {
	return func(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
		if m, ok := in.Interface().(map[string]any); ok {
			keys := []any{}
			for _, k := range keysInOrder(m) {
				keys = append(keys, k)
			}
			in = exec.AsValue(keys)
		}
		return f(e, in, params)
	}
}

// dictsortFilter is Jinja2's dictsort(case_sensitive=false, by="key", reverse=false), on
// template literals too (gonja's gave [] for those).
func dictsortFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	var keys []string
	var m map[string]any
	switch in.Interface().(type) {
	case map[string]any, *exec.Dict:
		keys, m = ordered(nil, in)
	default:
		return dictsortFallback(e, in, params)
	}
	caseSensitive, byValue, rev := false, false, false
	for i, a := range params.Args {
		switch {
		case i == 0 && a.IsBool():
			caseSensitive = a.Bool()
		case i == 1 && a.IsString():
			byValue = a.String() == "value"
		case i == 2 && a.IsBool():
			rev = a.Bool()
		default:
			return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("dictsort: unexpected argument %s", a.String())))
		}
	}
	for k, a := range params.KwArgs {
		switch {
		case k == "case_sensitive" && a.IsBool():
			caseSensitive = a.Bool()
		case k == "by" && a.IsString() && (a.String() == "key" || a.String() == "value"):
			byValue = a.String() == "value"
		case k == "reverse" && a.IsBool():
			rev = a.Bool()
		default:
			return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("dictsort: unexpected %s=%s", k, a.String())))
		}
	}
	// Python compares numbers as numbers and strings as strings (lowercased unless case
	// sensitive), and refuses to order a number against a string
	var cmpErr error
	less := func(a, b string) bool {
		if !byValue {
			if !caseSensitive {
				a, b = strings.ToLower(a), strings.ToLower(b)
			}
			return a < b
		}
		va, vb := exec.ToValue(m[a]), exec.ToValue(m[b])
		switch {
		case (va.IsNumber() || va.IsBool()) && (vb.IsNumber() || vb.IsBool()):
			return pyNum(va) < pyNum(vb)
		case va.IsString() && vb.IsString():
			x, y := va.String(), vb.String()
			if !caseSensitive {
				x, y = strings.ToLower(x), strings.ToLower(y)
			}
			return x < y
		}
		if cmpErr == nil {
			cmpErr = fmt.Errorf("dictsort: '<' not supported between %s and %s", va.String(), vb.String())
		}
		return false
	}
	keys = slices.Clone(keys)
	sort.SliceStable(keys, func(i, j int) bool { // stable both ways, as Python's sorted
		if rev {
			return less(keys[j], keys[i])
		}
		return less(keys[i], keys[j])
	})
	if cmpErr != nil {
		return exec.AsValue(exec.ErrInvalidCall(cmpErr))
	}
	return exec.AsValue(itemsOf(keys, m))
}

var dictsortFallback, _ = builtins.Filters.Get("dictsort")

// pyNum is a number or bool as Python compares it.
func pyNum(v *exec.Value) float64 {
	if v.IsBool() {
		if v.Bool() {
			return 1
		}
		return 0
	}
	return v.Float()
}

// roundFilter is Jinja2's round(precision=0, method="common"): "common" is Python's round,
// which takes the nearest decimal of the float's exact value and breaks exact ties to even
// (2.5 gives 2.0; gonja gave 3.0); "floor" and "ceil" scale, round and scale back.
func roundFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	precision, method := 0, "common"
	for i, a := range params.Args {
		switch {
		case i == 0 && a.IsInteger():
			precision = a.Integer()
		case i == 1 && a.IsString():
			method = a.String()
		default:
			return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("round: unexpected argument %s", a.String())))
		}
	}
	for k, a := range params.KwArgs {
		switch {
		case k == "precision" && a.IsInteger():
			precision = a.Integer()
		case k == "method" && a.IsString():
			method = a.String()
		default:
			return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("round: unexpected %s=%s", k, a.String())))
		}
	}
	if !in.IsNumber() {
		return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("round: %s is not a number", in.String())))
	}
	x, scale := in.Float(), math.Pow(10, float64(precision))
	if precision < 0 && scale == 0 { // 10**precision underflows: everything rounds to ±0
		return exec.AsValue(math.Copysign(0, x))
	}
	switch method {
	case "common":
		if in.IsInteger() {
			if precision >= 0 {
				return in // Python's round(3, 0) is the int 3
			}
			return exec.AsValue(roundIntHalfEven(in.Integer(), precision))
		}
		if precision < 0 {
			return exec.AsValue(math.RoundToEven(x*scale) / scale)
		}
		r, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', precision, 64), 64)
		return exec.AsValue(r)
	case "floor":
		return exec.AsValue(math.Floor(x*scale)/scale + 0) // + 0: Python's floor and ceil give ints, never -0
	case "ceil":
		return exec.AsValue(math.Ceil(x*scale)/scale + 0)
	}
	return exec.AsValue(exec.ErrInvalidCall(errors.New(`round: method must be "common", "ceil" or "floor"`)))
}

// roundIntHalfEven is Python's round(n, precision) on an int with precision < 0: an int,
// to the nearest multiple of 10**-precision, ties to the even multiple.
func roundIntHalfEven(n, precision int) int {
	if precision < -18 {
		return 0
	}
	unit := 1
	for range -precision {
		unit *= 10
	}
	q, r := n/unit, n%unit
	if r < 0 {
		q, r = q-1, r+unit
	}
	if 2*r > unit || (2*r == unit && q%2 != 0) {
		q++
	}
	return q * unit
}

// formatFilter is Jinja2's format: Python's printf-style `in % args` (gonja handed the
// verbs to Go's fmt, so "%s" of an int printed %!s(int=3)).
func formatFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if len(params.KwArgs) > 0 {
		return exec.AsValue(exec.ErrInvalidCall(errors.New("format: keyword arguments are not supported")))
	}
	out, err := pyPercent(in.String(), params.Args)
	if err != nil {
		return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("format: %w", err)))
	}
	return exec.AsValue(out)
}

// pyPercent is Python's str % tuple for the conversions s r d i u f F e E g G x X o c and %,
// with flags, width and precision.
func pyPercent(f string, args []*exec.Value) (string, error) {
	var sb strings.Builder
	next := 0
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			sb.WriteByte(f[i])
			continue
		}
		j := i + 1
		for j < len(f) && strings.IndexByte("-+ 0#", f[j]) >= 0 {
			j++
		}
		for j < len(f) && f[j] >= '0' && f[j] <= '9' {
			j++
		}
		if j < len(f) && f[j] == '.' {
			j++
			for j < len(f) && f[j] >= '0' && f[j] <= '9' {
				j++
			}
		}
		if j >= len(f) {
			return "", errors.New("incomplete format")
		}
		spec, verb := f[i+1:j], f[j]
		i = j
		if verb == '%' {
			sb.WriteByte('%')
			continue
		}
		if next >= len(args) {
			return "", errors.New("not enough arguments for format string")
		}
		a := args[next]
		next++
		switch verb {
		case 's', 'r':
			str := a.String()
			switch {
			case a.IsNil():
				str = "None"
			case a.IsString() && verb == 'r':
				str = pyRepr(str)
			}
			fmt.Fprintf(&sb, "%"+strings.Trim(spec, "+ 0#")+"s", str)
		case 'd', 'i', 'u':
			if !a.IsNumber() && !a.IsBool() {
				return "", fmt.Errorf("%%%c format: a real number is required, not %s", verb, a.String())
			}
			n := int(pyNum(a))
			if a.IsInteger() {
				n = a.Integer()
			}
			fmt.Fprintf(&sb, "%"+strings.ReplaceAll(spec, "#", "")+"d", n)
		case 'f', 'F', 'e', 'E', 'g', 'G':
			if !a.IsNumber() && !a.IsBool() {
				return "", fmt.Errorf("must be real number, not %s", a.String())
			}
			if !strings.Contains(spec, ".") {
				spec += ".6" // Python's default precision, also for g
			}
			fmt.Fprintf(&sb, "%"+spec+string(verb), pyNum(a))
		case 'x', 'X', 'o':
			if !a.IsInteger() && !a.IsBool() {
				return "", fmt.Errorf("%%%c format: an integer is required, not %s", verb, a.String())
			}
			out := fmt.Sprintf("%"+spec+string(verb), int(pyNum(a)))
			if verb == 'o' && strings.Contains(spec, "#") { // Python's alternate octal is 0o17, Go's 017
				out = strings.Replace(out, "0", "0o", 1)
			}
			sb.WriteString(out)
		case 'c':
			if a.IsInteger() {
				sb.WriteRune(rune(a.Integer()))
			} else {
				sb.WriteString(a.String())
			}
		default:
			return "", fmt.Errorf("unsupported format character %q", verb)
		}
	}
	if next < len(args) {
		return "", errors.New("not all arguments converted during string formatting")
	}
	return sb.String(), nil
}

// titleFilter is Jinja2's title: a word starts after a run of whitespace (Python's, Unicode
// included), hyphens and opening brackets, not after commas or dots as str.title has it.
func titleFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	var sb strings.Builder
	start := true
	for _, r := range in.String() {
		switch {
		case pyIsSpace(r) || strings.ContainsRune("-({[<", r):
			sb.WriteRune(r)
			start = true
		case start:
			sb.WriteString(strings.ToUpper(string(r)))
			start = false
		default:
			sb.WriteString(strings.ToLower(string(r)))
		}
	}
	return exec.AsValue(sb.String())
}

// trimFilter is Jinja2's trim(chars=None): of the value as a string, whatever it is.
func trimFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	chars, given, err := optString(params, 0, "chars")
	if err != nil || len(params.Args) > 1 {
		return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("trim: %v", err)))
	}
	cut := pyIsSpace
	if given {
		cut = func(r rune) bool { return strings.ContainsRune(chars, r) }
	}
	return exec.AsValue(strings.TrimFunc(in.String(), cut))
}

// sequenceTest is Jinja2's `sequence`: anything with a length and items, strings and
// mappings included.
func sequenceTest(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
	switch reflect.Indirect(in.Val).Kind() {
	case reflect.String, reflect.Slice, reflect.Array, reflect.Map:
		return true, nil
	}
	_, isDict := in.Interface().(*exec.Dict)
	return isDict, nil
}

// reverseFilter is Jinja2's reverse: a string backwards, any other sequence in reverse
// order, a mapping's keys last to first (gonja's sorted the items, then reversed them).
func reverseFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if len(params.Args) > 0 || len(params.KwArgs) > 0 {
		return exec.AsValue(exec.ErrInvalidCall(errors.New("reverse takes no arguments")))
	}
	if in.IsString() {
		r := []rune(in.String())
		slices.Reverse(r)
		return exec.AsValue(string(r))
	}
	var out []any
	switch x := in.Interface().(type) {
	case map[string]any:
		for _, k := range keysInOrder(x) {
			out = append(out, k)
		}
	case *exec.Dict:
		for _, p := range x.Pairs {
			out = append(out, p.Key.Interface())
		}
	default:
		rv := reflect.Indirect(in.Val)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("reverse: %s is not a sequence", in.String())))
		}
		for i := range rv.Len() {
			out = append(out, rv.Index(i).Interface())
		}
	}
	slices.Reverse(out)
	if out == nil {
		out = []any{}
	}
	return exec.AsValue(out)
}

// parityTest is Jinja2's odd and even: Python's value % 2, which is 1 for negative odd
// numbers too, and works on floats and bools (3.0 is odd, true is odd).
func parityTest(odd bool) exec.TestFunction {
	return func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
		if !in.IsNumber() && !in.IsBool() {
			return false, nil
		}
		x := pyNum(in)
		if in.IsInteger() {
			return (in.Integer()%2 != 0) == odd, nil
		}
		m := x - 2*math.Floor(x/2) // Python's modulo: the sign of the divisor
		if odd {
			return m == 1, nil
		}
		return m == 0, nil
	}
}

// boolTest is Jinja2's `true` and `false` tests: only the boolean itself passes (gonja asks
// for any false value, so None and "" were `false`).
func boolTest(want bool) exec.TestFunction {
	return func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
		b, ok := in.Interface().(bool)
		return ok && b == want, nil
	}
}
