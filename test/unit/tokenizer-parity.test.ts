import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadTokenizer } from "../../common/src/mod.js";
import { FIXTURES, TINY_MODEL } from "../helpers/paths.js";

// Ids from Python `tokenizers` (bench/tokenizer/python_encode.py) for GSM8K text, with every
// non-ASCII record of gsm8k-train-2k, and hand-picked hard cases (CJK, emoji, RTL, CRLF, ...).
test("encodes exactly as Python tokenizers on GSM8K and non-ASCII text", async () => {
  const tokenizer = await loadTokenizer(join(TINY_MODEL, "tokenizer.json"));
  const lines = readFileSync(join(FIXTURES, "tokenizer-parity.jsonl"), "utf8").split("\n").filter(Boolean);
  assert.ok(lines.length > 300);
  let nonAscii = 0;
  for (const line of lines) {
    const { text, ids } = JSON.parse(line) as { text: string; ids: number[] };
    if (/[^\x00-\x7f]/.test(text)) nonAscii++;
    assert.equal(tokenizer.encode(text), ids, `text: ${JSON.stringify(text).slice(0, 120)}`);
  }
  assert.ok(nonAscii >= 50, `only ${nonAscii} non-ASCII cases`);
});

test("decodes back to the text (byte-level BPE round trip)", async () => {
  const tokenizer = await loadTokenizer(join(TINY_MODEL, "tokenizer.json"));
  for (const text of ["Natalia sold 48/2 = 24 clips.\n#### 72", "café 数学 🙂 \r\n\t x"]) {
    assert.is(tokenizer.decode(tokenizer.encode(text)), text);
  }
});

test.run();
