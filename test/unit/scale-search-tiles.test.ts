import { test } from "uvu";
import * as assert from "uvu/assert";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type BlobStore,
  decodeTileMessage,
  decodeWorkMessage,
  encodeTileMessage,
  KnnEngine,
  LocalBlobStore,
  matrixFromFloat32,
  parseSearchMatrixBlob,
  ProtocolError,
  runSearchTile,
  searchMatrixBlob,
  searchMatrixBlobName,
  searchResultLists,
  type SearchTileWork,
  isWorkerHealthError,
} from "../../common/src/mod.js";
import { SearchExecutor } from "../../worker/src/search/search-executor.js";
import { tempDir } from "../helpers/paths.js";

/**
 * Search tiles for workers (item 2, the parts built so far): the message (round trip, malformed
 * fields refused), the matrix blob named by its SHA-256 (a changed byte is refused), a worker's
 * executor fetching the blob and returning the coordinator thread's own lists byte for byte, and
 * the coordinator's check of an uploaded result (forged ids, wrong order, wrong size refused).
 */
const dir = tempDir("delift-search-tiles-");
test.after(() => dir.cleanup());

const N = 300;
const DIM = 24;
const values = Float32Array.from({ length: N * DIM }, (_, k) => Math.sin(0.37 * Math.floor(k / DIM) * ((k % DIM) + 1)) + (Math.floor(k / DIM) % 7 === k % DIM ? 1 : 0));
const matrix = matrixFromFloat32(values, DIM);
const blob = searchMatrixBlob(matrix);
const work = (over: Partial<SearchTileWork> = {}): SearchTileWork => ({
  kind: "search",
  matrix: blob.sha256,
  rows: N,
  dim: DIM,
  k: 8,
  queries: Uint32Array.from({ length: 40 }, (_, i) => 3 * i),
  corpus: Uint32Array.from({ length: 200 }, (_, i) => i + 50),
  ...over,
});
const TILE = "cd".repeat(32);

test("search tile message: round trip, refused where a scoring tile is expected, malformed fields are ProtocolErrors", () => {
  const m = decodeWorkMessage(encodeTileMessage({ jobId: "j1", tileId: TILE, work: work() }));
  assert.is(m.work.kind, "search");
  if (m.work.kind !== "search") return;
  assert.equal([...m.work.queries], [...work().queries]);
  assert.equal([...m.work.corpus], [...work().corpus]);
  assert.is(m.work.matrix, blob.sha256);
  assert.throws(() => decodeTileMessage(encodeTileMessage({ jobId: "j1", tileId: TILE, work: work() })), (e: unknown) => e instanceof ProtocolError);
  const bad: [string, Partial<SearchTileWork>][] = [
    ["query out of range", { queries: Uint32Array.of(0, N) }],
    ["corpus out of range", { corpus: Uint32Array.of(1, N + 3) }],
    ["corpus not rising", { corpus: Uint32Array.of(5, 4) }],
    ["no queries", { queries: new Uint32Array(0) }],
    ["k zero", { k: 0 }],
    ["bad sha", { matrix: "xyz" }],
  ];
  for (const [what, over] of bad) assert.throws(() => decodeWorkMessage(encodeTileMessage({ jobId: "j1", tileId: TILE, work: work(over) })), (e: unknown) => e instanceof ProtocolError, what);
});

test("the matrix blob: read back exactly; a changed byte does not hash to its name", () => {
  const back = parseSearchMatrixBlob(blob.bytes, blob.sha256);
  assert.equal([back.count, back.dim, back.dtype], [N, DIM, "float32"]);
  assert.ok(Buffer.from(back.data.buffer).equals(Buffer.from(values.buffer)));
  const changed = blob.bytes.slice();
  changed[100] ^= 1;
  assert.throws(() => parseSearchMatrixBlob(changed, blob.sha256), (e: unknown) => e instanceof ProtocolError);
});

test("a worker's search executor fetches the blob once and returns the thread's lists byte for byte; the coordinator's check refuses forged results", async () => {
  const file = join(dir.path, "matrix.blob");
  writeFileSync(file, blob.bytes);
  const local = new LocalBlobStore();
  await local.putFile(searchMatrixBlobName(blob.sha256), file);
  let fetches = 0;
  // A remote store: no local path, every fetch is a copy (as from NATS's object store).
  const remote: BlobStore = { has: (n) => local.has(n), putFile: (n, p) => local.putFile(n, p), getToFile: (n, p) => (fetches++, local.getToFile(n, p)) };
  const executor = new SearchExecutor(remote, join(dir.path, "fetched"), { device: "cpu", threads: 1 });
  const engine = await KnnEngine.create({ threads: 1 });
  try {
    for (const w of [work(), work({ queries: Uint32Array.of(7, 299, 0), corpus: Uint32Array.from({ length: 290 }, (_, i) => i + 10), k: 5 })]) {
      const out = await executor.compute(w);
      const lists = searchResultLists(w, out.distances);
      const own = await runSearchTile(engine, matrix, { queries: w.queries, corpus: w.corpus }, w.k);
      assert.ok(Buffer.from(lists.ids.buffer).equals(Buffer.from(own.ids.buffer)), "same ids");
      assert.ok(Buffer.from(lists.scores.buffer).equals(Buffer.from(own.scores.buffer)), "same scores");
    }
    assert.is(fetches, 1, "the matrix is fetched once");

    const w = work();
    const good = (await executor.compute(w)).distances;
    const m = w.queries.length * w.k;
    const forged = good.slice();
    new Uint32Array(forged.buffer, m * 4, m)[0] = 3; // row 3 is not in the tile's corpus
    assert.throws(() => searchResultLists(w, forged), (e: unknown) => e instanceof ProtocolError);
    const swapped = good.slice();
    [swapped[0], swapped[1]] = [swapped[1] - 0.5, swapped[0]];
    assert.throws(() => searchResultLists(w, swapped), (e: unknown) => e instanceof ProtocolError);
    assert.throws(() => searchResultLists(w, good.subarray(1)), (e: unknown) => e instanceof ProtocolError);

    // A blob that does not hash to the name in the tile is this worker's fault, never a result.
    const wrong = new SearchExecutor(remote, join(dir.path, "fetched2"), { device: "cpu", threads: 1 });
    await local.putFile(searchMatrixBlobName("ee".repeat(32)), file);
    await wrong.compute(work({ matrix: "ee".repeat(32) })).then(
      () => assert.unreachable("a blob that does not match its name was used"),
      (e: unknown) => assert.ok(isWorkerHealthError(e), String(e)),
    );
    await wrong.dispose();
  } finally {
    await executor.dispose();
    await engine.release();
  }
});

test.run();
