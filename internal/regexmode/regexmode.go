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
	"regexp/syntax"
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
	for w, bits := range s {
		for bits != 0 {
			b := bits & -bits
			f(uint32(w*64 + trailing(b)))
			bits &^= b
		}
	}
}

func trailing(b uint64) int {
	n := 0
	for b&1 == 0 {
		b >>= 1
		n++
	}
	return n
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
}

// Compile parses expr for full matches. Its errors say what is not supported.
func Compile(expr string) (*Regex, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("the regex does not parse: %w", err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, fmt.Errorf("the regex does not compile: %w", err)
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
	r.closure(uint32(prog.Start), true, &r.start)
	keepLive(&r.start)
	r.empty = r.canEnd(uint32(prog.Start), true)
	if r.start.empty() && !r.empty {
		return nil, fmt.Errorf("the regex matches no text")
	}
	return r, nil
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

// State is how far the text has come. It is a value: copy it to try bytes.
type State struct {
	r       *Regex
	threads set
	ended   bool    // the text so far is a match
	pend    [4]byte // an incomplete UTF-8 character
	npend   uint8
	lo, hi  byte // the range its next byte must be in
}

// Start is the State before the first byte.
func (r *Regex) Start() State {
	return State{r: r, threads: r.start, ended: r.empty}
}

// Complete says the text so far is a full match.
func (st *State) Complete() bool { return st.npend == 0 && st.ended }

// Done says the text is a full match and nothing may follow.
func (st *State) Done() bool { return st.Complete() && st.threads.empty() }

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
// match; when it cannot, st is left in an unspecified state (feed a copy to test).
func (st *State) Feed(c byte) bool {
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
func (st *State) possible() bool {
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
func (st *State) rune(r rune) bool {
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
	st.threads, st.ended = next, ended
	return true
}
