package jsonschema

import (
	"unicode/utf8"

	"github.com/strata-ai/strata/internal/jsonmode"
	"github.com/strata-ai/strata/internal/regexmode"
)

// phases of a frame
const (
	pStart      = iota // the value has not started
	oKeyOrEnd          // object: after '{'
	oKey               // object: after ','
	oInKey             // object: inside a key (n bytes of the candidates' encoded names matched)
	oColon             // object: after a key
	oValue             // object: its value is the frame above
	oAfter             // object: after a value
	aValueOrEnd        // array: after '['
	aValue             // array: after ','
	aItem              // array: an item is the frame above
	aAfter             // array: after an item
	sIn                // string: inside
	sEsc               // string: after '\'
	sUni               // string: inside \uXXXX (pos digits read)
	sLowBS             // string: after a high-surrogate escape, its pair's '\'
	sLowU              // string: after that '\', the 'u'
	sUTF               // string: inside a multi-byte UTF-8 character
	nMinus             // number: after '-'
	nZero              // number: a leading 0
	nInt               // number: integer digits
	nDot               // number: after '.'
	nFrac              // number: fraction digits
	nExp               // number: after 'e'
	nExpSign           // number: after the exponent's sign
	nExpInt            // number: exponent digits
	lIn                // literals: n bytes of the candidates matched
	rIn                // ranged integer: its digits go to the State's re
	gIn                // any object: inside, followed by the State's generic lexer
)

// frame is one value being generated: a node of the schema and how far it has come.
type frame struct {
	node  int16
	phase uint8
	pos   uint8  // object: the next property that may come; \u: digits read; UTF-8: bytes to come
	n     uint32 // array: items; string: characters; key, literal: bytes matched
	cand  uint64 // key or literal candidates; string: see the sUni and sUTF cases
}

// string escape flags in frame.cand
const (
	escHigh   = 1 // this \u escape is a high surrogate
	escMustLo = 2 // this \u escape must be a low surrogate
)

// State is how far the generated text has come. It is a value: copy it to try bytes.
type State struct {
	s       *Schema
	stack   [MaxDepth]frame
	depth   uint8
	spaces  uint8
	generic jsonmode.State // the innermost any-object value, when the top frame is one
	// the innermost string's pattern (or format), when it has one: fed the string's
	// characters as they are decoded
	re    regexmode.State
	reOn  bool
	uval  uint32 // a \u escape's digits so far
	hiSur uint32 // a surrogate pair's first half
	// compact: no whitespace between tokens at all
	compact bool
}

// Start is the State before the value's first byte.
func (s *Schema) Start() State {
	st := State{s: s, depth: 1}
	st.stack[0] = frame{node: int16(s.root)}
	return st
}

// StartCompact is Start for a value written without whitespace between its tokens (vLLM's
// disable_any_whitespace).
func (s *Schema) StartCompact() State {
	st := s.Start()
	st.compact = true
	return st
}

// Done says the value is complete and nothing may follow: it has ended, or it is a number
// or literal at the top level that no byte can continue (an integer's 0).
func (st *State) Done() bool {
	if st.depth == 0 {
		return true
	}
	if st.depth > 1 || !st.whole(&st.stack[0]) {
		return false
	}
	f := &st.stack[0]
	n := &st.s.nodes[f.node]
	switch f.phase {
	case rIn:
		return st.re.Done()
	case nZero:
		return n.kind == kInteger // a number's 0 may go on with '.' or 'e'
	case lIn:
		for i, l := range n.lits {
			if f.cand&(1<<i) != 0 && len(l) > int(f.n) {
				return false
			}
		}
		return true
	}
	return false
}

// Complete says the value may end here: it is done, or it is a number or literal at the top
// level that is whole as it is but could go on.
func (st *State) Complete() bool {
	if st.depth == 0 {
		return true
	}
	if st.depth > 1 {
		return false
	}
	return st.whole(&st.stack[0])
}

// whole says a number or literal frame could end here.
func (st *State) whole(f *frame) bool {
	n := &st.s.nodes[f.node]
	switch f.phase {
	case nZero, nInt, nFrac, nExpInt:
		return true
	case lIn:
		for i, l := range n.lits {
			if f.cand&(1<<i) != 0 && len(l) == int(f.n) {
				return true
			}
		}
	case rIn:
		return st.re.Complete()
	}
	return false
}

// FeedAll feeds b and reports whether every byte was accepted.
func (st *State) FeedAll(b []byte) bool {
	for _, c := range b {
		if !st.Feed(c) {
			return false
		}
	}
	return true
}

// Feed advances st by one byte and reports whether the byte can continue a value the schema
// accepts; when it cannot, st is left in an unspecified state (feed a copy to test).
func (st *State) Feed(c byte) bool {
	if st.depth == 0 {
		return false
	}
	f := &st.stack[st.depth-1]
	if isSpace(c) {
		// whitespace ends a number, and a literal unless it goes on inside a string
		if f.phase >= nZero && f.phase <= nExpInt || f.phase == rIn || f.phase == lIn && !st.literalGoesOn(f, c) {
			if !st.whole(f) {
				return false
			}
			st.pop()
			if st.depth == 0 {
				return false // nothing follows the top-level value
			}
			f = &st.stack[st.depth-1]
		}
		if spaceBetween(f.phase) && !st.compact {
			st.spaces++
			return st.spaces <= MaxSpaces
		}
	}
	st.spaces = 0
	return st.step(c)
}

// spaceBetween says whitespace may come in this phase: between JSON tokens.
func spaceBetween(p uint8) bool {
	switch p {
	case pStart, oKeyOrEnd, oKey, oColon, oAfter, aValueOrEnd, aValue, aAfter:
		return true
	}
	return false
}

// literalGoesOn says a candidate of literal frame f continues with c.
func (st *State) literalGoesOn(f *frame, c byte) bool {
	for i, l := range st.s.nodes[f.node].lits {
		if f.cand&(1<<i) != 0 && int(f.n) < len(l) && l[f.n] == c {
			return true
		}
	}
	return false
}

func (st *State) push(node int) bool {
	if int(st.depth) == MaxDepth {
		return false
	}
	st.stack[st.depth] = frame{node: int16(node)}
	st.depth++
	return true
}

// pop ends the top frame's value: its parent moves on to what follows a value.
func (st *State) pop() {
	st.depth--
	if st.depth == 0 {
		return
	}
	p := &st.stack[st.depth-1]
	switch p.phase {
	case oValue:
		p.phase = oAfter
	case aItem:
		p.phase = aAfter
	}
}

// nextProps is the mask of properties that may come next in object f: each from pos on,
// as long as every one before it is optional.
func nextProps(n *node, pos int) uint64 {
	var m uint64
	for j := pos; j < len(n.props); j++ {
		m |= 1 << j
		if n.required&(1<<j) != 0 {
			break
		}
	}
	return m
}

// mayClose says object f may end: no required property is left.
func mayClose(n *node, pos int) bool {
	return n.required>>pos == 0
}

func (st *State) step(c byte) bool {
	f := &st.stack[st.depth-1]
	n := &st.s.nodes[f.node]
	switch f.phase {
	case pStart:
		switch n.kind {
		case kUnion:
			alt := n.alts[c]
			if alt < 0 {
				return false
			}
			f.node = alt
			return st.step(c)
		case kObject:
			if c != '{' {
				return false
			}
			f.phase = oKeyOrEnd
			return true
		case kAnyObject:
			if c != '{' {
				return false
			}
			st.generic = jsonmode.State{}
			if st.compact {
				st.generic = jsonmode.Compact()
			}
			st.generic.Feed(c)
			f.phase = gIn
			return true
		case kArray:
			if c != '[' {
				return false
			}
			f.phase = aValueOrEnd
			return true
		case kString:
			if c != '"' {
				return false
			}
			f.phase = sIn
			if st.reOn = n.re != nil; st.reOn {
				st.re = n.re.Start()
			}
			return true
		case kNumber, kInteger:
			switch {
			case c == '-':
				f.phase = nMinus
			case c == '0':
				f.phase = nZero
			case c >= '1' && c <= '9':
				f.phase = nInt
			default:
				return false
			}
			return true
		case kRanged:
			st.re = n.re.Start()
			if !st.re.Feed(c) {
				return false
			}
			f.phase = rIn
			if st.re.Done() {
				st.pop()
			}
			return true
		case kLiterals:
			for i, l := range n.lits {
				if l[0] == c {
					f.cand |= 1 << i
				}
			}
			if f.cand == 0 {
				return false
			}
			f.phase, f.n = lIn, 1
			st.literalDone(f, n)
			return true
		}
		return false
	case oKeyOrEnd, oKey:
		if c == '}' && f.phase == oKeyOrEnd {
			if !mayClose(n, int(f.pos)) {
				return false
			}
			st.pop()
			return true
		}
		if c != '"' {
			return false
		}
		f.cand = nextProps(n, int(f.pos))
		if f.cand == 0 {
			return false
		}
		f.phase, f.n = oInKey, 1
		return true
	case oInKey:
		var next uint64
		for j := range n.props {
			if k := n.props[j].key; f.cand&(1<<j) != 0 && int(f.n) < len(k) && k[f.n] == c {
				next |= 1 << j
			}
		}
		if next == 0 {
			return false
		}
		f.cand = next
		f.n++
		for j := range n.props {
			if next&(1<<j) != 0 && len(n.props[j].key) == int(f.n) {
				f.pos, f.phase = uint8(j+1), oColon
			}
		}
		return true
	case oColon:
		if c != ':' {
			return false
		}
		f.phase = oValue
		return st.push(n.props[f.pos-1].node)
	case oAfter:
		switch c {
		case ',':
			if nextProps(n, int(f.pos)) == 0 {
				return false
			}
			f.phase = oKey
			return true
		case '}':
			if !mayClose(n, int(f.pos)) {
				return false
			}
			st.pop()
			return true
		}
		return false
	case aValueOrEnd, aValue:
		if c == ']' && f.phase == aValueOrEnd {
			if n.minItems > 0 {
				return false
			}
			st.pop()
			return true
		}
		if n.maxItems >= 0 && int(f.n) >= n.maxItems {
			return false
		}
		f.n++
		f.phase = aItem
		child := n.items
		if int(f.n) <= len(n.prefix) {
			child = n.prefix[f.n-1]
		}
		if !st.push(child) {
			return false
		}
		return st.step(c)
	case aAfter:
		switch c {
		case ',':
			if n.maxItems >= 0 && int(f.n) >= n.maxItems {
				return false
			}
			f.phase = aValue
			return true
		case ']':
			if int(f.n) < n.minItems {
				return false
			}
			st.pop()
			return true
		}
		return false
	case sIn:
		switch {
		case c == '"':
			if int(f.n) < n.minLen || st.reOn && !st.re.Complete() {
				return false
			}
			st.reOn = false
			st.pop()
			return true
		case c < 0x20:
			return false // control characters must be escaped
		case c == '\\':
			// an escape is one character (a surrogate pair's two are one): it is counted
			// here, before it starts, so one that cannot fit is never begun; with a
			// pattern, \u can write any character it may take next
			if st.reOn && !st.re.TakesRuneIn(0, utf8.MaxRune) {
				return false
			}
			f.phase = sEsc
			return st.char(f, n)
		case st.reOn && (c >= 0xF0 || !st.re.Feed(c)):
			// the raw bytes are the characters' own; none beyond the BMP, which ECMA's
			// patterns read as two characters
			return false
		case c < 0x80:
			return st.char(f, n)
		}
		// the lead byte of a multi-byte character
		follow, lo, hi, ok := jsonmode.UTF8Lead(c)
		if !ok {
			return false
		}
		f.pos = uint8(follow)
		f.phase, f.cand = sUTF, uint64(lo)|uint64(hi)<<8
		return st.char(f, n)
	case sUTF:
		if c < byte(f.cand) || c > byte(f.cand>>8) || st.reOn && !st.re.Feed(c) {
			return false
		}
		f.cand = 0x80 | 0xBF<<8
		if f.pos--; f.pos == 0 {
			f.phase = sIn
		}
		return true
	case sEsc:
		switch c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			if st.reOn && !st.re.Feed(unescape[c]) {
				return false
			}
			f.phase = sIn
			return true
		case 'u':
			f.phase, f.pos, f.cand, st.uval = sUni, 0, 0, 0
			return true
		}
		return false
	case sLowBS:
		if c != '\\' {
			return false
		}
		f.phase = sLowU
		return true
	case sLowU:
		if c != 'u' {
			return false
		}
		f.phase, f.pos, f.cand, st.uval = sUni, 0, escMustLo, 0
		return true
	case sUni:
		if !isHex(c) {
			return false
		}
		// \uD800-\uDBFF starts a surrogate pair, which \uDC00-\uDFFF must end
		switch f.pos {
		case 0:
			d := c == 'd' || c == 'D'
			if f.cand == escMustLo && !d {
				return false
			}
			if !d {
				f.cand = 0
			} else if f.cand == 0 {
				f.cand = escHigh
			}
		case 1:
			high := c >= '8' && c <= '9' || c >= 'a' && c <= 'b' || c >= 'A' && c <= 'B'
			low := c >= 'c' && c <= 'f' || c >= 'C' && c <= 'F'
			switch {
			case f.cand == escMustLo && !low:
				return false
			case f.cand == escHigh && !high:
				if low {
					return false
				}
				f.cand = 0
			}
		}
		st.uval = st.uval<<4 | hexValue(c)
		if f.pos++; st.reOn && !st.escapeViable(f, 4-int(f.pos)) {
			return false
		}
		if f.pos < 4 {
			return true
		}
		if f.cand == escHigh {
			st.hiSur = st.uval
			f.phase = sLowBS
			return true
		}
		f.phase = sIn
		if st.reOn {
			r := rune(st.uval)
			if f.cand == escMustLo {
				r = 0x10000 + rune(st.hiSur-0xD800)<<10 + rune(st.uval-0xDC00)
			}
			var b [utf8.UTFMax]byte
			return st.re.FeedAll(b[:utf8.EncodeRune(b[:], r)])
		}
		return true
	case nMinus:
		switch {
		case c == '0':
			f.phase = nZero
			return true
		case c >= '1' && c <= '9':
			f.phase = nInt
			return true
		}
		return false
	case nZero, nInt:
		switch {
		case c >= '0' && c <= '9' && f.phase == nInt:
			return true
		case c == '.' && n.kind == kNumber:
			f.phase = nDot
			return true
		case (c == 'e' || c == 'E') && n.kind == kNumber:
			f.phase = nExp
			return true
		}
		return st.endThen(c)
	case nDot:
		if c >= '0' && c <= '9' {
			f.phase = nFrac
			return true
		}
		return false
	case nFrac:
		switch {
		case c >= '0' && c <= '9':
			return true
		case c == 'e' || c == 'E':
			f.phase = nExp
			return true
		}
		return st.endThen(c)
	case nExp:
		switch {
		case c == '+' || c == '-':
			f.phase = nExpSign
			return true
		case c >= '0' && c <= '9':
			f.phase = nExpInt
			return true
		}
		return false
	case nExpSign:
		if c >= '0' && c <= '9' {
			f.phase = nExpInt
			return true
		}
		return false
	case nExpInt:
		if c >= '0' && c <= '9' {
			return true
		}
		return st.endThen(c)
	case lIn:
		var next uint64
		for i, l := range n.lits {
			if f.cand&(1<<i) != 0 && int(f.n) < len(l) && l[f.n] == c {
				next |= 1 << i
			}
		}
		if next == 0 {
			return st.endThen(c)
		}
		f.cand = next
		f.n++
		st.literalDone(f, n)
		return true
	case rIn:
		if try := st.re; try.Feed(c) {
			st.re = try
			if st.re.Done() {
				st.pop()
			}
			return true
		}
		return st.endThen(c)
	case gIn:
		if !st.generic.Feed(c) {
			return false
		}
		if st.generic.Done() {
			st.pop()
		}
		return true
	}
	return false
}

// unescape is what each one-letter escape stands for.
var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func hexValue(c byte) uint32 {
	switch {
	case c <= '9':
		return uint32(c - '0')
	case c >= 'a':
		return uint32(c-'a') + 10
	}
	return uint32(c-'A') + 10
}

// escapeViable says whether the \u escape being read, with left digits to come, can still
// be a character the pattern takes next: its digits so far leave a range of code units,
// and a first half of a surrogate pair stands for the characters its second half can make.
func (st *State) escapeViable(f *frame, left int) bool {
	lo, hi := st.uval<<(4*left), (st.uval+1)<<(4*left)-1
	if f.cand == escMustLo { // the pair's second half: [DC00, DFFF] after the first
		lo, hi = max(lo, 0xDC00), min(hi, 0xDFFF)
		base := 0x10000 + rune(st.hiSur-0xD800)<<10
		return lo <= hi && st.re.TakesRuneIn(base+rune(lo-0xDC00), base+rune(hi-0xDC00))
	}
	// characters outside the surrogates: a pattern's string holds none beyond the BMP
	return lo <= 0xD7FF && st.re.TakesRuneIn(rune(lo), rune(min(hi, 0xD7FF))) ||
		hi >= 0xE000 && st.re.TakesRuneIn(rune(max(lo, 0xE000)), rune(hi))
}

// char counts one more character of a string against its maxLength.
func (st *State) char(f *frame, n *node) bool {
	f.n++
	return n.maxLen < 0 || int(f.n) <= n.maxLen
}

// literalDone ends a literal frame once one candidate is whole and none goes on.
func (st *State) literalDone(f *frame, n *node) {
	whole := false
	for i, l := range n.lits {
		if f.cand&(1<<i) == 0 {
			continue
		}
		if len(l) > int(f.n) {
			return
		}
		whole = true
	}
	if whole {
		st.pop()
	}
}

// endThen ends the top number or literal, if it is whole, and gives c to what follows.
func (st *State) endThen(c byte) bool {
	if !st.whole(&st.stack[st.depth-1]) {
		return false
	}
	st.pop()
	if st.depth == 0 {
		return false
	}
	return st.step(c)
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
