/**
 * One phase of bench/scale in a process of its own (so its peak RSS is its own):
 *   node --expose-gc dist/bench/scale/phase.js PHASE JSON
 * Prints one line "RESULT {json}". Run by bench/scale/main.ts.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import {
  cellProbeSearch,
  compactBytes,
  DEFAULT_TEMPLATES,
  encodeTileMessage,
  exactSearch,
  hnswSearch,
  loadDataset,
  LocalBlobStore,
  loadTokenizer,
  matrixBytes,
  prepareCorpus,
  readCorpus,
  readCorpusFile,
  readEmbeddings,
  readRecordsAt,
  tokenizePrompts,
  widenTokens,
  writeCorpusFile,
  type CorpusRef,
  type EmbeddingMatrix,
  type SearchLists,
  type TokenizedCorpus,
} from "../../common/src/mod.js";
import { Xoshiro128 } from "../../common/src/selection/prng.js";
import { compactDensePlan, compactSparsePlan, type CandidateTable, type CompactPlan } from "../../coordinator/src/plan/compact-plan.js";
import { publishCorpusObjects, writeCorpusObjects } from "../../coordinator/src/store/corpus-objects.js";
import { CorpusCache } from "../../worker/src/mod.js";
import { encodeSelfContainedTile } from "./self-contained-tiles.js";
import { planSparseKernel } from "../../coordinator/src/plan/plan-tiles.js";
import { indexedTileWork, tileWork } from "../../coordinator/src/plan/tile-work.js";
import { tilePairCount, type TileSpec } from "../../coordinator/src/plan/tile-spec.js";
import { ROOT } from "../common/paths.js";

type Args = { dir: string; data: string; embeddings: string; samples: number; k?: number; queries?: number; threads?: number };

const TOKENIZER = join(ROOT, "models", "tiny", "tokenizer.json");

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** Heap, external and (non-resizable) array buffers, after a full collection. */
function retained(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

function rssAfterGc(): number {
  gc();
  return process.memoryUsage().rss;
}

const peakRss = () => process.resourceUsage().maxRSS * 1024;
const seconds = (t0: number) => (performance.now() - t0) / 1000;

async function prompts() {
  return tokenizePrompts(DEFAULT_TEMPLATES, await loadTokenizer(TOKENIZER), 0, 1024);
}

function identityTarget(n: number) {
  return { count: n, ordinals: Uint32Array.from({ length: n }, (_, i) => i), recordCount: n, idOf: (i: number) => `syn-${i}`, indexOfId: (id: string) => Number(id.slice(4)), lineOf: (i: number) => i + 1, dataFile: "data.jsonl" };
}

async function loadMatrix(a: Args): Promise<EmbeddingMatrix> {
  return readEmbeddings(a.embeddings, identityTarget(a.samples));
}

function saveLists(path: string, lists: SearchLists): void {
  writeFileSync(path, Buffer.from(lists.ids.buffer, lists.ids.byteOffset, lists.ids.byteLength));
}

const phases: Record<string, (a: Args) => Promise<Record<string, unknown>>> = {
  async "read-old"(a) {
    const p = await prompts();
    const tokenizer = await loadTokenizer(TOKENIZER);
    const before = rssAfterGc();
    const base = retained();
    const t0 = performance.now();
    const corpus = prepareCorpus(await loadDataset(a.data), tokenizer, p);
    const s = seconds(t0);
    const held = retained() - base;
    return { seconds: s, samples: corpus.samples.length, tokens: corpus.tokens.ids.length, peakRss: peakRss(), rssHeld: rssAfterGc() - before, heldBytes: held };
  },

  async "read-new"(a) {
    const p = await prompts();
    const before = rssAfterGc();
    const t0 = performance.now();
    const read = await readCorpus(a.data, { tokenizer: TOKENIZER, prompts: p, threads: a.threads });
    const s = seconds(t0);
    const rssHeld = rssAfterGc() - before;
    const t1 = performance.now();
    const file = await writeCorpusFile(join(a.dir, "corpus.bin"), read.corpus, read.records);
    const writeSeconds = seconds(t1);
    // The output writers' re-read: 30% of the samples, in a seeded random (rank) order.
    const rng = new Xoshiro128(7);
    const pick = Uint32Array.from({ length: Math.floor(read.corpus.count * 0.3) }, () => rng.nextBelow(read.corpus.count));
    const t2 = performance.now();
    let got = 0;
    for await (const r of readRecordsAt(read.records, pick)) if (r.record) got++;
    const rereadSeconds = seconds(t2);
    return {
      seconds: s,
      samples: read.corpus.count,
      tokens: read.corpus.ids.length,
      tokenBytes: read.corpus.ids.BYTES_PER_ELEMENT,
      arrayBytes: compactBytes(read.corpus) + read.records.lines.byteLength * 3 + (read.records.byteOffsets?.byteLength ?? 0),
      peakRss: peakRss(),
      rssHeld,
      fileBytes: file.bytes,
      fileSha256: file.sha256,
      writeSeconds,
      reread: got,
      rereadSeconds,
      threads: a.threads ?? null,
    };
  },

  async embeddings(a) {
    const before = rssAfterGc();
    const t0 = performance.now();
    const m = await loadMatrix(a);
    return { seconds: seconds(t0), count: m.count, dim: m.dim, dtype: m.dtype, matrixBytes: matrixBytes(m), peakRss: peakRss(), rssHeld: rssAfterGc() - before };
  },

  async exact(a) {
    const m = await loadMatrix(a);
    const all = Uint32Array.from({ length: m.count }, (_, i) => i);
    const before = peakRss();
    const t0 = performance.now();
    if (a.queries && a.queries < m.count) {
      // A seeded sample of queries (at 10^6 the full exact search is hours here): the recall reference.
      const rng = new Xoshiro128(11);
      const set = new Set<number>();
      while (set.size < a.queries) set.add(rng.nextBelow(m.count));
      const q = Uint32Array.from([...set].sort((x, y) => x - y));
      const lists = await exactSearch(m, q, all, a.k!);
      writeFileSync(join(a.dir, `exact-sample-${a.k}.queries`), Buffer.from(q.buffer));
      saveLists(join(a.dir, `exact-sample-${a.k}.u32`), lists);
      return { seconds: seconds(t0), queries: q.length, peakRss: peakRss(), peakBefore: before };
    }
    const lists = await exactSearch(m, all, all, a.k!);
    saveLists(join(a.dir, `exact-${a.k}.u32`), lists);
    return { seconds: seconds(t0), queries: m.count, peakRss: peakRss(), peakBefore: before };
  },

  async cells(a) {
    const m = await loadMatrix(a);
    const all = Uint32Array.from({ length: m.count }, (_, i) => i);
    const before = peakRss();
    const t0 = performance.now();
    const r = await cellProbeSearch(m, all, all, a.k!, { seed: 0 });
    saveLists(join(a.dir, `cells-${a.k}.u32`), r.lists);
    return { seconds: seconds(t0), parts: r.seconds, cells: r.cells, probes: r.probes, sampledRecall: r.sampledRecall, searchedFraction: r.searchedFraction, peakRss: peakRss(), peakBefore: before };
  },

  async hnsw(a) {
    const m = await loadMatrix(a);
    const all = Uint32Array.from({ length: m.count }, (_, i) => i);
    const before = peakRss();
    const t0 = performance.now();
    const r = await hnswSearch(m, all, all, a.k!, {});
    saveLists(join(a.dir, `hnsw-${a.k}.u32`), r.lists);
    return { seconds: seconds(t0), parts: r.seconds, peakRss: peakRss(), peakBefore: before };
  },

  /** Plan memory at the given size, K = a.k, old (TileSpec objects) or compact. */
  async "plan-old"(a) {
    return planPhase(a, false);
  },
  async "plan-compact"(a) {
    return planPhase(a, true);
  },

  /**
   * Tile-message bytes per pair (issue 8 item 4), sparse K = a.k over the whole corpus and dense on
   * its first 2,000 samples: index-carrying messages (today) plus the corpus objects a worker
   * fetches once, against the self-contained format of before (token ids in every message), on the
   * same sampled tiles.
   */
  async bytes(a) {
    const { corpus } = await readCorpusFile(join(a.dir, "corpus.bin"));
    const k = a.k!;
    const ids = new Uint32Array(readFileSync(join(a.dir, `cells-${k}.u32`)).buffer.slice(0));
    const n = corpus.count;
    const table: CandidateTable = { ptr: Uint32Array.from({ length: n + 1 }, (_, t) => t * k), ids: new Uint32Array(n * k) };
    for (let t = 0; t < n; t++) table.ids.set(ids.subarray(t * k, t * k + k).slice().sort(), t * k);
    const all = Uint32Array.from({ length: n }, (_, i) => i);
    const keys = new Uint8Array(n * 16);
    for (let i = 0; i < keys.length; i++) keys[i] = (i * 2654435761) >>> 24;
    const counts = Uint32Array.from({ length: n }, (_, i) => corpus.offsets[2 * i + 2] - corpus.offsets[2 * i]);
    const request = { settingsKey: "bench", sampleKeys: keys, sampleTokenCounts: counts, maxTileTokens: 200_000 };
    const asTokens = widenTokens(corpus);
    const t0 = performance.now();
    const objects = await writeCorpusObjects(asTokens, join(a.dir, "corpora"));
    const corpusSeconds = seconds(t0);
    const sparse = measurePlan(compactSparsePlan({ ...request, targets: all, examples: all, candidates: table }), asTokens, objects.ref, 150, 40);
    const denseN = Math.min(n, 2000);
    const head = all.subarray(0, denseN);
    const dense = measurePlan(compactDensePlan({ ...request, targets: head, examples: head }), asTokens, objects.ref, 150, 40);
    const headObjects = await writeCorpusObjects({ count: denseN, ids: asTokens.ids.subarray(0, asTokens.offsets[2 * denseN]), offsets: asTokens.offsets.subarray(0, 2 * denseN + 1) }, join(a.dir, "corpora-head"));
    // The worker's side: sampled sparse tiles resolved through the corpus cache, at the default bound and at a small one.
    const blobs = new LocalBlobStore();
    await publishCorpusObjects(objects.files, blobs);
    const worker: Record<string, unknown>[] = [];
    for (const maxBytes of [768 * 2 ** 20, 32 * 2 ** 20]) {
      const cache = new CorpusCache(blobs, join(a.dir, "corpus-fetch"), { maxBytes });
      const plan = compactSparsePlan({ ...request, targets: all, examples: all, candidates: table });
      const rng = new Xoshiro128(6);
      let pairs = 0;
      const t1 = performance.now();
      // Fewer at the small bound: every tile there fetches most of its chunks again.
      const tiles = maxBytes > objects.rawBytes ? 300 : 60;
      for (let s = 0; s < tiles; s++) {
        const tile = plan.tile(rng.nextBelow(plan.count));
        pairs += tilePairCount(tile);
        await cache.resolve("bench", objects.ref, indexedTileWork(tile));
      }
      worker.push({ maxBytes, tiles, pairs, secondsPerTile: seconds(t1) / tiles, ...cache.stats, fetchedBytesPerPair: cache.stats.fetchedBytes / pairs });
    }
    return { sparse, dense: { ...dense, samples: denseN, corpusBytes: headObjects.bytes }, corpus: { bytes: objects.bytes, rawBytes: objects.rawBytes, chunks: objects.chunks, tokenBytes: objects.tokenBytes, seconds: corpusSeconds }, worker, peakRss: peakRss() };
  },
};

/** Bytes of sampled tiles of a plan in both formats, scaled to the whole plan. */
function measurePlan(plan: CompactPlan, corpus: TokenizedCorpus, ref: CorpusRef, pairSample: number, baselineSample: number) {
  const rng = new Xoshiro128(5);
  let pairTiles = 0;
  let baselineTiles = 0;
  for (let t = 0; t < plan.count; t++) (plan.tile(t).kind === "pairs" ? pairTiles++ : baselineTiles++);
  const measure = (kind: TileSpec["kind"], want: number) => {
    let indexed = 0;
    let selfContained = 0;
    let values = 0;
    let tiles = 0;
    const total = kind === "pairs" ? pairTiles : baselineTiles;
    const first = kind === "pairs" ? baselineTiles : 0;
    for (let s = 0; s < Math.min(want, total); s++) {
      const tile = plan.tile(first + rng.nextBelow(total));
      indexed += encodeTileMessage({ jobId: "bench-job", tileId: tile.id, corpus: ref, work: indexedTileWork(tile) }).length;
      selfContained += encodeSelfContainedTile("bench-job", tile.id, tileWork(tile, corpus)).length;
      values += tilePairCount(tile);
      tiles++;
    }
    return { indexedPerTile: indexed / tiles, selfContainedPerTile: selfContained / tiles, valuesPerTile: values / tiles, total };
  };
  const pairs = measure("pairs", pairSample);
  const base = measure("baseline", baselineSample);
  const totalPairs = pairs.valuesPerTile * pairs.total;
  const perPair = (which: "indexedPerTile" | "selfContainedPerTile") => (pairs[which] * pairs.total + base[which] * base.total) / totalPairs;
  return { pairTiles, baselineTiles, pairs: totalPairs, pairsPerTile: pairs.valuesPerTile, indexedBytesPerPair: perPair("indexedPerTile"), selfContainedBytesPerPair: perPair("selfContainedPerTile"), indexedPairTileBytesPerPair: pairs.indexedPerTile / pairs.valuesPerTile };
}

async function planPhase(a: Args, compact: boolean): Promise<Record<string, unknown>> {
  const n = a.samples;
  const k = a.k!;
  // Candidate lists like a neighbour search's: k distinct examples near each target, seeded.
  const rng = new Xoshiro128(9);
  const keys = new Uint8Array(n * 16);
  for (let i = 0; i < keys.length; i += 4) new DataView(keys.buffer).setUint32(i, rng.nextUint32());
  const counts = Uint32Array.from({ length: n }, () => 60 + rng.nextBelow(600));
  const all = Uint32Array.from({ length: n }, (_, i) => i);
  const listOf = (t: number) => {
    const s = new Set<number>([t]);
    while (s.size < k) s.add((t + rng.nextBelow(20_000) - 10_000 + n) % n);
    return Uint32Array.from(s).sort();
  };
  const request = { settingsKey: "bench", sampleKeys: keys, targets: all, examples: all, sampleTokenCounts: counts, maxTileTokens: 200_000 };
  const before = rssAfterGc();
  const base = retained();
  const t0 = performance.now();
  let tiles: number;
  let held: number;
  if (compact) {
    const ptr = Uint32Array.from({ length: n + 1 }, (_, t) => t * k);
    const ids = new Uint32Array(n * k);
    for (let t = 0; t < n; t++) ids.set(listOf(t), t * k);
    const plan = compactSparsePlan({ ...request, candidates: { ptr, ids } });
    tiles = plan.count;
    held = plan.bytes;
    const s = seconds(t0);
    const r = retained() - base;
    return { seconds: s, tiles, planBytes: held, heldBytes: r, rssHeld: rssAfterGc() - before, peakRss: peakRss(), samples: n, k, keep: [plan, ids].length };
  }
  const candidates = Array.from({ length: n }, (_, t) => listOf(t));
  const plan = planSparseKernel({ ...request, candidates });
  const map = new Map(plan.map((t) => [t.id, t]));
  tiles = plan.length;
  const s = seconds(t0);
  const r = retained() - base;
  return { seconds: s, tiles, heldBytes: r, rssHeld: rssAfterGc() - before, peakRss: peakRss(), samples: n, k, keep: [candidates.length, map.size].length };
}

const [phase, json] = process.argv.slice(2);
const run = phases[phase];
if (!run) throw new Error(`unknown phase ${phase} (known: ${Object.keys(phases).join(", ")})`);
const load0 = loadavg()[0];
const cpu0 = process.cpuUsage();
const result = await run(JSON.parse(json) as Args);
// CPU time of every thread of the process (worker threads included): the work done, whatever the machine's load.
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`RESULT ${JSON.stringify({ phase, ...result, cpuSeconds: (cpu.user + cpu.system) / 1e6, load: [load0, loadavg()[0]] })}\n`);
