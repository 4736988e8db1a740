/**
 * Index-carrying tiles (issue 8 item 4): the corpus as content-keyed chunk objects, tile messages
 * with global indices, the worker's corpus cache. The resolved work must be exactly what the
 * self-contained tiles of before carried (so kernels stay byte-identical), within the memory
 * bound; forged or missing objects fail cleanly.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { brotliCompressSync } from "node:zlib";
import { join } from "node:path";
import {
  type BlobStore,
  CorpusIntegrityError,
  decodeCorpusChunk,
  decodeTileMessage,
  encodeTileMessage,
  LocalBlobStore,
  packPieces,
  selectSamples,
  sha256Hex,
  type TileWork,
  type TokenizedCorpus,
  WorkerHealthError,
} from "../../common/src/mod.js";
import { planDenseKernel, planSparseKernel } from "../../coordinator/src/plan/plan-tiles.js";
import { sampleKeys } from "../../coordinator/src/plan/sample-keys.js";
import { columnRows, type TileSpec } from "../../coordinator/src/plan/tile-spec.js";
import { indexedTileWork } from "../../coordinator/src/plan/tile-work.js";
import { type CorpusObjects, publishCorpusObjects, writeCorpusObjects } from "../../coordinator/src/store/corpus-objects.js";
import { CorpusCache } from "../../worker/src/mod.js";
import { tempDir } from "../helpers/paths.js";
import { cleanupScratch, sampleData, smallJob, startHarness } from "./runtime-harness.js";

/** n samples of varied lengths (some empty), seeded; `wide`: ids above 65,535 (4-byte chunks). */
function corpus(n: number, wide = false): TokenizedCorpus {
  let s = 12345;
  const rnd = (m: number) => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % m);
  const pieces: number[][] = [];
  for (let i = 0; i < 2 * n; i++) pieces.push(Array.from({ length: rnd(9) }, () => rnd(wide ? 200_000 : 4096)));
  return packPieces(pieces, pieces.reduce((t, p) => t + p.length, 0));
}

/** The self-contained work the coordinator built before item 4 (its code, kept as the reference). */
function selfContained(tile: TileSpec, c: TokenizedCorpus): TileWork {
  const local = new Map<number, number>();
  const order: number[] = [];
  const slot = (g: number) => {
    let v = local.get(g);
    if (v === undefined) {
      v = order.length;
      local.set(g, v);
      order.push(g);
    }
    return v;
  };
  if (tile.kind === "baseline") {
    const targets = Uint32Array.from(tile.targets, slot);
    return { kind: "baseline", samples: selectSamples(c, order), targets };
  }
  if (!tile.rowPtr) {
    const rows = Uint32Array.from(tile.rows, slot);
    const columns = Array.from(tile.columns, (col) => ({ example: slot(col), rows }));
    return { kind: "pairs", samples: selectSamples(c, order), columns };
  }
  const columns = Array.from(tile.columns, (col, k) => ({ example: slot(col), rows: Uint32Array.from(columnRows(tile, k), slot) }));
  return { kind: "pairs", samples: selectSamples(c, order), columns };
}

function plans(c: TokenizedCorpus): TileSpec[] {
  const n = c.count;
  const all = Uint32Array.from({ length: n }, (_, i) => i);
  const common = { settingsKey: "s", sampleKeys: sampleKeys(c), shape: { columns: 3, rows: 7 } };
  const candidates = Array.from({ length: n }, (_, i) => Uint32Array.from(new Set([i, (i * 7 + 3) % n, (i * 13 + 5) % n, (i + n - 1) % n])).sort((a, b) => a - b));
  return [...planDenseKernel({ ...common, targets: all, examples: all.subarray(0, 9) }), ...planSparseKernel({ ...common, targets: all, examples: all, candidates })];
}

const plain = (w: TileWork) => JSON.parse(JSON.stringify(w, (_k, v) => (ArrayBuffer.isView(v) ? { [v.constructor.name]: Array.from(v as Uint32Array) } : v)));

/** A blob store without local paths: every object is copied out, as from NATS. */
function copyingStore(inner: LocalBlobStore): BlobStore {
  return { has: (n) => inner.has(n), putFile: (n, p) => inner.putFile(n, p), getToFile: (n, p) => inner.getToFile(n, p) };
}

async function published(c: TokenizedCorpus, dir: string, chunkBytes: number): Promise<{ blobs: LocalBlobStore; objects: CorpusObjects }> {
  const blobs = new LocalBlobStore();
  const objects = await writeCorpusObjects(c, dir, chunkBytes);
  await publishCorpusObjects(objects.files, blobs);
  return { blobs, objects };
}

test("indexed tiles through the codec and the corpus cache resolve to exactly the self-contained work of before", async () => {
  const t = tempDir();
  try {
    for (const wide of [false, true]) {
      const c = corpus(60, wide);
      const { blobs, objects } = await published(c, join(t.path, `c-${wide}`), 40);
      assert.is(objects.tokenBytes, wide ? 4 : 2);
      assert.ok(objects.chunks > 5, `${objects.chunks} chunks`);
      // A repeated write names the same objects.
      assert.equal((await writeCorpusObjects(c, join(t.path, `c-${wide}`), 40)).ref, objects.ref);
      for (const store of [blobs, copyingStore(blobs)]) {
        const cache = new CorpusCache(store, join(t.path, "fetch"));
        const tiles = plans(c);
        assert.ok(tiles.some((x) => x.kind === "pairs" && !x.rowPtr) && tiles.some((x) => x.kind === "pairs" && x.rowPtr) && tiles.some((x) => x.kind === "baseline"));
        for (const tile of tiles) {
          const msg = decodeTileMessage(encodeTileMessage({ jobId: "j", tileId: tile.id, corpus: objects.ref, work: indexedTileWork(tile) }));
          assert.equal(plain(await cache.resolve("j", msg.corpus, msg.work)), plain(selfContained(tile, c)), `tile ${tile.id.slice(0, 8)} (${tile.kind})`);
        }
        assert.is(cache.stats.fetches, objects.chunks + 1, "each object fetched once");
        cache.forget("j");
        assert.is(cache.stats.heldBytes, 0, "the job's chunks go with it");
      }
    }
  } finally {
    t.cleanup();
  }
});

test("the corpus cache stays within its byte bound however spread a tile's samples are", async () => {
  const t = tempDir();
  try {
    const c = corpus(80);
    const { blobs, objects } = await published(c, t.path, 30);
    // The cache counts chunks expanded (the manifest's rawBytes).
    const manifest = JSON.parse(readFileSync(objects.files[objects.files.length - 1].path, "utf8")) as { chunks: { rawBytes: number }[] };
    const largest = Math.max(...manifest.chunks.map((c) => c.rawBytes));
    const cache = new CorpusCache(blobs, join(t.path, "fetch"), { maxBytes: 3 * largest });
    for (const tile of plans(c)) assert.equal(plain(await cache.resolve("j", objects.ref, indexedTileWork(tile))), plain(selfContained(tile, c)));
    assert.ok(cache.stats.peakBytes <= 4 * largest, `peak ${cache.stats.peakBytes} B, bound ${3 * largest} B + one chunk`);
    assert.ok(cache.stats.evictions > 0 && cache.stats.fetches > objects.chunks + 1, "chunks were evicted and fetched again");
  } finally {
    t.cleanup();
  }
});

test("forged, damaged or missing corpus objects fail the tile cleanly; a good copy works afterwards", async () => {
  const t = tempDir();
  try {
    const c = corpus(40);
    const { blobs, objects } = await published(c, join(t.path, "objects"), 40);
    const tile = plans(c).find((x) => x.kind === "baseline")!;
    const work = indexedTileWork(tile);
    const chunk = objects.files[0];
    const manifest = objects.files[objects.files.length - 1];
    const forgedAt = (file: typeof chunk, change: (b: Buffer) => Buffer) => {
      const path = join(t.path, `forged-${file.name.slice(7, 15)}`);
      writeFileSync(path, change(readFileSync(file.path)));
      const store = new LocalBlobStore();
      for (const f of objects.files) void store.putFile(f.name, f === file ? path : f.path);
      return store;
    };
    const flip = (b: Buffer) => {
      const x = Buffer.from(b);
      x[x.length - 1] ^= 1;
      return x;
    };
    const failure = async (store: BlobStore, ref = objects.ref) => new CorpusCache(store, join(t.path, "fetch")).resolve("j", ref, work).then(() => null, (e: unknown) => e as Error);
    const badChunk = await failure(forgedAt(chunk, flip));
    assert.instance(badChunk, CorpusIntegrityError);
    assert.match(badChunk!.message, /corpus chunk .* hashes to/);
    // A chunk that hashes right but expands past its manifest entry (a bomb): refused by the expansion limit.
    const entry = { start: 0, count: 1, sha256: "", bytes: 0, rawBytes: 64 };
    const bomb = new Uint8Array(brotliCompressSync(new Uint8Array(1 << 20)));
    const big = (() => {
      try {
        decodeCorpusChunk(bomb, { ...entry, sha256: sha256Hex(bomb), bytes: bomb.length }, 2);
        return null;
      } catch (e) {
        return e as Error;
      }
    })();
    assert.instance(big, CorpusIntegrityError);
    assert.match(big!.message, /does not expand to 64 bytes/);
    const badManifest = await failure(forgedAt(manifest, flip));
    assert.instance(badManifest, CorpusIntegrityError);
    assert.match(badManifest!.message, /corpus manifest .* hashes to/);
    // A manifest rewritten to say it is whole: still not the digest the message names.
    const rewritten = await failure(forgedAt(manifest, (b) => Buffer.from(b.toString().replace(/"count":40/, '"count":41'))));
    assert.instance(rewritten, CorpusIntegrityError);
    const wrongCount = await failure(blobs, { digest: objects.ref.digest, count: 41 });
    assert.instance(wrongCount, CorpusIntegrityError);
    assert.match(wrongCount!.message, /holds 40 samples, the tile message says 41/);
    const missing = await failure(new LocalBlobStore());
    assert.instance(missing, WorkerHealthError);
    assert.match(missing!.message, /cannot fetch corpus object/);

    // One cache: a forged object is not kept; once the store holds the good one the tile resolves.
    const store = forgedAt(chunk, flip);
    const cache = new CorpusCache(store, join(t.path, "fetch"));
    assert.instance(await cache.resolve("j", objects.ref, work).catch((e) => e), CorpusIntegrityError);
    await store.putFile(chunk.name, chunk.path);
    assert.equal(plain(await cache.resolve("j", objects.ref, work)), plain(selfContained(tile, c)));

    // The coordinator rewrites a damaged file of its own instead of publishing it.
    copyFileSync(chunk.path, `${chunk.path}.good`);
    writeFileSync(chunk.path, flip(readFileSync(chunk.path)));
    await writeCorpusObjects(c, join(t.path, "objects"), 40);
    assert.ok(readFileSync(chunk.path).equals(readFileSync(`${chunk.path}.good`)));
  } finally {
    t.cleanup();
  }
});

test("a worker fed a forged corpus chunk fails the job's tiles as tile failures (no crash, no retirement, no result)", async () => {
  const forged = (real: LocalBlobStore): BlobStore => ({
    has: (n) => real.has(n),
    putFile: (n, p) => real.putFile(n, p),
    localPath: () => null,
    async getToFile(name, path) {
      await real.getToFile(name, path);
      const b = readFileSync(path);
      // Chunks (not the manifest, which is JSON): one byte changed.
      if (b[0] !== "{".charCodeAt(0)) {
        b[b.length - 1] ^= 1;
        writeFileSync(path, b);
      }
    },
  });
  const h = await startHarness({ workers: [{ id: "w1", corpusBlobs: forged }] });
  try {
    const r = await h.run(smallJob({ data: sampleData(4, "forged-corpus.jsonl") }));
    assert.is(r.state, "failed");
    assert.match(r.error, /corpus chunk .* hashes to/);
    assert.is(h.workers[0].retired, null, "a forged object is not the worker's fault");
    assert.ok(h.workers[0].stats.failures >= 1 && h.workers[0].stats.healthFailures === 0);
    assert.is(h.workers[0].stats.tilesDone, 0);
  } finally {
    await h.stop();
    cleanupScratch();
  }
});

test.run();
