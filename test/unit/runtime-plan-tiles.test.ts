import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { ConfigError } from "../../common/src/errors.js";
import { packPieces, type TokenizedCorpus } from "../../common/src/data/tokenized-corpus.js";
import { planDenseKernel, type DenseKernelRequest, type TileShape } from "../../coordinator/src/plan/plan-tiles.js";
import { sampleKeys } from "../../coordinator/src/plan/sample-keys.js";
import { tilePairCount, type TileSpec } from "../../coordinator/src/plan/tile-spec.js";

/** Sample k: x = [k, k+1, ...] of length xLen(k), y of length yLen(k); distinct content per k. */
function corpusOf(n: number, len = (k: number) => [1 + (k % 3), 1 + (k % 2)]): TokenizedCorpus {
  const pieces: number[][] = [];
  let total = 0;
  for (let k = 0; k < n; k++) {
    const [xl, yl] = len(k);
    const x = Array.from({ length: xl }, (_, t) => 1000 * k + t);
    const y = Array.from({ length: yl }, (_, t) => 1000 * k + 500 + t);
    pieces.push(x, y);
    total += xl + yl;
  }
  return packPieces(pieces, total);
}

const range = (n: number) => Uint32Array.from({ length: n }, (_, k) => k);

function request(corpus: TokenizedCorpus, shape: TileShape, extra: Partial<DenseKernelRequest> = {}): DenseKernelRequest {
  return { settingsKey: "model:abc", sampleKeys: sampleKeys(corpus), targets: range(corpus.count), examples: range(corpus.count), shape, ...extra };
}

function tokenCounts(c: TokenizedCorpus): Uint32Array {
  return Uint32Array.from({ length: c.count }, (_, i) => c.offsets[2 * i + 2] - c.offsets[2 * i]);
}

function throwsConfig(fn: () => unknown, what: string): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, ConfigError, what);
    return;
  }
  assert.unreachable(`${what}: expected a ConfigError`);
}

test("sampleKeys: 16 bytes per sample, equal for equal tokens, different when x/y split differs", () => {
  const a = packPieces([[1, 2], [3], [1, 2], [3], [1], [2, 3]], 9);
  const keys = sampleKeys(a);
  assert.is(keys.length, 48);
  const key = (i: number) => Buffer.from(keys.subarray(16 * i, 16 * i + 16)).toString("hex");
  assert.is(key(0), key(1), "the same sample hashes the same");
  assert.is.not(key(0), key(2), "moving the x/y boundary changes the key");
  const b = packPieces([[9], [9], [1, 2], [3]], 5);
  assert.is(Buffer.from(sampleKeys(b).subarray(16, 32)).toString("hex"), key(0), "the key does not depend on the position in the corpus");
});

test("every (target, example) pair is covered exactly once; every target by one baseline tile", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 23 }),
      fc.integer({ min: 1, max: 23 }),
      fc.integer({ min: 1, max: 9 }),
      fc.integer({ min: 1, max: 9 }),
      fc.option(fc.integer({ min: 2, max: 30 }), { nil: undefined }),
      (nT, nE, columns, rows, maxTileTokens) => {
        const c = corpusOf(Math.max(nT, nE) + 3);
        // Targets and examples: different, non-contiguous index sets.
        const targets = Uint32Array.from({ length: nT }, (_, k) => k);
        const examples = Uint32Array.from({ length: nE }, (_, k) => c.count - 1 - k);
        const tiles = planDenseKernel(
          request(c, { columns, rows }, { targets, examples, ...(maxTileTokens !== undefined ? { maxTileTokens, sampleTokenCounts: tokenCounts(c) } : {}) }),
        );
        const baselineSeen = new Map<number, number>();
        const pairSeen = new Map<string, number>();
        let pairTotal = 0;
        for (const t of tiles) {
          if (t.kind === "baseline") {
            assert.ok(t.targets.length >= 1 && t.targets.length <= rows);
            for (const r of t.targets) baselineSeen.set(r, (baselineSeen.get(r) ?? 0) + 1);
          } else {
            assert.ok(t.columns.length >= 1 && t.columns.length <= columns);
            assert.ok(t.rows.length >= 1 && t.rows.length <= rows);
            pairTotal += tilePairCount(t);
            for (const e of t.columns) for (const r of t.rows) pairSeen.set(`${r},${e}`, (pairSeen.get(`${r},${e}`) ?? 0) + 1);
          }
        }
        assert.equal([...baselineSeen.keys()].sort((a, b) => a - b), [...targets]);
        assert.ok([...baselineSeen.values()].every((v) => v === 1), "each target in exactly one baseline tile");
        assert.is(pairSeen.size, nT * nE);
        assert.is(pairTotal, nT * nE, "no pair twice");
        for (const r of targets) for (const e of examples) assert.is(pairSeen.get(`${r},${e}`), 1);
        assert.is(new Set(tiles.map((t) => t.id)).size, tiles.length, "ids are unique");
        assert.ok(tiles.every((t) => /^[0-9a-f]{64}$/.test(t.id)));
      },
    ),
    { numRuns: 150 },
  );
});

test("tile ids are content keys: the same corpus (even rebuilt) gives the same ids", () => {
  const shape = { columns: 3, rows: 4 };
  const a = planDenseKernel(request(corpusOf(10), shape));
  const b = planDenseKernel(request(corpusOf(10), shape));
  assert.equal(
    a.map((t) => t.id),
    b.map((t) => t.id),
  );
  // A different token in one sample changes exactly the tiles holding that sample.
  const changed = corpusOf(10);
  changed.ids[changed.offsets[2 * 5]] += 1; // first x token of sample 5
  const c = planDenseKernel(request(changed, shape));
  const holds5 = (t: TileSpec) => (t.kind === "baseline" ? [...t.targets] : [...t.columns, ...t.rows]).includes(5);
  for (let k = 0; k < a.length; k++) {
    if (holds5(a[k])) assert.is.not(c[k].id, a[k].id, `tile ${k} holds sample 5`);
    else assert.is(c[k].id, a[k].id, `tile ${k} does not hold sample 5`);
  }
});

test("appending samples keeps the ids of tiles made only of complete old blocks", () => {
  const shape = { columns: 3, rows: 4 };
  // 12 old samples: row blocks [0-3][4-7][8-11], column blocks [0-2][3-5][6-8][9-11] are all complete.
  const old = planDenseKernel(request(corpusOf(12), shape));
  const grown = planDenseKernel(request(corpusOf(17), shape));
  const grownIds = new Set(grown.map((t) => t.id));
  for (const t of old) assert.ok(grownIds.has(t.id), `old ${t.kind} tile ${t.id.slice(0, 8)} is reused`);
  const oldIds = new Set(old.map((t) => t.id));
  const fresh = grown.filter((t) => !oldIds.has(t.id));
  assert.ok(fresh.length > 0);
  for (const t of fresh) {
    const samples = t.kind === "baseline" ? [...t.targets] : [...t.columns, ...t.rows];
    assert.ok(samples.some((s) => s >= 12), "only tiles touching new samples are new");
  }

  // 10 old samples: the last row block [8,9] grows to [8-11], so those tiles change; the full blocks do not.
  const old10 = planDenseKernel(request(corpusOf(10), shape));
  let kept = 0;
  for (const t of old10) {
    const rowsFull = (t.kind === "baseline" ? t.targets : t.rows).length === shape.rows;
    const colsFull = t.kind === "baseline" || t.columns.length === shape.columns;
    if (rowsFull && colsFull) {
      assert.ok(grownIds.has(t.id), "a tile of complete old blocks is kept");
      kept++;
    } else {
      assert.not.ok(grownIds.has(t.id), "a tile whose block boundary moved is not");
    }
  }
  assert.is(kept, 2 + 3 * 2);
});

test("changing the settings key changes every id", () => {
  const c = corpusOf(9);
  const shape = { columns: 2, rows: 3 };
  const a = planDenseKernel(request(c, shape));
  const b = planDenseKernel(request(c, shape, { settingsKey: "model:abd" }));
  assert.is(a.length, b.length);
  const aIds = new Set(a.map((t) => t.id));
  assert.ok(b.every((t) => !aIds.has(t.id)));
});

test("a baseline tile and a pair tile of the same samples have different ids", () => {
  const c = corpusOf(2);
  const tiles = planDenseKernel(request(c, { columns: 2, rows: 2 }, { targets: range(2), examples: new Uint32Array(0) }));
  assert.is(tiles.length, 1);
  const pairs = planDenseKernel(request(c, { columns: 2, rows: 2 }, { targets: new Uint32Array(0), examples: range(2) }));
  assert.is(pairs.length, 0, "no targets, no tiles");
  // Samples 0,1,2 split as 1 column x rows [1,2] versus columns [0,1] x 1 row: same key sequence, different tiles.
  const c3 = corpusOf(3);
  const one = planDenseKernel(request(c3, { columns: 1, rows: 2 }, { targets: Uint32Array.from([1, 2]), examples: Uint32Array.from([0]) })).filter((t) => t.kind === "pairs");
  const two = planDenseKernel(request(c3, { columns: 2, rows: 1 }, { targets: Uint32Array.from([2]), examples: Uint32Array.from([0, 1]) })).filter((t) => t.kind === "pairs");
  assert.is(one.length, 1);
  assert.is(two.length, 1);
  assert.is.not(one[0].id, two[0].id);
  const base01 = planDenseKernel(request(c3, { columns: 2, rows: 2 }, { targets: range(2), examples: new Uint32Array(0) }));
  const pair01 = planDenseKernel(request(c3, { columns: 1, rows: 1 }, { targets: Uint32Array.from([1]), examples: Uint32Array.from([0]) })).filter((t) => t.kind === "pairs");
  assert.is.not(base01[0].id, pair01[0].id, "a baseline id never equals a pair id");
});

test("maxTileTokens bounds the tokens of every tile (a single oversized sample gets a tile of its own)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 12 })), { minLength: 1, maxLength: 30 }),
      fc.integer({ min: 4, max: 60 }),
      (lens, maxTileTokens) => {
        const c = corpusOf(lens.length, (k) => lens[k]);
        const counts = tokenCounts(c);
        const tiles = planDenseKernel(request(c, { columns: 4, rows: 5 }, { sampleTokenCounts: counts, maxTileTokens }));
        const sum = (a: Uint32Array) => a.reduce((s, i) => s + counts[i], 0);
        for (const t of tiles) {
          const blocks = t.kind === "baseline" ? [t.targets] : [t.columns, t.rows];
          for (const b of blocks) {
            if (b.length > 1) assert.ok(sum(b) <= maxTileTokens / 2, `block of ${b.length} samples holds ${sum(b)} tokens > ${maxTileTokens / 2}`);
          }
          if (blocks.every((b) => b.length > 1 || sum(b) <= maxTileTokens / 2)) {
            const unique = new Set(blocks.flatMap((b) => [...b]));
            const tokens = [...unique].reduce((s, i) => s + counts[i], 0);
            assert.ok(tokens <= maxTileTokens, `tile carries ${tokens} tokens > ${maxTileTokens}`);
          }
        }
      },
    ),
    { numRuns: 200 },
  );
  // Without a token bound the same corpus packs by count only.
  const c = corpusOf(20, () => [50, 50]);
  assert.is(planDenseKernel(request(c, { columns: 4, rows: 5 })).filter((t) => t.kind === "baseline").length, 4);
  assert.is(planDenseKernel(request(c, { columns: 4, rows: 5 }, { sampleTokenCounts: tokenCounts(c), maxTileTokens: 400 })).filter((t) => t.kind === "baseline").length, 10);
});

test("bad tile shapes are ConfigError", () => {
  const c = corpusOf(4);
  for (const shape of [
    { columns: 0, rows: 4 },
    { columns: 2, rows: 0 },
    { columns: -1, rows: 4 },
    { columns: 1.5, rows: 4 },
    { columns: 2, rows: NaN },
    { columns: Infinity, rows: 2 },
  ]) {
    throwsConfig(() => planDenseKernel(request(c, shape)), JSON.stringify(shape));
  }
});

test.run();
