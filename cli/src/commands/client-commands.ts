import * as grpc from "@grpc/grpc-js";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, normalize } from "node:path";
import { ConfigError, type CoordinatorClient, type JobStatusMessage, ProtocolError, type ResultFileChunk, type WorkerInfo, writeOutputDir } from "../../../common/src/mod.js";
import { parseCommand, requireString } from "../args.js";
import { JobWatchView } from "../progress/job-watch-view.js";
import { formatDuration } from "../progress/rate-meter.js";
import { CLIENT_HELP, CLIENT_OPTIONS, clientFrom } from "../setup/client-flags.js";
import { JOB_OPTIONS, SCORING_HELP, SELECTION_HELP, jobSpecFromFlags } from "../setup/job-flags.js";

/** Exit codes of `delift watch` and `delift submit --wait`: the job's final state. */
const EXIT_OF_STATE: Record<string, number> = { done: 0, failed: 1, cancelled: 3 };

export const SUBMIT_HELP = `delift submit [--job FILE] [job flags] [--kernel-only] [--detach | --wait]

Submits a job to the coordinator and prints its id. Paths are resolved here and read by the
coordinator (give paths it can see). Without --detach it waits until the coordinator has loaded
and planned the job, so bad input is reported here; --wait also follows it to the end.

  --kernel-only          compute the kernel only (result: kernel.parquet, kernel.bin, kernel.json)
${SELECTION_HELP}
  --job FILE             a whole job spec as JSON; flags override it. Keys: data, model, target,
                         targetIds, existing, existingIds, kind, saveKernel, selection {stage, budget,
                         optimizer, epsilon, seed, scaling, eta, nu, kernelType, compareLazy},
                         scoring {fields, templates, maxLength, batch, tile, skipInvalid},
                         queue {ackWaitSeconds, maxDeliver, maxQueued}
  --ack-wait S           seconds before an unacknowledged tile is redelivered (default 30)
  --max-deliver N        deliveries before a failing tile fails the job (default 5)
${SCORING_HELP}
${CLIENT_HELP}`;

export async function submitCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("submit", argv, {
    ...JOB_OPTIONS,
    ...CLIENT_OPTIONS,
    "kernel-only": { type: "boolean" },
    detach: { type: "boolean" },
    wait: { type: "boolean" },
  });
  if (values.help) return help(SUBMIT_HELP);
  const spec = await jobSpecFromFlags(values, values["kernel-only"] ? "kernel" : "select");
  const client = clientFrom(values);
  try {
    const { jobId } = await client.unary<{ jobId: string }>("submitJob", { specJson: JSON.stringify(spec) });
    process.stdout.write(`${jobId}\n`);
    if (values.detach) return 0;
    let final: JobStatusMessage | null = null;
    for await (const s of watchStream(client, jobId)) {
      final = s;
      if (!values.wait && s.state !== "planning") break;
    }
    if (final?.state === "failed") {
      process.stderr.write(`delift: job ${jobId} failed: ${final.error}\n`);
      return final.failedDuring === "planning" ? 2 : 1;
    }
    if (values.wait) return EXIT_OF_STATE[final?.state ?? "failed"] ?? 1;
    return 0;
  } finally {
    client.close();
  }
}

export const WATCH_HELP = `delift watch JOB [--plain]

Shows a job's progress live: tiles done/total, pairs/s, ETA, redeliveries and each worker's rate.
Exits when the job ends, with 0 (done), 1 (failed) or 3 (cancelled).

  --plain                one status line a second instead of bars (logs, CI)
${CLIENT_HELP}`;

export async function watchCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand("watch", argv, { ...CLIENT_OPTIONS, plain: { type: "boolean" } }, true);
  if (values.help) return help(WATCH_HELP);
  const jobId = onePositional(positionals, "watch", "JOB");
  const client = clientFrom(values);
  const view = new JobWatchView(jobId, values.plain === true || !process.stderr.isTTY);
  let last: JobStatusMessage | null = null;
  try {
    for await (const s of watchStream(client, jobId)) {
      last = s;
      view.update(s);
    }
  } finally {
    view.stop();
    client.close();
  }
  if (!last) return 1;
  process.stderr.write(`job ${jobId} ${last.state}${last.error ? `: ${last.error}` : ""} after ${formatDuration(last.elapsedSeconds)}\n`);
  return EXIT_OF_STATE[last.state] ?? 1;
}

export const JOBS_HELP = `delift jobs [--json]

Lists the coordinator's jobs: state, progress, rate.
${CLIENT_HELP}`;

export async function jobsCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("jobs", argv, { ...CLIENT_OPTIONS, json: { type: "boolean" } });
  if (values.help) return help(JOBS_HELP);
  const client = clientFrom(values);
  try {
    const { jobs } = await client.unary<{ jobs: JobStatusMessage[] }>("listJobs", {});
    if (values.json) {
      process.stdout.write(JSON.stringify(jobs, null, 1) + "\n");
      return 0;
    }
    const rows = jobs.map((j) => [
      j.jobId,
      j.state,
      j.stage,
      `${j.tilesDone}/${j.tilesTotal}`,
      j.pairsPerSecond > 0 ? j.pairsPerSecond.toFixed(1) : "-",
      formatDuration(j.elapsedSeconds),
      j.createdAt,
      j.error,
    ]);
    process.stdout.write(table(["JOB", "STATE", "STAGE", "TILES", "PAIRS/S", "ELAPSED", "CREATED", "ERROR"], rows));
    return 0;
  } finally {
    client.close();
  }
}

export const WORKERS_HELP = `delift workers [--json]

Lists the workers whose heartbeat the cluster saw in the last 30 seconds.
${CLIENT_HELP}`;

export async function workersCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("workers", argv, { ...CLIENT_OPTIONS, json: { type: "boolean" } });
  if (values.help) return help(WORKERS_HELP);
  const client = clientFrom(values);
  try {
    const { workers } = await client.unary<{ workers: WorkerInfo[] }>("listWorkers", {});
    if (values.json) {
      process.stdout.write(JSON.stringify(workers, null, 1) + "\n");
      return 0;
    }
    const rows = workers.map((w) => [w.workerId, w.host, w.device, String(w.concurrency), w.state, String(w.tilesDone), String(w.pairsDone), `${w.lastSeenSecondsAgo.toFixed(0)}s`, w.currentTiles.join(" ")]);
    process.stdout.write(table(["WORKER", "HOST", "DEVICE", "SLOTS", "STATE", "TILES", "PROMPTS", "SEEN", "CURRENT"], rows));
    return 0;
  } finally {
    client.close();
  }
}

export const CANCEL_HELP = `delift cancel JOB

Cancels a job: its queued tiles are dropped; tiles already stored stay in the tile store.
${CLIENT_HELP}`;

export async function cancelCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand("cancel", argv, CLIENT_OPTIONS, true);
  if (values.help) return help(CANCEL_HELP);
  const jobId = onePositional(positionals, "cancel", "JOB");
  const client = clientFrom(values);
  try {
    const { state } = await client.unary<{ state: string }>("cancelJob", { jobId });
    process.stdout.write(`${jobId} ${state}\n`);
    return 0;
  } finally {
    client.close();
  }
}

export const RESULT_HELP = `delift result JOB --out DIR

Downloads a finished job's result (selected.jsonl, report.json, report.html; or the kernel files)
into DIR, all or nothing.
${CLIENT_HELP}`;

export async function resultCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand("result", argv, { ...CLIENT_OPTIONS, out: { type: "string" } }, true);
  if (values.help) return help(RESULT_HELP);
  const jobId = onePositional(positionals, "result", "JOB");
  const out = requireString(values.out, "out", "result");
  const client = clientFrom(values);
  try {
    const files = new Map<string, Buffer[]>();
    await new Promise<void>((resolve, reject) => {
      const stream = (client.raw.getResult as (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<ResultFileChunk>).call(client.raw, { jobId }, client.metadata());
      stream.on("data", (chunk: ResultFileChunk) => {
        const name = normalize(chunk.name);
        if (name.startsWith("..") || name.startsWith("/")) return reject(new ProtocolError(`result file name ${chunk.name} escapes the output directory`));
        const parts = files.get(name) ?? [];
        parts.push(Buffer.from(chunk.data));
        files.set(name, parts);
      });
      stream.on("error", reject);
      stream.on("end", () => resolve());
    });
    const names = [...files.keys()];
    await writeOutputDir(out, [...new Set(names.map((n) => n.split("/")[0]))], async (tmp) => {
      for (const [name, parts] of files) {
        await mkdir(dirname(join(tmp, name)), { recursive: true });
        await writeFile(join(tmp, name), Buffer.concat(parts));
      }
    });
    process.stderr.write(`wrote ${names.length} file(s) to ${out}: ${names.join(", ")}\n`);
    return 0;
  } finally {
    client.close();
  }
}

async function* watchStream(client: CoordinatorClient, jobId: string): AsyncGenerator<JobStatusMessage> {
  const stream = (client.raw.watchJob as (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<JobStatusMessage>).call(client.raw, { jobId }, client.metadata());
  try {
    for await (const s of stream as AsyncIterable<JobStatusMessage>) yield s;
  } finally {
    stream.cancel();
  }
}

function onePositional(positionals: string[], command: string, what: string): string {
  if (positionals.length !== 1) throw new ConfigError(`delift ${command}: expected one ${what} argument. Run "delift ${command} --help".`);
  return positionals[0];
}

function help(text: string): number {
  process.stdout.write(text + "\n");
  return 0;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, k) => Math.max(h.length, ...rows.map((r) => (r[k] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, k) => (k === cells.length - 1 ? c : (c ?? "").padEnd(widths[k]))).join("  ").trimEnd() + "\n";
  return line(header) + rows.map(line).join("");
}
