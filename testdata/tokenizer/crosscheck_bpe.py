# Builds tokenizer-pyref.json: a third reference for the tokenizer beside the Hugging Face
# goldens and tokenizers.js, written here in Python from the algorithm tokenizer.json
# describes: added tokens matched first (leftmost, longest), NFC on the text between them,
# the Qwen2 pre-tokenizer regex with the `regex` module (its \s spelled out as the
# Rust tokenizers' Oniguruma reads it: Unicode White_Space), byte-level mapping, BPE merges by
# rank. It checks itself against tokenizer-golden.json and tokenizer-tokenizersjs.json, then
# encodes and decodes 400 seeded random texts mixing scripts, digits, contractions, unusual
# spaces and controls, combining marks, emoji sequences, code, and special tokens whole and
# broken. Run from this folder (Debian: apt-get install python3-regex):
#
#	python3 crosscheck_bpe.py
import json
import random
import sys
import unicodedata

import regex

# crosscheck_jinja2.py imports encode from here for the ids of its renderings
t = json.load(open('qwen3/tokenizer.json'))
tok = t
vocab = t['model']['vocab']
ranks = {tuple(m) if isinstance(m, list) else tuple(m.split(' ', 1)): i for i, m in enumerate(t['model']['merges'])}
added = sorted((a['content'] for a in t['added_tokens']), key=len, reverse=True)
added_id = {a['content']: a['id'] for a in t['added_tokens']}
pat = t['pre_tokenizer']['pretokenizers'][0]['pattern']['Regex']
WS = r'\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000'
pat = pat.replace(r'[^\s\p{L}\p{N}]', '[^' + WS + r'\p{L}\p{N}]').replace(r'(?!\S)', '(?![^' + WS + '])').replace(r'\s', '[' + WS + ']')
assert r'\s' not in pat and r'\S' not in pat, pat
pre = regex.compile(pat)
bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
b2u = {b: chr(c) for b, c in zip(bs, cs)}

def bpe(word):
    parts = list(word)
    while len(parts) > 1:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get((parts[i], parts[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return [vocab[p] for p in parts]

def encode(text):
    ids = []
    i = 0
    seg = ''
    while i <= len(text):
        hit = None
        if i < len(text):
            for a in added:  # leftmost-longest: at the first position where any matches, the longest
                if text.startswith(a, i):
                    hit = a
                    break
        if hit is None and i < len(text):
            seg += text[i]; i += 1
            continue
        if seg:
            for piece in pre.findall(unicodedata.normalize('NFC', seg)):
                ids += bpe(''.join(b2u[b] for b in piece.encode('utf-8')))
            seg = ''
        if hit is None:
            break
        ids.append(added_id[hit]); i += len(hit)
    return ids



def main():
    for f in ["tokenizer-golden.json", "tokenizer-tokenizersjs.json"]:
        for c in json.load(open(f))["cases"]:
            if encode(c["text"]) != c["ids"]:
                sys.exit("the reference disagrees with %s on %r" % (f, c["text"]))
    rnd = random.Random(7)
    P = ["Hello", "hello", " world", "WORLD", "'s", "'S", "'re", "'LL", "'d", "’s", "don't", "I'M", "x'y", " '", "''", "'", "123", "4567890", "١٢٣", "²", "½", "Ⅻ", "3.14", "-1e10",
         " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", "\t\n", "\u00a0", "\u3000", "\u2028", "\u2029", "\x85", "\ufeff", "\u200b", "\u200d", "\x1c", "\x1f", "\x0b", "\x0c", "\x00", "\x7f",
         "你好", "世界", "こんにちは", "カタカナ", "한국어", "Привет", "мир", "Ελληνικά", "עברית", "مرحبا", "हिन्दी", "ไทย", "ქართული", "Ğüş", "ǅ", "ß", "İ", "ſ", "ﬁ",
         "e\u0301", "a\u0308", "\u0301", "Å", "A\u030a", "한", "\u1100\u1161", "😀", "👍🏽", "👩\u200d👩\u200d👧", "🇫🇷", "©", "™", "→", "∑", "√", "€", "$", "%", "&&", "||", "->", "=>", "...", "…", "—", "–",
         "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "<|im_start", "im_end|>", "<|", "|>", "<<|im_end|>>", "<|fim_prefix|>", "<|vision_start|>",
         "def f(x):", "    return x", "{\"a\": 1}", "[1, 2]", "http://x.y/z?q=1&r=2", "#!/bin/sh", "/* c */", "a_b", "CamelCase", "snake_case", "__init__", "@user", "#tag", "?!", ".,;:", "\\", "\"", "`", "~", "^"]
    texts = set()
    while len(texts) < 400:
        n = rnd.randint(1, 12)
        texts.add("".join(rnd.choice(P) for _ in range(n)))
    cases = []
    inv = {v: k for k, v in vocab.items()}
    u2b = {u: b for b, u in b2u.items()}
    added_content = {a['id']: a['content'] for a in tok['added_tokens']}
    def decode(ids):
        out = b''
        for i in ids:
            if i in added_content:
                out += added_content[i].encode('utf-8')
            else:
                out += bytes(u2b[ch] for ch in inv[i])
        return out.decode('utf-8', errors='replace')
    for t in sorted(texts):
        ids = encode(t)
        cases.append({"text": t, "ids": ids, "decoded": decode(ids)})
    with open("tokenizer-pyref.json", "w") as f:
        json.dump({"tokenizer": "qwen3", "generator": "crosscheck_bpe.py (Python " + sys.version.split()[0] + ", regex " + regex.__version__ + ")", "cases": cases}, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
