import { test } from "uvu";
import * as assert from "uvu/assert";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parquetWriteFile } from "hyparquet-writer";
import { InputError } from "../../common/src/mod.js";
import { gatherRows } from "../../common/src/embeddings/embedding-matrix.js";
import { float16Table, floatToHalf } from "../../common/src/embeddings/float16.js";
import { npyHeader, parseNpyHeader } from "../../common/src/embeddings/npy-format.js";
import { readEmbeddings, type EmbeddingTarget } from "../../common/src/embeddings/read-embeddings.js";
import { tempDir } from "../helpers/paths.js";

const DIM = 5;

/** Record r's vector: distinct, never zero. */
const vec = (r: number) => Array.from({ length: DIM }, (_, d) => Math.sin(r * 7 + d * 3) + (d === r % DIM ? 2 : 0));

/** Samples over records 0..records-1, minus the skipped ones; ids "s<record>", line = record + 1. */
function targetOf(records: number, skipped: number[] = []): EmbeddingTarget {
  const kept = Array.from({ length: records }, (_, r) => r).filter((r) => !skipped.includes(r));
  const ids = kept.map((r) => `s${r}`);
  const index = new Map(ids.map((id, i) => [id, i]));
  return {
    count: kept.length,
    ordinals: Uint32Array.from(kept),
    recordCount: records,
    idOf: (i) => ids[i],
    indexOfId: (id) => index.get(id) ?? -1,
    lineOf: (i) => kept[i] + 1,
    skippedIds: new Set(skipped.map((r) => `s${r}`)),
    dataFile: "data.jsonl",
  };
}

function npy(path: string, descr: string, shape: number[], values: ArrayBufferView): string {
  writeFileSync(path, Buffer.concat([npyHeader(descr, shape), Buffer.from(values.buffer, values.byteOffset, values.byteLength)]));
  return path;
}

const f32Rows = (n: number) => Float32Array.from({ length: n * DIM }, (_, k) => vec(Math.floor(k / DIM))[k % DIM]);

async function errorOf(p: Promise<unknown>): Promise<InputError> {
  const e = await p.then(() => null, (err: Error) => err);
  assert.instance(e, InputError);
  return e as InputError;
}

test(".npy header: written and parsed back; float16 conversion round trips", () => {
  const h = npyHeader("<f2", [1000, 384]);
  assert.is(h.length % 64, 0);
  const p = parseNpyHeader(h);
  assert.ok(!("needed" in p));
  if ("needed" in p) return;
  assert.equal([p.descr, p.fortranOrder, p.shape, p.dataOffset], ["<f2", false, [1000, 384], h.length]);
  const table = float16Table();
  for (const x of [0, 1, -2.5, 65504, 1e-5, 0.1, -0.333]) assert.ok(Math.abs(table[floatToHalf(x)] - x) <= Math.abs(x) * 1e-3 + 1e-7, `${x}`);
  assert.is(table[floatToHalf(1e6)], Infinity);
});

test(".npy float32 and float16, data order; rows of skipped records are left out; rows come normalised", async () => {
  const t = tempDir();
  try {
    const f32 = npy(join(t.path, "e.npy"), "<f4", [12, DIM], f32Rows(12));
    const target = targetOf(12, [3, 4, 9]);
    const m = await readEmbeddings(f32, target);
    assert.is(m.count, 9);
    assert.is(m.dtype, "float32");
    const got = gatherRows(m, Uint32Array.of(0, 3, 8));
    [0, 5, 11].forEach((r, k) => {
      const v = vec(r);
      const norm = Math.hypot(...v);
      for (let d = 0; d < DIM; d++) assert.ok(Math.abs(got[k * DIM + d] - v[d] / norm) < 1e-6);
    });
    const half = Uint16Array.from(f32Rows(12), floatToHalf);
    const m16 = await readEmbeddings(npy(join(t.path, "h.npy"), "<f2", [12, DIM], half), targetOf(12));
    assert.is(m16.dtype, "float16");
    assert.ok(m16.data instanceof Uint16Array && m16.data.length === 12 * DIM, "float16 stays float16");
    const g16 = gatherRows(m16, [11]);
    const v = vec(11);
    for (let d = 0; d < DIM; d++) assert.ok(Math.abs(g16[d] - v[d] / Math.hypot(...v)) < 2e-3);
  } finally {
    t.cleanup();
  }
});

test(".npy problems: row count, dtype, order, shape, size, NaN and zero rows, each named", async () => {
  const t = tempDir();
  try {
    const rows = f32Rows(6);
    assert.match((await errorOf(readEmbeddings(npy(join(t.path, "a.npy"), "<f4", [6, DIM], rows), targetOf(7)))).message, "6 rows, but data.jsonl has 7 records");
    assert.match((await errorOf(readEmbeddings(npy(join(t.path, "b.npy"), "<f8", [3, DIM], rows), targetOf(3)))).message, "dtype '<f8': expected little-endian float32");
    assert.match((await errorOf(readEmbeddings(npy(join(t.path, "c.npy"), ">f4", [6, DIM], rows), targetOf(6)))).message, "dtype '>f4'");
    assert.match((await errorOf(readEmbeddings(npy(join(t.path, "d.npy"), "<f4", [6 * DIM], rows), targetOf(6)))).message, "expected two dimensions");
    assert.match((await errorOf(readEmbeddings(npy(join(t.path, "e.npy"), "<f4", [6, DIM], rows.subarray(0, 29)), targetOf(6)))).message, "truncated or padded");
    const nan = rows.slice();
    nan[2 * DIM + 1] = NaN;
    nan[4 * DIM] = Infinity;
    const e = await errorOf(readEmbeddings(npy(join(t.path, "f.npy"), "<f4", [6, DIM], nan), targetOf(6)));
    assert.match(e.message, "2 row(s) with non-finite values");
    assert.match(e.message, 'row 2 (sample "s2", data.jsonl:3): value 1 is NaN');
    const zero = rows.slice();
    zero.fill(0, 5 * DIM, 6 * DIM);
    assert.match((await errorOf(readEmbeddings(npy(join(t.path, "g.npy"), "<f4", [6, DIM], zero), targetOf(6)))).message, 'row 5 (sample "s5", data.jsonl:6) is all zeros');
    writeFileSync(join(t.path, "h.npy"), "not numpy at all");
    assert.match((await errorOf(readEmbeddings(join(t.path, "h.npy"), targetOf(6)))).message, "not a .npy file");
  } finally {
    t.cleanup();
  }
});

function parquet(path: string, ids: string[], vectors: number[][]): string {
  parquetWriteFile({
    filename: path,
    rowGroupSize: 4,
    columnData: [{ name: "id", data: ids }, { name: "embedding", data: vectors }],
    schema: [
      { name: "root", num_children: 2 },
      { name: "id", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "REQUIRED" },
      { name: "embedding", repetition_type: "OPTIONAL", converted_type: "LIST", num_children: 1 },
      { name: "list", repetition_type: "REPEATED", num_children: 1 },
      { name: "element", type: "FLOAT", repetition_type: "REQUIRED" },
    ],
  });
  return path;
}

test("Parquet: matched by id in any order; missing, unknown, repeated ids and wrong lengths are errors; skipped records' rows are ignored", async () => {
  const t = tempDir();
  try {
    const order = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4];
    const ok = parquet(join(t.path, "ok.parquet"), order.map((r) => `s${r}`), order.map(vec));
    const m = await readEmbeddings(ok, targetOf(10, [3]));
    assert.is(m.count, 9);
    const row = gatherRows(m, [3]); // sample 3 is record 4
    const v = vec(4);
    for (let d = 0; d < DIM; d++) assert.ok(Math.abs(row[d] - v[d] / Math.hypot(...v)) < 1e-6);
    assert.match((await errorOf(readEmbeddings(ok, targetOf(11)))).message, 'no embedding for 1 sample(s): "s10" (data.jsonl:11)');
    assert.match((await errorOf(readEmbeddings(ok, targetOf(9)))).message, 'row 2: id "s9" is not a sample of data.jsonl');
    const twice = parquet(join(t.path, "twice.parquet"), ["s0", "s1", "s0"], [vec(0), vec(1), vec(0)]);
    assert.match((await errorOf(readEmbeddings(twice, targetOf(2)))).message, 'row 2: id "s0" again (first on row 0)');
    const short = parquet(join(t.path, "short.parquet"), ["s0", "s1"], [vec(0), vec(1).slice(0, 3)]);
    assert.match((await errorOf(readEmbeddings(short, targetOf(2)))).message, 'row 1 (id "s1"): 3 values, the first row had 5');
  } finally {
    t.cleanup();
  }
});

test.run();
