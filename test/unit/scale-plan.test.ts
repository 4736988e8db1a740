import { test } from "uvu";
import * as assert from "uvu/assert";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { ConfigError } from "../../common/src/errors.js";
import { packPieces } from "../../common/src/data/tokenized-corpus.js";
import { compactDensePlan, compactSparsePlan, DEFAULT_TILE_SHAPE, type CandidateTable, type DenseKernelRequest, type TileShape } from "../../coordinator/src/plan/compact-plan.js";
import { planDenseKernel, planSparseKernel } from "../../coordinator/src/plan/plan-tiles.js";
import { sampleKeys } from "../../coordinator/src/plan/sample-keys.js";
import type { TileSpec } from "../../coordinator/src/plan/tile-spec.js";
import { candidateTable, withRandomColumns } from "../../coordinator/src/plan/candidates.js";
import { EMPTY, sortedLists } from "../../common/src/mod.js";

// The planner as it was before the compact plan (commit c83f073), verbatim: tile ids key the
// content-addressed store, so the compact plan must give the same tiles with the same ids.
function referenceInvert(targets: Uint32Array, candidates: Uint32Array[], nSamples: number): { ptr: Uint32Array; rows: Uint32Array } {
  const counts = new Uint32Array(nSamples + 1);
  for (const list of candidates) for (const j of list) counts[j + 1]++;
  for (let j = 0; j < nSamples; j++) counts[j + 1] += counts[j];
  const rows = new Uint32Array(counts[nSamples]);
  const fill = counts.slice(0, nSamples);
  candidates.forEach((list, t) => {
    for (const j of list) rows[fill[j]++] = targets[t];
  });
  return { ptr: counts, rows };
}

function referenceDense(request: DenseKernelRequest): TileSpec[] {
  const shape = request.shape ?? DEFAULT_TILE_SHAPE;
  checkShape(shape);
  const key = tileKey(request.settingsKey, request.sampleKeys);
  const tiles: TileSpec[] = [];
  const half = request.maxTileTokens !== undefined ? request.maxTileTokens / 2 : Infinity;
  const tokens = request.sampleTokenCounts;
  const rowBlocks = blocks(request.targets, shape.rows, tokens, half);
  for (const rows of rowBlocks) tiles.push({ kind: "baseline", id: key("baseline", new Uint32Array(0), rows), targets: rows });
  for (const columns of blocks(request.examples, shape.columns, tokens, half)) {
    for (const rows of rowBlocks) tiles.push({ kind: "pairs", id: key("pairs", columns, rows), columns, rows });
  }
  return tiles;
}

export type SparseKernelRequest = DenseKernelRequest & {
  /** Each target's candidate examples (global indices, sorted), aligned with `targets`. */
  candidates: Uint32Array[];
};

/**
 * Sparse mode (DESIGN.md §2): each target is scored only against its candidates. Baseline tiles
 * as in dense mode; pair tiles are runs of consecutive example columns, each with the targets that
 * have it as a candidate, cut at shape.columns x shape.rows pairs (and the token budget).
 */
function referenceSparse(request: DenseKernelRequest & { candidates: Uint32Array[] }): TileSpec[] {
  const shape = request.shape ?? DEFAULT_TILE_SHAPE;
  checkShape(shape);
  if (request.candidates.length !== request.targets.length) throw new ConfigError("one candidate list per target is needed");
  const key = tileKey(request.settingsKey, request.sampleKeys);
  const tokens = request.sampleTokenCounts;
  const maxTokens = request.maxTileTokens ?? Infinity;
  const tiles: TileSpec[] = [];
  for (const rows of blocks(request.targets, shape.rows, tokens, maxTokens / 2)) tiles.push({ kind: "baseline", id: key("baseline", new Uint32Array(0), rows), targets: rows });

  const { ptr, rows } = referenceInvert(request.targets, request.candidates, request.sampleKeys.length / 16);
  const budget = shape.columns * shape.rows;
  let columns: number[] = [];
  let parts: Uint32Array[] = [];
  let pairs = 0;
  let tileTokens = 0;
  const flush = () => {
    if (columns.length === 0) return;
    const rowPtr = new Uint32Array(columns.length + 1);
    parts.forEach((p, k) => (rowPtr[k + 1] = rowPtr[k] + p.length));
    const all = new Uint32Array(pairs);
    parts.forEach((p, k) => all.set(p, rowPtr[k]));
    const cols = Uint32Array.from(columns);
    tiles.push({ kind: "pairs", id: key("pairs-sparse", cols, all, rowPtr), columns: cols, rows: all, rowPtr });
    columns = [];
    parts = [];
    pairs = 0;
    tileTokens = 0;
  };
  for (const j of request.examples) {
    const r = rows.subarray(ptr[j], ptr[j + 1]);
    if (r.length === 0) continue;
    let t = tokens ? tokens[j] : 0;
    if (tokens) for (const i of r) t += tokens[i];
    if (columns.length > 0 && (pairs + r.length > budget || tileTokens + t > maxTokens)) flush();
    columns.push(j);
    parts.push(r);
    pairs += r.length;
    tileTokens += t;
  }
  flush();
  return tiles;
}

function checkShape(shape: TileShape): void {
  if (!(shape.columns >= 1 && shape.rows >= 1 && Number.isInteger(shape.columns) && Number.isInteger(shape.rows))) {
    throw new ConfigError(`tile shape must be positive integers, got ${shape.columns} columns x ${shape.rows} rows`);
  }
}

/** Content key of a tile: settings, kind, and the sample keys of its columns and rows (and layout). */
function tileKey(settingsKey: string, sampleKeys: Uint8Array) {
  return (kind: string, columns: Uint32Array, rows: Uint32Array, rowPtr?: Uint32Array): string => {
    const h = createHash("sha256").update(`delift-tile/1\n${settingsKey}\n${kind}\n`);
    h.update(new Uint8Array(new Uint32Array([columns.length, rows.length]).buffer));
    for (const c of columns) h.update(sampleKeys.subarray(c * 16, c * 16 + 16));
    if (rowPtr) h.update(new Uint8Array(rowPtr.buffer, rowPtr.byteOffset, rowPtr.byteLength));
    for (const r of rows) h.update(sampleKeys.subarray(r * 16, r * 16 + 16));
    return h.digest("hex");
  };
}

/** Consecutive blocks of at most `size` samples and (when counts are given) `maxTokens` tokens. */
function blocks(indices: Uint32Array, size: number, tokens: Uint32Array | undefined, maxTokens: number): Uint32Array[] {
  const out: Uint32Array[] = [];
  let start = 0;
  let sum = 0;
  for (let at = 0; at < indices.length; at++) {
    const t = tokens ? tokens[indices[at]] : 0;
    if (at > start && (at - start >= size || sum + t > maxTokens)) {
      out.push(indices.slice(start, at));
      start = at;
      sum = 0;
    }
    sum += t;
  }
  if (start < indices.length) out.push(indices.slice(start));
  return out;
}

function corpus(n: number) {
  const pieces = Array.from({ length: 2 * n }, (_, k) => Int32Array.from({ length: 1 + (k % 4) }, (_, t) => 10 + k * 5 + t));
  return packPieces(pieces, pieces.reduce((a, p) => a + p.length, 0));
}

const plain = (tiles: TileSpec[]) => tiles.map((t) => (t.kind === "baseline" ? { ...t, targets: Array.from(t.targets) } : { ...t, columns: Array.from(t.columns), rows: Array.from(t.rows), rowPtr: t.rowPtr ? Array.from(t.rowPtr) : undefined }));

function table(lists: Uint32Array[]): CandidateTable {
  const ptr = new Uint32Array(lists.length + 1);
  lists.forEach((l, t) => (ptr[t + 1] = ptr[t] + l.length));
  const ids = new Uint32Array(ptr[lists.length]);
  lists.forEach((l, t) => ids.set(l, ptr[t]));
  return { ptr, ids };
}

test("dense and sparse plans: the same tiles, in the same order, with the same ids as the planner before", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 9 }),
      fc.integer({ min: 1, max: 12 }),
      fc.option(fc.integer({ min: 4, max: 60 }), { nil: undefined }),
      fc.integer({ min: 0, max: 2 ** 31 }),
      (n, columns, rows, maxTileTokens, seed) => {
        const c = corpus(n + 4);
        const keys = sampleKeys(c);
        const counts = Uint32Array.from({ length: c.count }, (_, i) => c.offsets[2 * i + 2] - c.offsets[2 * i]);
        const targets = Uint32Array.from({ length: n }, (_, k) => k + (k % 3 === 0 ? 0 : 1)).filter((v, k, a) => k === 0 || v !== a[k - 1]);
        const examples = Uint32Array.from({ length: Math.max(1, n - 2) }, (_, k) => c.count - 1 - k);
        const shape: TileShape = { columns, rows };
        const req: DenseKernelRequest = { settingsKey: `s${seed % 7}`, sampleKeys: keys, targets, examples, shape, ...(maxTileTokens ? { maxTileTokens, sampleTokenCounts: counts } : {}) };
        assert.equal(plain(planDenseKernel(req)), plain(referenceDense(req)));
        let s = seed;
        const rnd = (m: number) => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % m);
        const candidates = Array.from(targets, () => Uint32Array.from(new Set(Array.from({ length: 1 + rnd(5) }, () => examples[rnd(examples.length)]))).sort());
        const want = plain(referenceSparse({ ...req, candidates }));
        assert.equal(plain(planSparseKernel({ ...req, candidates })), want);
        assert.equal(plain(planSparseKernel({ ...req, candidates: table(candidates) })), want, "flat candidate table");
        const compact = compactSparsePlan({ ...req, candidates: table(candidates) });
        assert.equal(Array.from({ length: compact.count }, (_, t) => compact.tileId(t)), want.map((t) => t.id));
      },
    ),
    { numRuns: 150 },
  );
});

test("the compact sparse plan holds a fraction of the materialized plan; a bad shape or list count is a ConfigError", () => {
  const n = 3000;
  const c = corpus(n);
  const all = Uint32Array.from({ length: n }, (_, i) => i);
  const candidates = Array.from({ length: n }, (_, i) => Uint32Array.from(new Set(Array.from({ length: 16 }, (_, k) => (i * 31 + k * 997) % n))).sort());
  const req = { settingsKey: "s", sampleKeys: sampleKeys(c), targets: all, examples: all, shape: DEFAULT_TILE_SHAPE, candidates: table(candidates) };
  const compact = compactSparsePlan(req);
  const pairs = candidates.reduce((a, l) => a + l.length, 0);
  assert.is(compact.values, n + pairs);
  // 4 bytes a pair (the inverted lists) plus 4 a sample and 32 a tile.
  assert.ok(compact.bytes <= 4 * pairs + 12 * n + 40 * compact.count, `${compact.bytes} bytes`);
  const dense = compactDensePlan(req);
  assert.is(dense.count, Math.ceil(n / 256) * (1 + Math.ceil(n / 8)));
  assert.is(createHash("sha256").update(dense.tileId(dense.count - 1)).digest("hex").length, 64);
  assert.throws(() => compactSparsePlan({ ...req, shape: { columns: 0, rows: 4 } }), (e: unknown) => e instanceof ConfigError);
  assert.throws(() => compactSparsePlan({ ...req, candidates: candidates.slice(1) }), (e: unknown) => e instanceof ConfigError);
});

test("sample keys of a two-byte corpus equal those of its int32 form; the flat candidate table equals withRandomColumns", () => {
  const c = corpus(50);
  const narrow = { count: c.count, offsets: c.offsets, ids: Uint16Array.from(c.ids) };
  assert.equal(Array.from(sampleKeys(narrow)), Array.from(sampleKeys(c)));
  const examples = Uint32Array.from({ length: 40 }, (_, i) => i + 5);
  const k = 6;
  const lists = { count: 30, k, ids: new Uint32Array(30 * k).fill(EMPTY) };
  for (let t = 0; t < 30; t++) for (let r = 0; r < k - (t % 3); r++) lists.ids[t * k + r] = examples[(t * 7 + r * 11) % 40];
  for (const random of [0, 3]) {
    const settings = { neighbors: k, random, seed: 4 };
    const want = withRandomColumns(sortedLists(lists), examples, settings).map((l) => Array.from(l));
    const t = candidateTable(lists, examples, settings);
    assert.equal(Array.from({ length: 30 }, (_, r) => Array.from(t.ids.subarray(t.ptr[r], t.ptr[r + 1]))), want);
  }
});

test.run();
