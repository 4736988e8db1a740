/**
 * bench/scale (issue 8 item 8): per-phase time and peak RSS of what phase 1 of the million-sample
 * work built, each phase in its own process, against today's path where there is one, in the
 * same invocation:
 *   read + tokenize (streamed, parallel, compact) vs loadDataset + prepareCorpus;
 *   given embeddings (.npy) load; candidate search: exact, cell probes, HNSW, recall@K against
 *   exact (K = 16 and 64); tile-plan memory at 10^6 x K = 16, compact vs TileSpec objects;
 *   tile-message bytes per pair, sparse and dense: index-carrying messages plus the corpus
 *   objects fetched once, against the self-contained format of before (item 4's <= 64).
 *
 *   node dist/bench/scale/main.js [--samples 100000 | --million] [--dim 384] [--dir DIR]
 *        [--only read,embeddings,search,plan,bytes] [--no-baseline] [--no-hnsw] [--no-exact]
 *   node dist/bench/scale/main.js --encoder 20000   (item 7b, bench/scale/encoder.ts: the SE
 *        kernel's embeddings on 2 cluster workers against raw onnxruntime on the same runs)
 *   node dist/bench/scale/main.js --lm-sparse N [--neighbors 16]   (run c: the LM utility, sparse,
 *        through a cluster on loopback; see lm-sparse.ts)
 *
 * The corpus and embeddings come from bench/scale/build-corpus.ts (deterministic; kept in DIR,
 * default /tmp/delift-scale-N-DIM, and reused when present). At 10^6 the exact search (hours
 * here) runs on a seeded sample of 1,000 queries, the recall reference for the approximate ones,
 * and HNSW is left out unless --hnsw (a one-thread build of 10^6 takes most of an hour here).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { recallAtK, type SearchLists } from "../../common/src/mod.js";
import { fmt, row } from "../common/stats.js";
import { ROOT } from "../common/paths.js";
import { buildScaleCorpus } from "./build-corpus.js";
import { encoderBench } from "./encoder.js";
import { runLmSparse } from "./lm-sparse.js";

const { values: flags } = parseArgs({
  options: {
    samples: { type: "string" },
    million: { type: "boolean", default: false },
    dim: { type: "string", default: "384" },
    dir: { type: "string" },
    only: { type: "string" },
    "no-baseline": { type: "boolean", default: false },
    "no-hnsw": { type: "boolean", default: false },
    hnsw: { type: "boolean", default: false },
    "no-exact": { type: "boolean", default: false },
    "plan-samples": { type: "string", default: "1000000" },
    encoder: { type: "string" },
    "lm-sparse": { type: "string" },
    neighbors: { type: "string", default: "16" },
  },
});
const samples = Number(flags.samples ?? (flags.million ? 1_000_000 : 100_000));
const dim = Number(flags.dim);
const dir = flags.dir ?? `/tmp/delift-scale-${samples}-${dim}`;
const only = new Set((flags.only ?? "read,embeddings,search,plan,bytes").split(","));
const big = samples > 200_000;
const MiB = 2 ** 20;

type Result = Record<string, unknown> & { seconds?: number; peakRss?: number; load?: number[] };

function phase(name: string, args: Record<string, unknown>): Result {
  const r = spawnSync(process.execPath, ["--expose-gc", "--max-old-space-size=16384", join(ROOT, "dist", "bench", "scale", "phase.js"), name, JSON.stringify({ dir, data: join(dir, "data.jsonl"), embeddings: join(dir, "embeddings.npy"), samples, ...args })], {
    encoding: "utf8",
    maxBuffer: 64 * MiB,
  });
  const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (r.status !== 0 || !line) throw new Error(`phase ${name} failed (exit ${r.status}):\n${r.stderr.slice(-4000)}`);
  return JSON.parse(line.slice(7)) as Result;
}

const mib = (b: unknown) => `${fmt(Number(b) / MiB, 0)} MiB`;
const loadOf = (r: Result) => `CPU ${fmt(Number(r.cpuSeconds), 0)} s, load ${r.load?.map((l) => l.toFixed(1)).join("->")}`;

function lists(path: string, k: number): SearchLists {
  const ids = new Uint32Array(readFileSync(path).buffer.slice(0));
  return { count: ids.length / k, k, ids };
}

/** Rows of `all` (one per query of the corpus) at the sampled query positions. */
function pickRows(all: SearchLists, queries: Uint32Array): SearchLists {
  const ids = new Uint32Array(queries.length * all.k);
  queries.forEach((q, r) => ids.set(all.ids.subarray(q * all.k, (q + 1) * all.k), r * all.k));
  return { count: queries.length, k: all.k, ids };
}

async function main(): Promise<void> {
  if (flags.encoder) {
    const n = Number(flags.encoder);
    const encDir = flags.dir ?? `/tmp/delift-scale-encoder-${n}`;
    if (!existsSync(join(encDir, "data.jsonl"))) await buildScaleCorpus({ samples: n, out: encDir, embeddings: "none" });
    console.log(JSON.stringify({ bench: "scale-encoder", ...(await encoderBench(join(encDir, "data.jsonl"), n)) }));
    return;
  }
  if (flags["lm-sparse"] !== undefined) {
    // Run (c): the LM utility in sparse mode through the cluster, on a corpus of its own size.
    const n = Number(flags["lm-sparse"]);
    const k = Number(flags.neighbors);
    const r = await runLmSparse({ samples: n, k, dir: flags.dir ?? `/tmp/delift-scale-lm-${n}` });
    console.log(JSON.stringify({ bench: "scale", run: "lm-sparse", ...r }));
    return;
  }
  const summary: Record<string, unknown> = { bench: "scale", samples, dim, loadAtStart: loadavg()[0] };
  console.log(`scale bench: ${samples.toLocaleString("en-US")} samples, ${dim}-d embeddings, corpus in ${dir}; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  if (!existsSync(join(dir, "data.jsonl")) || !existsSync(join(dir, "embeddings.npy"))) {
    const t0 = performance.now();
    const files = await buildScaleCorpus({ samples, out: dir, dim, embeddings: big ? "f16" : "f32" });
    row("built the corpus", `${fmt((performance.now() - t0) / 1000, 0)} s, ${mib(files.bytes)} of JSONL`);
  }

  if (only.has("read")) {
    console.log("read + tokenize (tiny model's tokenizer, its 1,024-token maximum):");
    const now = phase("read-new", {});
    row("streamed, parallel, compact (new)", `${fmt(now.seconds!, 1)} s, ${fmt(samples / now.seconds!, 0)} samples/s, peak RSS ${mib(now.peakRss)}, ${loadOf(now)}`);
    row("  arrays held / RSS held after GC, per sample", `${fmt(Number(now.arrayBytes) / samples, 0)} B / ${fmt(Number(now.rssHeld) / samples, 0)} B (${now.tokens} tokens, ${now.tokenBytes} B each)`);
    row("  corpus file (content-hashed)", `${mib(now.fileBytes)} in ${fmt(Number(now.writeSeconds), 1)} s`);
    row("  re-read 30% of the records (rank order)", `${fmt(Number(now.rereadSeconds), 1)} s for ${now.reread}`);
    summary.readNew = now;
    if (!flags["no-baseline"]) {
      const old = phase("read-old", {});
      row("loadDataset + prepareCorpus (today)", `${fmt(old.seconds!, 1)} s, ${fmt(samples / old.seconds!, 0)} samples/s, peak RSS ${mib(old.peakRss)}, ${loadOf(old)}`);
      row("  held after GC, per sample (heap / RSS)", `${fmt(Number(old.heldBytes) / samples, 0)} B / ${fmt(Number(old.rssHeld) / samples, 0)} B`);
      row("ratio old / new: wall; CPU; peak RSS", `${fmt(old.seconds! / now.seconds!, 2)}x; ${fmt(Number(old.cpuSeconds) / Number(now.cpuSeconds), 2)}x; ${fmt(old.peakRss! / now.peakRss!, 2)}x`);
      summary.readOld = old;
    }
  }

  if (only.has("embeddings")) {
    const e = phase("embeddings", {});
    row("embeddings load (.npy)", `${fmt(e.seconds!, 1)} s, ${e.dtype}, ${mib(e.matrixBytes)} held, peak RSS ${mib(e.peakRss)}`);
    summary.embeddings = e;
  }

  if (only.has("search")) {
    console.log("candidate search (all samples as queries and examples):");
    const search: Record<string, unknown> = {};
    const exactK = 64;
    let exactAll: SearchLists | null = null;
    let sampleQueries: Uint32Array | null = null;
    if (!flags["no-exact"]) {
      const ex = big ? phase("exact", { k: exactK, queries: 1000 }) : phase("exact", { k: exactK });
      search.exact = ex;
      if (big) {
        sampleQueries = new Uint32Array(readFileSync(join(dir, `exact-sample-${exactK}.queries`)).buffer.slice(0));
        exactAll = lists(join(dir, `exact-sample-${exactK}.u32`), exactK);
        row("exact, K = 64 (1,000 sampled queries)", `${fmt(ex.seconds!, 1)} s: ${fmt((ex.seconds! * samples) / 1000 / 3600, 1)} h projected for all, peak RSS ${mib(ex.peakRss)}, ${loadOf(ex)}`);
      } else {
        exactAll = lists(join(dir, `exact-${exactK}.u32`), exactK);
        row("exact, K = 64", `${fmt(ex.seconds!, 1)} s, peak RSS ${mib(ex.peakRss)}, ${loadOf(ex)}`);
      }
    }
    const recallOf = (path: string, k: number) => {
      if (!exactAll) return null;
      const got = lists(path, k);
      const approx = sampleQueries ? pickRows(got, sampleQueries) : got;
      const ref = { count: exactAll.count, k, ids: new Uint32Array(exactAll.count * k) };
      for (let r = 0; r < exactAll.count; r++) ref.ids.set(exactAll.ids.subarray(r * exactK, r * exactK + k), r * k);
      return recallAtK(approx, ref);
    };
    for (const k of [16, 64]) {
      const c = phase("cells", { k });
      const recall = recallOf(join(dir, `cells-${k}.u32`), k);
      (c as Record<string, unknown>).recall = recall;
      row(`cell probes, K = ${k}`, `${fmt(c.seconds!, 1)} s (${c.cells} cells, ${c.probes} probes, ${fmt(100 * Number(c.searchedFraction), 1)}% searched), recall ${recall === null ? "?" : fmt(recall, 4)} (sampled ${fmt(Number(c.sampledRecall), 3)}), peak RSS ${mib(c.peakRss)}, ${loadOf(c)}`);
      search[`cells${k}`] = c;
    }
    if (!flags["no-hnsw"] && (!big || flags.hnsw)) {
      const h = phase("hnsw", { k: 64 });
      const parts = h.parts as { build: number; search: number };
      const r64 = recallOf(join(dir, "hnsw-64.u32"), 64);
      // Top 16 of the 64-list (HNSW returns best first).
      const all = lists(join(dir, "hnsw-64.u32"), 64);
      const top16 = { count: all.count, k: 16, ids: new Uint32Array(all.count * 16) };
      for (let r = 0; r < all.count; r++) top16.ids.set(all.ids.subarray(r * 64, r * 64 + 16), r * 16);
      let r16: number | null = null;
      if (exactAll) {
        const approx = sampleQueries ? pickRows(top16, sampleQueries) : top16;
        const ref = { count: exactAll.count, k: 16, ids: new Uint32Array(exactAll.count * 16) };
        for (let r = 0; r < exactAll.count; r++) ref.ids.set(exactAll.ids.subarray(r * 64, r * 64 + 16), r * 16);
        r16 = recallAtK(approx, ref);
      }
      Object.assign(h, { recall64: r64, recall16: r16 });
      row("HNSW (usearch f16, M 16, ef 128), K = 64", `${fmt(h.seconds!, 1)} s (build ${fmt(parts.build, 1)} s one thread, search ${fmt(parts.search, 1)} s), recall@64 ${r64 === null ? "?" : fmt(r64, 4)}, @16 ${r16 === null ? "?" : fmt(r16, 4)}, peak RSS ${mib(h.peakRss)}, ${loadOf(h)}`);
      search.hnsw = h;
    }
    summary.search = search;
  }

  if (only.has("plan")) {
    const planSamples = Number(flags["plan-samples"]);
    console.log(`tile plan, sparse, ${planSamples.toLocaleString("en-US")} samples x K = 16:`);
    const compact = phase("plan-compact", { k: 16, samples: planSamples });
    row("compact plan", `${fmt(compact.seconds!, 1)} s, ${compact.tiles} tiles, plan ${mib(compact.planBytes)}, heap+external held ${mib(compact.heldBytes)}, peak RSS ${mib(compact.peakRss)}`);
    const old = phase("plan-old", { k: 16, samples: planSamples });
    row("TileSpec objects (today)", `${fmt(old.seconds!, 1)} s, ${old.tiles} tiles, held ${mib(old.heldBytes)}, peak RSS ${mib(old.peakRss)}`);
    row("ratio held today / compact", fmt(Number(old.heldBytes) / Number(compact.heldBytes), 2));
    summary.plan = { compact, old };
  }

  if (only.has("bytes") && existsSync(join(dir, "corpus.bin")) && existsSync(join(dir, "cells-16.u32"))) {
    const b = phase("bytes", { k: 16 });
    type Side = { pairs: number; pairsPerTile: number; indexedBytesPerPair: number; selfContainedBytesPerPair: number; corpusBytes?: number; samples?: number };
    const sparse = b.sparse as Side;
    const dense = b.dense as Side;
    const corpus = b.corpus as { bytes: number; rawBytes: number; chunks: number; tokenBytes: number; seconds: number };
    console.log("tile-message bytes per pair (index-carrying messages vs the self-contained format of before, same tiles):");
    row("sparse K = 16: tile messages", `${fmt(sparse.indexedBytesPerPair, 2)} bytes per pair (self-contained before: ${fmt(sparse.selfContainedBytesPerPair, 0)}; ${fmt(sparse.pairsPerTile, 0)} pairs a tile; target <= 64)`);
    row("  + corpus objects once per worker, amortised", `${fmt(sparse.indexedBytesPerPair + corpus.bytes / sparse.pairs, 2)} bytes per pair with 1 worker, ${fmt(sparse.indexedBytesPerPair + (8 * corpus.bytes) / sparse.pairs, 2)} with 8 (corpus ${mib(corpus.bytes)} in ${corpus.chunks} Brotli chunks, ${mib(corpus.rawBytes)} expanded, ${corpus.tokenBytes} B a token, written in ${fmt(corpus.seconds, 1)} s)`);
    row("  ratio before / now (messages)", fmt(sparse.selfContainedBytesPerPair / sparse.indexedBytesPerPair, 1));
    row(`dense, first ${dense.samples} samples: tile messages`, `${fmt(dense.indexedBytesPerPair, 3)} bytes per pair (self-contained before: ${fmt(dense.selfContainedBytesPerPair, 1)}); + corpus once ${fmt(dense.indexedBytesPerPair + dense.corpusBytes! / dense.pairs, 3)}; target <= 130`);
    for (const w of b.worker as { maxBytes: number; tiles: number; pairs: number; secondsPerTile: number; fetches: number; fetchedBytes: number; peakBytes: number; evictions: number; fetchedBytesPerPair: number }[]) {
      row(`worker corpus cache, bound ${mib(w.maxBytes)}: ${w.tiles} random sparse tiles`, `peak held ${mib(w.peakBytes)}, ${w.fetches} fetches (${mib(w.fetchedBytes)}, ${fmt(w.fetchedBytesPerPair, 0)} bytes per pair), ${w.evictions} evictions, ${fmt(1000 * w.secondsPerTile, 1)} ms to resolve a tile`);
    }
    summary.bytes = b;
  }
  console.log(JSON.stringify(summary));
}

await main();
