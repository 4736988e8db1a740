/**
 * bench/scale --encoder N (issue 8 item 7b): the SE kernel's embeddings stage on a cluster on
 * loopback (real nats-server, a coordinator process, 2 worker processes of 1 onnxruntime thread
 * each, on this machine's cores) over N samples of the scale corpus, against raw onnxruntime
 * (session.run alone, the inputs built beforehand) on the same model runs in this process, with
 * 2 threads and with 1, in the same invocation. Tokens/s counts real (unpadded) tokens; the stage's
 * time runs from the job's "planning -> embedding" to its "embedding -> searching". Peak RSS:
 * the most VmRSS sampled every 100 ms during the stage, and VmHWM (process lifetime) at its end.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadavg } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { sessionOptionsFor } from "../../common/src/mod.js";
import { parseJobSpec, parseStory } from "../../coordinator/src/mod.js";
import { loadJobSets, loadModelInputs } from "../../coordinator/src/inputs/load-inputs.js";
import { planEmbedTiles, sampleSequences } from "../../coordinator/src/runtime/embeddings.js";
import { TestCluster } from "../../test/helpers/cluster.js";
import { ROOT } from "../common/paths.js";
import { fmt, row } from "../common/stats.js";

const MODEL = join(ROOT, "models", "tiny");
const MiB = 2 ** 20;

function procMemory(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? 0) * 1024;
    return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

/** Raw onnxruntime over the job's own runs: inputs built first, only session.run timed. */
async function rawOrt(runs: { ids: BigInt64Array; mask: BigInt64Array; shape: [number, number] }[], threads: number): Promise<number> {
  const session = await ort.InferenceSession.create(join(MODEL, "encoder.onnx"), await sessionOptionsFor("cpu", threads));
  try {
    const output = session.outputNames.includes("last_hidden_state") ? "last_hidden_state" : session.outputNames[0];
    const needsTypeIds = session.inputNames.includes("token_type_ids");
    const t0 = performance.now();
    for (const r of runs) {
      const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor("int64", r.ids, r.shape), attention_mask: new ort.Tensor("int64", r.mask, r.shape) };
      if (needsTypeIds) feeds.token_type_ids = new ort.Tensor("int64", new BigInt64Array(r.ids.length), r.shape);
      await session.run(feeds, [output]);
    }
    return (performance.now() - t0) / 1000;
  } finally {
    await session.release();
  }
}

type Run = { ids: BigInt64Array; mask: BigInt64Array; shape: [number, number] };

const specOf = (data: string) => ({ data, model: MODEL, selection: { kernelType: "se", budget: "0.3", optimizer: "lazy" }, scoring: { candidates: { neighbors: 16 } }, queue: { ackWaitSeconds: 60 } });

/** The job's own model runs, as its coordinator plans them (tile by tile), with their token counts. */
async function jobRuns(data: string): Promise<{ tiles: Run[][]; realTokens: number; paddedTokens: number }> {
  const spec = parseJobSpec(specOf(data), "bench");
  const inputs = await loadModelInputs(spec.model, spec.scoring);
  const { sets } = await loadJobSets(spec, inputs);
  const plan = await planEmbedTiles(inputs, sets, spec.scoring.embedTileTokens);
  const sequences = sampleSequences(inputs, sets);
  const pad = BigInt(inputs.bundle.manifest.padId ?? inputs.bundle.manifest.eosId);
  let realTokens = 0;
  let paddedTokens = 0;
  const tiles: Run[][] = [];
  for (const t of plan.tiles) {
    const runs: Run[] = [];
    tiles.push(runs);
    let at = 0;
    for (const size of t.runs) {
      const rows = Array.from(t.rows.subarray(at, at + size), (g) => sequences[g]);
      at += size;
      const width = Math.max(...rows.map((s) => s.length));
      const ids = new BigInt64Array(size * width).fill(pad);
      const mask = new BigInt64Array(size * width);
      rows.forEach((s, b) => {
        s.forEach((v, i) => (ids[b * width + i] = BigInt(v)));
        mask.fill(1n, b * width, b * width + s.length);
        realTokens += s.length;
      });
      paddedTokens += size * width;
      runs.push({ ids, mask, shape: [size, width] });
    }
  }
  return { tiles, realTokens, paddedTokens };
}

/**
 * Raw onnxruntime as the cluster runs it: `parts` processes of `threads` threads each, each taking
 * every parts-th tile, all at once; the wall time is the slowest part's session.run total.
 */
async function rawInProcesses(data: string, parts: number, threads: number): Promise<number> {
  const seconds = await Promise.all(
    Array.from({ length: parts }, (_, k) => {
      const c = spawn(process.execPath, [fileURLToPath(import.meta.url), "--raw-part", String(k), "--parts", String(parts), "--threads", String(threads), "--data", data], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      c.stdout!.on("data", (d: Buffer) => (out += d.toString()));
      return new Promise<number>((resolve, reject) =>
        c.once("exit", (code) => {
          const m = /^RAW ([\d.]+)$/m.exec(out);
          if (code !== 0 || !m) reject(new Error(`raw part ${k} failed (exit ${code}): ${out}`));
          else resolve(Number(m[1]));
        }),
      );
    }),
  );
  return Math.max(...seconds);
}

export async function encoderBench(data: string, samples: number): Promise<Record<string, unknown>> {
  const load0 = loadavg();
  console.log(`encoder on workers (item 7b): ${samples.toLocaleString("en-US")} samples of ${data}; load average ${load0.map((l) => l.toFixed(2)).join(" ")}`);
  const specJson = specOf(data);
  const { tiles, realTokens, paddedTokens } = await jobRuns(data);
  const runs = tiles.flat();
  row("work", `${tiles.length} embed tiles, ${runs.length} model runs, ${realTokens.toLocaleString("en-US")} tokens (${paddedTokens.toLocaleString("en-US")} padded)`);

  // Raw onnxruntime before and after the cluster: the machine is shared, so the load drifts.
  const rawBefore = await rawInProcesses(data, 2, 1);
  const cluster = await TestCluster.start({ workers: 0 });
  let stage = 0;
  const busy = new Map<string, number>();
  const peaks = new Map<string, { rss: number; hwm: number }>();
  try {
    await Promise.all([cluster.startWorker("w1"), cluster.startWorker("w2")]);
    const procs = new Map([["coordinator", cluster.coordinator!.proc.pid!], ...[...cluster.workers].map(([id, w]) => [id, w.proc.pid!] as [string, number])]);
    const job = await cluster.submit(specJson);
    let embedding = false;
    const sample = setInterval(() => {
      if (!embedding) return;
      for (const [name, pid] of procs) {
        const m = procMemory(pid);
        const p = peaks.get(name) ?? { rss: 0, hwm: 0 };
        peaks.set(name, { rss: Math.max(p.rss, m.rss), hwm: m.hwm });
      }
    }, 100);
    try {
      await cluster.waitForJob(job, (s) => s.state !== "planning", 3_600_000);
      embedding = true;
      const after = await cluster.waitForJob(job, (s) => s.state !== "embedding" && s.state !== "planning", 3_600_000);
      embedding = false;
      if (after.state === "failed") throw new Error(`job failed: ${after.error}`);
      await cluster.waitForJob(job, (s) => s.state === "done", 3_600_000);
    } finally {
      clearInterval(sample);
    }
    const story = parseStory(readFileSync(join(cluster.dataDir, "jobs", job, "story.jsonl"), "utf8"), "story");
    const at = (to: string) => story.find((e) => e.kind === "job" && (e as { to: string }).to === to)!.t;
    stage = (at("searching") - at("embedding")) / 1000;
    // Where the stage's time went: each worker's own compute seconds (as it reported them with its results).
    for (const e of story) {
      if (e.kind !== "stimulus" || e.event.type !== "store-done" || e.event.outcome !== "stored") continue;
      busy.set(e.event.worker, (busy.get(e.event.worker) ?? 0) + e.event.seconds);
    }
  } finally {
    await cluster.stop();
  }
  const rawAfter = await rawInProcesses(data, 2, 1);
  const raw2x1 = (rawBefore + rawAfter) / 2;
  const raw2 = await rawOrt(runs, 2);
  const rate = realTokens / stage;
  row("cluster: 2 workers x 1 thread, embeddings stage", `${fmt(stage, 1)} s, ${fmt(rate, 0)} tokens/s, ${fmt(samples / stage, 0)} samples/s`);
  row("raw onnxruntime, same runs, 2 procs x 1 thread", `${fmt(raw2x1, 1)} s (before ${fmt(rawBefore, 1)} s, after ${fmt(rawAfter, 1)} s), ${fmt(realTokens / raw2x1, 0)} tokens/s`);
  row("raw onnxruntime, same runs, 1 proc x 2 threads", `${fmt(raw2, 1)} s, ${fmt(realTokens / raw2, 0)} tokens/s`);
  const best = Math.min(raw2x1, raw2);
  row("ratio cluster / faster raw (target >= 0.8)", fmt(rate / (realTokens / best), 3));
  for (const [w, sec] of busy) row(`worker ${w} computing`, `${fmt(sec, 1)} s of the stage's ${fmt(stage, 1)} s (${fmt((100 * sec) / stage, 0)}%)`);
  for (const [name, p] of peaks) row(`peak RSS ${name}`, `${fmt(p.rss / MiB, 0)} MiB during the stage (VmHWM ${fmt(p.hwm / MiB, 0)} MiB)`);
  const load1 = loadavg();
  row("load average at start / end", `${load0.map((l) => l.toFixed(2)).join(" ")} / ${load1.map((l) => l.toFixed(2)).join(" ")}`);
  return {
    samples,
    tiles: tiles.length,
    runs: runs.length,
    realTokens,
    paddedTokens,
    stageSeconds: stage,
    clusterTokensPerSecond: rate,
    raw2x1Seconds: raw2x1,
    raw2x1BeforeAfter: [rawBefore, rawAfter],
    raw1x2Seconds: raw2,
    ratioToFasterRaw: rate / (realTokens / best),
    peaks: Object.fromEntries(peaks),
    workerComputeSeconds: Object.fromEntries(busy),
    load: [load0, load1],
  };
}

// A raw part (rawInProcesses): every parts-th tile's runs, session.run timed alone.
if (process.argv.includes("--raw-part")) {
  const { values } = parseArgs({ options: { "raw-part": { type: "string" }, parts: { type: "string" }, threads: { type: "string" }, data: { type: "string" } } });
  const part = Number(values["raw-part"]);
  const parts = Number(values.parts);
  const { tiles } = await jobRuns(values.data!);
  const mine = tiles.filter((_, k) => k % parts === part).flat();
  console.log(`RAW ${await rawOrt(mine, Number(values.threads))}`);
}
