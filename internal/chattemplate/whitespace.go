package chattemplate

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Jinja2 applies trim_blocks, lstrip_blocks and keep_trailing_newline=False in its lexer;
// gonja's lexer strips the indentation before a block even in the middle of a line
// ("{% if a %} {% if b %}" lost its space). So the source goes through jinjaLayout, which
// does what Jinja2's lexer does to it, and gonja parses the result with those options off.

// jinjaLayout rewrites template source as Jinja2 (transformers' settings) lexes it:
//   - every \r\n and \r becomes \n, and one final newline goes (keep_trailing_newline off);
//   - spaces and tabs between the start of a line and a block or comment tag go, unless the
//     tag opens with "+" (lstrip_blocks);
//   - the newline right after a block or comment tag goes, unless it closes with "+"
//     (trim_blocks).
//
// "-" markers are left for gonja. A trimmed newline becomes the comment {#\n#}, which
// renders as nothing but keeps every line where the author wrote it, for gonja's errors.
func jinjaLayout(src string) (string, error) {
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.ReplaceAll(src, "\r", "\n")
	src = strings.TrimSuffix(src, "\n")

	var sb strings.Builder

	lineStart := true // the text about to be read starts a line
	i := 0
	for i < len(src) {
		j := nextTag(src, i)
		text := src[i:j]
		var end int
		var raw bool
		if j < len(src) {
			end, raw = tagEnd(src, j)
			// gonja's lexer loops forever on a number, a dot and a character past ASCII
			// ("{{ 0.é"): it backs up over the dot by that character's width
			for k := j + 2; src[j+1] != '#' && k+2 < end; k++ {
				if src[k] >= '0' && src[k] <= '9' && src[k+1] == '.' && src[k+2] >= utf8.RuneSelf && !inString(src[j:end], k-j) {
					return "", fmt.Errorf("line %d: a number followed by \".%c\" is not valid Jinja", 1+strings.Count(src[:k], "\n"), []rune(src[k+2:])[0])
				}
			}
		}
		if j < len(src) && src[j+1] != '{' { // a block or a comment
			sign := byte(0)
			if j+2 < len(src) {
				sign = src[j+2]
			}
			switch {
			case sign == '-' && raw: // gonja ignores the markers of raw tags: done here
				text = strings.TrimRightFunc(text, pyIsSpace)
			case sign != '+' && sign != '-':
				text = lstrip(text, lineStart)
			}
		}
		sb.WriteString(text)
		if j == len(src) {
			break
		}
		if raw {
			i, lineStart = layoutRaw(&sb, src, j, end)
			continue
		}
		tag := src[j:end]
		shown := tag
		if len(shown) > 2 && shown[2] == '+' { // its only meaning, lstrip off, is done
			shown = shown[:2] + shown[3:]
		}
		trim := false
		if src[j+1] != '{' {
			trim = !strings.HasSuffix(tag, "+%}") && !strings.HasSuffix(tag, "+#}") && !strings.HasSuffix(tag, "-%}") && !strings.HasSuffix(tag, "-#}")
			if strings.HasSuffix(shown, "+%}") || strings.HasSuffix(shown, "+#}") {
				shown = shown[:len(shown)-3] + shown[len(shown)-2:]
			}
		}
		if src[j+1] != '#' {
			shown = escapeLiterals(shown)
		}
		sb.WriteString(shown)
		i = end
		lineStart = false
		if trim && i < len(src) && src[i] == '\n' {
			sb.WriteString("{#\n#}")
			i++
			lineStart = true
		}
	}
	return sb.String(), nil
}

// escapeLiterals rewrites escapes in a tag's string literals that gonja's lexer gets wrong,
// into ones it reads as Python does: an escaped backslash becomes \x5c (gonja ended the
// literal early at '\\' + quote, so replace('\\', '/') did not parse), and \xHH past
// ASCII becomes \u00HH (gonja made a raw byte of it; Python the code point).
func escapeLiterals(tag string) string {
	if !strings.Contains(tag, "\\") {
		return tag
	}
	var sb strings.Builder
	var quote byte
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		switch {
		case quote == 0:
			if c == '\'' || c == '"' {
				quote = c
			}
		case c == quote:
			quote = 0
		case c == '\\' && i+1 < len(tag):
			switch n := tag[i+1]; {
			case n == '\\':
				sb.WriteString(`\x5c`)
				i++
				continue
			case n == 'x' && i+3 < len(tag) && isHex(tag[i+2]) && isHex(tag[i+3]) && tag[i+2] >= '8':
				sb.WriteString(`\u00` + tag[i+2:i+4])
				i += 3
				continue
			default: // any other escape stays as written, the character after it included
				sb.WriteByte(c)
				sb.WriteByte(n)
				i++
				continue
			}
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// inString reports whether offset k of a tag lies inside one of its string literals.
func inString(tag string, k int) bool {
	var quote byte
	for i := 2; i < k; i++ {
		switch c := tag[i]; {
		case quote != 0 && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		}
	}
	return quote != 0
}

// lstrip is lstrip_blocks on the text before a block or comment tag: whitespace between the
// start of a line and the tag goes (Python's \s, so Unicode spaces too).
func lstrip(text string, lineStart bool) string {
	lpos := strings.LastIndexByte(text, '\n') + 1
	if (lpos > 0 || lineStart) && strings.TrimFunc(text[lpos:], pyIsSpace) == "" {
		return text[:lpos]
	}
	return text
}

// layoutRaw lays out a {% raw %} block whose opening tag is src[j:end] and returns where
// reading goes on. gonja ignores whitespace markers on raw tags and fails on an empty raw
// block, so the markers, lstrip_blocks before the closing tag and trim_blocks after it are
// applied here and the block is written without them (or not at all when empty). lineStart
// says whether a trimmed newline leaves the next text at the start of a line.
func layoutRaw(sb *strings.Builder, src string, j, end int) (next int, lineStart bool) {
	k := rawEnd(src, end)
	if k == len(src) { // unclosed: as written, for gonja to report
		sb.WriteString(src[j:])
		return len(src), false
	}
	closeEnd, _ := tagEnd(src, k)
	content := src[end:k]
	if strings.HasSuffix(src[j:end], "-%}") {
		content = strings.TrimLeftFunc(content, pyIsSpace)
	}
	switch src[k+2] {
	case '-':
		content = strings.TrimRightFunc(content, pyIsSpace)
	case '+':
	default:
		content = lstrip(content, false)
	}
	if content != "" {
		sb.WriteString("{% raw %}" + content + "{% endraw %}")
	}
	i := closeEnd
	closing := src[k:closeEnd]
	switch {
	case strings.HasSuffix(closing, "-%}"):
		i = len(src) - len(strings.TrimLeftFunc(src[i:], pyIsSpace))
	case !strings.HasSuffix(closing, "+%}") && i < len(src) && src[i] == '\n':
		sb.WriteString("{#\n#}")
		return i + 1, true
	}
	return i, false
}

// nextTag is the offset of the next "{{", "{%" or "{#" at or after i, or len(src).
func nextTag(src string, i int) int {
	for {
		k := strings.IndexByte(src[i:], '{')
		if k < 0 || i+k+1 >= len(src) {
			return len(src)
		}
		if c := src[i+k+1]; c == '{' || c == '%' || c == '#' {
			return i + k
		}
		i += k + 1
	}
}

// tagEnd is the offset just past the tag opening at j: a comment ends at its "#}", a block
// at "%}" and an expression at "}}" outside string literals. raw is true for {% raw %}. An
// unclosed tag runs to the end, for gonja to report.
func tagEnd(src string, j int) (end int, raw bool) {
	if src[j+1] == '#' {
		k := strings.Index(src[j+2:], "#}")
		if k < 0 {
			return len(src), false
		}
		return j + 2 + k + 2, false
	}
	closer := byte('}')
	if src[j+1] == '%' {
		closer = '%'
	}
	var quote byte
	for k := j + 2; k < len(src); k++ {
		c := src[k]
		switch {
		case quote != 0:
			if c == '\\' {
				k++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == closer && k+1 < len(src) && src[k+1] == '}':
			end = k + 2
			if closer == '%' {
				body := strings.Trim(src[j+2:k], "+- \t\n")
				raw = body == "raw"
			}
			return end, raw
		}
	}
	return len(src), false
}

// rawEnd is the offset of the tag that closes a raw block ("{% endraw %}", with any
// markers), or len(src).
func rawEnd(src string, i int) int {
	for k := i; ; {
		j := strings.Index(src[k:], "{%")
		if j < 0 {
			return len(src)
		}
		end, _ := tagEnd(src, k+j)
		if strings.Trim(src[k+j+2:max(k+j+2, end-2)], "+- \t\n") == "endraw" {
			return k + j
		}
		k += j + 2
	}
}
