/**
 * A deterministic synthetic corpus of any size from ../shared/data, and embeddings for it, so that
 * anyone can repeat a scale run (issue 8 item 6).
 *
 *   node dist/bench/scale/build-corpus.js --samples 1000000 --out DIR [--dim 384] [--seed 1]
 *        [--gzip] [--embeddings f32|f16|none]
 *
 * Records: the shared files' ~51k distinct records (GSM8K train/test, the P3 mix and the P3
 * pretraining text; mix-4k is their union and is not read twice), shuffled by the seed. Record r
 * is base record r mod P, unchanged for the first P records; later copies are variants: numbers
 * renumbered, a context sentence dropped, a sentence of another record of the same task added to
 * the query or the response (so lengths vary both ways). A content hash set guarantees that no
 * two records are identical (a clashing variant is re-drawn). Ids are "syn-<r>", the task field
 * keeps the base record's source. Everything comes from one seeded xoshiro128** stream per
 * record, so record r is the same whatever the corpus size.
 *
 * Embeddings (DIR/embeddings.npy, [n, dim], float32 or float16, data order): a cheap projection of
 * the text, not a model. e = normalise(0.8 t + w + 0.35 z): t a seeded random unit vector per task
 * (212 tasks: the topic clusters real sentence embeddings show), w the record's words hashed
 * into 16,384 buckets weighted by (1 + ln tf) * idf (document frequencies over the base pool),
 * projected by a fixed seeded Gaussian matrix and normalised (records sharing words are close,
 * variants of one base record closer still), z seeded Gaussian noise per record, normalised.
 * Two unrelated records of one task come out near cos 0.35, of two tasks near 0, variants of one
 * base record near 0.9.
 */
import { createHash } from "node:crypto";
import { closeSync, createWriteStream, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createGzip, gunzipSync } from "node:zlib";
import { Xoshiro128 } from "../../common/src/selection/prng.js";
import { npyHeader } from "../../common/src/embeddings/npy-format.js";
import { floatToHalf } from "../../common/src/embeddings/float16.js";
import { ROOT } from "../common/paths.js";

export const SHARED_DATA = join(ROOT, "..", "shared", "data");
const POOL_FILES = ["gsm8k-train-2k.jsonl", "gsm8k-train-rest.jsonl", "gsm8k-test.jsonl", "p3-mix-2k.jsonl", "pretrain-p3-41k.jsonl.gz"];
const BUCKETS = 1 << 14;
/** Weights of the three parts of an embedding (see the top of this file). */
const TASK_WEIGHT = 0.8;
const NOISE = 0.35;

type BaseRecord = { task: string; instruction: string; input: string; output: string };
export type SyntheticRecord = { id: string; task: string; instruction: string; input: string; output: string };

export type ScaleCorpusOptions = {
  samples: number;
  out: string;
  seed?: number;
  dim?: number;
  gzip?: boolean;
  embeddings?: "f32" | "f16" | "none";
  dataDir?: string;
  log?: (line: string) => void;
};

export type ScaleCorpusFiles = { data: string; embeddings: string | null; dim: number; samples: number; bytes: number };

/** The base pool: distinct records of the shared files, in a seeded order. */
export function loadPool(dataDir = SHARED_DATA, seed = 1): BaseRecord[] {
  const seen = new Set<string>();
  const pool: BaseRecord[] = [];
  for (const name of POOL_FILES) {
    const raw = readFileSync(join(dataDir, name));
    const text = (name.endsWith(".gz") ? gunzipSync(raw) : raw).toString("utf8");
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      const r = JSON.parse(line) as Record<string, unknown>;
      const rec: BaseRecord = { task: String(r.task ?? name), instruction: String(r.instruction ?? ""), input: String(r.input ?? ""), output: String(r.output ?? "") };
      if (rec.instruction.trim() === "" || rec.output.trim() === "") continue;
      const key = contentKey(rec);
      if (seen.has(key)) continue;
      seen.add(key);
      pool.push(rec);
    }
  }
  const rng = new Xoshiro128(seed ^ 0x5ca1e);
  for (let i = pool.length - 1; i > 0; i--) {
    const j = rng.nextBelow(i + 1);
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool;
}

function contentKey(r: { instruction: string; input: string; output: string }): string {
  return createHash("sha1").update(r.instruction).update("\u0000").update(r.input).update("\u0000").update(r.output).digest("base64");
}

/** Record r of the corpus made from `pool` (the same record for every corpus size). */
export class RecordSynthesizer {
  private readonly byTask = new Map<string, number[]>();
  private readonly seen = new Set<string>();

  constructor(private readonly pool: BaseRecord[], private readonly seed: number) {
    pool.forEach((p, i) => {
      const list = this.byTask.get(p.task) ?? [];
      list.push(i);
      this.byTask.set(p.task, list);
    });
  }

  record(r: number): SyntheticRecord {
    const base = this.pool[r % this.pool.length];
    const rng = new Xoshiro128((this.seed * 0x9e3779b1) ^ Math.imul(r + 1, 0x85ebca6b));
    let rec = { instruction: base.instruction, input: base.input, output: base.output };
    for (let attempt = 0; ; attempt++) {
      if (r >= this.pool.length || attempt > 0) rec = this.vary(base, rng, attempt);
      const key = contentKey(rec);
      if (!this.seen.has(key)) {
        this.seen.add(key);
        break;
      }
    }
    return { id: `syn-${r}`, task: base.task, ...rec };
  }

  private vary(base: BaseRecord, rng: Xoshiro128, attempt: number): { instruction: string; input: string; output: string } {
    const numbers = new Map<string, string>();
    const renumber = (text: string) =>
      text.replace(/\d+/g, (m) => {
        let v = numbers.get(m);
        if (v === undefined) {
          v = String(Number(m) + 1 + rng.nextBelow(9 + attempt * 7));
          numbers.set(m, v);
        }
        return v;
      });
    let instruction = base.instruction;
    let output = base.output;
    const input = base.input;
    const ops = rng.nextUint32();
    if (ops & 1 || attempt > 0) {
      instruction = renumber(instruction);
      output = renumber(output);
    }
    if (ops & 2) instruction = dropSentence(instruction, rng);
    const kin = this.byTask.get(base.task)!;
    const other = this.pool[kin[rng.nextBelow(kin.length)]];
    if (ops & 4) instruction = `${firstSentence(other.instruction)} ${instruction}`;
    if (ops & 8) output = `${output} ${firstSentence(other.output)}`;
    if (attempt > 3) output = `${output} (${attempt})`;
    return { instruction, input, output };
  }
}

function sentences(text: string): string[] {
  return text.split(/(?<=[.!?])\s+/);
}

function firstSentence(text: string): string {
  return sentences(text)[0].slice(0, 400);
}

function dropSentence(text: string, rng: Xoshiro128): string {
  const s = sentences(text);
  if (s.length < 3) return text;
  const k = rng.nextBelow(s.length - 1); // never the last one, which usually holds the question
  s.splice(k, 1);
  return s.join(" ");
}

/** The text projection described at the top: a unit vector of `dim` floats per record. */
export class TextProjection {
  private readonly matrix: Float32Array;
  private readonly idf: Float32Array;

  constructor(pool: BaseRecord[], readonly dim: number, seed: number) {
    const rng = new Xoshiro128(seed ^ 0xe111);
    this.matrix = new Float32Array(BUCKETS * dim);
    for (let k = 0; k < this.matrix.length; k++) this.matrix[k] = gaussian(rng);
    const df = new Float64Array(BUCKETS);
    for (const p of pool) for (const b of new Set(bucketsOf(`${p.instruction} ${p.input} ${p.output}`))) df[b]++;
    this.idf = Float32Array.from(df, (d) => Math.log((pool.length + 1) / (d + 1)) + 1);
  }

  private readonly tasks = new Map<string, Float32Array>();

  private taskVector(task: string): Float32Array {
    let v = this.tasks.get(task);
    if (!v) {
      let h = 0x811c9dc5;
      for (let k = 0; k < task.length; k++) h = Math.imul(h ^ task.charCodeAt(k), 0x01000193);
      const rng = new Xoshiro128((h ^ 0x7a5c) >>> 0);
      v = Float32Array.from({ length: this.dim }, () => gaussian(rng));
      normalise(v);
      this.tasks.set(task, v);
    }
    return v;
  }

  embed(rec: SyntheticRecord, r: number, out: Float32Array): void {
    out.fill(0);
    const tf = new Map<number, number>();
    for (const b of bucketsOf(`${rec.instruction} ${rec.input} ${rec.output}`)) tf.set(b, (tf.get(b) ?? 0) + 1);
    const dim = this.dim;
    for (const [b, count] of tf) {
      const w = (1 + Math.log(count)) * this.idf[b];
      const row = b * dim;
      for (let d = 0; d < dim; d++) out[d] += w * this.matrix[row + d];
    }
    normalise(out);
    const rng = new Xoshiro128(0x7e57 ^ Math.imul(r + 1, 0x27d4eb2f));
    const noise = new Float32Array(dim);
    for (let d = 0; d < dim; d++) noise[d] = gaussian(rng);
    normalise(noise);
    const task = this.taskVector(rec.task);
    for (let d = 0; d < dim; d++) out[d] += TASK_WEIGHT * task[d] + NOISE * noise[d];
    normalise(out);
  }
}

function bucketsOf(text: string): number[] {
  const out: number[] = [];
  for (const w of text.toLowerCase().split(/[^a-z0-9]+/)) {
    if (w.length === 0) continue;
    let h = 0x811c9dc5;
    for (let k = 0; k < w.length; k++) h = Math.imul(h ^ w.charCodeAt(k), 0x01000193);
    out.push((h >>> 0) % BUCKETS);
  }
  return out;
}

function normalise(v: Float32Array): void {
  let s = 0;
  for (let d = 0; d < v.length; d++) s += v[d] * v[d];
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
  for (let d = 0; d < v.length; d++) v[d] *= inv;
}

function gaussian(rng: Xoshiro128): number {
  const u = (rng.nextUint32() + 1) / 4294967297;
  const v = rng.nextUint32() / 4294967296;
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Writes DIR/data.jsonl (or .jsonl.gz) and DIR/embeddings.npy. */
export async function buildScaleCorpus(o: ScaleCorpusOptions): Promise<ScaleCorpusFiles> {
  const seed = o.seed ?? 1;
  const dim = o.dim ?? 384;
  const kind = o.embeddings ?? "f32";
  mkdirSync(o.out, { recursive: true });
  const pool = loadPool(o.dataDir, seed);
  const synth = new RecordSynthesizer(pool, seed);
  const projection = kind === "none" ? null : new TextProjection(pool, dim, seed);
  const dataPath = join(o.out, o.gzip ? "data.jsonl.gz" : "data.jsonl");
  const file = createWriteStream(dataPath);
  const gzip = o.gzip ? createGzip({ level: 6 }) : null;
  if (gzip) gzip.pipe(file);
  const target = gzip ?? file;
  const embPath = projection ? join(o.out, "embeddings.npy") : null;
  const fd = embPath ? openSync(embPath, "w") : -1;
  if (embPath) writeSync(fd, npyHeader(kind === "f16" ? "<f2" : "<f4", [o.samples, dim]));
  const rowsPerWrite = 2048;
  const row = new Float32Array(dim);
  const block32 = new Float32Array(rowsPerWrite * dim);
  const block16 = new Uint16Array(rowsPerWrite * dim);
  let bytes = 0;
  let lines: string[] = [];
  let inBlock = 0;
  const write = async (text: string) => {
    bytes += Buffer.byteLength(text);
    if (!target.write(text)) await new Promise<void>((resolve) => target.once("drain", () => resolve()));
  };
  const flushRows = () => {
    if (!projection || inBlock === 0) return;
    if (kind === "f16") {
      for (let k = 0; k < inBlock * dim; k++) block16[k] = floatToHalf(block32[k]);
      writeSync(fd, block16.subarray(0, inBlock * dim));
    } else {
      writeSync(fd, block32.subarray(0, inBlock * dim));
    }
    inBlock = 0;
  };
  const started = performance.now();
  for (let r = 0; r < o.samples; r++) {
    const rec = synth.record(r);
    lines.push(JSON.stringify(rec));
    if (projection) {
      projection.embed(rec, r, row);
      block32.set(row, inBlock * dim);
      if (++inBlock === rowsPerWrite) flushRows();
    }
    if (lines.length === 1000) {
      await write(lines.join("\n") + "\n");
      lines = [];
    }
    if (o.log && (r + 1) % 100_000 === 0) o.log(`  ${r + 1} records (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  }
  if (lines.length > 0) await write(lines.join("\n") + "\n");
  flushRows();
  if (fd >= 0) closeSync(fd);
  await new Promise<void>((resolve, reject) => {
    file.once("finish", () => resolve());
    file.once("error", reject);
    target.end();
  });
  return { data: dataPath, embeddings: embPath, dim, samples: o.samples, bytes };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      samples: { type: "string", default: "100000" },
      out: { type: "string" },
      dim: { type: "string", default: "384" },
      seed: { type: "string", default: "1" },
      gzip: { type: "boolean", default: false },
      embeddings: { type: "string", default: "f32" },
    },
  });
  if (!values.out) throw new Error("--out DIR is required");
  const emb = values.embeddings as "f32" | "f16" | "none";
  if (!["f32", "f16", "none"].includes(emb)) throw new Error("--embeddings is f32, f16 or none");
  const files = await buildScaleCorpus({ samples: Number(values.samples), out: values.out, dim: Number(values.dim), seed: Number(values.seed), gzip: values.gzip, embeddings: emb, log: console.log });
  console.log(JSON.stringify(files));
}

if (process.argv[1] && process.argv[1].endsWith("build-corpus.js")) await main();
