import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { Tokenizer } from "@huggingface/tokenizers";
import { DuckDBInstance } from "@duckdb/node-api";
import { readKernel, type UtilityKernel } from "../../common/src/kernel/kernel-files.js";
import { lazyGreedy, scaleKernelInPlace, stochasticGreedy } from "../../common/src/selection/mod.js";
import type { CscKernel, KernelScaling } from "../../common/src/selection/mod.js";
import { runCli, tileCounts } from "../helpers/cli.js";
import { assertMatchesReference, writeSamples } from "../helpers/kernels.js";
import { TINY_MODEL, tempDir } from "../helpers/paths.js";

/**
 * The README's flags as a user meets them: each run of the CLI is checked against what the flag
 * promises, computed here from the kernel of `delift kernel` (selections by the library's
 * optimisers on kernels cut and scaled here, SE cosines from the encoder run here, token counts
 * from the tokenizer), not by re-reading the CLI's own report.
 */
const Options = suite("delift CLI options: data formats, fields, job files, templates, selection flags, SE, Parquet output");
const dir = tempDir("delift-options-");
const STORE = join(dir.path, "tiles");
const V8 = writeSamples(join(dir.path, "v8.jsonl"), 8);
const records = readFileSync(V8, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, string>);
const K = join(dir.path, "kernel");
let full: UtilityKernel;

Options.after(() => dir.cleanup());

const ids = (out: string) => readFileSync(join(out, "selected.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).id as string);
const report = (out: string) => JSON.parse(readFileSync(join(out, "report.json"), "utf8"));

async function ok(args: string[]): Promise<string> {
  const r = await runCli([...args, "--quiet"]);
  assert.is(r.code, 0, r.log);
  return r.log;
}

/** UF of the full kernel at (rows x cols) of its samples, as a dense CSC kernel (rows ascending). */
function cut(k: UtilityKernel, rows: number[], cols: number[]): CscKernel {
  const at = (i: number, j: number) => {
    for (let p = k.csc.colPtr[j]; p < k.csc.colPtr[j + 1]; p++) if (k.csc.rowIdx[p] === i) return k.csc.values[p];
    throw new Error(`no entry (${i}, ${j})`);
  };
  const colPtr = Uint32Array.from({ length: cols.length + 1 }, (_, c) => c * rows.length);
  const rowIdx = new Uint32Array(rows.length * cols.length);
  const values = new Float32Array(rows.length * cols.length);
  cols.forEach((j, c) => rows.forEach((i, r) => ((rowIdx[c * rows.length + r] = r), (values[c * rows.length + r] = at(i, j)))));
  return { nRows: rows.length, nCols: cols.length, colPtr, rowIdx, values };
}

function scaled(k: CscKernel, scaling: KernelScaling = "min-max"): CscKernel {
  const copy = { ...k, values: Float32Array.from(k.values) };
  scaleKernelInPlace(copy, scaling);
  return copy;
}

function columnMaxima(k: CscKernel): Float32Array {
  return Float32Array.from({ length: k.nCols }, (_, c) => Math.max(0, ...k.values.subarray(k.colPtr[c], k.colPtr[c + 1])));
}

function rowMaxima(k: CscKernel): Float32Array {
  const m = new Float32Array(k.nRows);
  for (let p = 0; p < k.values.length; p++) m[k.rowIdx[p]] = Math.max(m[k.rowIdx[p]], k.values[p]);
  return m;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
const idsOf = (order: ArrayLike<number>, pool: number[]) => Array.from(order, (c) => records[pool[c]].id);

Options("delift kernel: the summary's token percentiles and truncation counts are those of the data; the kernel matches the reference", async () => {
  const log = await ok(["kernel", "--data", V8, "--model", TINY_MODEL, "--out", K, "--store", STORE]);
  full = await readKernel(K);
  await assertMatchesReference(new Map(["kernel.bin", "kernel.json"].map((f) => [f, readFileSync(join(K, f))])), "delift kernel");
  // Token counts straight from the tokenizer (the Hugging Face library), nearest-rank percentiles.
  const tokenizer = new Tokenizer(JSON.parse(readFileSync(join(TINY_MODEL, "tokenizer.json"), "utf8")), {});
  const count = (text: string) => tokenizer.encode(text, { add_special_tokens: false }).ids.length;
  const pct = (v: number[]) => {
    const s = [...v].sort((a, b) => a - b);
    return [50, 90, 99, 100].map((p) => `p${p}=${s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]}`).join(" ");
  };
  const xs = records.map((r) => count(r.input ? `${r.instruction}\n${r.input}` : r.instruction));
  const ys = records.map((r) => count(r.output));
  assert.match(log, /^samples: 8$/m);
  assert.ok(log.includes(`tokens x (query): ${pct(xs)}`), `expected x percentiles ${pct(xs)} in\n${log}`);
  assert.ok(log.includes(`tokens y (response): ${pct(ys)}`), `expected y percentiles ${pct(ys)} in\n${log}`);
  assert.match(log, /max length 1024: 0 baseline prompt\(s\) and 0 of 64 pair prompt\(s\) will be left-truncated/);

  // A maximum length that cuts long pair prompts: the summary's forecast is what the run then did.
  const maxLength = Math.max(...ys) + 60;
  const short = join(dir.path, "kernel-short");
  const shortLog = await ok(["kernel", "--data", V8, "--model", TINY_MODEL, "--out", short, "--store", STORE, "--max-length", String(maxLength)]);
  const forecast = new RegExp(`max length ${maxLength}: (\\d+) baseline prompt\\(s\\) and (\\d+) of 64 pair prompt\\(s\\) will be left-truncated`).exec(shortLog);
  assert.ok(forecast, shortLog);
  const truncated = JSON.parse(readFileSync(join(short, "kernel.json"), "utf8")).truncated;
  assert.equal([truncated.baseline, truncated.pairs], [Number(forecast[1]), Number(forecast[2])]);
  assert.ok(truncated.pairs > 0, "the short maximum length truncated nothing: the check is empty");
});

Options("kernel.parquet read by DuckDB (an independent Parquet reader): row, col, utility, every entry of kernel.bin", async () => {
  const db = await DuckDBInstance.create(":memory:");
  const c = await db.connect();
  try {
    const rows = (await c.runAndReadAll(`SELECT "row", col, utility FROM read_parquet('${join(K, "kernel.parquet")}') ORDER BY col, "row"`)).getRowObjects();
    assert.is(rows.length, full.csc.values.length);
    for (let j = 0, p = 0; j < full.metadata.nCols; j++) {
      for (let q = full.csc.colPtr[j]; q < full.csc.colPtr[j + 1]; q++, p++) {
        assert.equal([Number(rows[p].row), Number(rows[p].col)], [full.csc.rowIdx[q], j]);
        assert.is(Math.fround(Number(rows[p].utility)), full.csc.values[q], `utility (${full.csc.rowIdx[q]}, ${j})`);
      }
    }
  } finally {
    c.closeSync();
    db.closeSync();
  }
});

Options("--epsilon, --seed, --save-kernel, --scaling clip, --optimizer lazy: the selection the library makes on the same kernel", async () => {
  const a = join(dir.path, "sel-stochastic");
  await ok(["select", "--data", V8, "--model", TINY_MODEL, "--budget", "3", "--epsilon", "0.2", "--seed", "7", "--save-kernel", "--out", a, "--store", STORE]);
  const all = range(0, 8);
  const stochastic = stochasticGreedy(scaled(full.csc), { k: 3, epsilon: 0.2, seed: 7 });
  assert.equal(ids(a), idsOf(stochastic.order, all));
  assert.equal([report(a).settings.epsilon, report(a).settings.seed], [0.2, 7]);
  assert.ok(Buffer.compare(readFileSync(join(a, "kernel", "kernel.bin")), readFileSync(join(K, "kernel.bin"))) === 0, "--save-kernel writes the kernel delift kernel writes");

  const b = join(dir.path, "sel-clip");
  await ok(["select", "--data", V8, "--model", TINY_MODEL, "--budget", "3", "--scaling", "clip", "--optimizer", "lazy", "--out", b, "--store", STORE]);
  assert.equal(ids(b), idsOf(lazyGreedy(scaled(full.csc, "clip-at-zero"), { k: 3 }).order, all));
  assert.is(report(b).settings.scaling, "clip-at-zero");
});

Options("--stage task --target-ids --eta and --stage continual --existing --nu: FLMI and FLCG on the right sets and orientations", async () => {
  // Task: Q = samples 1 and 4 of the data, taken out of V; the second kernel is UF[q][i] (Q x V).
  const targetIds = join(dir.path, "q-ids.txt");
  writeFileSync(targetIds, `${records[1].id}\n${records[4].id}\n`);
  const task = join(dir.path, "sel-task");
  await ok(["select", "--data", V8, "--model", TINY_MODEL, "--stage", "task", "--target-ids", targetIds, "--eta", "0.5", "--optimizer", "lazy", "--budget", "2", "--out", task, "--store", STORE]);
  const v = [0, 2, 3, 5, 6, 7];
  const flmi = lazyGreedy(scaled(cut(full, v, v)), { k: 2, objective: { kind: "flmi", targetMax: columnMaxima(scaled(cut(full, [1, 4], v))), eta: 0.5 } });
  assert.equal(ids(task), idsOf(flmi.order, v));
  assert.equal([report(task).settings.eta, report(task).data.samples], [0.5, 6]);

  // Continual: V = the first 6 samples, E = samples 6 and 7 from their own file; the second kernel is UF[i][e] (V x E).
  const v6 = writeSamples(join(dir.path, "v6.jsonl"), 6);
  const existing = join(dir.path, "e.jsonl");
  writeFileSync(existing, records.slice(6).map((r) => JSON.stringify(r)).join("\n") + "\n");
  const cont = join(dir.path, "sel-continual");
  await ok(["select", "--data", v6, "--model", TINY_MODEL, "--stage", "continual", "--existing", existing, "--nu", "0.5", "--optimizer", "lazy", "--budget", "2", "--out", cont, "--store", STORE]);
  const v0 = range(0, 6);
  const flcg = lazyGreedy(scaled(cut(full, v0, v0)), { k: 2, objective: { kind: "flcg", existingMax: rowMaxima(scaled(cut(full, v0, [6, 7]))), nu: 0.5 } });
  assert.equal(ids(cont), idsOf(flcg.order, v0));
  assert.equal([report(cont).settings.nu, report(cont).data.existing.samples], [0.5, 2]);
});

Options("Parquet and .ndjson input with other field names (--field-* flags, --config fields): the same samples, the same kernel, its tiles reused", async () => {
  // DuckDB writes the Parquet file: the reader is tested against a writer that is not its sibling.
  const parquet = join(dir.path, "renamed.parquet");
  const db = await DuckDBInstance.create(":memory:");
  const c = await db.connect();
  try {
    await c.run(`COPY (SELECT id AS uid, instruction AS prompt, "input" AS context, output AS completion, task AS origin FROM read_json_auto('${V8}')) TO '${parquet}' (FORMAT parquet)`);
  } finally {
    c.closeSync();
    db.closeSync();
  }
  const fields = ["--field-instruction", "prompt", "--field-input", "context", "--field-output", "completion", "--field-id", "uid", "--field-source", "origin"];
  const fromParquet = join(dir.path, "kernel-parquet");
  const log = await ok(["kernel", "--data", parquet, "--model", TINY_MODEL, "--out", fromParquet, "--store", STORE, ...fields]);
  assert.equal(tileCounts(log), { prompts: 72, computed: 0, reused: 2 });
  assert.ok(Buffer.compare(readFileSync(join(fromParquet, "kernel.bin")), readFileSync(join(K, "kernel.bin"))) === 0);
  assert.equal(JSON.parse(readFileSync(join(fromParquet, "kernel.json"), "utf8")).rowIds, records.map((r) => r.id));

  const ndjson = join(dir.path, "renamed.ndjson");
  writeFileSync(ndjson, records.map((r) => JSON.stringify({ key: r.id, q: r.instruction, ctx: r.input, a: r.output })).join("\n") + "\n");
  const config = join(dir.path, "scoring.json");
  writeFileSync(config, JSON.stringify({ fields: { id: "key", instruction: "q", input: "ctx", output: "a" } }));
  const fromNdjson = join(dir.path, "kernel-ndjson");
  const log2 = await ok(["kernel", "--data", ndjson, "--model", TINY_MODEL, "--config", config, "--out", fromNdjson, "--store", STORE]);
  assert.equal(tileCounts(log2), { prompts: 72, computed: 0, reused: 2 });
  assert.ok(Buffer.compare(readFileSync(join(fromNdjson, "kernel.bin")), readFileSync(join(K, "kernel.bin"))) === 0);
});

Options("--job FILE holds a whole selection; custom templates in it change the prompts, and the same templates from --config give the same kernel", async () => {
  const job = join(dir.path, "job.json");
  writeFileSync(job, JSON.stringify({ data: "v8.jsonl", model: TINY_MODEL, selection: { budget: "3", epsilon: 0.2, seed: 7 } }));
  const out = join(dir.path, "sel-job");
  await ok(["select", "--job", job, "--out", out, "--store", STORE]);
  assert.equal(ids(out), ids(join(dir.path, "sel-stochastic")), "the job file's selection is the flags' one");

  const templates = { baseline: "Question: {x}\nAnswer:{eos}{y}{eos}", example: "Solved example:\n{example_x}\n{example_y}\n\nQuestion: {x}\nAnswer:{eos}{y}{eos}" };
  const templated = join(dir.path, "job-templates.json");
  writeFileSync(templated, JSON.stringify({ data: V8, model: TINY_MODEL, saveKernel: true, selection: { budget: "2" }, scoring: { templates } }));
  const viaJob = join(dir.path, "sel-templates-job");
  const log = await ok(["select", "--job", templated, "--out", viaJob, "--store", STORE]);
  assert.equal(tileCounts(log), { prompts: 72, computed: 2, reused: 0 }, "other prompts: no tile of the default templates fits");
  const custom = await readKernel(join(viaJob, "kernel"));
  assert.ok(custom.baseline.some((d, i) => Math.abs(d - full.baseline[i]) > 1e-4), "the baseline distances did not change with the template");
  const config = join(dir.path, "templates.json");
  writeFileSync(config, JSON.stringify({ templates }));
  const viaConfig = join(dir.path, "kernel-templates-config");
  const log2 = await ok(["kernel", "--data", V8, "--model", TINY_MODEL, "--config", config, "--out", viaConfig, "--store", STORE]);
  assert.equal(tileCounts(log2), { prompts: 72, computed: 0, reused: 2 });
  assert.ok(Buffer.compare(readFileSync(join(viaConfig, "kernel.bin")), readFileSync(join(viaJob, "kernel", "kernel.bin"))) === 0);
});

Options("--skip-invalid: without it every bad record is listed and nothing runs; with it they are skipped, listed, and the rest is selected", async () => {
  const mixed = join(dir.path, "mixed.jsonl");
  const lines = records.slice(0, 6).map((r) => JSON.stringify(r));
  lines.splice(2, 0, JSON.stringify({ id: "no-output", instruction: "q" }));
  lines.splice(5, 0, "{not json");
  writeFileSync(mixed, lines.join("\n") + "\n");
  const refused = await runCli(["select", "--data", mixed, "--model", TINY_MODEL, "--budget", "2", "--out", join(dir.path, "never"), "--store", STORE]);
  assert.is(refused.code, 2, refused.log);
  assert.match(refused.log, /mixed\.jsonl:3 field "output"/);
  assert.match(refused.log, /mixed\.jsonl:6.*invalid JSON/);
  const out = join(dir.path, "sel-skip");
  const r = await runCli(["select", "--data", mixed, "--model", TINY_MODEL, "--budget", "2", "--skip-invalid", "--optimizer", "lazy", "--out", out, "--store", STORE]);
  assert.is(r.code, 0, r.log);
  assert.match(r.log, /skipped .*mixed\.jsonl:3 field "output"/);
  assert.match(r.log, /skipped .*mixed\.jsonl:6.*invalid JSON/);
  assert.match(r.log, /^samples: 6 \(2 skipped\)$/m);
  assert.is(report(out).data.skipped, 2);
  const v = range(0, 6);
  assert.equal(ids(out), idsOf(lazyGreedy(scaled(cut(full, v, v)), { k: 2 }).order, v));
});

Options("--kernel-type se: s = (cos + 1) / 2 of the encoder's mean-pooled embeddings, as computed here with onnxruntime", async () => {
  const out = join(dir.path, "sel-se");
  await ok(["select", "--data", V8, "--model", TINY_MODEL, "--kernel-type", "se", "--optimizer", "lazy", "--budget", "3", "--out", out, "--store", STORE]);
  // Embeddings one sample at a time (no padding): tokens of x, "\n", y; mean over tokens; unit length.
  const tokenizer = new Tokenizer(JSON.parse(readFileSync(join(TINY_MODEL, "tokenizer.json"), "utf8")), {});
  const encode = (t: string) => tokenizer.encode(t, { add_special_tokens: false }).ids;
  const session = await ort.InferenceSession.create(join(TINY_MODEL, "encoder.onnx"));
  const embeddings: number[][] = [];
  try {
    for (const r of records) {
      const tokens = [...encode(r.input ? `${r.instruction}\n${r.input}` : r.instruction), ...encode("\n"), ...encode(r.output)];
      const shape = [1, tokens.length];
      const feeds: Record<string, ort.Tensor> = {
        input_ids: new ort.Tensor("int64", BigInt64Array.from(tokens, BigInt), shape),
        attention_mask: new ort.Tensor("int64", new BigInt64Array(tokens.length).fill(1n), shape),
      };
      const result = await session.run(feeds);
      const hidden = (result.last_hidden_state ?? Object.values(result)[0]).data as Float32Array;
      const dim = hidden.length / tokens.length;
      const mean = Array.from({ length: dim }, (_, d) => tokens.reduce((s, _t, t) => s + hidden[t * dim + d], 0) / tokens.length);
      const norm = Math.hypot(...mean);
      embeddings.push(mean.map((x) => x / norm));
    }
  } finally {
    await session.release();
  }
  const n = records.length;
  const values = new Float32Array(n * n);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) values[j * n + i] = (embeddings[i].reduce((s, x, d) => s + x * embeddings[j][d], 0) + 1) / 2;
  }
  const se: CscKernel = { nRows: n, nCols: n, colPtr: Uint32Array.from({ length: n + 1 }, (_, c) => c * n), rowIdx: Uint32Array.from({ length: n * n }, (_, p) => p % n), values };
  const rep = report(out);
  assert.ok(Math.abs(rep.kernel.rawMin - Math.min(...values)) < 1e-5, `raw minimum ${rep.kernel.rawMin}, here ${Math.min(...values)}`);
  assert.ok(Math.abs(rep.kernel.rawMax - Math.max(...values)) < 1e-5, `raw maximum ${rep.kernel.rawMax}, here ${Math.max(...values)}`);
  assert.equal(ids(out), idsOf(lazyGreedy(scaled(se), { k: 3 }).order, range(0, n)));
});

Options("--concurrency 2: two tiles at a time in one process give the reference kernel", async () => {
  const out = join(dir.path, "kernel-concurrent");
  const log = await ok(["kernel", "--data", V8, "--model", TINY_MODEL, "--concurrency", "2", "--threads", "1", "--tile-columns", "1", "--tile-rows", "4", "--out", out, "--store", join(dir.path, "tiles-concurrent")]);
  assert.equal(tileCounts(log), { prompts: 72, computed: 2 + 16, reused: 0 });
  await assertMatchesReference(new Map(["kernel.bin", "kernel.json"].map((f) => [f, readFileSync(join(out, f))])), "--concurrency 2");
});

Options.run();
