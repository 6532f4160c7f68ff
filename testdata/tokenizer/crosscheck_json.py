# Builds json-dumps-numbers.json: JSON arrays of numbers in every spelling (big ints, exponents
# either case, denormals, overflow to infinity, -0, random bit patterns) and what Python's
# json.dumps(json.loads(s), ensure_ascii=False) writes for each: what transformers' tojson
# and vLLM's tool parsers print. Run from this folder:
#
#	python3 crosscheck_json.py
import json
import random
import struct
import sys

rnd = random.Random(11)
def rnum():
    k = rnd.randint(0, 9)
    if k == 0: return str(rnd.randint(-10**30, 10**30))
    if k == 1: return repr(struct.unpack('<d', struct.pack('<Q', rnd.getrandbits(64)))[0]).replace('inf','1e999').replace('nan','0')
    if k == 2: return "%de%d" % (rnd.randint(-999, 999), rnd.randint(-330, 330))
    if k == 3: return "%d.%dE%+d" % (rnd.randint(-99, 99), rnd.randint(0, 999999), rnd.randint(-30, 30))
    if k == 4: return "%.*f" % (rnd.randint(0, 20), rnd.uniform(-1e6, 1e6))
    if k == 5: return rnd.choice(["0", "-0", "0.0", "-0.0", "1e999", "-1e999", "5e-324", "1e-400", "2.2250738585072014e-308", "1.7976931348623157e308", "9007199254740993", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "1E+2", "1e16", "1e15", "123456789012345680000", "0.1", "100", "1.5", "0.00001", "0.0001"])
    return repr(rnd.random() * 10 ** rnd.randint(-20, 25))
cases = []
while len(cases) < 600:
    s = "[" + ", ".join(rnum() for _ in range(rnd.randint(1, 4))) + "]"
    try:
        v = json.loads(s)
    except Exception:
        continue
    cases.append({"in": s, "out": json.dumps(v, ensure_ascii=False)})
with open("json-dumps-numbers.json", "w") as f:
    json.dump({"generator": "Python " + sys.version.split()[0], "cases": cases}, f, indent=0)
    f.write("\n")
