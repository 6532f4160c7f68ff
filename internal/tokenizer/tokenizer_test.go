package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

var (
	qwenOnce sync.Once
	qwen     *Tokenizer
	qwenErr  error
)

func load(t *testing.T) *Tokenizer {
	t.Helper()
	qwenOnce.Do(func() { qwen, qwenErr = Load("../../testdata/tokenizer/qwen3/tokenizer.json") })
	if qwenErr != nil {
		t.Fatal(qwenErr)
	}
	return qwen
}

// TestGolden: encode and decode identical to Hugging Face tokenizers on every golden case,
// and to Hugging Face's JavaScript tokenizers (which agree with the golden on every case) on
// 60 more texts: combining marks and NFC, scripts with and without spaces, digits of other
// scripts, contractions in capitals and with a typographic apostrophe, special and added
// tokens inside words, control characters, unusual spaces and line separators, emoji
// sequences (testdata/tokenizer/crosscheck.mjs made the second file); and to a Python
// reference written from tokenizer.json's description (crosscheck_bpe.py, which agrees
// with both) on 400 seeded random mixtures of all of these.
func TestGolden(t *testing.T) {
	for _, f := range []string{"tokenizer-golden.json", "tokenizer-tokenizersjs.json", "tokenizer-pyref.json"} {
		t.Run(f, func(t *testing.T) { testGoldenFile(t, f) })
	}
}

func testGoldenFile(t *testing.T, file string) {
	tk := load(t)
	b, err := os.ReadFile("../../testdata/tokenizer/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Text    string `json:"text"`
			IDs     []int  `json:"ids"`
			Decoded string `json:"decoded"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	for i, c := range g.Cases {
		ids, err := tk.Encode(c.Text)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if fmt.Sprint(ids) != fmt.Sprint(c.IDs) {
			t.Errorf("case %d %q:\n got %v\nwant %v", i, c.Text, ids, c.IDs)
		}
		text, err := tk.Decode(c.IDs, false)
		if err != nil || text != c.Decoded {
			t.Errorf("case %d: decoded %q (%v), want %q", i, text, err, c.Decoded)
		}
	}
}

// TestStreamNeverBreaksUTF8: feeding tokens one by one yields only valid UTF-8 pieces that
// add up to the full decode.
func TestStreamNeverBreaksUTF8(t *testing.T) {
	tk := load(t)
	text := "emoji 😀🎉👩‍👩‍👧 日本語のテキスト 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 café"
	ids, err := tk.Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	s := tk.NewStream(false)
	var sb strings.Builder
	for _, id := range ids {
		piece, err := s.Add(id)
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsRune(piece, '\uFFFD') {
			t.Fatalf("token %d produced a replacement character: %q", id, piece)
		}
		sb.WriteString(piece)
	}
	sb.WriteString(s.Flush())
	if sb.String() != text {
		t.Fatalf("streamed %q, want %q", sb.String(), text)
	}
}

func TestSpecialTokens(t *testing.T) {
	tk := load(t)
	ids, err := tk.Encode("<|im_start|>user\nhi<|im_end|>")
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] != 151644 || ids[len(ids)-1] != 151645 {
		t.Fatalf("special tokens not matched: %v", ids)
	}
	text, _ := tk.Decode(ids, true)
	if text != "user\nhi" {
		t.Fatalf("skip special: %q", text)
	}
	if _, err := tk.Decode([]int{1 << 30}, false); err == nil {
		t.Fatal("out-of-range id decoded")
	}
}

// FuzzRoundTrip: byte-level BPE loses nothing but normalisation, so decoding what encoding
// produced gives back the NFC form of any valid UTF-8 text, special tokens included.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"Hello, my dog is cute", "  x\r\n\t", "😀👩‍👧 café", "<|im_start|>user\nhi<|im_end|>", "<think>\n</think>", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tk := load(t)
		if !utf8.ValidString(s) {
			return
		}
		ids, err := tk.Encode(s)
		if err != nil {
			t.Fatalf("encode %q: %v", s, err)
		}
		back, err := tk.Decode(ids, false)
		if err != nil {
			t.Fatal(err)
		}
		if want := norm.NFC.String(s); back != want {
			t.Fatalf("%q -> %v -> %q", s, ids, back)
		}
	})
}

func TestLossyDecodeLikeTokenizers(t *testing.T) {
	cases := map[string]string{
		"\x80\x80":       "\uFFFD\uFFFD",       // two stray continuation bytes: two replacements
		"\xe2\x82":       "\uFFFD",             // a truncated 3-byte sequence: one
		"a\xf0\x9f\x98x": "a\uFFFDx",           // truncated 4-byte sequence then ASCII
		"\xed\xa0\x80":   "\uFFFD\uFFFD\uFFFD", // a surrogate: ED A0 is not a valid start
		"ok \xc3\xa9":    "ok é",
	}
	for in, want := range cases {
		if got := lossyUTF8([]byte(in)); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestParseRefusesBadIDs(t *testing.T) {
	for _, js := range []string{
		`{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated"}, {"type": "ByteLevel"}]}}`,
		`{"added_tokens": [{"id": 5, "content": ""}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated"}, {"type": "ByteLevel"}]}}`,
	} {
		if _, err := Parse([]byte(js)); err == nil {
			t.Errorf("accepted %s", js)
		}
	}
}

// TestParseNamesMistypedKeys: a tokenizer.json key of the wrong JSON type is named, with
// what it should hold, in JSON's words.
func TestParseNamesMistypedKeys(t *testing.T) {
	for js, want := range map[string]string{
		`{"model": "BPE"}`: "model: got a JSON string, want an object",
		`{"model": {"type": "BPE", "vocab": [1], "merges": []}}`:        "model.vocab: got a JSON array, want an object",
		`{"model": {"type": "BPE", "vocab": {"a": "0"}, "merges": []}}`: "model.vocab: a value is a JSON string, want an integer",
	} {
		if _, err := Parse([]byte(js)); err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", js, err, want)
		}
	}
}
