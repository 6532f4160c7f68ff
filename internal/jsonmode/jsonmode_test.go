package jsonmode

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func accepts(doc string) (ok, done bool) {
	var s State
	ok = s.FeedAll([]byte(doc))
	return ok, ok && s.Done()
}

func TestTable(t *testing.T) {
	cases := []struct {
		doc      string
		ok, done bool
	}{
		{`{}`, true, true},
		{` {"a": 1}`, true, true},
		{`{"a":[1,-2.5e+3,0,0.0,1E9,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9",{"b":[]}]}`, true, true},
		{`{"é ☃": "ü"}`, true, true},
		{`{"a": 1`, true, false},
		{`{"a"`, true, false},
		{`{"a": -`, true, false},
		{`{"a": tr`, true, false},
		{`[1]`, false, false},       // json_object: the top level is an object
		{`"x"`, false, false},       // likewise
		{`{} `, false, false},       // nothing after the object
		{`{}{}`, false, false},      // one object only
		{`{a: 1}`, false, false},    // keys are strings
		{`{"a" 1}`, false, false},   // the colon
		{`{"a": 01}`, false, false}, // no leading zeros
		{`{"a": 1.}`, false, false},
		{`{"a": .5}`, false, false},
		{`{"a": 1e}`, false, false},
		{`{"a": tru}`, false, false},
		{`{"a": [1,]}`, false, false},
		{`{"a": 1,}`, false, false},
		{`{"a": "\x"}`, false, false},
		{`{"a": "\u12g4"}`, false, false},
		{"{\"a\": \"\n\"}", false, false}, // raw control character in a string
		{`{"a": [}`, false, false},
		{`{"a": {]}`, false, false},
		{`{"a":      1}`, false, false}, // a whitespace run past MaxSpaces
		{`{"a":    1}`, true, true},
	}
	for _, c := range cases {
		ok, done := accepts(c.doc)
		if ok != c.ok || done != c.done {
			t.Errorf("%q: accepted %v, complete %v; want %v, %v", c.doc, ok, done, c.ok, c.done)
		}
	}
	deep := strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)
	if ok, done := accepts(deep); !ok || !done {
		t.Errorf("nesting %d refused", MaxDepth)
	}
	if ok, _ := accepts(strings.Repeat(`{"a":`, MaxDepth+1)); ok {
		t.Errorf("nesting past %d accepted", MaxDepth)
	}
}

// randomValue writes a random JSON value with random whitespace (runs of at most MaxSpaces).
func randomValue(r *rand.Rand, b *strings.Builder, depth int) {
	ws := func() {
		for range r.IntN(3) {
			b.WriteByte(" \n\t\r"[r.IntN(4)])
		}
	}
	str := func() {
		b.WriteByte('"')
		for range r.IntN(6) {
			switch r.IntN(6) {
			case 0:
				b.WriteString([]string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`}[r.IntN(8)])
			case 1:
				fmt.Fprintf(b, `\u%04x`, r.IntN(0x10000))
			case 2:
				b.WriteString([]string{"é", "☃", "𝄞", "中"}[r.IntN(4)])
			default:
				b.WriteByte(byte(' ' + r.IntN(94)))
				if s := b.String(); s[len(s)-1] == '"' || s[len(s)-1] == '\\' {
					b.WriteString("x") // keep the string open and the escape whole
					str := b.String()
					b.Reset()
					b.WriteString(str[:len(str)-2] + "x")
				}
			}
		}
		b.WriteByte('"')
	}
	kind := r.IntN(8)
	if depth == 0 {
		kind = 0
	} else if depth > 6 {
		kind = 2 + r.IntN(6)
	}
	switch kind {
	case 0:
		b.WriteByte('{')
		ws()
		for i := range r.IntN(4) {
			if i > 0 {
				b.WriteByte(',')
				ws()
			}
			str()
			ws()
			b.WriteByte(':')
			ws()
			randomValue(r, b, depth+1)
			ws()
		}
		b.WriteByte('}')
	case 1:
		b.WriteByte('[')
		ws()
		for i := range r.IntN(4) {
			if i > 0 {
				b.WriteByte(',')
				ws()
			}
			randomValue(r, b, depth+1)
			ws()
		}
		b.WriteByte(']')
	case 2:
		str()
	case 3, 4:
		if r.IntN(2) == 0 {
			b.WriteByte('-')
		}
		if r.IntN(3) == 0 {
			b.WriteByte('0')
		} else {
			fmt.Fprint(b, 1+r.IntN(1000))
		}
		if r.IntN(2) == 0 {
			fmt.Fprintf(b, ".%d", r.IntN(1000))
		}
		if r.IntN(3) == 0 {
			fmt.Fprintf(b, "%s%s%d", []string{"e", "E"}[r.IntN(2)], []string{"", "+", "-"}[r.IntN(3)], r.IntN(40))
		}
	default:
		b.WriteString(literals[r.IntN(3)])
	}
}

// TestInvalidUTF8 refuses strings that are not UTF-8: a stray continuation byte, a lead
// without its continuation, overlong forms, surrogates.
func TestInvalidUTF8(t *testing.T) {
	for _, doc := range []string{"{\"\x80\": 1}", "{\"a\xc3\": 1}", "{\"\xc0\xaf\": 1}", "{\"\xed\xa0\x80\": 1}", "{\"\xf5\x80\x80\x80\": 1}", "{\"a\": \"\xe2\x82\"}"} {
		if ok, _ := accepts(doc); ok {
			t.Errorf("%q accepted", doc)
		}
	}
	for _, doc := range []string{"{\"é\": \"中😀\"}"} {
		if ok, done := accepts(doc); !ok || !done {
			t.Errorf("%q refused", doc)
		}
	}
}

// TestRandomDocuments: random objects (and every prefix of them) are accepted, complete only
// at their end; mutated documents that the State completes are valid JSON objects by
// encoding/json, and those encoding/json accepts as objects (within the whitespace limit)
// the State accepts too.
func TestRandomDocuments(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var b strings.Builder
		randomValue(r, &b, 0)
		doc := b.String()
		if !json.Valid([]byte(doc)) {
			t.Fatalf("generator wrote invalid JSON %q", doc)
		}
		var s State
		for i := range len(doc) {
			if !s.Feed(doc[i]) {
				t.Fatalf("%q: byte %d (%q) refused", doc, i, doc[i])
			}
			if s.Done() != (i == len(doc)-1) {
				t.Fatalf("%q: complete after byte %d of %d", doc, i, len(doc))
			}
		}
		for range 5 {
			m := []byte(doc)
			switch p := r.IntN(len(m)); r.IntN(3) {
			case 0:
				m = append(m[:p], m[p+1:]...)
			case 1:
				const alphabet = "{}[],:\" \\0123456789.-+eEtrufalsn"
				m[p] = alphabet[r.IntN(len(alphabet))]
			default:
				const alphabet = "{}[],:\"0.-e"
				m = append(m[:p], append([]byte{alphabet[r.IntN(len(alphabet))]}, m[p:]...)...)
			}
			ok, done := accepts(string(m))
			// encoding/json takes invalid UTF-8 (as U+FFFD); a State does not
			validObject := json.Valid(m) && utf8.Valid(m) && strings.HasPrefix(strings.TrimLeft(string(m), " \n\t\r"), "{")
			if done && !validObject {
				t.Fatalf("%q completes an object but is not valid JSON", m)
			}
			trailing := len(m) > 0 && isSpace(m[len(m)-1])
			if validObject && !trailing && longestSpaceRun(m) <= MaxSpaces && !(ok && done) {
				t.Fatalf("valid object %q refused (accepted %v, complete %v)", m, ok, done)
			}
		}
	}
}

func longestSpaceRun(b []byte) int {
	best, run := 0, 0
	for _, c := range b {
		if isSpace(c) {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}

// BenchmarkVocabularyMask checks 150,000 tokens of 1-8 bytes against a state inside an
// object, as JSON mode does for every token of Qwen3's vocabulary each step.
func BenchmarkVocabularyMask(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	toks := make([][]byte, 150000)
	for i := range toks {
		t := make([]byte, 1+r.IntN(8))
		for k := range t {
			t[k] = byte(' ' + r.IntN(94))
		}
		toks[i] = t
	}
	var s State
	s.FeedAll([]byte(`{"key": [1, "va`))
	b.ResetTimer()
	for range b.N {
		n := 0
		for _, t := range toks {
			st := s
			if st.FeedAll(t) {
				n++
			}
		}
		if n == 0 {
			b.Fatal("no token continues the string")
		}
	}
}

func TestCompact(t *testing.T) {
	s := Compact()
	if !s.FeedAll([]byte(`{"a b":[1,{"c":null}]}`)) || !s.Done() {
		t.Fatal("a compact object refused")
	}
	for _, doc := range []string{` {}`, `{ }`, `{"a": 1}`, `{"a":1 }`, `{"a":[1, 2]}`} {
		s := Compact()
		if s.FeedAll([]byte(doc)) {
			t.Errorf("%q accepted", doc)
		}
	}
}
