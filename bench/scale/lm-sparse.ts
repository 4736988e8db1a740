/**
 * Run (c) of issue 8 item 7: the LM utility in sparse mode through the cluster path. A real
 * nats-server, a coordinator process and 2 worker processes (1 onnxruntime thread each) on
 * loopback; the tiny model; a select job (30%) over N samples of the bench/scale corpus with its
 * given embeddings for the neighbour search, K neighbours, no random columns. Reports per phase
 * the wall time and peak RSS of each process (sampled from /proc every 250 ms), the pairs/s of
 * the scoring phase, the tokens fed to the model per scored pair (the workers' engine counters,
 * from their debug logs) and the bus bytes per pair (tile messages; the corpus objects once).
 */
import { existsSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { TestCluster } from "../../test/helpers/cluster.js";
import { ROOT } from "../common/paths.js";
import { fmt, row } from "../common/stats.js";
import { buildScaleCorpus } from "./build-corpus.js";

export type LmSparseOptions = { samples: number; k: number; dir: string };

type PhaseFacts = { seconds: number; peakRss: Record<string, number> };

const MiB = 2 ** 20;

function rssOf(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function hwmOf(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export async function runLmSparse(o: LmSparseOptions): Promise<Record<string, unknown>> {
  const dir = o.dir;
  if (!existsSync(join(dir, "data.jsonl")) || !existsSync(join(dir, "embeddings.npy"))) await buildScaleCorpus({ samples: o.samples, out: dir, dim: 384, embeddings: "f32" });
  const load0 = loadavg();
  console.log(`LM utility, sparse, through the cluster: ${o.samples.toLocaleString("en-US")} samples, K = ${o.k}, tiny model, 2 workers x 1 thread; load average ${load0.map((l) => l.toFixed(2)).join(" ")}`);
  const cluster = await TestCluster.start({ workers: 0, workerArgs: ["--log-format", "json"], coordinatorArgs: ["--log-format", "json"] });
  const phases = new Map<string, PhaseFacts>();
  let status;
  const started = performance.now();
  try {
    await Promise.all([cluster.startWorker("w1"), cluster.startWorker("w2")]);
    const procs = () => ({ coordinator: cluster.coordinator?.proc.pid, w1: cluster.workers.get("w1")?.proc.pid, w2: cluster.workers.get("w2")?.proc.pid });
    const job = await cluster.submit({
      kind: "select",
      data: join(dir, "data.jsonl"),
      embeddings: join(dir, "embeddings.npy"),
      model: join(ROOT, "models", "tiny"),
      scoring: { candidates: { neighbors: o.k, random: 0 } },
      selection: { budget: 0.3 },
      queue: { ackWaitSeconds: 120 },
    });
    let current = "";
    let since = performance.now();
    const deadline = Date.now() + 6 * 3600_000;
    for (;;) {
      status = await cluster.status(job).catch(() => null);
      const name = status ? (status.phase?.name ? `${status.state}/${status.phase.name}` : status.state) : current;
      if (name !== current) {
        if (current) phases.get(current)!.seconds += (performance.now() - since) / 1000;
        since = performance.now();
        current = name;
        if (!phases.has(name)) phases.set(name, { seconds: 0, peakRss: {} });
      }
      const facts = phases.get(current)!;
      for (const [who, pid] of Object.entries(procs())) facts.peakRss[who] = Math.max(facts.peakRss[who] ?? 0, rssOf(pid));
      if (status && ["done", "failed", "cancelled"].includes(status.state)) break;
      if (Date.now() > deadline) throw new Error("the run took more than 6 hours");
      await new Promise((r) => setTimeout(r, 250));
    }
    if (status!.state !== "done") throw new Error(`job ${status!.state}: ${status!.error}\n${cluster.logs()}`);
    const hwm = Object.fromEntries(Object.entries(procs()).map(([who, pid]) => [who, hwmOf(pid)]));
    // The workers' engine counters, tile by tile (debug lines of stored tiles).
    let tokens = 0;
    let padded = 0;
    let runs = 0;
    let pairs = 0;
    let prompts = 0;
    for (const w of cluster.workers.values()) {
      for (const line of w.log.split("\n")) {
        if (!line.startsWith("{") || !line.includes('"fed"')) continue;
        const r = JSON.parse(line) as { fed?: { tokens: number; paddedTokens: number; runs: number; prompts: number }; pairs?: number };
        if (!r.fed) continue;
        tokens += r.fed.tokens;
        padded += r.fed.paddedTokens;
        runs += r.fed.runs;
        prompts += r.fed.prompts;
        pairs += r.pairs ?? 0;
      }
    }
    const corpusLine = cluster.coordinator!.log.split("\n").find((l) => l.includes('"corpus"') && l.includes('"chunks"'));
    const corpus = corpusLine ? (JSON.parse(corpusLine) as { bytes: number; chunks: number; sent: number }) : null;
    const s = status!;
    const scoring = [...phases].filter(([n]) => n.startsWith("scoring")).reduce((t, [, f]) => t + f.seconds, 0);
    const result = {
      samples: o.samples,
      k: o.k,
      pairsTotal: s.pairsTotal,
      elapsedSeconds: s.elapsedSeconds,
      scoringSeconds: scoring,
      pairsPerSecond: s.pairsTotal / scoring,
      engine: { prompts, pairsCounted: pairs, tokens, paddedTokens: padded, runs, tokensPerPair: tokens / prompts, paddedTokensPerPair: padded / prompts },
      tileBytes: s.tileBytes,
      tileBytesPerPair: s.tileBytes / s.pairsTotal,
      corpus,
      resultBytesPerPair: s.resultBytes / s.pairsTotal,
      phases: Object.fromEntries(phases),
      peakRssWholeRun: hwm,
      load: [load0[0], loadavg()[0]],
      wallSeconds: (performance.now() - started) / 1000,
    };
    for (const [name, f] of phases) row(`  ${name}`, `${fmt(f.seconds, 1)} s; peak RSS coordinator ${fmt(f.peakRss.coordinator / MiB, 0)} MiB, w1 ${fmt(f.peakRss.w1 / MiB, 0)} MiB, w2 ${fmt(f.peakRss.w2 / MiB, 0)} MiB`);
    row("scored prompts (pairs + baselines)", `${s.pairsTotal} in ${fmt(scoring, 1)} s of scoring: ${fmt(result.pairsPerSecond, 2)} pairs/s (2 workers x 1 thread)`);
    row("tokens fed per scored prompt (engine counters)", `${fmt(result.engine.tokensPerPair, 1)} real, ${fmt(result.engine.paddedTokensPerPair, 1)} padded (${tokens} / ${padded} tokens, ${runs} model runs, ${prompts} prompts counted)`);
    row("tile messages, bytes per pair", `${fmt(result.tileBytesPerPair, 2)}${corpus ? `; corpus objects once: ${fmt(corpus.bytes / MiB, 2)} MiB in ${corpus.chunks} chunks = ${fmt(corpus.bytes / s.pairsTotal, 1)} bytes per pair per worker` : ""}`);
    row("peak RSS over the run (VmHWM)", `coordinator ${fmt(hwm.coordinator / MiB, 0)} MiB, w1 ${fmt(hwm.w1 / MiB, 0)} MiB, w2 ${fmt(hwm.w2 / MiB, 0)} MiB`);
    row("load average at start -> end", `${fmt(load0[0], 2)} -> ${fmt(loadavg()[0], 2)}`);
    return result;
  } finally {
    await cluster.stop();
  }
}
