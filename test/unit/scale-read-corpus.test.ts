import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { parquetWriteFile } from "hyparquet-writer";
import { AbortedError, DEFAULT_TEMPLATES, InputError, loadDataset, loadTokenizer, prepareCorpus, summarizeCorpus, tokenizePrompts, type PreparedCorpus } from "../../common/src/mod.js";
import { compactTokens, sourceOf } from "../../common/src/data/compact-corpus.js";
import { toPreparedCorpus } from "../../common/src/data/prepared-adapter.js";
import { readCorpus, type CorpusRead, type ReadProgress } from "../../common/src/data/read-corpus.js";
import { readRecordsAt } from "../../common/src/data/record-index.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const TOKENIZER = join(TINY_MODEL, "tokenizer.json");
const parity = readFileSync(join(FIXTURES, "tokenizer-parity.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { text: string; ids: number[] });
const gsm = readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

/** Records over every hard tokenizer case: x from one parity text, y from another, some with input, ids of three kinds. */
function records(n: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, k) => {
    const text = parity[k % parity.length].text;
    const a = text.trim() === "" ? `blank ${k}${text}` : text;
    const b = parity[(k * 7 + 3) % parity.length].text;
    const g = gsm[k % gsm.length];
    const base: Record<string, unknown> = { instruction: k % 3 === 0 ? String(g.instruction) : a, output: k % 4 === 0 ? String(g.output) : `${b} ${k}`, task: k % 5 === 0 ? undefined : `t${k % 4}` };
    if (k % 2 === 1) base.input = k % 6 === 1 ? "" : `${b}\r\n${k}`;
    if (k % 10 !== 9) base.id = k % 3 === 2 ? 100_000 + k * 11 : `r-${k}`;
    return base;
  });
}

function writeJsonl(path: string, rows: (Record<string, unknown> | string)[], eol = "\n"): string {
  writeFileSync(path, rows.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join(eol) + eol);
  return path;
}

async function oldPath(file: string, skipInvalid: boolean, maxLength = 1024): Promise<PreparedCorpus> {
  const tokenizer = await loadTokenizer(TOKENIZER);
  const prompts = tokenizePrompts(DEFAULT_TEMPLATES, tokenizer, 0, maxLength);
  return prepareCorpus(await loadDataset(file, { skipInvalid }), tokenizer, prompts, { skipInvalid });
}

async function newPath(file: string, skipInvalid: boolean, maxLength = 1024, extra: Partial<Parameters<typeof readCorpus>[1]> = {}): Promise<CorpusRead> {
  const prompts = tokenizePrompts(DEFAULT_TEMPLATES, await loadTokenizer(TOKENIZER), 0, maxLength);
  return readCorpus(file, { tokenizer: TOKENIZER, prompts, skipInvalid, threads: 2, batchBytes: 8192, ...extra });
}

function assertSame(read: CorpusRead, old: PreparedCorpus): void {
  const c = read.corpus;
  assert.is(c.count, old.samples.length, "sample count");
  assert.ok(c.ids instanceof Uint16Array, "a 4096-token vocabulary gives two-byte ids");
  assert.equal(Array.from(c.offsets), Array.from(old.tokens.offsets), "offsets");
  assert.equal(Array.from(c.ids), Array.from(old.tokens.ids), "token ids bit for bit");
  for (let i = 0; i < c.count; i++) {
    const s = old.samples[i];
    assert.is(c.sampleIds.get(i), s.id);
    assert.is(c.sampleIds.indexOf(s.id), i);
    assert.is(read.records.lines[i], s.line);
    assert.is(sourceOf(c, i), s.source);
  }
  const strip = (list: PreparedCorpus["skipped"]) => list.map((p) => ({ file: p.file, line: p.line, field: p.field, reason: p.reason }));
  assert.equal(strip(read.skipped), strip(old.skipped), "skipped records");
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(() => null, (err: Error) => err);
  if (!e) assert.unreachable("expected an error");
  return e as Error;
}

test("the same token ids, ids, lines and sources as loadDataset + prepareCorpus, across many batches and two threads", async () => {
  const t = tempDir();
  try {
    const rows: (Record<string, unknown> | string)[] = records(900);
    rows.splice(100, 0, "", "   ");
    const file = writeJsonl(join(t.path, "d.jsonl"), rows, "\r\n");
    const read = await newPath(file, false);
    const old = await oldPath(file, false);
    assertSame(read, old);
    assert.is(read.records.recordCount, 900);
    const prompts = tokenizePrompts(DEFAULT_TEMPLATES, await loadTokenizer(TOKENIZER), 0, 1024);
    const pairs = { examples: Uint32Array.of(0, 5, 9), targets: Uint32Array.of(1, 2) };
    assert.equal(summarizeCorpus({ tokens: read.corpus, skipped: read.skipped }, prompts, pairs), summarizeCorpus(old, prompts, pairs), "the same summary");
    // And the parity texts' ids are Python tokenizers' own (through the reader's word memo).
    const pfile = writeJsonl(join(t.path, "p.jsonl"), parity.map((p, k) => ({ id: `p${k}`, instruction: p.text, output: "ok" })));
    const pr = await newPath(pfile, true, 1024, { threads: 0 });
    const byId = new Map(parity.map((p, k) => [`p${k}`, p.ids]));
    for (let i = 0; i < pr.corpus.count; i++) assert.equal(Array.from(compactTokens(pr.corpus, i).x), byId.get(pr.corpus.sampleIds.get(i)));
  } finally {
    t.cleanup();
  }
});

test("bad records: the same list and message, --skip-invalid the same survivors; too-long responses as prepareCorpus", async () => {
  const t = tempDir();
  try {
    const rows: (Record<string, unknown> | string)[] = records(300);
    rows[20] = "{not json";
    rows[150] = { id: "bad", instruction: 5, output: "x" };
    rows[260] = { id: "empty", instruction: "q", output: "  " };
    const file = writeJsonl(join(t.path, "bad.jsonl"), rows);
    const a = await errorOf(newPath(file, false));
    const b = await errorOf(oldPath(file, false));
    assert.instance(a, InputError);
    assert.is(a.message, b.message);
    assertSame(await newPath(file, true), await oldPath(file, true));
    // A maximum length that some responses do not fit.
    const ok = writeJsonl(join(t.path, "ok.jsonl"), records(300));
    const long = await errorOf(newPath(ok, false, 40));
    assert.is(long.message, (await errorOf(oldPath(ok, false, 40))).message);
    assert.match(long.message, "more than the maximum length 40");
    const short = await newPath(ok, true, 40);
    assertSame(short, await oldPath(ok, true, 40));
    assert.ok(short.skipped.length > 0 && short.corpus.count > 0);
  } finally {
    t.cleanup();
  }
});

test("duplicate ids fail at the first duplicate, across batches, with the first line", async () => {
  const t = tempDir();
  try {
    const rows = records(400);
    rows[350] = { ...rows[350], id: "r-4" };
    const file = writeJsonl(join(t.path, "dup.jsonl"), rows);
    const a = await errorOf(newPath(file, true));
    assert.instance(a, InputError);
    assert.is(a.message, (await errorOf(oldPath(file, true))).message);
    assert.match(a.message, 'dup.jsonl:351 field "id": duplicate id "r-4" (first seen on line 5)');
  } finally {
    t.cleanup();
  }
});

test("gzip and Parquet (several row groups) read like the old path; empty data is an error", async () => {
  const t = tempDir();
  try {
    const rows = records(500);
    const gz = join(t.path, "d.jsonl.gz");
    writeFileSync(gz, gzipSync(rows.map((r) => JSON.stringify(r)).join("\n") + "\n"));
    assertSame(await newPath(gz, true), await oldPath(gz, true));
    const pq = join(t.path, "d.parquet");
    parquetWriteFile({
      filename: pq,
      rowGroupSize: 128,
      columnData: [
        { name: "id", data: rows.map((r, k) => String(r.id ?? `row${k}`)), type: "STRING" },
        { name: "instruction", data: rows.map((r) => String(r.instruction)), type: "STRING" },
        { name: "input", data: rows.map((r) => String(r.input ?? "")), type: "STRING" },
        { name: "output", data: rows.map((r, k) => (k === 77 ? "" : String(r.output))), type: "STRING" },
      ],
    });
    const pr = await newPath(pq, true, 1024, { batchRows: 50 });
    assertSame(pr, await oldPath(pq, true));
    assert.is(pr.skipped[0].line, 78);
    const empty = writeJsonl(join(t.path, "empty.jsonl"), [""]);
    assert.match((await errorOf(newPath(empty, false))).message, "the data set is empty");
  } finally {
    t.cleanup();
  }
});

test("progress reaches 100% with rising bytes; a cancelled read stops with AbortedError and no thread left", async () => {
  const t = tempDir();
  try {
    const file = writeJsonl(join(t.path, "d.jsonl"), records(800));
    const seen: ReadProgress[] = [];
    await newPath(file, false, 1024, { onProgress: (p) => seen.push(p), progressIntervalMs: 0 });
    assert.ok(seen.length > 3);
    for (let k = 1; k < seen.length; k++) assert.ok(seen[k].bytesDone >= seen[k - 1].bytesDone);
    assert.is(seen.at(-1)!.bytesDone, seen.at(-1)!.bytesTotal);
    assert.is(seen.at(-1)!.records, 800);
    const controller = new AbortController();
    const err = await errorOf(newPath(file, false, 1024, { signal: controller.signal, progressIntervalMs: 0, onProgress: (p) => p.records > 100 && controller.abort() }));
    assert.instance(err, AbortedError);
  } finally {
    t.cleanup();
  }
});

test("record index: the selected samples' original records, in any order, from JSONL, gzip and Parquet; a changed file is refused", async () => {
  const t = tempDir();
  try {
    const rows: (Record<string, unknown> | string)[] = records(400);
    rows[3] = "{broken";
    const file = writeJsonl(join(t.path, "d.jsonl"), rows);
    const gz = join(t.path, "d.jsonl.gz");
    writeFileSync(gz, gzipSync(readFileSync(file)));
    for (const f of [file, gz]) {
      const read = await newPath(f, true);
      const old = await oldPath(f, true);
      const want = Uint32Array.of(390, 0, 17, 17, 255, 3, 100);
      const got = [];
      for await (const r of readRecordsAt(read.records, want)) got.push(r);
      assert.equal(got.map((r) => r.sample), Array.from(want));
      assert.equal(got.map((r) => r.record), Array.from(want, (s) => old.samples[s].record));
      const adapted = await toPreparedCorpus(read);
      assert.equal(adapted.samples, old.samples, "the adapter gives loadDataset's samples");
      assert.equal(Array.from(adapted.tokens.ids), Array.from(old.tokens.ids));
    }
    const read = await newPath(file, true);
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const err = await errorOf((async () => {
      for await (const _ of readRecordsAt(read.records, [1])) void _;
    })());
    assert.match(err.message, "changed since it was read");
  } finally {
    t.cleanup();
  }
});

test.run();
