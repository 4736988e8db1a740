import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InputError, sha256File } from "../../common/src/mod.js";
import { readCorpusFile, writeCorpusFile } from "../../common/src/data/corpus-file.js";
import { readCorpus } from "../../common/src/data/read-corpus.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const TOKENIZER = join(TINY_MODEL, "tokenizer.json");

test("corpus file: round trip of tokens, ids, sources and record index; named by its SHA-256; damage is refused", async () => {
  const t = tempDir();
  try {
    const read = await readCorpus(join(FIXTURES, "gsm8k-32.jsonl"), { tokenizer: TOKENIZER, threads: 0 });
    const path = join(t.path, "corpus.bin");
    const info = await writeCorpusFile(path, read.corpus, read.records);
    assert.is(info.sha256, await sha256File(path));
    const back = await readCorpusFile(path, { expectSha256: info.sha256 });
    const c = back.corpus;
    assert.ok(c.ids instanceof Uint16Array);
    assert.equal(Array.from(c.ids), Array.from(read.corpus.ids));
    assert.equal(Array.from(c.offsets), Array.from(read.corpus.offsets));
    assert.equal(Array.from({ length: c.count }, (_, i) => c.sampleIds.get(i)), Array.from({ length: c.count }, (_, i) => read.corpus.sampleIds.get(i)));
    assert.is(c.sampleIds.indexOf(read.corpus.sampleIds.get(7)), 7);
    assert.equal(c.sources, read.corpus.sources);
    assert.equal(back.records, read.records);

    const bytes = readFileSync(path);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 3] ^= 1;
    writeFileSync(join(t.path, "flipped.bin"), flipped);
    const e1 = await readCorpusFile(join(t.path, "flipped.bin"), { expectSha256: info.sha256 }).catch((e) => e);
    assert.instance(e1, InputError);
    assert.match(e1.message, "a corrupt or partial copy");
    writeFileSync(join(t.path, "short.bin"), bytes.subarray(0, bytes.length - 100));
    assert.match((await readCorpusFile(join(t.path, "short.bin")).catch((e) => e)).message, "runs past the end");
    writeFileSync(join(t.path, "junk.bin"), Buffer.from("{\"instruction\": 1}\n"));
    assert.match((await readCorpusFile(join(t.path, "junk.bin")).catch((e) => e)).message, "not a delift corpus file");
  } finally {
    t.cleanup();
  }
});

test.run();
