import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { cellProbeSearch } from "../../common/src/candidates/cell-probe.js";
import { exactSearch } from "../../common/src/candidates/exact-search.js";
import { hnswSearch } from "../../common/src/candidates/hnsw-search.js";
import { KnnEngine } from "../../common/src/candidates/knn-engine.js";
import { recallAtK, truncateLists } from "../../common/src/candidates/recall.js";
import { chooseSearchMethod, searchCandidates } from "../../common/src/candidates/search-candidates.js";
import { EMPTY, mergeTopK, type TopKLists } from "../../common/src/candidates/top-k.js";
import { matrixFromFloat32, type EmbeddingMatrix } from "../../common/src/embeddings/embedding-matrix.js";
import { Xoshiro128 } from "../../common/src/selection/prng.js";

/** n unit vectors around `clusters` random centres (spread 0.35), seeded. */
function clustered(n: number, dim: number, clusters: number, seed: number): EmbeddingMatrix {
  const rng = new Xoshiro128(seed);
  const g = () => {
    const u = (rng.nextUint32() + 1) / 4294967297;
    return Math.sqrt(-2 * Math.log(u)) * Math.cos((2 * Math.PI * rng.nextUint32()) / 4294967296);
  };
  const centres = Array.from({ length: clusters }, () => Array.from({ length: dim }, g));
  const data = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = centres[rng.nextBelow(clusters)];
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += (data[i * dim + d] = c[d] + 0.35 * Math.sqrt(dim) * g() / Math.sqrt(dim) * 1.5) ** 2;
    for (let d = 0; d < dim; d++) data[i * dim + d] /= Math.sqrt(norm);
  }
  return matrixFromFloat32(data, dim);
}

function bruteForce(m: EmbeddingMatrix, q: number, examples: Uint32Array, k: number): number[] {
  const dot = (a: number, b: number) => {
    let s = 0;
    for (let d = 0; d < m.dim; d++) s += (m.data as Float32Array)[a * m.dim + d] * (m.data as Float32Array)[b * m.dim + d];
    return s;
  };
  return Array.from(examples, (e) => ({ e, s: dot(q, e) })).sort((a, b) => b.s - a.s || a.e - b.e).slice(0, k).map((x) => x.e);
}

test("top-k lists merge to the top k of the union, in any order, each id once", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: -5, max: 5 })), { maxLength: 40 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 }), (items, k, parts) => {
      const byId = new Map(items.map(([id, s]) => [id, s]));
      const all = [...byId].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
      const lists: TopKLists[] = Array.from({ length: parts }, (_, p) => {
        const mine = all.filter((_, x) => x % parts === p || x % 3 === 0).slice(0, k);
        const l: TopKLists = { rows: 1, k, scores: new Float32Array(k).fill(-Infinity), ids: new Uint32Array(k).fill(EMPTY) };
        mine.forEach(([id, s], t) => ((l.ids[t] = id), (l.scores[t] = s)));
        return l;
      });
      const into: TopKLists = { rows: 1, k, scores: new Float32Array(k).fill(-Infinity), ids: new Uint32Array(k).fill(EMPTY) };
      for (const l of lists.reverse()) mergeTopK(into, l);
      const want = all.slice(0, k).map(([id]) => id);
      assert.equal(Array.from(into.ids).filter((id) => id !== EMPTY), want);
    }),
  );
});

test("exact search equals brute force over several tiles; cell probes and HNSW reach the recall they report, deterministically", async () => {
  const m = clustered(2400, 16, 24, 5);
  const all = Uint32Array.from({ length: m.count }, (_, i) => i);
  const queries = all.filter((i) => i % 3 === 0);
  const examples = all.filter((i) => i % 5 !== 1);
  const engine = await KnnEngine.create({ threads: 1 });
  try {
    const exact = await exactSearch(m, queries, examples, 10, { engine, queryRows: 100, corpusRows: 300 });
    for (const t of [0, 17, 400, queries.length - 1]) {
      assert.equal(Array.from(exact.ids.subarray(t * 10, t * 10 + 10)), bruteForce(m, queries[t], examples, 10), `query ${queries[t]}`);
    }
    const cells = await cellProbeSearch(m, queries, examples, 10, { engine, seed: 3, targetRecall: 0.95 });
    const again = await cellProbeSearch(m, queries, examples, 10, { engine, seed: 3, targetRecall: 0.95 });
    assert.equal(Array.from(again.lists.ids), Array.from(cells.lists.ids), "same seed, same lists");
    assert.ok(cells.probes < cells.cells, `probes ${cells.probes} of ${cells.cells}`);
    assert.ok(cells.searchedFraction < 0.8, `searched ${cells.searchedFraction}`);
    const recall = recallAtK(cells.lists, exact);
    assert.ok(recall >= 0.93 && Math.abs(recall - cells.sampledRecall!) < 0.05, `recall ${recall}, sampled ${cells.sampledRecall}`);
    assert.ok(!cells.lists.ids.includes(EMPTY), "every list full");

    const h1 = await hnswSearch(m, queries, examples, 10);
    const h2 = await hnswSearch(m, queries, examples, 10);
    assert.equal(Array.from(h1.lists.ids), Array.from(h2.lists.ids), "a one-thread build is deterministic");
    assert.ok(recallAtK(h1.lists, exact) >= 0.95);
    assert.ok(recallAtK(truncateLists(h1.lists, 4), truncateLists(exact, 4)) >= 0.95);
  } finally {
    await engine.release();
  }
});

test("the choice rule: exact while it is cheap, cell probes past it", async () => {
  assert.is(chooseSearchMethod(20_000, 20_000, 128), "exact");
  assert.is(chooseSearchMethod(100_000, 100_000, 384), "cells");
  const m = clustered(300, 8, 4, 1);
  const all = Uint32Array.from({ length: 300 }, (_, i) => i);
  const r = await searchCandidates(m, all, all, 5);
  assert.is(r.method, "exact");
  assert.is(r.lists.ids[0 * 5], 0, "a sample is its own nearest neighbour");
});

test.run();
