/**
 * Tokenizer parity on whole data sets: every text Python `tokenizers` encoded (bench/tokenizer/
 * python_encode.py writes {"text", "ids"} lines) must encode to the same ids here.
 *   python bench/tokenizer/python_encode.py models/tiny/tokenizer.json /tmp/ids.jsonl ../shared/data/*.jsonl
 *   node dist/bench/tokenizer/parity.js models/tiny/tokenizer.json /tmp/ids.jsonl
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { loadTokenizer } from "../../common/src/mod.js";

const [tokenizerPath, idsPath] = process.argv.slice(2);
if (!tokenizerPath || !idsPath) {
  console.error("usage: node dist/bench/tokenizer/parity.js TOKENIZER_JSON IDS_JSONL");
  process.exit(2);
}
const tokenizer = await loadTokenizer(tokenizerPath);
let texts = 0;
let nonAscii = 0;
let mismatches = 0;
for await (const line of createInterface({ input: createReadStream(idsPath), crlfDelay: Infinity })) {
  if (!line) continue;
  const { text, ids } = JSON.parse(line) as { text: string; ids: number[] };
  texts++;
  if (/[^\x00-\x7f]/.test(text)) nonAscii++;
  const got = tokenizer.encode(text);
  if (got.length !== ids.length || got.some((v, k) => v !== ids[k])) {
    mismatches++;
    if (mismatches <= 5) console.log(`mismatch: ${JSON.stringify(text).slice(0, 120)}\n  python ${ids.slice(0, 16)}\n  delift ${got.slice(0, 16)}`);
  }
}
console.log(JSON.stringify({ texts, nonAscii, mismatches }));
process.exitCode = mismatches === 0 ? 0 : 1;
