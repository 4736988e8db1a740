import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { maxAbsDifference, TileStore } from "../../coordinator/src/store/tile-store.js";
import { TileConflictError } from "../../coordinator/src/store/errors.js";
import type { TileOutput } from "../../common/src/tiles/types.js";
import { tempDir } from "../helpers/paths.js";

const ID1 = "a1".repeat(32);
const ID2 = "b2".repeat(32);

const out = (values: number[], truncated = 0): TileOutput => ({ distances: Float32Array.from(values), truncated });

async function withStore(fn: (store: TileStore, dir: string) => Promise<void>): Promise<void> {
  const t = tempDir();
  try {
    await fn(await TileStore.open(t.path), t.path);
  } finally {
    t.cleanup();
  }
}

test("put then get gives back the same values and truncated count", () =>
  withStore(async (store) => {
    assert.not.ok(store.has(ID1));
    assert.is(await store.put(ID1, out([0.25, 0.5, 1, 0], 2)), "stored");
    assert.ok(store.has(ID1));
    assert.is(store.size, 1);
    const back = await store.get(ID1);
    assert.instance(back.distances, Float32Array);
    assert.equal([...back.distances], [0.25, 0.5, 1, 0]);
    assert.is(back.truncated, 2);
  }));

test("a Float32Array view into a larger buffer is stored by its own bytes only", () =>
  withStore(async (store) => {
    const big = Float32Array.from([9, 0.125, 0.375, 9]);
    assert.is(await store.put(ID1, { distances: big.subarray(1, 3), truncated: 0 }), "stored");
    assert.equal([...(await store.get(ID1)).distances], [0.125, 0.375]);
  }));

test("the same bytes again are a duplicate; different bytes are a TileConflictError", () =>
  withStore(async (store) => {
    await store.put(ID1, out([0.1, 0.2]));
    assert.is(await store.put(ID1, out([0.1, 0.2])), "duplicate");
    const err = await store.put(ID1, out([0.1, 0.3])).catch((e) => e);
    assert.instance(err, TileConflictError);
    assert.is((err as TileConflictError).tileId, ID1);
    const err2 = await store.put(ID1, out([0.1, 0.2], 1)).catch((e) => e);
    assert.instance(err2, TileConflictError, "a different truncated count is a conflict too");
    assert.equal([...(await store.get(ID1)).distances], [0.1, 0.2].map(Math.fround), "the stored tile is unchanged");
    assert.is(store.size, 1);
  }));

test("identical bits are no difference, NaN patterns too (search tiles' padding ids); a NaN against a number is an infinite one", () => {
  const bits = (values: number[]) => new Float32Array(Uint32Array.from(values).buffer);
  assert.is(maxAbsDifference(bits([0xffffffff, 7, 0x3f800000]), bits([0xffffffff, 7, 0x3f800000])), 0);
  assert.is(maxAbsDifference(bits([0xffffffff]), bits([0x3f800000])), Infinity);
  assert.is(maxAbsDifference(new Float32Array([1, 2.5]), new Float32Array([1, 2])), 0.5);
  assert.is(maxAbsDifference(new Float32Array([1]), new Float32Array([1, 2])), Infinity);
});

test("two concurrent puts of the same id and bytes: one stored, one duplicate", () =>
  withStore(async (store) => {
    for (let round = 0; round < 5; round++) {
      const id = `${round}`.repeat(64);
      const outcomes = await Promise.all([store.put(id, out([0.5, round])), store.put(id, out([0.5, round])), store.put(id, out([0.5, round]))]);
      assert.equal([...outcomes].sort(), ["duplicate", "duplicate", "stored"], `round ${round}: ${outcomes}`);
    }
    // Concurrent different bytes: exactly one wins, the other is a conflict.
    const results = await Promise.allSettled([store.put(ID2, out([0.1])), store.put(ID2, out([0.9]))]);
    assert.equal(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
    const rejected = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.instance(rejected.reason, TileConflictError);
  }));

test("reopening the store on the same directory knows the stored ids; no temp files are left", async () => {
  const t = tempDir();
  try {
    const a = await TileStore.open(t.path);
    await a.put(ID1, out([0.5]));
    await a.put(ID2, out([0.75, 0.25], 1));
    writeFileSync(join(t.path, "tmp", "leftover"), "x");
    const b = await TileStore.open(t.path);
    assert.ok(b.has(ID1));
    assert.ok(b.has(ID2));
    assert.not.ok(b.has("c3".repeat(32)));
    assert.is(b.size, 2);
    assert.equal([...(await b.get(ID2)).distances], [0.75, 0.25]);
    assert.is(await b.put(ID1, out([0.5])), "duplicate", "a reopened store still recognises duplicates");
    assert.instance(await b.put(ID1, out([0.6])).catch((e) => e), TileConflictError);
    assert.equal(readdirSync(join(t.path, "tmp")), [], "open() clears abandoned temp files");
  } finally {
    t.cleanup();
  }
});

test("invalid tile ids are rejected before anything is written", () =>
  withStore(async (store, dir) => {
    for (const bad of ["", "../" + "a".repeat(61), "A1".repeat(32), "a1".repeat(31), "a1".repeat(33), "g".repeat(64)]) {
      const err = await store.put(bad, out([0.5])).catch((e) => e);
      assert.instance(err, Error, `id ${JSON.stringify(bad)}`);
      assert.match((err as Error).message, /invalid tile id/);
    }
    assert.is(store.size, 0);
    assert.equal(readdirSync(dir).sort(), ["tmp"]);
  }));

test("a truncated or corrupt tile file makes get() throw an error naming the file", () =>
  withStore(async (store, dir) => {
    await store.put(ID1, out([0.1, 0.2, 0.3]));
    await store.put(ID2, out([0.4]));
    const p1 = join(dir, ID1.slice(0, 2), `${ID1}.tile`);
    const p2 = join(dir, ID2.slice(0, 2), `${ID2}.tile`);
    assert.ok(existsSync(p1));
    truncateSync(p1, readFileSync(p1).length - 2);
    const e1 = await store.get(ID1).catch((e) => e);
    assert.instance(e1, Error);
    assert.match((e1 as Error).message, p1);
    assert.match((e1 as Error).message, /truncated/);

    const corrupt = readFileSync(p2);
    corrupt[0] ^= 0xff;
    writeFileSync(p2, corrupt);
    const e2 = await store.get(ID2).catch((e) => e);
    assert.instance(e2, Error);
    assert.match((e2 as Error).message, p2);
    assert.match((e2 as Error).message, /not a delift tile file/);

    truncateSync(p2, 3);
    assert.match(((await store.get(ID2).catch((e) => e)) as Error).message, /not a delift tile file/);
  }));

test("get() of an id never stored rejects", () =>
  withStore(async (store) => {
    const err = await store.get(ID1).catch((e) => e);
    assert.instance(err, Error);
    assert.is((err as NodeJS.ErrnoException).code, "ENOENT");
  }));

test.run();
