package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

// roundsBPE is BPE as its description reads, kept as the reference: over the pieces' strings,
// find the lowest-ranked adjacent pair, merge every occurrence of it left to right, again
// until no pair has a rank. Quadratic, and independent of the heap, the ids and the merge
// map that word uses.
func roundsBPE(t *testing.T, ranks map[[2]string]int, vocab map[string]int, byteEnc [256]rune, w string) []int {
	t.Helper()
	var syms []string
	for i := 0; i < len(w); i++ {
		syms = append(syms, string(byteEnc[w[i]]))
	}
	for len(syms) > 1 {
		best, at := -1, -1
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := ranks[[2]string{syms[i], syms[i+1]}]; ok && (best < 0 || r < best) {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		a, b := syms[at], syms[at+1]
		var merged []string
		for i := 0; i < len(syms); i++ {
			if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
				merged = append(merged, a+b)
				i++
			} else {
				merged = append(merged, syms[i])
			}
		}
		syms = merged
	}
	ids := make([]int, len(syms))
	for i, s := range syms {
		id, ok := vocab[s]
		if !ok {
			t.Fatalf("reference: %q is not in the vocabulary", s)
		}
		ids[i] = id
	}
	return ids
}

// TestWordMatchesRounds: the heap-driven merge gives the reference's tokens on random pieces
// up to 3,000 bytes, from alphabets small enough that pairs repeat and merges overlap (runs of
// one letter, two-letter alternations, syllables, CJK, bytes that are no UTF-8).
func TestWordMatchesRounds(t *testing.T) {
	tk := load(t)
	b, err := os.ReadFile("../../testdata/tokenizer/qwen3/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Model struct {
			Vocab  map[string]int `json:"vocab"`
			Merges [][2]string    `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	ranks := map[[2]string]int{}
	for i, m := range f.Model.Merges {
		ranks[m] = i
	}
	alphabets := [][]string{
		{"a"}, {"a", "b"}, {"e", "r", "t", "h", " "}, {"ing", "th", "er", "s", "q"},
		{"中", "国", "人", "的"}, {"\xff", "\xc3", "a", "\x80"}, {"0", "1"}, {"😀", "x"},
		{"the ", "an", "d", "in", "g", "re", "tion"},
	}
	r := rand.New(rand.NewPCG(4, 2))
	for i := range 600 {
		alpha := alphabets[i%len(alphabets)]
		n := 1 + r.IntN(40)
		if i%20 == 0 {
			n = 500 + r.IntN(1000)
		}
		var sb strings.Builder
		for range n {
			sb.WriteString(alpha[r.IntN(len(alpha))])
		}
		w := sb.String()
		got, err := tk.word(w)
		if err != nil {
			t.Fatal(err)
		}
		want := roundsBPE(t, ranks, f.Model.Vocab, tk.byteEnc, w)
		if !slices.Equal(got, want) {
			t.Fatalf("piece %q: got %v, the reference %v", w, got, want)
		}
	}
}

// TestParseRefusesMergesOutsideVocabulary: as the tokenizers library refuses to load it, a
// merge whose part or result is not a token is an error naming the merge.
func TestParseRefusesMergesOutsideVocabulary(t *testing.T) {
	for _, merges := range []string{`[["a", "z"]]`, `[["a", "b"], ["b", "c"]]`, `["a b", "z a"]`} {
		js := `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3}, "merges": ` + merges + `}}`
		_, err := Parse([]byte(js))
		if err == nil || !strings.Contains(err.Error(), "is not in the vocabulary") || !strings.Contains(err.Error(), "model.merges[") {
			t.Errorf("merges %s: %v", merges, err)
		}
	}
}

// BenchmarkWord merges one piece without its cache: a word, and 4,000 CJK characters with no
// space or punctuation between them (one piece to the pre-tokenizer).
func BenchmarkWord(b *testing.B) {
	tk, err := Load("../../testdata/tokenizer/qwen3/tokenizer.json")
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	var cjk strings.Builder
	for range 4000 {
		cjk.WriteRune(rune(0x4e00 + r.IntN(0x5000)))
	}
	for _, c := range []struct{ name, w string }{{"word", " internationalization"}, {"cjk-4000", cjk.String()}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.w)))
			for b.Loop() {
				tk.cache.Clear()
				tk.cached.Store(0)
				if _, err := tk.word(c.w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
