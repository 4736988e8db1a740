import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  ConfigError,
  DEFAULT_TEMPLATES,
  composeExamplePart,
  composeTargetPart,
  parseTemplate,
  tokenizePrompts,
  type TextTokenizer,
} from "../../common/src/mod.js";

/** A transparent tokenizer for structure tests: one id per character code. */
const charTokenizer: TextTokenizer = {
  vocabSize: 65536,
  encode: (t) => Array.from(t, (c) => c.codePointAt(0)!),
  decode: (ids) => String.fromCodePoint(...Array.from(ids)),
};

test("parses fields, literals and escaped braces", () => {
  assert.equal(parseTemplate("a{{b}}{x}{eos}", "t"), [
    { kind: "literal", text: "a{b}" },
    { kind: "field", field: "x" },
    { kind: "field", field: "eos" },
  ]);
  assert.throws(() => parseTemplate("{nope}", "t"), (e: Error) => e instanceof ConfigError && /unknown placeholder/.test(e.message));
  assert.throws(() => parseTemplate("a}b", "t"), (e: Error) => e instanceof ConfigError && /lone "}"/.test(e.message));
});

test("rejects templates the engine cannot share a prefix for", () => {
  const bad = (example: string) => () => tokenizePrompts({ ...DEFAULT_TEMPLATES, example }, charTokenizer, 0, 100);
  assert.throws(bad("{x}{example_x}{example_y}{y}"), /example fields must come before/);
  assert.throws(bad("{example_x}{example_y}{y}{x}"), /\{x\} must come before \{y\}/);
  assert.throws(bad("{example_x}{example_y}{x}{y}{x}"), /exactly once/);
  assert.throws(bad("{example_x}{example_y}{x}{y}{example_x}"), /exactly once/);
});

test("the default P1 splits into shared header, example part and target part", () => {
  const p = tokenizePrompts(DEFAULT_TEMPLATES, charTokenizer, 7, 100);
  const decode = (ids: ArrayLike<number>) => Array.from(ids, (c) => (c === 7 ? "<eos>" : String.fromCodePoint(c))).join("");
  assert.equal(
    decode(p.example.header),
    "Instruction:\nUse the following example as a guide to answer the query in the same format and style, providing a clear and concise response.\n\n\nExample:\n",
  );
  const ex = composeExamplePart(p.example, { x: charTokenizer.encode("XJ"), y: charTokenizer.encode("YJ") });
  assert.equal(decode(ex), "XJ\nYJ\n\n\nQuery:\n");
  const target = composeTargetPart(p.example, { x: charTokenizer.encode("XI"), y: charTokenizer.encode("YI") });
  assert.equal(decode(target.ids), "XI\n<eos>YI<eos>");
  assert.equal(target.responseStart, 4);
  assert.equal(decode(p.baseline.header), "Instruction: Please generate a response to the following query.\n\n\nQuery: ");
  assert.equal(p.baseline.example, []);
});

test.run();
