# Builds chat-template-jinja2.json and jinja2-snippets.json: Python's Jinja2, the engine
# transformers' apply_chat_template uses, set up as transformers sets it up (a sandboxed
# environment with trim_blocks, lstrip_blocks, loop controls, its tojson, raise_exception).
#   - chat-template-jinja2.json: seeded random conversations, with the ids of each rendering
#     (crosscheck_bpe.py's tokenizer), (system prompts, tool calls with
#     dict or string arguments, tool responses, reasoning in reasoning_content or in <think>,
#     tools whose schemas hold floats, unicode and escapes) through Qwen3's chat template.
#   - chat-template-vllm.json: conversations as OpenAI clients send them to a server (null
#     content beside tool calls, arguments as JSON strings or null, vLLM's `reasoning`,
#     content as text parts, continue_final_message), rendered after the normalisation vLLM's
#     chat_utils applies.
#   - jinja2-snippets.json: the lines of jinja2-snippets.txt, each rendered on one context:
#     the subscripts, string methods, filters, tests and tojson options templates rely on.
# Run from this folder (Debian: apt-get install python3-jinja2):
#
#	python3 crosscheck_jinja2.py
import json
import random
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from crosscheck_bpe import encode  # ids of each rendering, for `strata tokenize`


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now
cfg = json.load(open("qwen3/tokenizer_config.json"))
tpl = env.from_string(cfg["chat_template"])
generator = "jinja2 " + jinja2.__version__

rnd = random.Random(20261207)
PIECES = ["hi", "Hello", " world", "\n", "\n\n", "\t", "  ", "<think>", "</think>", "<tool_response>", "</tool_response>",
          "<tool_call>", "{", "}", "\"", "\\", "'", "é", "Zürich", "天气", "😀", "👩\u200d👩\u200d👧", "\u2028", "\u2029", "\x7f",
          "\x00", "\x01", "\x08", "\x0c", "\x1f", "\r\n", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "&", "<b>", "½", "ﬁ",
          "e\u0301", "Å", "\ufeff", "\u200b", "\xa0", "3.14", "1e-7", "{{ x }}", "{% if %}", "#", "\U0001F600", "ok"]
def rstr(maxn=6):
    return "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, maxn)))
def rnum():
    k = rnd.randint(0, 9)
    if k == 0: return rnd.randint(-10**20, 10**20)
    if k == 1: return rnd.randint(-100, 100)
    if k == 2: return rnd.choice([0.0, -0.0, 1.0, 100.0, 0.1, 1e-7, 1e16, 1e15, 1.5e300, 5e-324, 2.5e-5, 123456789.125, -3.0, 1e22, 1e21, 1e-5, 0.0001])
    if k == 3: return rnd.uniform(-1e6, 1e6)
    if k == 4: return rnd.random() * 10 ** rnd.randint(-30, 30)
    if k == 5: return float(rnd.randint(-10**6, 10**6))
    return rnd.randint(0, 1000) / 8
def rval(depth=0):
    k = rnd.randint(0, 8 if depth < 3 else 4)
    if k == 0: return rstr()
    if k == 1: return rnum()
    if k == 2: return rnd.choice([True, False, None])
    if k == 3: return rstr(2)
    if k == 4: return rnum()
    if k <= 6: return [rval(depth + 1) for _ in range(rnd.randint(0, 3))]
    return {rstr(2) or "k%d" % rnd.randint(0, 9): rval(depth + 1) for _ in range(rnd.randint(0, 3))}
def rtool():
    props = {}
    for _ in range(rnd.randint(0, 3)):
        p = {"type": rnd.choice(["string", "number", "integer", "boolean", "array", "object"])}
        if rnd.random() < 0.5: p["description"] = rstr()
        if rnd.random() < 0.4: p["default"] = rval(1)
        if rnd.random() < 0.3: p["minimum"] = rnum()
        if rnd.random() < 0.2: p["enum"] = [rval(2) for _ in range(rnd.randint(1, 3))]
        props[rnd.choice(["q", "city", "unit", "n", "x_y", "名前", "a b"]) + str(rnd.randint(0, 9))] = p
    fn = {"name": rnd.choice(["search", "get_weather", "calc", "f"]), "description": rstr(),
          "parameters": {"type": "object", "properties": props, "required": list(props)[:rnd.randint(0, len(props))]}}
    if rnd.random() < 0.2: del fn["description"]
    return {"type": "function", "function": fn}
def rcall():
    args = {rstr(2) or "a": rval(1) for _ in range(rnd.randint(0, 3))}
    if rnd.random() < 0.3: args = json.dumps(args, ensure_ascii=rnd.random() < 0.5)
    fn = {"name": rnd.choice(["search", "get_weather", "calc"]), "arguments": args}
    if rnd.random() < 0.2: return fn  # bare, no "function" wrapper
    return {"type": "function", "id": "call_%d" % rnd.randint(0, 99), "function": fn}
def rmsg(role):
    m = {"role": role}
    if role == "assistant":
        k = rnd.randint(0, 5)
        m["content"] = rstr() if k else ""
        if rnd.random() < 0.3: m["content"] = rstr(2) + "<think>" + rstr() + "</think>" + rstr()
        if rnd.random() < 0.3: m["reasoning_content"] = rstr()
        if rnd.random() < 0.1: m["reasoning_content"] = None
        if rnd.random() < 0.35: m["tool_calls"] = [rcall() for _ in range(rnd.randint(0, 3))]
    elif role == "user" and rnd.random() < 0.15:
        m["content"] = "<tool_response>" + rstr() + "</tool_response>"
    else:
        m["content"] = rstr()
    return m

cases = []
while len(cases) < 150:
    msgs = []
    if rnd.random() < 0.4:
        msgs.append(rmsg("system"))
    for _ in range(rnd.randint(1, 7)):
        msgs.append(rmsg(rnd.choice(["user", "user", "assistant", "assistant", "tool", "system"])))
    inp = {"messages": msgs, "add_generation_prompt": rnd.random() < 0.6}
    if rnd.random() < 0.5:
        inp["tools"] = [rtool() for _ in range(rnd.randint(0, 3))]
    if rnd.random() < 0.5:
        inp["enable_thinking"] = rnd.random() < 0.5
    text = tpl.render(**inp, eos_token=cfg["eos_token"], pad_token=cfg["pad_token"])
    cases.append({"input": inp, "rendered": text, "ids": encode(text)})
with open("chat-template-jinja2.json", "w") as f:
    json.dump({"generator": generator, "cases": cases}, f, ensure_ascii=False)
    f.write("\n")



def like_vllm(messages):
    """The messages as vLLM hands them to the template: content None or a list of text parts
    becomes a string, `reasoning` becomes reasoning_content, tool-call arguments objects."""
    out = []
    for m in messages:
        m = dict(m)
        c = m.get("content")
        if c is None:
            m["content"] = ""
        elif isinstance(c, list):
            m["content"] = "\n".join(p["text"] for p in c)
        if m["role"] == "assistant" and m.get("reasoning") is not None:
            m["reasoning_content"] = m["reasoning"]
        calls = []
        for tc in m.get("tool_calls") or []:
            tc = json.loads(json.dumps(tc))
            a = tc["function"].get("arguments")
            if isinstance(a, str) and a.strip() == "":
                tc["function"]["arguments"] = {}
            elif isinstance(a, str):
                tc["function"]["arguments"] = json.loads(a)
            elif not isinstance(a, (dict, list)):
                tc["function"]["arguments"] = {}
            calls.append(tc)
        if "tool_calls" in m:
            m["tool_calls"] = calls
        out.append(m)
    return out


call = lambda args: {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": args}}
api_chats = [
    [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": None, "tool_calls": [call('{"city": "Paris", "unit": 1.0}')]},
     {"role": "tool", "tool_call_id": "call_1", "content": "{\"t\": 21.5}"}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": [call(None)]}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [call("{}"), call('{"a": [1, 2.50, null]}')]},
     {"role": "tool", "content": "one"}, {"role": "tool", "content": [{"type": "text", "text": "two"}, {"type": "text", "text": "parts"}]}],
    [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]}, {"role": "user", "content": "a"},
     {"role": "assistant", "content": "b", "reasoning": "first"}, {"role": "user", "content": "c"},
     {"role": "assistant", "content": None, "reasoning": "second", "tool_calls": [call('{"city": "Zürich"}')]}, {"role": "tool", "content": "sunny"}],
    [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "tool_calls": []}, {"role": "user", "content": "z"}],
    [{"role": "user", "content": "now"}, {"role": "assistant", "content": None, "tool_calls": [call(""), call(" ")]}, {"role": "tool", "content": "t"}],
]


def continue_final(rendered, final):
    """transformers' apply_chat_template with continue_final_message=True."""
    loc = rendered.rindex(final.strip())
    if rendered[loc:loc + len(final.lstrip())] == final:
        return rendered[:loc + len(final.lstrip())]
    return rendered[:loc + len(final.strip())]


api_cases = []
for msgs in api_chats:
    inp = {"messages": msgs, "add_generation_prompt": True}
    api_cases.append({"input": inp, "rendered": tpl.render(messages=like_vllm(msgs), add_generation_prompt=True, eos_token=cfg["eos_token"], pad_token=cfg["pad_token"])})
for msgs in [[{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "The colour is"}],
             [{"role": "user", "content": "JSON please"}, {"role": "assistant", "content": "{\"a\": ", "reasoning": "easy"}],
             [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "  spaced  "}]]:
    inp = {"messages": msgs, "add_generation_prompt": False, "continue_final_message": True}
    full = tpl.render(messages=like_vllm(msgs), add_generation_prompt=False, eos_token=cfg["eos_token"], pad_token=cfg["pad_token"])
    api_cases.append({"input": inp, "rendered": continue_final(full, like_vllm(msgs)[-1]["content"])})
with open("chat-template-vllm.json", "w") as f:
    json.dump({"generator": generator, "cases": api_cases}, f, ensure_ascii=False, indent=1)
    f.write("\n")

context = {"em": {}, "nest": {"z": {"y": 1, "x": 2}, "a": 1}, "u": ["c", "a", "b"], "nums": [3, 1, 2], "one": ["a"], "two": ["a", "b"], "empty": [], "s": "héllo wörld", "e": "", "c": "é",
           "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
           "d": {"b": 1, "a": [1, 2.5, None, True, "x"]}, "n": 3, "f": 2.5, "big": 12345678901234567890, "t": True, "z": None,
           "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "number", "default": 1.0}, "b": {}}}}}]}
snippets = []
for line in open("jinja2-snippets.txt"):
    line = line.rstrip("\n")
    if not line.strip() or line.startswith("##"):
        continue
    known = line.startswith("!")
    src = line.lstrip("!").replace("\\n", "\n")
    try:
        case = {"template": src, "rendered": env.from_string(src).render(**context)}
    except Exception as e:  # TemplateError, SecurityError, or Python's own TypeError
        case = {"template": src, "error": type(e).__name__ + ": " + str(e)}
    if known:
        case["gonja_differs"] = True
    snippets.append(case)
with open("jinja2-snippets.json", "w") as f:
    json.dump({"generator": generator, "context": context, "cases": snippets}, f, ensure_ascii=False, indent=1)
    f.write("\n")
