// Package regexmode keeps generated text a full match of a regular expression, byte by byte:
// vLLM's guided_regex. Compile takes an RE2 expression (Go's regexp syntax, which covers
// what vLLM's guides accept except lookarounds and backreferences); a State says whether a
// byte can extend the text toward a match, so a sampler can mask every token whose bytes
// cannot. The text is kept valid UTF-8.
//
// A State is a Pike VM's thread set over the compiled program, holding only threads that can
// still reach the match: a byte is refused when no thread could use it, so the text never
// reaches a prefix with no way on.
package regexmode

import (
	"fmt"
	"math/bits"
	"regexp/syntax"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/strata-ai/strata/internal/jsonmode"
)

// MaxInsts bounds the compiled program: a State holds one bit per instruction.
const MaxInsts = 1024

const words = MaxInsts / 64

type set [words]uint64

func (s *set) add(pc uint32)      { s[pc/64] |= 1 << (pc % 64) }
func (s *set) has(pc uint32) bool { return s[pc/64]&(1<<(pc%64)) != 0 }
func (s *set) empty() bool        { return *s == set{} }
func (s *set) each(f func(pc uint32)) {
	for w, word := range s {
		for word != 0 {
			f(uint32(w*64 + bits.TrailingZeros64(word)))
			word &= word - 1
		}
	}
}

// Regex is a compiled expression; it is read-only and may be shared by many States.
type Regex struct {
	prog *syntax.Prog
	// for each consuming instruction: the threads its rune leads to, and whether the text
	// may end right after it
	next   []set
	endsAt []bool
	start  set  // threads before the first rune
	empty  bool // the empty text matches
	// universal[pc]: any rune, looping back to itself, and the text may end after it (a
	// trailing (?s:.*)): once a match holds and such a thread lives, every text goes on
	// matching, and the state collapses to that thread alone
	universal []bool

	// a DFA built as the text is fed: one row per simulation state met so far, its
	// transitions filled in on first use, so a token's bytes usually cost one array read
	// each however many threads the state holds
	mu   sync.Mutex
	ids  map[nfa]int32
	rows atomic.Pointer[[]*row]
}

// maxRows bounds the DFA (about 1.2 KB a row); past it a State simulates directly. A
// variable so tests can reach that path.
var maxRows = 1 << 14

// MaxLen bounds the expression's length: Go's parser expands classes such as \pL into
// range lists, so a long expression costs far more to parse than its size.
const MaxLen = 8 << 10

// row is one DFA state: where each byte leads (a row number, refused, or not known yet)
// and what it stands for.
type row struct {
	next           [256]atomic.Int32
	nfa            nfa
	complete, done bool
}

const (
	refused = -1
	unknown = -2
)

// Compile parses expr for full matches. Its errors say what is not supported.
func Compile(expr string) (*Regex, error) { return compile(expr, false) }

// CompileInner is Compile for text inside a larger value (a JSON string's content), where
// an expression that matches only the empty text is fine.
func CompileInner(expr string) (*Regex, error) { return compile(expr, true) }

func compile(expr string, emptyOK bool) (*Regex, error) {
	if len(expr) > MaxLen {
		return nil, fmt.Errorf("the regex is %d bytes long, at most %d are supported", len(expr), MaxLen)
	}
	if n := strings.Count(expr, `\p`) + strings.Count(expr, `\P`); n > 64 {
		return nil, fmt.Errorf("the regex has %d Unicode classes (\\p, \\P), at most 64 are supported", n)
	}
	if strings.Contains(expr, "{,") {
		// Python reads {,n} as a repeat of 0 to n, RE2 as the text "{,n}"
		return nil, fmt.Errorf("the regex has \"{,\", which Python and RE2 read differently: write {0,n} for a repeat, or \\{ for the brace")
	}
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("the regex does not parse: %s", short(err))
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, fmt.Errorf("the regex does not compile: %s", short(err))
	}
	if len(prog.Inst) > MaxInsts {
		return nil, fmt.Errorf("the regex compiles to %d instructions, at most %d are supported", len(prog.Inst), MaxInsts)
	}
	for _, in := range prog.Inst {
		if in.Op == syntax.InstEmptyWidth && syntax.EmptyOp(in.Arg)&^(syntax.EmptyBeginText|syntax.EmptyEndText) != 0 {
			return nil, fmt.Errorf("word boundaries (\\b, \\B) and multi-line anchors ((?m)^ and $) are not supported")
		}
	}
	r := &Regex{prog: prog, next: make([]set, len(prog.Inst)), endsAt: make([]bool, len(prog.Inst))}
	// live: consuming instructions from which a match can still be reached
	live := make([]bool, len(prog.Inst))
	for changed := true; changed; {
		changed = false
		for pc := range prog.Inst {
			if live[pc] || !consumes(&prog.Inst[pc]) || !anyValid(&prog.Inst[pc]) {
				continue
			}
			out := prog.Inst[pc].Out
			var reach set
			r.closure(out, false, &reach)
			ok := r.canEnd(out, false)
			reach.each(func(q uint32) { ok = ok || live[q] })
			if ok {
				live[pc], changed = true, true
			}
		}
	}
	keepLive := func(s *set) {
		s.each(func(pc uint32) {
			if !live[pc] {
				s[pc/64] &^= 1 << (pc % 64)
			}
		})
	}
	for pc := range prog.Inst {
		if !live[pc] {
			continue
		}
		out := prog.Inst[pc].Out
		r.closure(out, false, &r.next[pc])
		keepLive(&r.next[pc])
		r.endsAt[pc] = r.canEnd(out, false)
	}
	r.universal = make([]bool, len(prog.Inst))
	for pc := range prog.Inst {
		r.universal[pc] = prog.Inst[pc].Op == syntax.InstRuneAny && r.next[pc].has(uint32(pc)) && r.endsAt[pc]
	}
	r.closure(uint32(prog.Start), true, &r.start)
	keepLive(&r.start)
	r.empty = r.canEnd(uint32(prog.Start), true)
	if r.start.empty() && !(emptyOK && r.empty) {
		if r.empty {
			return nil, fmt.Errorf("the regex matches only the empty text: there is nothing to generate")
		}
		return nil, fmt.Errorf("the regex matches no text")
	}
	r.ids = map[nfa]int32{}
	rows := make([]*row, 0, 64)
	r.rows.Store(&rows)
	r.intern(nfa{r: r, threads: r.start, ended: r.empty})
	return r, nil
}

// short is a parse error without the whole expression it may quote.
func short(err error) string {
	if e, ok := err.(*syntax.Error); ok {
		x := e.Expr
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return fmt.Sprintf("%s: %q", e.Code, x)
	}
	return err.Error()
}

// intern returns n's row number, adding a row for it if it is new; false when the DFA is
// full.
func (r *Regex) intern(n nfa) (int32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.ids[n]; ok {
		return id, true
	}
	rows := *r.rows.Load()
	if len(rows) >= maxRows {
		return 0, false
	}
	rw := &row{nfa: n, complete: n.complete(), done: n.done()}
	for c := range rw.next {
		rw.next[c].Store(unknown)
	}
	// readers see rows[:len] of whichever slice they loaded: appending in place past it,
	// or into a copy, never changes what they read
	grown := append(rows, rw)
	r.rows.Store(&grown)
	id := int32(len(rows))
	r.ids[n] = id
	return id, true
}

// State is how far the text has come. It is a small value: copy it to try bytes.
type State struct {
	r    *Regex
	id   int32
	over *nfa // the simulation, once the DFA is full
}

// Start is the State before the first byte.
func (r *Regex) Start() State { return State{r: r} }

func (st *State) row() *row { return (*st.r.rows.Load())[st.id] }

// Complete says the text so far is a full match.
func (st *State) Complete() bool {
	if st.over != nil {
		return st.over.complete()
	}
	return st.row().complete
}

// Done says the text is a full match and nothing may follow.
func (st *State) Done() bool {
	if st.over != nil {
		return st.over.done()
	}
	return st.row().done
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

// Feed advances st by one byte and reports whether it can continue the text toward a full
// match; when it cannot, st is left in an unspecified state (feed a copy to test). It is
// safe to call on copies of one State from many goroutines.
func (st *State) Feed(c byte) bool {
	if st.over != nil {
		n := *st.over
		if !n.feed(c) {
			return false
		}
		st.over = &n
		return true
	}
	rw := st.row()
	switch v := rw.next[c].Load(); {
	case v >= 0:
		st.id = v
		return true
	case v == refused:
		return false
	}
	n := rw.nfa
	if !n.feed(c) {
		rw.next[c].Store(refused)
		return false
	}
	id, ok := st.r.intern(n)
	if !ok {
		st.over = &n
		return true
	}
	rw.next[c].Store(id)
	st.id = id
	return true
}

func consumes(in *syntax.Inst) bool {
	switch in.Op {
	case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		return true
	}
	return false
}

// anyValid says the instruction accepts some rune that UTF-8 can encode.
func anyValid(in *syntax.Inst) bool {
	return in.Op != syntax.InstRune || intersects(in, 0, unicode.MaxRune)
}

// closure adds the consuming instructions reachable from pc without a rune, at the start of
// the text (where ^ holds) or not; $ is never passed, since a rune follows.
func (r *Regex) closure(pc uint32, atStart bool, s *set) {
	var seen set
	var walk func(pc uint32)
	walk = func(pc uint32) {
		if seen.has(pc) {
			return
		}
		seen.add(pc)
		in := &r.prog.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			walk(in.Out)
			walk(in.Arg)
		case syntax.InstCapture, syntax.InstNop:
			walk(in.Out)
		case syntax.InstEmptyWidth:
			op := syntax.EmptyOp(in.Arg)
			if op&syntax.EmptyEndText != 0 {
				return // the text would have to end here, and a rune follows
			}
			if op&syntax.EmptyBeginText != 0 && !atStart {
				return
			}
			walk(in.Out)
		default:
			if consumes(in) {
				s.add(pc)
			}
		}
	}
	walk(pc)
}

// canEnd says the match is reachable from pc without a rune, with the text ending there.
func (r *Regex) canEnd(pc uint32, atStart bool) bool {
	var seen set
	var walk func(pc uint32) bool
	walk = func(pc uint32) bool {
		if seen.has(pc) {
			return false
		}
		seen.add(pc)
		in := &r.prog.Inst[pc]
		switch in.Op {
		case syntax.InstMatch:
			return true
		case syntax.InstAlt, syntax.InstAltMatch:
			return walk(in.Out) || walk(in.Arg)
		case syntax.InstCapture, syntax.InstNop:
			return walk(in.Out)
		case syntax.InstEmptyWidth:
			op := syntax.EmptyOp(in.Arg)
			if op&syntax.EmptyBeginText != 0 && !atStart {
				return false
			}
			return walk(in.Out)
		}
		return false
	}
	return walk(pc)
}

// intersects says whether the instruction accepts some rune in [lo, hi] (surrogates aside,
// which UTF-8 cannot encode).
func intersects(in *syntax.Inst, lo, hi rune) bool {
	switch in.Op {
	case syntax.InstRuneAny:
		return true
	case syntax.InstRuneAnyNotNL:
		return !(lo == '\n' && hi == '\n')
	case syntax.InstRune1:
		return in.Rune[0] >= lo && in.Rune[0] <= hi
	}
	if len(in.Rune) == 1 { // one rune, and with (?i) its case orbit
		fold := syntax.Flags(in.Arg)&syntax.FoldCase != 0
		r0 := in.Rune[0]
		for r := r0; ; {
			if r >= lo && r <= hi && utf8.ValidRune(r) {
				return true
			}
			if !fold {
				return false
			}
			if r = unicode.SimpleFold(r); r == r0 {
				return false
			}
		}
	}
	for i := 0; i+1 < len(in.Rune); i += 2 {
		a, b := max(in.Rune[i], lo), min(in.Rune[i+1], hi)
		if a > b {
			continue
		}
		// [a, b] minus the surrogates
		if a < 0xD800 || b > 0xDFFF {
			return true
		}
	}
	return false
}

// nfa is the simulation: the live threads, and the UTF-8 character being read.
type nfa struct {
	r       *Regex
	threads set
	ended   bool    // the text so far is a match
	pend    [4]byte // an incomplete UTF-8 character
	npend   uint8
	lo, hi  byte // the range its next byte must be in
}

func (st *nfa) complete() bool { return st.npend == 0 && st.ended }

func (st *nfa) done() bool { return st.complete() && st.threads.empty() }

// feed advances st by one byte and reports whether it can continue the text toward a full
// match; when it cannot, st is left in an unspecified state.
func (st *nfa) feed(c byte) bool {
	if st.npend == 0 {
		if c < utf8.RuneSelf {
			return st.rune(rune(c))
		}
		_, lo, hi, ok := jsonmode.UTF8Lead(c)
		if !ok {
			return false
		}
		st.pend[0], st.npend, st.lo, st.hi = c, 1, lo, hi
		return st.possible()
	}
	if c < st.lo || c > st.hi {
		return false
	}
	st.pend[st.npend] = c
	st.npend++
	st.lo, st.hi = 0x80, 0xBF
	if r, size := utf8.DecodeRune(st.pend[:st.npend]); r != utf8.RuneError || size > 1 {
		if size == int(st.npend) {
			st.npend = 0
			return st.rune(r)
		}
	}
	return st.possible()
}

// possible says some thread accepts a rune that starts with the pending bytes.
func (st *nfa) possible() bool {
	lo, hi := prefixRange(st.pend[:st.npend])
	ok := false
	st.threads.each(func(pc uint32) {
		ok = ok || intersects(&st.r.prog.Inst[pc], lo, hi)
	})
	return ok
}

// prefixRange is the range of runes whose UTF-8 encoding starts with the bytes of p (a valid
// prefix of a multi-byte character).
func prefixRange(p []byte) (lo, hi rune) {
	n := 2
	switch {
	case p[0] >= 0xF0:
		n = 4
	case p[0] >= 0xE0:
		n = 3
	}
	var a, b [4]byte
	copy(a[:], p)
	copy(b[:], p)
	for i := len(p); i < n; i++ {
		a[i], b[i] = 0x80, 0xBF
	}
	// the first continuation byte's own range for E0, ED, F0, F4
	if len(p) == 1 {
		_, l, h, _ := jsonmode.UTF8Lead(p[0])
		a[1], b[1] = l, h
	}
	lo, _ = utf8.DecodeRune(a[:n])
	hi, _ = utf8.DecodeRune(b[:n])
	return lo, hi
}

// rune steps every thread over r.
func (st *nfa) rune(r rune) bool {
	var next set
	ended := false
	st.threads.each(func(pc uint32) {
		if st.r.prog.Inst[pc].MatchRune(r) {
			for w := range next {
				next[w] |= st.r.next[pc][w]
			}
			ended = ended || st.r.endsAt[pc]
		}
	})
	if next.empty() && !ended {
		return false
	}
	if ended {
		// once a trailing (?s:.*) holds the match, nothing else matters: without this, the
		// threads still looking for the pattern make new DFA rows for every text that follows
		var u set
		next.each(func(pc uint32) {
			if u.empty() && st.r.universal[pc] {
				u.add(pc)
			}
		})
		if !u.empty() {
			next = u
		}
	}
	st.threads, st.ended = next, ended
	return true
}

// TakesRuneIn says whether a rune in [lo, hi] can come next, at a character boundary: for
// callers that hold characters in another form (a JSON string's \u escapes) and must know,
// digit by digit, that one of those they can still write is one the expression takes.
func (st *State) TakesRuneIn(lo, hi rune) bool {
	n := st.over
	if n == nil {
		n = &st.row().nfa
	}
	if n.npend != 0 {
		return false
	}
	ok := false
	n.threads.each(func(pc uint32) {
		ok = ok || intersects(&st.r.prog.Inst[pc], lo, hi)
	})
	return ok
}
