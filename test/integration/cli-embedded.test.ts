import { suite } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readKernel } from "../../common/src/kernel/kernel-files.js";
import { runCli as run, storedTileFiles, tileCounts } from "../helpers/cli.js";
import { FIXTURES, TINY_MODEL, tempDir } from "../helpers/paths.js";

const Cli = suite("delift select / kernel / model prepare on the embedded default (CLI processes)");
const dir = tempDir("delift-cli-");
const STORE = join(dir.path, "tiles");
const lines = readFileSync(join(FIXTURES, "gsm8k-32.jsonl"), "utf8").split("\n").filter(Boolean);
const DATA = join(dir.path, "v.jsonl");
writeFileSync(DATA, lines.slice(0, 10).join("\n") + "\n");
const TARGET = join(dir.path, "q.jsonl");
writeFileSync(TARGET, lines.slice(24, 28).join("\n") + "\n");

Cli.after(() => dir.cleanup());

const report = (out: string) => JSON.parse(readFileSync(join(out, "report.json"), "utf8"));

Cli("select (instruction stage): selected.jsonl keeps the records and adds index, rank, gain; the report is written", async () => {
  const out = join(dir.path, "sel");
  const r = await run(["select", "--data", DATA, "--model", TINY_MODEL, "--budget", "0.3", "--out", out, "--store", STORE, "--quiet"]);
  assert.is(r.code, 0, r.log);
  assert.match(r.log, /samples: 10/);
  assert.match(r.log, /selected 3 of 10/);
  const selected = readFileSync(join(out, "selected.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.is(selected.length, 3);
  assert.equal(selected.map((s) => s.rank), [1, 2, 3]);
  const byId = new Map(lines.slice(0, 10).map((l) => JSON.parse(l)).map((x) => [x.id, x]));
  for (const s of selected) {
    const original = byId.get(s.id);
    assert.ok(original, `unknown id ${s.id}`);
    assert.is(s.instruction, original.instruction);
    assert.is(s.output, original.output);
    assert.is(s.task, original.task);
    assert.ok(Number.isInteger(s.index) && s.index >= 0 && s.index < 10);
    assert.is(typeof s.gain, "number");
  }
  assert.ok(selected[0].gain >= selected[1].gain && selected[1].gain >= selected[2].gain, "gains of a submodular greedy do not increase");
  const rep = report(out);
  assert.is(rep.settings.objective, "fl");
  assert.is(rep.settings.k, 3);
  assert.is(rep.kernel.nnz, 100);
  assert.is(rep.result.curve.at(-1)[0], 3);
  assert.ok(Math.abs(rep.result.curve.at(-1)[1] - rep.result.value) < 1e-6);
  // A fresh store: every tile computed (1 baseline tile, 2 pair tiles of the default 8 x 256 shape), none reused.
  assert.equal(tileCounts(r.log), { prompts: 110, computed: 3, reused: 0 });
  assert.equal([rep.kernel.tilesComputed, rep.kernel.tilesReused], [3, 0]);
  assert.is(storedTileFiles(STORE).length, 3);
  const html = readFileSync(join(out, "report.html"), "utf8");
  assert.match(html, /<svg/);
  assert.match(html, /Objective vs k/);
  assert.match(html, /gsm8k/);
});

Cli("a second run reuses every stored tile and gives the same selection; the seed decides it", async () => {
  const a = join(dir.path, "sel");
  const b = join(dir.path, "sel-again");
  const r = await run(["select", "--data", DATA, "--model", TINY_MODEL, "--budget", "0.3", "--out", b, "--store", STORE, "--quiet"]);
  assert.is(r.code, 0, r.log);
  assert.equal(tileCounts(r.log), { prompts: 110, computed: 0, reused: 3 });
  assert.equal([report(b).kernel.tilesComputed, report(b).kernel.tilesReused], [0, 3], "the report says the same");
  assert.is(storedTileFiles(STORE).length, 3, "nothing new in the store");
  const ids = (d: string) => readFileSync(join(d, "selected.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).id);
  assert.equal(ids(b), ids(a));
});

Cli("the old corpus plus new samples: only tiles with a new sample are computed", async () => {
  const store = join(dir.path, "store-append");
  const grown = join(dir.path, "grown.jsonl");
  writeFileSync(grown, lines.slice(0, 12).join("\n") + "\n");
  const shape = ["--tile-columns", "2", "--tile-rows", "5", "--store", store, "--quiet"];
  const first = await run(["kernel", "--data", DATA, "--model", TINY_MODEL, "--out", join(dir.path, "k10"), ...shape]);
  assert.is(first.code, 0, first.log);
  assert.equal(tileCounts(first.log), { prompts: 110, computed: 12, reused: 0 });
  const second = await run(["kernel", "--data", grown, "--model", TINY_MODEL, "--out", join(dir.path, "k12"), ...shape]);
  assert.is(second.code, 0, second.log);
  // Reused: the 2 baseline and 5 x 2 pair tiles of the 10 old samples. Computed: the new baseline tile,
  // the 5 old column blocks with the new row block, and the new column block with all 3 row blocks.
  assert.equal(tileCounts(second.log), { prompts: 156, computed: 9, reused: 12 });
  assert.is(storedTileFiles(store).length, 21);
});

Cli("task stage (FLMI with a target set) and continual stage (FLCG with ids of samples already used)", async () => {
  const task = join(dir.path, "task");
  const t = await run(["select", "--data", DATA, "--model", TINY_MODEL, "--stage", "task", "--target", TARGET, "--budget", "2", "--out", task, "--store", STORE, "--quiet"]);
  assert.is(t.code, 0, t.log);
  const tr = JSON.parse(readFileSync(join(task, "report.json"), "utf8"));
  assert.is(tr.settings.objective, "flmi");
  assert.equal([tr.secondKernel.nRows, tr.secondKernel.nCols], [4, 10]);

  const used = join(dir.path, "used.txt");
  const ids = lines.slice(0, 3).map((l) => JSON.parse(l).id);
  writeFileSync(used, ids.join("\n") + "\n");
  const cont = join(dir.path, "continual");
  const c = await run(["select", "--data", DATA, "--model", TINY_MODEL, "--stage", "continual", "--existing-ids", used, "--budget", "2", "--out", cont, "--store", STORE, "--quiet"]);
  assert.is(c.code, 0, c.log);
  const picked = readFileSync(join(cont, "selected.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).id);
  assert.is(picked.length, 2);
  for (const id of ids) assert.not.ok(picked.includes(id), "E is never selected");
  assert.is(JSON.parse(readFileSync(join(cont, "report.json"), "utf8")).settings.objective, "flcg");
});

Cli("DELIFT (SE): the sentence-embedding kernel needs no pair scoring", async () => {
  const out = join(dir.path, "se");
  const r = await run(["select", "--data", DATA, "--model", TINY_MODEL, "--kernel-type", "se", "--budget", "4", "--out", out, "--quiet", "--store", join(dir.path, "empty-store")]);
  assert.is(r.code, 0, r.log);
  const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
  assert.is(report.settings.kernel, "se");
  assert.ok(report.kernel.rawMin >= 0 && report.kernel.rawMax <= 1);
  // No pair is scored: the samples are embedded as embed tiles (by the in-process worker), stored for reuse.
  const embedded = (log: string) => {
    const m = /^SE kernel \(sentence-embedding cosine\): (\d+) samples embedded in [\d.]+ s \((\d+) tiles computed, (\d+) reused from the tile store\)$/m.exec(log);
    assert.ok(m, `no embedding count line in the output:\n${log}`);
    return { samples: Number(m[1]), computed: Number(m[2]), reused: Number(m[3]) };
  };
  const first = embedded(r.log);
  assert.is(first.samples, 10);
  assert.ok(first.computed >= 1 && first.reused === 0, JSON.stringify(first));
  assert.is(storedTileFiles(join(dir.path, "empty-store")).length, first.computed, "the embed tiles are in the store");
  const sparse = join(dir.path, "se-sparse");
  const s = await run(["select", "--data", DATA, "--model", TINY_MODEL, "--kernel-type", "se", "--neighbors", "3", "--budget", "4", "--out", sparse, "--quiet", "--store", join(dir.path, "empty-store")]);
  assert.is(s.code, 0, s.log);
  assert.is(JSON.parse(readFileSync(join(sparse, "report.json"), "utf8")).kernel.nnz, 30, "each sample against its 3 nearest");
  assert.equal(embedded(s.log), { samples: 10, computed: 0, reused: first.computed }, "the same samples and encoder: every embed tile reused");
  assert.is(storedTileFiles(join(dir.path, "empty-store")).length, first.computed);
});

Cli("bad input: clear errors, exit code 2, nothing written", async () => {
  const out = join(dir.path, "never");
  const budget = await run(["select", "--data", DATA, "--model", TINY_MODEL, "--budget", "11", "--out", out, "--store", STORE]);
  assert.is(budget.code, 2);
  assert.match(budget.log, /budget 11 out of range: a count must be between 1 and 10/);
  const unknown = join(dir.path, "unknown-ids.txt");
  writeFileSync(unknown, "gsm8k-train-0\nno-such-id\n");
  const ids = await run(["select", "--data", DATA, "--model", TINY_MODEL, "--stage", "continual", "--existing-ids", unknown, "--budget", "2", "--out", out, "--store", STORE]);
  assert.is(ids.code, 2);
  assert.match(ids.log, /unknown-ids\.txt:2: unknown id "no-such-id"/);
  const bad = join(dir.path, "bad.jsonl");
  writeFileSync(bad, `${lines[0]}\n{"id": "x", "instruction": "q"}\n`);
  const line = await run(["select", "--data", bad, "--model", TINY_MODEL, "--budget", "1", "--out", out, "--store", STORE]);
  assert.is(line.code, 2);
  assert.match(line.log, /bad\.jsonl:2 field "output": expected a string, got nothing \(field missing\)/);
  const foreign = join(dir.path, "foreign");
  mkdirSync(foreign);
  writeFileSync(join(foreign, "notes.txt"), "mine");
  const refused = await run(["select", "--data", DATA, "--model", TINY_MODEL, "--budget", "2", "--out", foreign, "--store", STORE]);
  assert.is(refused.code, 2);
  assert.match(refused.log, /already holds files delift did not write \(notes\.txt\)/);
  assert.equal(readdirSync(foreign), ["notes.txt"]);
  assert.not.ok(existsSync(out));
});

Cli("kernel: parquet + binary + json; model prepare gives a bundle that computes the same kernel", async () => {
  const a = join(dir.path, "kernel-a");
  const r = await run(["kernel", "--data", DATA, "--model", TINY_MODEL, "--out", a, "--store", STORE, "--quiet"]);
  assert.is(r.code, 0, r.log);
  assert.equal(readdirSync(a).sort(), ["kernel.bin", "kernel.json", "kernel.parquet"]);
  const prepared = join(dir.path, "tiny-prepared");
  const p = await run(["model", "prepare", "--model", TINY_MODEL, "--out", prepared]);
  assert.is(p.code, 0, p.log);
  assert.is(JSON.parse(readFileSync(join(prepared, "manifest.json"), "utf8")).prepared, true);
  const b = join(dir.path, "kernel-b");
  const r2 = await run(["kernel", "--data", DATA, "--model", prepared, "--out", b, "--store", join(dir.path, "store-prepared"), "--quiet"]);
  assert.is(r2.code, 0, r2.log);
  assert.ok(Buffer.compare(readFileSync(join(a, "kernel.bin")), readFileSync(join(b, "kernel.bin"))) === 0);

  // select --kernel reuses it: no tile is scored, and the selection is the one computed from scratch.
  const reuse = join(dir.path, "sel-reused");
  const emptyStore = join(dir.path, "store-reuse");
  const s = await run(["select", "--data", DATA, "--model", TINY_MODEL, "--kernel", a, "--budget", "0.3", "--out", reuse, "--store", emptyStore, "--quiet"]);
  assert.is(s.code, 0, s.log);
  assert.equal(tileCounts(s.log), { prompts: 0, computed: 0, reused: 0 }, "no tile scored");
  assert.equal([report(reuse).kernel.tilesComputed, report(reuse).kernel.tilesReused], [0, 0]);
  assert.equal(storedTileFiles(emptyStore), [], "no tile in the store");
  const ids = (d: string) => readFileSync(join(d, "selected.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).id);
  assert.equal(ids(reuse), ids(join(dir.path, "sel")));
  // Sparse mode: each target against its 3 nearest samples and 1 random one; same values where stored.
  const sparse = join(dir.path, "kernel-sparse");
  const sp = await run(["kernel", "--data", DATA, "--model", TINY_MODEL, "--neighbors", "3", "--random-columns", "1", "--out", sparse, "--store", STORE, "--quiet"]);
  assert.is(sp.code, 0, sp.log);
  const dense = await readKernel(a);
  const sk = await readKernel(sparse);
  assert.is(sk.csc.rowIdx.length, 10 * 4);
  const denseAt = (i: number, j: number) => {
    for (let p = dense.csc.colPtr[j]; p < dense.csc.colPtr[j + 1]; p++) if (dense.csc.rowIdx[p] === i) return dense.csc.values[p];
    return NaN;
  };
  for (let j = 0; j < 10; j++) {
    for (let p = sk.csc.colPtr[j]; p < sk.csc.colPtr[j + 1]; p++) {
      assert.ok(Math.abs(sk.csc.values[p] - denseAt(sk.csc.rowIdx[p], j)) < 1e-5, `entry (${sk.csc.rowIdx[p]}, ${j})`);
    }
  }
  const other = join(dir.path, "other.jsonl");
  writeFileSync(other, lines.slice(10, 20).join("\n") + "\n");
  const wrong = await run(["select", "--data", other, "--model", TINY_MODEL, "--kernel", a, "--budget", "0.3", "--out", join(dir.path, "never2"), "--store", emptyStore]);
  assert.is(wrong.code, 2);
  assert.match(wrong.log, /kernel was computed for other samples/);
});

Cli.run();
