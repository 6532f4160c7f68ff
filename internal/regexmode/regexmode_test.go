package regexmode

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

var testExprs = []string{
	`\d{3}-\d{4}`,
	`(yes|no|maybe)`,
	`[A-Z][a-z]+( [A-Z][a-z]+)*`,
	`\w+@\w+\.(com|org)`,
	`(?i)hello`,
	`-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`,
	`a*`,
	`^ab$`,
	`[^a-c]{2,3}`,
	`(ab|a)(bc|c)?`,
	`.{0,5}`,
	`[é一-龥😀]+x?`,
	`(?s).a`,
	`\p{Greek}+`,
	`a|`,
}

// pending is how many bytes of an incomplete character st holds.
func pending(st State) uint8 {
	if st.over != nil {
		return st.over.npend
	}
	return st.row().nfa.npend
}

func reference(expr string) *regexp.Regexp { return regexp.MustCompile(`^(?:` + expr + `)$`) }

// alphabet is the bytes random strings are made of for expr: its own, and some others.
func alphabet(expr string) []string {
	var a []string
	for _, r := range expr {
		a = append(a, string(r))
	}
	return append(a, "a", "Z", "0", "7", " ", "-", ".", "\n", "é", "中", "😀", "α", "\xff", "\xe4", "@", "b", "c")
}

// walk takes random bytes the State accepts, failing if it ever has none while not complete.
func walk(t *testing.T, r *rand.Rand, re *Regex, expr string, steps int) (string, State) {
	t.Helper()
	st := re.Start()
	var text []byte
	for range steps {
		var next []byte
		for x := range 256 {
			try := st
			if try.Feed(byte(x)) {
				next = append(next, byte(x))
			}
		}
		if len(next) == 0 {
			if !st.Complete() {
				t.Fatalf("%s: no byte continues %q", expr, text)
			}
			break
		}
		if st.Complete() && r.IntN(4) == 0 {
			break
		}
		c := next[r.IntN(len(next))]
		st.Feed(c)
		text = append(text, c)
	}
	return string(text), st
}

// TestAgreesWithRegexp: on random strings (and on random walks the State takes), the State
// accepts a string as complete exactly when Go's regexp fully matches it, and what it
// accepts is valid UTF-8.
func TestAgreesWithRegexp(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, expr := range testExprs {
		re, err := Compile(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		ref := reference(expr)
		alpha := alphabet(expr)
		matched := 0
		for range 3000 {
			var b strings.Builder
			for range r.IntN(8) {
				b.WriteString(alpha[r.IntN(len(alpha))])
			}
			s := b.String()
			st := re.Start()
			got := st.FeedAll([]byte(s)) && st.Complete()
			want := utf8.ValidString(s) && ref.MatchString(s)
			if got != want {
				t.Fatalf("%s on %q: State %v, regexp %v", expr, s, got, want)
			}
			if got {
				matched++
			}
		}
		for range 300 {
			s, st := walk(t, r, re, expr, 40)
			if pending(st) == 0 && !utf8.ValidString(s) { // a walk cut short may end inside a character
				t.Fatalf("%s: the walk %q is not UTF-8", expr, s)
			}
			if st.Complete() != ref.MatchString(s) {
				t.Fatalf("%s: walk %q complete %v, regexp %v", expr, s, st.Complete(), ref.MatchString(s))
			}
			if st.Complete() {
				matched++
			}
		}
		if matched == 0 {
			t.Fatalf("%s: nothing matched: the test compared no match", expr)
		}
	}
}

// TestFullDFA runs the agreement test with a DFA of four rows: past them a State simulates
// the program itself, and must still agree with Go's regexp.
func TestFullDFA(t *testing.T) {
	defer func(n int) { maxRows = n }(maxRows)
	maxRows = 4
	TestAgreesWithRegexp(t)
}

// TestConcurrentFeeds walks copies of one State from several goroutines at once, as the
// engine's mask does, while the DFA grows; run with -race it checks the rows' sharing.
func TestConcurrentFeeds(t *testing.T) {
	const expr = `[A-Z][a-z]{1,4}( [A-Z][a-z]{1,4}){0,3}|\d+(\.\d+)?`
	re, err := Compile(expr)
	if err != nil {
		t.Fatal(err)
	}
	ref := reference(expr)
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			alpha := alphabet(expr)
			for range 2000 {
				var b strings.Builder
				for range r.IntN(10) {
					b.WriteString(alpha[r.IntN(len(alpha))])
				}
				s := b.String()
				st := re.Start()
				if got, want := st.FeedAll([]byte(s)) && st.Complete(), utf8.ValidString(s) && ref.MatchString(s); got != want {
					errs <- fmt.Sprintf("%q: State %v, regexp %v", s, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestDone(t *testing.T) {
	for _, c := range []struct {
		expr, text     string
		complete, done bool
	}{
		{`(yes|no)`, "no", true, true},
		{`(yes|no)`, "ye", false, false},
		{`a*`, "aa", true, false},
		{`a|`, "", true, false},
		{`\d{3}`, "123", true, true},
	} {
		re, err := Compile(c.expr)
		if err != nil {
			t.Fatal(err)
		}
		st := re.Start()
		if !st.FeedAll([]byte(c.text)) || st.Complete() != c.complete || st.Done() != c.done {
			t.Errorf("%s after %q: complete %v done %v, want %v %v", c.expr, c.text, st.Complete(), st.Done(), c.complete, c.done)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct{ expr, want string }{
		{`\bword\b`, "word boundaries"},
		{`(?m)^a$`, "multi-line"},
		{`a(?=b)`, "does not parse"},
		{`(a)\1`, "does not parse"},
		{`a{1000}b{100}`, "instructions"},
		{`[^\x00-\x{10FFFF}]`, "matches no text"},
		{`^$`, "only the empty text"},
		{`(?:)`, "only the empty text"},
		{`\d{,3}`, "{0,n}"},
		{strings.Repeat("a", 9000), "at most 8192"},
		{"[" + strings.Repeat(`\pL`, 65) + "]", "Unicode classes"},
		{"(" + strings.Repeat("a", 100), "missing closing )"},
		{`a^b`, "matches no text"},
	} {
		_, err := Compile(c.expr)
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("Compile(%.20q...): an error of %d bytes", c.expr, len(err.Error()))
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Compile(%q) = %v, want an error containing %q", c.expr, err, c.want)
		}
	}
}

// BenchmarkVocabularyMask is one step of masking a 150k-token vocabulary.
func BenchmarkVocabularyMask(b *testing.B) {
	re, err := Compile(`[A-Z][a-z]+( [A-Z][a-z]+)*`)
	if err != nil {
		b.Fatal(err)
	}
	st := re.Start()
	st.FeedAll([]byte("Hello Wor"))
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
		for _, t := range vocab {
			try := st
			try.FeedAll(t)
		}
	}
}

func TestTakesRuneIn(t *testing.T) {
	re, err := Compile(`a[x-z]|😀`)
	if err != nil {
		t.Fatal(err)
	}
	st := re.Start()
	for _, c := range []struct {
		lo, hi rune
		want   bool
	}{{'a', 'a', true}, {'b', 'w', false}, {0x1F600, 0x1F600, true}, {0x1F601, 0x10FFFF, false}, {0, 0x10FFFF, true}} {
		if got := st.TakesRuneIn(c.lo, c.hi); got != c.want {
			t.Errorf("start, [%U, %U]: %v, want %v", c.lo, c.hi, got, c.want)
		}
	}
	st.Feed('a')
	if !st.TakesRuneIn('w', 'x') || st.TakesRuneIn('a', 'w') {
		t.Error("after a: want x-z and nothing below")
	}
}

// TestMatchedStaysSmall: once a search's trailing (?s:.*) holds the match, the text that
// follows adds no DFA rows (the threads still looking for the pattern are dropped).
func TestMatchedStaysSmall(t *testing.T) {
	re, err := Compile(`(?s:.*)(?:a.{20}b)(?s:.*)`)
	if err != nil {
		t.Fatal(err)
	}
	st := re.Start()
	if !st.FeedAll([]byte("xa"+strings.Repeat("-", 20)+"b")) || !st.Complete() {
		t.Fatal("the pattern did not match")
	}
	before := len(*re.rows.Load())
	r := rand.New(rand.NewPCG(1, 1))
	for range 3000 {
		if !st.Feed(byte('a' + r.IntN(3))) {
			t.Fatal("a byte after the match was refused")
		}
	}
	if after := len(*re.rows.Load()); after > before+2 || !st.Complete() {
		t.Fatalf("rows %d -> %d after the match (complete %v)", before, after, st.Complete())
	}
	if _, err := CompileInner(`^$`); err != nil {
		t.Fatalf("CompileInner(^$): %v", err)
	}
}
