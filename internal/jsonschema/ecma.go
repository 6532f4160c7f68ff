package jsonschema

import (
	"fmt"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// ecmaSpace is ECMA-262's \s: wider than RE2's.
const ecmaSpace = `\t\n\x{0B}\f\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}`

// ecmaToRE2 rewrites a JSON Schema pattern (ECMA-262, without the u flag) as an RE2
// expression that accepts no string ECMA would refuse, for strings of characters from the
// Basic Multilingual Plane (a State writes no others into a patterned string): \uXXXX
// becomes \x{XXXX}, . leaves out ECMA's line terminators, \s is ECMA's set. What RE2 would
// read otherwise (POSIX classes, \z, \A, \Q, \x{...}, \p, inline flags, [^] and []) and
// characters beyond the BMP are refused.
func ecmaToRE2(p string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRuneInString(p[i:])
		if r > 0xFFFF {
			return "", fmt.Errorf("%q is beyond the Basic Multilingual Plane, which ECMA patterns (without the u flag) read as two characters: not supported", r)
		}
		switch {
		case r == '\\' && i+1 < len(p):
			c := p[i+1]
			switch {
			case c == 'u' && i+6 <= len(p) && isHexString(p[i+2:i+6]):
				if p[i+2] == 'd' || p[i+2] == 'D' {
					if h := p[i+3]; h >= '8' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F' {
						return "", fmt.Errorf("the surrogate escape %s is not supported", p[i:i+6])
					}
				}
				b.WriteString(`\x{` + p[i+2:i+6] + `}`)
				i += 6
				continue
			case c == 's':
				if inClass {
					b.WriteString(ecmaSpace)
				} else {
					b.WriteString("[" + ecmaSpace + "]")
				}
			case c == 'S':
				if inClass {
					return "", fmt.Errorf(`\S inside a character class is not supported`)
				}
				b.WriteString("[^" + ecmaSpace + "]")
			case strings.IndexByte("zAQEpPx", c) >= 0 && !(c == 'x' && i+4 <= len(p) && isHexString(p[i+2:i+4])):
				return "", fmt.Errorf(`\%c means something else in ECMA patterns than in RE2: not supported`, c)
			default:
				b.WriteString(p[i : i+2])
			}
			i += 2
			continue
		case r == '[' && !inClass:
			rest := p[i+1:]
			if strings.HasPrefix(rest, "]") || strings.HasPrefix(rest, "^]") {
				return "", fmt.Errorf("[] and [^] are not supported")
			}
			if strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, "^:") {
				return "", fmt.Errorf("POSIX classes such as [[:digit:]] are not supported")
			}
			inClass = true
		case r == '[' && inClass && strings.HasPrefix(p[i+1:], ":"):
			return "", fmt.Errorf("POSIX classes such as [[:digit:]] are not supported")
		case r == ']' && inClass:
			inClass = false
		case r == '.' && !inClass:
			b.WriteString(`[^\n\r\x{2028}\x{2029}]`)
			i += size
			continue
		case r == '(' && !inClass && strings.HasPrefix(p[i+1:], "?") && !strings.HasPrefix(p[i+1:], "?:"):
			return "", fmt.Errorf("(? groups other than (?: are not supported")
		}
		b.WriteString(p[i : i+size])
		i += size
	}
	out := b.String()
	if _, err := syntax.Parse(out, syntax.Perl); err != nil {
		return "", fmt.Errorf("it does not parse: %v", err)
	}
	return out, nil
}

func isHexString(s string) bool {
	for i := range len(s) {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}
