import { suite } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InputError, npyHeader, readCorpus } from "../../common/src/mod.js";
import { Xoshiro128 } from "../../common/src/selection/prng.js";
import { type JobSpec, parseJobSpec, planJob, runSelection, seKernels } from "../../coordinator/src/mod.js";
import { runEmbeddedJob } from "../../cli/src/embedded/run-embedded-job.js";
import { jobSpecFromFlags } from "../../cli/src/setup/job-flags.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const Given = suite("scale: --embeddings (flag checks, the lean SE path, the search phase in the job on the embedded default)");
const dir = tempDir("delift-given-");
Given.after(() => dir.cleanup());

const N = 240;
const DIM = 24;
const K = 8;
const lines = readFileSync(join(FIXTURES, "gsm8k-train-512.jsonl"), "utf8").split("\n").filter(Boolean).slice(0, N);
const DATA = join(dir.path, "data.jsonl");
writeFileSync(DATA, lines.join("\n") + "\n");
const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);

/** Clustered vectors (12 seeded centres plus noise), never normalised: the job normalises them. */
function vectors(n: number, seed: number): Float32Array {
  const rng = new Xoshiro128(seed);
  const uniform = () => (rng.nextUint32() + 0.5) / 2 ** 32;
  const gauss = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const centres = Array.from({ length: 12 }, () => Array.from({ length: DIM }, gauss));
  const out = new Float32Array(n * DIM);
  for (let i = 0; i < n; i++) for (let d = 0; d < DIM; d++) out[i * DIM + d] = (1 + (i % 3)) * (centres[i % 12][d] + 0.6 * gauss());
  return out;
}
const E = vectors(N, 7);

function npy(name: string, values: Float32Array, rows: number): string {
  const path = join(dir.path, name);
  writeFileSync(path, Buffer.concat([npyHeader("<f4", [rows, DIM]), Buffer.from(values.buffer, values.byteOffset, values.byteLength)]));
  return path;
}
const EMB = npy("e.npy", E, N);

const spec = (extra: Record<string, unknown> = {}): JobSpec =>
  parseJobSpec(
    {
      kind: "select",
      data: DATA,
      model: TINY_MODEL,
      embeddings: EMB,
      selection: { budget: "0.3", kernelType: "se", optimizer: "lazy", compareLazy: "never" },
      scoring: { candidates: { neighbors: K, random: 0, seed: 3 } },
      ...extra,
    },
    "test",
  );

const refused = (f: () => unknown, field: string, pattern: RegExp) => {
  try {
    f();
  } catch (err) {
    assert.instance(err, InputError);
    assert.is((err as InputError).location.field, field);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable("accepted");
};

Given("a job that cannot use given embeddings is refused naming the field and what it expects", async () => {
  const base = { kind: "select", data: DATA, model: TINY_MODEL, embeddings: EMB, selection: { budget: "0.3" } };
  refused(() => parseJobSpec(base, "t"), "embeddings", /SE kernel \(kernelType se\) or sparse mode/);
  refused(() => parseJobSpec({ ...base, kind: "kernel" }, "t"), "embeddings", /--neighbors K/);
  refused(() => parseJobSpec({ ...base, selection: { budget: "0.3", kernelType: "se", stage: "task" }, target: DATA }, "t"), "embeddings", /targetIds, --target-ids/);
  refused(() => parseJobSpec({ ...base, embeddings: "e.npy", selection: { budget: "0.3", kernelType: "se" } }, "t"), "embeddings", /absolute path/);
  // Accepted: SE (dense or sparse), and the utility kernel in sparse mode (the neighbour space).
  assert.is(parseJobSpec({ ...base, selection: { budget: "0.3", kernelType: "se" } }, "t").embeddings, EMB);
  assert.is(parseJobSpec({ ...base, scoring: { candidates: { neighbors: 4 } } }, "t").embeddings, EMB);
  // The flag: a relative path is made absolute for the coordinator.
  const cwd = process.cwd();
  process.chdir(dir.path);
  try {
    const s = await jobSpecFromFlags({ data: "data.jsonl", model: TINY_MODEL, budget: "0.3", "kernel-type": "se", embeddings: "e.npy", neighbors: "4" }, "select");
    assert.is(s.embeddings, EMB);
    assert.is(s.scoring.candidates?.neighbors, 4);
  } finally {
    process.chdir(cwd);
  }
});

Given("reading without tokenizing keeps ids, lines and the record index and holds no token ids", async () => {
  const tokenizer = join(TINY_MODEL, "tokenizer.json");
  const full = await readCorpus(DATA, { tokenizer, threads: 0 });
  const lean = await readCorpus(DATA, { tokenizer, threads: 0, tokenize: false });
  assert.is(lean.corpus.count, N);
  assert.is(lean.corpus.ids.length, 0);
  assert.ok(full.corpus.ids.length > N);
  assert.equal(Array.from(lean.records.lines), Array.from(full.records.lines));
  assert.equal(Array.from(lean.records.byteOffsets!), Array.from(full.records.byteOffsets!));
  for (const i of [0, 17, N - 1]) assert.is(lean.corpus.sampleIds.get(i), full.corpus.sampleIds.get(i));
});

/** Exact K nearest by cosine (float64, ties to the lower index) and (cos + 1) / 2, per row. */
function bruteForce(): { cols: number[]; values: number[] }[] {
  const norm = Array.from({ length: N }, (_, i) => Math.hypot(...E.subarray(i * DIM, (i + 1) * DIM)));
  const cos = (a: number, b: number) => {
    let s = 0;
    for (let d = 0; d < DIM; d++) s += E[a * DIM + d] * E[b * DIM + d];
    return s / (norm[a] * norm[b]);
  };
  return Array.from({ length: N }, (_, r) => {
    const best = Array.from({ length: N }, (_, c) => ({ c, s: cos(r, c) }))
      .sort((x, y) => y.s - x.s || x.c - y.c)
      .slice(0, K)
      .sort((x, y) => x.c - y.c);
    return { cols: best.map((b) => b.c), values: best.map((b) => (b.s + 1) / 2) };
  });
}

Given("the SE kernel on given embeddings: each row's K nearest by cosine, entries (cos + 1) / 2, without tokenizing the corpus", async () => {
  const s = spec();
  const planned = await planJob(s);
  assert.is(planned.sets.tokens.ids.length, 0, "no token ids");
  assert.ok(planned.sets.records, "records are kept as an index");
  const { main } = await seKernels(s, planned);
  const expected = bruteForce();
  const rows: { cols: number[]; values: number[] }[] = Array.from({ length: N }, () => ({ cols: [], values: [] }));
  for (let c = 0; c < main.nCols; c++) {
    for (let p = main.colPtr[c]; p < main.colPtr[c + 1]; p++) {
      rows[main.rowIdx[p]].cols.push(c);
      rows[main.rowIdx[p]].values.push(main.values[p]);
    }
  }
  let maxDiff = 0;
  for (let r = 0; r < N; r++) {
    assert.equal(rows[r].cols, expected[r].cols, `row ${r}'s neighbours`);
    for (let k = 0; k < K; k++) maxDiff = Math.max(maxDiff, Math.abs(rows[r].values[k] - expected[r].values[k]));
  }
  assert.ok(maxDiff < 1e-6, `largest difference ${maxDiff}`);
});

Given("on the embedded default the job goes planning -> searching -> selecting, selects as the kernel says, writes the original records, and again the same bytes", async () => {
  const s = spec();
  const kernels = await seKernels(s, await planJob(s));
  const expected = runSelection(kernels, { stage: "instruction", k: 72, optimizer: "lazy", epsilon: 0.01, seed: 0, scaling: "min-max", eta: 1, nu: 1, compareWithLazy: "never" }).result.order;
  const run = async (name: string) => {
    const out = join(dir.path, name);
    const states: string[] = [];
    const phases = new Set<string>();
    const r = await runEmbeddedJob(s, {
      out,
      storeDir: join(dir.path, "store"),
      device: "cpu",
      onStatus: (st) => {
        if (states.at(-1) !== st.state) states.push(st.state);
        if (st.phase) phases.add(st.phase.name);
      },
    });
    assert.is(r.status.state, "done", r.status.error);
    return { out, states, phases, bytes: readFileSync(join(out, "selected.jsonl")) };
  };
  const a = await run("a");
  assert.equal(a.states.filter((x) => x !== "cancelling"), ["planning", "searching", "selecting", "writing", "done"]);
  for (const phase of ["reading", "embeddings", "candidates", "kernel"]) assert.ok(a.phases.has(phase), `phase ${phase} reported; seen: ${[...a.phases].join(", ")}`);
  const selected = a.bytes.toString("utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(selected.map((x) => x.index), Array.from(expected));
  for (const x of selected) {
    const { index, rank, gain, ...record } = x;
    assert.equal(record, records[index as number], `record of column ${index} as in the data file`);
    assert.is(typeof rank, "number");
    assert.is(typeof gain, "number");
  }
  const report = JSON.parse(readFileSync(join(a.out, "report.json"), "utf8"));
  assert.is(report.settings.kernel, "se");
  assert.is(report.kernel.nnz, N * K);
  assert.ok(report.preview[0].x.length > 0, "the preview has the picked samples' text back");
  const b = await run("b");
  assert.ok(a.bytes.equals(b.bytes), "same selected.jsonl on a second run");
});

Given("bad given embeddings fail the job in planning naming the file, row and what was expected; nothing is written", async () => {
  const bad = E.slice();
  bad[5 * DIM + 2] = Number.NaN;
  const cases: [string, RegExp][] = [
    [npy("nan.npy", bad, N), /nan\.npy[\s\S]*row 5 \(sample "[^"]+", [^)]*data\.jsonl:6\): value 2 is NaN/],
    [npy("short.npy", E.subarray(0, (N - 1) * DIM), N - 1), /short\.npy field "shape": 239 rows, but .*data\.jsonl has 240 records/],
  ];
  for (const [file, pattern] of cases) {
    const out = join(dir.path, `bad-${file.split("/").at(-1)}`);
    const r = await runEmbeddedJob(spec({ embeddings: file }), { out, storeDir: join(dir.path, "store"), device: "cpu" });
    assert.is(r.status.state, "failed");
    assert.is(r.status.failedDuring, "planning");
    assert.match(r.status.error, pattern);
    assert.not.ok(existsSync(out), "no output");
  }
});

Given.run();
