# Builds jinja2-statements.json: seeded random templates of nested for loops (over lists,
# messages and mappings, with filters), if/elif/else, namespace updates, comments, raw
# blocks and text full of spaces, tabs and CR/LF line ends, every tag drawn with and without
# the -/+ whitespace markers, each with what Python's Jinja2 renders under transformers'
# settings (trim_blocks, lstrip_blocks, no trailing newline). It keeps what renders without
# error and without printing None. Run from this folder:
#
#	python3 crosscheck_jinja2_stmt.py
import json
import random
import sys

import jinja2, jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
ctx = {"u": ["c", "a", "b"], "d": {"b": 1, "a": 2}, "n": 3, "s": "hi", "e": "",
       "msgs": [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}, {"role": "tool", "content": "T"}, {"role": "user", "content": "U2"}]}
rnd = random.Random(20261207)
WS = ["", " ", "\n", "  ", "\n  ", " \n", "\t", "\n\n", "\r\n", " \r\n  "]
def open_(): return rnd.choice(["{%", "{%-", "{%+"]) + " "
def close(): return " " + rnd.choice(["%}", "-%}"])
def oo(): return rnd.choice(["{{", "{{-"]) + " "
def oc(): return " " + rnd.choice(["}}", "-}}"])
def text(): return rnd.choice(WS) + rnd.choice(["a", "b", "x y", "", "<|im_start|>", "\n"]) + rnd.choice(WS)
def expr(): return rnd.choice(["x", "n", "s", "loop.index", "loop.first", "loop.last", "m.role", "m.content", "ns.c", "u | length", "x ~ '!'", "d[k]", "k"])
def block(depth, scope):
    parts = []
    for _ in range(rnd.randint(1, 4)):
        c = rnd.randint(0, 9 if depth < 3 else 3)
        if c <= 1: parts.append(text())
        elif c <= 3:
            e = rnd.choice([v for v in ["n", "s", "e", "u | join(',')"] + scope])
            parts.append(oo() + e + oc())
        elif c == 4:
            parts.append(open_() + "for x in u" + close() + block(depth + 1, scope + ["x", "loop.index", "loop.last"]) + open_() + "endfor" + close())
        elif c == 5:
            parts.append(open_() + "for m in msgs" + rnd.choice(["", " if m.role != 'tool'"]) + close() + block(depth + 1, scope + ["m.role", "m.content", "loop.index0"]) + open_() + "endfor" + close())
        elif c == 6:
            cond = rnd.choice(["n > 2", "s", "e", "not e", "x == 'a'" if "x" in scope else "true", "m.role == 'user'" if "m.role" in scope else "false", "loop.first" if "loop.index" in scope or "loop.index0" in scope else "n"])
            parts.append(open_() + "if " + cond + close() + block(depth + 1, scope) + (open_() + "elif n" + close() + block(depth + 1, scope) if rnd.random() < 0.3 else "") + (open_() + "else" + close() + block(depth + 1, scope) if rnd.random() < 0.4 else "") + open_() + "endif" + close())
        elif c == 7:
            parts.append(open_() + "set ns.c = ns.c ~ " + rnd.choice(scope + ["s"]) + close())
        elif c == 8:
            parts.append(open_() + "for k in d" + close() + block(depth + 1, scope + ["k", "d[k]"]) + open_() + "endfor" + close())
        else:
            parts.append(rnd.choice(WS) + rnd.choice(["{# c #}", "{#- c #}", "{# c -#}", "{#+ c #}", "{% raw %} {{ x }} {% endraw %}", "{{ '%}' }}", "{{ \"{#\" }}"]) + rnd.choice(WS))
    return "".join(parts)
cases = []
while len(cases) < 600:
    src = "{% set ns = namespace(c='') %}" + rnd.choice(WS) + block(0, []) + rnd.choice(["", "{{ ns.c }}"])
    try:
        out = env.from_string(src).render(**ctx)
    except Exception:
        continue
    if "None" in out:
        continue
    cases.append({"t": src, "r": out})
with open("jinja2-statements.json", "w") as f:
    json.dump({"generator": "jinja2 " + jinja2.__version__, "context": ctx, "cases": cases}, f, ensure_ascii=False, indent=0)
    f.write("\n")
