# Builds jinja2-expressions.json: seeded random template expressions (string methods and
# slices, filters, tests, comparisons, arithmetic, conditionals, nested to three levels) over
# one context, each with what Python's Jinja2 renders, set up as transformers sets it up. It
# keeps only what Jinja2 renders without error (strata may be more lenient there) and leaves
# out the differences gonja keeps: printing None, dict reprs, None against undefined. Run
# from this folder:
#
#	python3 crosscheck_jinja2_expr.py
import json
import random
import sys

import jinja2, jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
ctx = {"s": "Héllo, Wörld  ", "t": "a,b,,c", "u": ["c", "a", "b"], "nums": [3, -1, 2, 10], "d": {"b": 1, "a": 2, "c": 3},
       "m": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "n": 7, "f": 2.5, "e": "", "sp": " \t x y \n"}
rnd = random.Random(20261207)
STR = ['s', 't', 'e', 'sp', '"abc"', '"  a b  "', '"éè"', '"A,B"', 'u[0]', 'm[-1].role', 'm[0]["content"]']
LST = ['u', 'nums', '[1, 2, 3]', '["b", "a"]', 't.split(",")', 's.split()', 'u[1:]', 'nums[::-1]', 'd.keys() | list', 'd | list']
NUM = ['n', 'f', '0', '-3', '2', 'nums[0]', 'u | length', 's | length', 'nums | sum', 'nums | max']
def sexpr(k=0):
    b = rnd.choice(STR)
    if k > 2: return b
    c = rnd.randint(0, 14)
    if c == 0: return '(%s).upper()' % sexpr(k+1)
    if c == 1: return '(%s).strip(%s)' % (sexpr(k+1), rnd.choice(['', '" "', '"a"', '"H,"', 'none']))
    if c == 2: return '(%s).replace(%s, %s)' % (sexpr(k+1), rnd.choice(['"a"', '","', '" "', '""']), rnd.choice(['"-"', '""']))
    if c == 3: return '(%s)[%s]' % (sexpr(k+1), rnd.choice(['0', '-1', '1', '-2']))
    if c == 4: return '(%s)[%s:%s]' % (sexpr(k+1), rnd.choice(['', '1', '-2']), rnd.choice(['', '3', '-1']))
    if c == 5: return '(%s | %s)' % (sexpr(k+1), rnd.choice(['trim', 'lower', 'upper', 'title', 'capitalize', 'reverse', 'string', 'length | string', 'first', 'last']))
    if c == 6: return '%s ~ %s' % (sexpr(k+1), rnd.choice(STR + NUM))
    if c == 7: return '(%s).join(%s)' % (rnd.choice(['","', '""', '" - "']), lexpr(k+1))
    if c == 8: return '(%s | join(%s))' % (lexpr(k+1), rnd.choice(['', '","']))
    if c == 9: return '(%s).lstrip(%s) ~ "|" ~ %s.rstrip()' % (sexpr(k+1), rnd.choice(['', '"H"']), sexpr(k+1))
    if c == 10: return '(%s | tojson)' % rnd.choice(STR + LST + NUM + ['d'])
    if c == 11: return '("%%s-%%s" | format(%s ~ "", %s))' % (sexpr(k+1), rnd.choice(NUM))
    if c == 12 and k == 0: return '%s if %s else %s' % (sexpr(k+1), bexpr(k+1), sexpr(k+1))
    return b
def lexpr(k=0):
    b = rnd.choice(LST)
    if k > 2: return b
    c = rnd.randint(0, 9)
    if c == 0: return '%s | sort' % rnd.choice(['u', 'nums', '[1, 2, 3]', '["b", "a"]', 't.split(",")'])
    if c == 1: return '%s | reverse | list' % b
    if c == 2: return '%s | unique | list' % rnd.choice(['u', '["b", "a", "b", "A"]', 't.split(",")'])
    if c == 3: return '%s | map("string") | list' % b
    if c == 4: return '%s[%s:]' % (b, rnd.choice(['1', '-1', '0']))
    if c == 5: return '(%s).split(%s)' % (sexpr(k+1), rnd.choice(['', '","', 'none', '" ", 1']))
    if c == 6: return '(%s).rsplit(%s)' % (sexpr(k+1), rnd.choice(['', '","', 'none, 1', '",", 1']))
    if c == 7: return 'm | map(attribute="role") | list'
    if c == 8: return '%s | batch(2) | list' % b
    return b
def bexpr(k=0):
    c = rnd.randint(0, 8)
    if c == 0: return '%s in (%s)' % (rnd.choice(['"a"', '"b"', '"user"']), rnd.choice(LST + STR))
    if c == 1: return '(%s).startswith(%s)' % (sexpr(k+1), rnd.choice(['"H"', '"a"', '""']))
    if c == 2: return '(%s).endswith(%s)' % (sexpr(k+1), rnd.choice(['"  "', '"c"']))
    if c == 3: return '%s is %s' % (rnd.choice(STR + LST + NUM + ['d', 'none']), rnd.choice(['string', 'number', 'integer', 'float', 'mapping', 'sequence', 'iterable', 'defined', 'none', 'odd', 'even', 'true', 'false']))
    if c == 4: return 'not %s' % rnd.choice(STR + LST)
    if c == 5: return '%s %s %s' % (rnd.choice(NUM), rnd.choice(['<', '>', '==', '!=', '>=']), rnd.choice(NUM))
    if c == 6: return '(%s) and (%s)' % (bexpr(k+1), bexpr(k+1)) if k < 2 else 'true'
    if c == 7: return '%s | length > %s' % (rnd.choice(STR + LST), rnd.choice(['0', '2']))
    return '%s == %s' % (sexpr(k+1), sexpr(k+1))
def nexpr(k=0):
    c = rnd.randint(0, 8)
    b = rnd.choice(NUM)
    if c == 0: return '%s + %s' % (b, rnd.choice(NUM))
    if c == 1: return '%s * %s' % (b, rnd.choice(NUM))
    if c == 2: return '%s // %s' % (rnd.choice(['n', '0', 'nums[0]', 'nums | sum']), rnd.choice(['2', '3']))
    if c == 3: return '%s %% %s' % (rnd.choice(['n', '0', 'nums[0]', 'nums | sum']), rnd.choice(['2', '3']))
    if c == 4: return '%s / %s' % (b, rnd.choice(['2', '4', '-8']))
    if c == 5: return '%s | round(%s)' % (rnd.choice(['f', '2.675', '-1.5', '7', '0.125']), rnd.choice(['', '1', '2', '-1']))
    if c == 6: return '(%s).count(%s)' % (sexpr(k+1), rnd.choice(['"a"', '","', '""', '"l"']))
    if c == 7: return '(%s).find(%s)' % (sexpr(k+1), rnd.choice(['"l"', '"b"', '","']))
    return '%s | int' % rnd.choice(['"3"', 'f', '"x"', '"-4"'])
cases = []
while len(cases) < 1500:
    kind = rnd.choice([sexpr, sexpr, lexpr, bexpr, nexpr])
    src = '{{ %s }}' % kind()
    if kind is lexpr: src = '{{ (%s) | tojson }}' % kind()
    try:
        out = env.from_string(src).render(**ctx)
    except Exception as e:
        continue  # Python refuses it: strata may be more lenient
    if " is defined" in src and "none" in src:
        continue  # gonja cannot tell None from undefined
    if "None" in out or "{'" in out or "\\t" in out or "\\n" in out:
        continue  # printing None, dict reprs, escapes in reprs: differences gonja keeps
    cases.append({"t": src, "r": out})
with open("jinja2-expressions.json", "w") as f:
    json.dump({"generator": "jinja2 " + jinja2.__version__, "context": ctx, "cases": cases}, f, ensure_ascii=False, indent=0)
    f.write("\n")
