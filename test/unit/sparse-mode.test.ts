import { test } from "uvu";
import * as assert from "uvu/assert";
import { packPieces, resolveTileWork, sampleTokens } from "../../common/src/mod.js";
import { nearestNeighbours } from "../../common/src/onnx/knn.js";
import { decodeTileMessage, encodeTileMessage } from "../../common/src/tiles/codec.js";
import { planSparseKernel } from "../../coordinator/src/plan/plan-tiles.js";
import { invertCandidates, withRandomColumns } from "../../coordinator/src/plan/candidates.js";
import { sampleKeys } from "../../coordinator/src/plan/sample-keys.js";
import { columnRows, tilePairCount } from "../../coordinator/src/plan/tile-spec.js";
import { indexedTileWork, tileWork } from "../../coordinator/src/plan/tile-work.js";

function unitVectors(n: number, dim: number, seed: number): Float32Array {
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
  const e = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += (e[i * dim + d] = rnd()) ** 2;
    for (let d = 0; d < dim; d++) e[i * dim + d] /= Math.sqrt(norm);
  }
  return e;
}

function corpus(n: number) {
  const pieces = Array.from({ length: 2 * n }, (_, k) => Int32Array.from({ length: 3 + (k % 5) }, (_, t) => 10 + k * 7 + t));
  return packPieces(pieces, pieces.reduce((a, p) => a + p.length, 0));
}

test("exact nearest neighbours: the same sets as brute force, across column blocks", async () => {
  const n = 300;
  const dim = 16;
  const e = unitVectors(n, dim, 7);
  const queries = Uint32Array.from({ length: 40 }, (_, k) => k * 7);
  const candidates = Uint32Array.from({ length: 250 }, (_, k) => k + 50);
  const got = await nearestNeighbours(e, dim, queries, candidates, 5, { blockRows: 16, blockCols: 64 });
  queries.forEach((q, k) => {
    const scored = Array.from(candidates, (c) => {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += e[q * dim + d] * e[c * dim + d];
      return { c, dot };
    }).sort((a, b) => b.dot - a.dot || a.c - b.c);
    assert.equal(Array.from(got[k]), scored.slice(0, 5).map((x) => x.c).sort((a, b) => a - b), `query ${q}`);
  });
});

test("random columns: distinct, seeded, never repeating a neighbour", () => {
  const examples = Uint32Array.from({ length: 50 }, (_, k) => k);
  const neighbours = [Uint32Array.of(1, 2, 3), Uint32Array.of(4, 5, 6)];
  const a = withRandomColumns(neighbours, examples, { neighbors: 3, random: 4, seed: 9 });
  const b = withRandomColumns(neighbours, examples, { neighbors: 3, random: 4, seed: 9 });
  const c = withRandomColumns(neighbours, examples, { neighbors: 3, random: 4, seed: 10 });
  assert.equal(a.map((x) => Array.from(x)), b.map((x) => Array.from(x)));
  assert.not.equal(a.map((x) => Array.from(x)), c.map((x) => Array.from(x)));
  for (const [t, list] of a.entries()) {
    assert.is(new Set(list).size, 7);
    for (const j of neighbours[t]) assert.ok(list.includes(j));
  }
});

test("sparse plan: every (target, candidate) pair in exactly one tile, every target in one baseline tile, tiles within budget", () => {
  const n = 40;
  const c = corpus(n);
  const targets = Uint32Array.from({ length: n }, (_, i) => i);
  const candidates = Array.from({ length: n }, (_, i) => Uint32Array.from(new Set([i, (i * 7) % n, (i * 13 + 1) % n])).sort());
  const tiles = planSparseKernel({ settingsKey: "s", sampleKeys: sampleKeys(c), targets, examples: targets, candidates, shape: { columns: 2, rows: 9 } });
  const seen = new Set<string>();
  const baselines = new Set<number>();
  for (const t of tiles) {
    if (t.kind === "baseline") {
      t.targets.forEach((i) => baselines.add(i));
      continue;
    }
    assert.ok(tilePairCount(t) <= 18 || t.columns.length === 1, "within 2 x 9 pairs");
    t.columns.forEach((j, k) => {
      for (const i of columnRows(t, k)) {
        const key = `${i},${j}`;
        assert.not.ok(seen.has(key), `pair ${key} twice`);
        seen.add(key);
      }
    });
  }
  const expected = new Set(candidates.flatMap((list, i) => Array.from(list, (j) => `${i},${j}`)));
  assert.equal([...seen].sort(), [...expected].sort());
  assert.is(baselines.size, n);
  assert.equal(invertCandidates(targets, candidates, n).rows.length, expected.size);
});

test("a sparse tile travels through the codec with its per-column rows", () => {
  const n = 12;
  const c = corpus(n);
  const targets = Uint32Array.from({ length: n }, (_, i) => i);
  const candidates = Array.from({ length: n }, (_, i) => Uint32Array.from(new Set([i, (i + 1) % n, (i * 5) % n])).sort());
  const tile = planSparseKernel({ settingsKey: "s", sampleKeys: sampleKeys(c), targets, examples: targets, candidates }).find((t) => t.kind === "pairs")!;
  const work = indexedTileWork(tile);
  const back = decodeTileMessage(encodeTileMessage({ jobId: "job-1", tileId: tile.id, corpus: { digest: "ab".repeat(32), count: n }, work }));
  assert.ok(back.work.kind === "pairs" && work.kind === "pairs");
  if (back.work.kind !== "pairs" || work.kind !== "pairs") return;
  assert.equal(back.work.columns.map((col) => [col.example, Array.from(col.rows)]), work.columns.map((col) => [col.example, Array.from(col.rows)]));
  // Resolved against the corpus, the decoded tile is the self-contained work the coordinator would have sent.
  const resolved = resolveTileWork(back.work, (i) => sampleTokens(c, i));
  assert.equal(resolved, tileWork(tile, c));
  assert.ok(new Set(work.columns.map((col) => col.rows.length)).size > 1, "columns of different lengths");
});

test.run();
