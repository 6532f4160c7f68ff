// Package jsonmode keeps generated text a JSON object, byte by byte: vLLM's
// response_format {"type": "json_object"}. A State says whether a byte can extend the text
// toward a complete object; a sampler masks every token whose bytes cannot, and allows the end
// of the sequence only once the object is complete.
//
// The State is a small value (no pointers), so checking a token means copying it and feeding
// the token's bytes: the whole vocabulary is checked each step without allocating.
package jsonmode

// MaxDepth is the deepest nesting of objects and arrays a State follows; deeper is refused.
const MaxDepth = 32

// MaxSpaces is the longest run of whitespace between JSON tokens a State accepts: a model
// that keeps choosing whitespace would otherwise never finish.
const MaxSpaces = 4

// lexical states
const (
	sStart      = iota // before the top-level object
	sValue             // a value is expected (after ':' or '[' or ',' in an array)
	sValueOrEnd        // after '[': a value or ']'
	sKey               // a key string is expected (after ',' in an object)
	sKeyOrEnd          // after '{': a key or '}'
	sColon             // after a key: ':'
	sAfter             // after a value: ',' or the closing bracket, or the end at the top
	sString            // inside a string
	sEscape            // after a backslash in a string
	sUnicode           // inside \uXXXX (hexLeft digits to go)
	sMinus             // number: after '-'
	sZero              // number: a leading 0
	sInt               // number: integer digits
	sDot               // number: after '.'
	sFrac              // number: fraction digits
	sExp               // number: after 'e'
	sExpSign           // number: after the exponent's sign
	sExpInt            // number: exponent digits
	sLiteral           // inside true, false or null (lit, litPos)
	sDone              // the object is complete: nothing more
)

var literals = [3]string{"true", "false", "null"}

// State is how far a JSON object has come. The zero State expects the object's '{'.
type State struct {
	stack   [MaxDepth]byte // '{' or '[' per open container
	depth   uint8
	lex     uint8
	isKey   bool  // the string being read is an object key
	hexLeft uint8 // \u digits still to come
	lit     uint8 // which literal
	litPos  uint8 // bytes of it read
	spaces  uint8 // whitespace run so far
	utfLeft uint8 // continuation bytes still to come in a string's multi-byte character
	utfLo   uint8 // the range the next one must be in
	utfHi   uint8
	compact bool // no whitespace between tokens at all
}

// Compact is the State before an object written without whitespace between its tokens
// (vLLM's disable_any_whitespace).
func Compact() State { return State{compact: true} }

// Done says the object is complete: the only thing left to generate is the end.
func (s *State) Done() bool { return s.lex == sDone }

// Feed advances s by one byte and reports whether the byte can continue a JSON object; when
// it cannot, s is left in an unspecified state (feed a copy to test).
func (s *State) Feed(c byte) bool {
	if isSpace(c) && s.spaceAllowed() {
		if s.compact {
			return false
		}
		if s.endsNumber() {
			s.lex = sAfter
		}
		s.spaces++
		return s.spaces <= MaxSpaces
	}
	s.spaces = 0
	switch s.lex {
	case sStart:
		if c == '{' {
			return s.open('{', sKeyOrEnd)
		}
		return false
	case sValue, sValueOrEnd:
		if c == ']' && s.lex == sValueOrEnd {
			return s.close(']')
		}
		return s.startValue(c)
	case sKey, sKeyOrEnd:
		if c == '}' && s.lex == sKeyOrEnd {
			return s.close('}')
		}
		if c == '"' {
			s.lex, s.isKey = sString, true
			return true
		}
		return false
	case sColon:
		if c == ':' {
			s.lex = sValue
			return true
		}
		return false
	case sAfter:
		return s.after(c)
	case sString:
		if s.utfLeft > 0 {
			if c < s.utfLo || c > s.utfHi {
				return false
			}
			s.utfLeft--
			s.utfLo, s.utfHi = 0x80, 0xBF
			return true
		}
		if c >= 0x80 {
			n, lo, hi, ok := UTF8Lead(c)
			s.utfLeft, s.utfLo, s.utfHi = uint8(n), lo, hi
			return ok
		}
		switch {
		case c == '"':
			if s.isKey {
				s.lex = sColon
			} else {
				s.lex = sAfter
			}
			s.isKey = false
			return true
		case c == '\\':
			s.lex = sEscape
			return true
		case c < 0x20:
			return false // control characters must be escaped
		}
		return true
	case sEscape:
		switch c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			s.lex = sString
			return true
		case 'u':
			s.lex, s.hexLeft = sUnicode, 4
			return true
		}
		return false
	case sUnicode:
		if !isHex(c) {
			return false
		}
		if s.hexLeft--; s.hexLeft == 0 {
			s.lex = sString
		}
		return true
	case sMinus:
		switch {
		case c == '0':
			s.lex = sZero
			return true
		case c >= '1' && c <= '9':
			s.lex = sInt
			return true
		}
		return false
	case sZero, sInt:
		switch {
		case c >= '0' && c <= '9' && s.lex == sInt:
			return true
		case c == '.':
			s.lex = sDot
			return true
		case c == 'e' || c == 'E':
			s.lex = sExp
			return true
		}
		s.lex = sAfter
		return s.after(c)
	case sDot:
		if c >= '0' && c <= '9' {
			s.lex = sFrac
			return true
		}
		return false
	case sFrac:
		switch {
		case c >= '0' && c <= '9':
			return true
		case c == 'e' || c == 'E':
			s.lex = sExp
			return true
		}
		s.lex = sAfter
		return s.after(c)
	case sExp:
		switch {
		case c == '+' || c == '-':
			s.lex = sExpSign
			return true
		case c >= '0' && c <= '9':
			s.lex = sExpInt
			return true
		}
		return false
	case sExpSign:
		if c >= '0' && c <= '9' {
			s.lex = sExpInt
			return true
		}
		return false
	case sExpInt:
		if c >= '0' && c <= '9' {
			return true
		}
		s.lex = sAfter
		return s.after(c)
	case sLiteral:
		w := literals[s.lit]
		if c != w[s.litPos] {
			return false
		}
		if s.litPos++; int(s.litPos) == len(w) {
			s.lex = sAfter
		}
		return true
	}
	return false // sDone: the object is complete
}

// spaceAllowed: whitespace is JSON's between tokens, and content inside strings.
func (s *State) spaceAllowed() bool {
	switch s.lex {
	case sString, sEscape, sUnicode, sLiteral, sMinus, sDot, sExp, sExpSign, sDone:
		return false
	}
	return true
}

func (s *State) endsNumber() bool {
	return s.lex == sZero || s.lex == sInt || s.lex == sFrac || s.lex == sExpInt
}

func (s *State) startValue(c byte) bool {
	switch {
	case c == '{':
		return s.open('{', sKeyOrEnd)
	case c == '[':
		return s.open('[', sValueOrEnd)
	case c == '"':
		s.lex, s.isKey = sString, false
		return true
	case c == '-':
		s.lex = sMinus
		return true
	case c == '0':
		s.lex = sZero
		return true
	case c >= '1' && c <= '9':
		s.lex = sInt
		return true
	}
	for i, w := range literals {
		if c == w[0] {
			s.lex, s.lit, s.litPos = sLiteral, uint8(i), 1
			return true
		}
	}
	return false
}

// after takes the byte after a complete value: a comma, or the bracket closing its container.
func (s *State) after(c byte) bool {
	if s.depth == 0 {
		return false
	}
	top := s.stack[s.depth-1]
	switch {
	case c == ',' && top == '{':
		s.lex = sKey
		return true
	case c == ',' && top == '[':
		s.lex = sValue
		return true
	case c == '}' && top == '{', c == ']' && top == '[':
		return s.close(c)
	}
	return false
}

func (s *State) open(bracket byte, next uint8) bool {
	if int(s.depth) == MaxDepth {
		return false
	}
	s.stack[s.depth] = bracket
	s.depth++
	s.lex = next
	return true
}

func (s *State) close(c byte) bool {
	if s.depth == 0 || c == '}' && s.stack[s.depth-1] != '{' || c == ']' && s.stack[s.depth-1] != '[' {
		return false
	}
	s.depth--
	if s.depth == 0 {
		s.lex = sDone
	} else {
		s.lex = sAfter
	}
	return true
}

// UTF8Lead says how many continuation bytes follow lead byte c of a UTF-8 character, and
// the range the first of them must be in (the rules against overlong forms and
// surrogates); ok is false for a byte that cannot lead one.
func UTF8Lead(c byte) (follow int, lo, hi byte, ok bool) {
	lo, hi = 0x80, 0xBF
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 1, lo, hi, true
	case c == 0xE0:
		return 2, 0xA0, hi, true
	case c == 0xED:
		return 2, lo, 0x9F, true
	case c >= 0xE1 && c <= 0xEF:
		return 2, lo, hi, true
	case c == 0xF0:
		return 3, 0x90, hi, true
	case c == 0xF4:
		return 3, lo, 0x8F, true
	case c >= 0xF1 && c <= 0xF3:
		return 3, lo, hi, true
	}
	return 0, 0, 0, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// FeedAll feeds b and reports whether every byte was accepted.
func (s *State) FeedAll(b []byte) bool {
	for _, c := range b {
		if !s.Feed(c) {
			return false
		}
	}
	return true
}
