// Builds tokenizer-tokenizersjs.json and chat-template-jinjajs.json: a second, independent
// reference beside the Hugging Face goldens, from Hugging Face's JavaScript tokenizers and
// Jinja engine (which agree with tokenizer-golden.json and chat-template-golden.json on every
// case). Inputs: crosscheck-texts.json and crosscheck-chats.json in this folder. The chat cases
// avoid what the JavaScript engine renders unlike Python (floats such as 1e-07 or 100.0,
// lstrip of characters other than its argument). Run from this folder:
//
//	npm install --no-save @huggingface/tokenizers@0.2.0 @huggingface/jinja@0.5.13
//	node crosscheck.mjs
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import fs from "fs";

const read = (f) => JSON.parse(fs.readFileSync(f, "utf8"));
const config = read("qwen3/tokenizer_config.json");
const tok = new Tokenizer(read("qwen3/tokenizer.json"), config);
const encode = (s) => tok.encode(s, { add_special_tokens: false }).ids;

for (const c of read("tokenizer-golden.json").cases) {
  if (JSON.stringify(encode(c.text)) !== JSON.stringify(c.ids)) throw new Error("tokenizers.js disagrees with the golden on " + JSON.stringify(c.text));
}
const template = new Template(config.chat_template);
const render = (input) => template.render({ ...input, eos_token: config.eos_token, pad_token: config.pad_token });
for (const c of read("chat-template-golden.json").cases) {
  if (render(c.input) !== c.rendered) throw new Error("jinja.js disagrees with the golden on " + JSON.stringify(c.input));
}

const texts = read("crosscheck-texts.json").map((text) => {
  const ids = encode(text);
  return { text, ids, decoded: tok.decode(ids, { skip_special_tokens: false }) };
});
fs.writeFileSync("tokenizer-tokenizersjs.json", JSON.stringify({ tokenizer: "qwen3", generator: "@huggingface/tokenizers 0.2.0", cases: texts }, null, 1) + "\n");

const chats = read("crosscheck-chats.json").map((input) => {
  const rendered = render(input);
  return { input, rendered, ids: encode(rendered) };
});
fs.writeFileSync("chat-template-jinjajs.json", JSON.stringify({ generator: "@huggingface/jinja 0.5.13", cases: chats }, null, 1) + "\n");
