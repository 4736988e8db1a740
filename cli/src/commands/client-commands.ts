import * as grpc from "@grpc/grpc-js";
import { createWriteStream, statSync, type WriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join, normalize, resolve } from "node:path";
import { finished } from "node:stream/promises";
import { ConfigError, type CoordinatorClient, type JobStatusMessage, KERNEL_FILES, ProtocolError, type ResultFileChunk, type WorkerInfo, writeOutputDir } from "../../../common/src/mod.js";
import { holdAt, SELECTION_FILES } from "../../../coordinator/src/mod.js";
import { parseCommand, requireString } from "../args.js";
import { JobWatchView } from "../progress/job-watch-view.js";
import { formatDuration } from "../progress/rate-meter.js";
import { phaseCell } from "../progress/phase-view.js";
import { StreamEndedEarly, withReconnect } from "../progress/reconnect.js";
import { CLIENT_HELP, CLIENT_OPTIONS, clientFrom } from "../setup/client-flags.js";
import { abortOnSignals } from "../setup/interrupt.js";
import { JOB_OPTIONS, SCORING_HELP, SELECTION_HELP, jobSpecFromFlags } from "../setup/job-flags.js";

/** Exit codes of `delift watch` and `delift submit --wait`: the job's final state. */
const EXIT_OF_STATE: Record<string, number> = { done: 0, failed: 1, cancelled: 3 };

export const SUBMIT_HELP = `delift submit [--job FILE] [job flags] [--kernel-only] [--detach | --wait] [--json]

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
  --json                 print the job's status as one JSON object (when submit returns) instead of
                         its id; errors as {"error": {code, message, exitCode}} on stderr
${SCORING_HELP}
${CLIENT_HELP}`;

export async function submitCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("submit", argv, {
    ...JOB_OPTIONS,
    ...CLIENT_OPTIONS,
    "kernel-only": { type: "boolean" },
    detach: { type: "boolean" },
    wait: { type: "boolean" },
    json: { type: "boolean" },
  });
  if (values.help) return help(SUBMIT_HELP);
  const json = values.json === true;
  const spec = await jobSpecFromFlags(values, values["kernel-only"] ? "kernel" : "select");
  const client = clientFrom(values);
  try {
    const { jobId } = await client.unary<{ jobId: string }>("submitJob", { specJson: JSON.stringify(spec) });
    if (!json) process.stdout.write(`${jobId}\n`);
    if (values.detach) {
      if (json) writeJson(await jobStatusOf(client, jobId));
      return 0;
    }
    const final = await followJob(client, jobId, (s) => !values.wait && s.state !== "planning", () => undefined, json ? jsonNotice : undefined);
    if (json) writeJson(final);
    if (final?.state === "failed") {
      const exitCode = final.failedDuring === "planning" ? 2 : 1;
      if (json) writeJsonError(exitCode === 2 ? "job-refused" : "job-failed", `job ${jobId} failed: ${final.error}`, exitCode);
      else process.stderr.write(`delift: job ${jobId} failed: ${final.error}\n`);
      return exitCode;
    }
    if (values.wait) return EXIT_OF_STATE[final?.state ?? "failed"] ?? 1;
    return 0;
  } finally {
    client.close();
  }
}

export const WATCH_HELP = `delift watch JOB [--plain | --json]

Shows a job's progress live: tiles done/total, pairs/s, ETA, redeliveries and each worker's rate.
Exits when the job ends, with 0 (done), 1 (failed) or 3 (cancelled). If the coordinator restarts
meanwhile, it says so and reconnects (with back-off, for up to 10 minutes; then exit 4).

  --plain                one status line a second instead of bars (logs, CI)
  --json                 one JSON object per line on stdout for every update (the job's status, as
                         in delift jobs --json), the last one the final state; same exit codes
${CLIENT_HELP}`;

export async function watchCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand("watch", argv, { ...CLIENT_OPTIONS, plain: { type: "boolean" }, json: { type: "boolean" } }, true);
  if (values.help) return help(WATCH_HELP);
  const jobId = onePositional(positionals, "watch", "JOB");
  const client = clientFrom(values);
  if (values.json) {
    try {
      const last = await followJob(client, jobId, () => false, writeJson, jsonNotice);
      return EXIT_OF_STATE[last.state] ?? 1;
    } finally {
      client.close();
    }
  }
  const view = new JobWatchView(jobId, values.plain === true || !process.stderr.isTTY);
  let last: JobStatusMessage;
  try {
    last = await followJob(client, jobId, () => false, (s) => view.update(s), (line) => view.notice(line));
  } finally {
    view.stop();
    client.close();
  }
  process.stderr.write(`job ${jobId} ${last.state}${last.error ? `: ${last.error}` : ""} after ${formatDuration(last.elapsedSeconds)}\n`);
  return EXIT_OF_STATE[last.state] ?? 1;
}

export const JOBS_HELP = `delift jobs [--json]

Lists the coordinator's jobs: state, progress, rate. --json: a JSON array of the jobs' statuses.
${CLIENT_HELP}`;

export async function jobsCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand("jobs", argv, { ...CLIENT_OPTIONS, json: { type: "boolean" } });
  if (values.help) return help(JOBS_HELP);
  const client = clientFrom(values);
  try {
    const { jobs } = await withReconnect("listing jobs", () => client.unary<{ jobs: JobStatusMessage[] }>("listJobs", {}));
    if (values.json) {
      process.stdout.write(JSON.stringify(jobs, null, 1) + "\n");
      return 0;
    }
    const rows = jobs.map((j) => [
      j.jobId,
      j.state,
      j.stage,
      `${j.tilesDone}/${j.tilesTotal}`,
      phaseCell(j.phase),
      j.pairsPerSecond > 0 ? j.pairsPerSecond.toFixed(1) : "-",
      formatDuration(j.elapsedSeconds),
      j.createdAt,
      j.error,
    ]);
    process.stdout.write(table(["JOB", "STATE", "STAGE", "TILES", "PHASE", "PAIRS/S", "ELAPSED", "CREATED", "ERROR"], rows));
    return 0;
  } finally {
    client.close();
  }
}

export const WORKERS_HELP = `delift workers [--json]

Lists the workers whose heartbeat the cluster saw in the last 30 seconds. --json: a JSON array.
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

export const CANCEL_HELP = `delift cancel JOB [--json]

Cancels a job: its running tasks stop (planning, selection, writing), its queued tiles are dropped,
nothing of its result is written; tiles already stored stay in the tile store. Prints the job's
state once the cancel has taken effect (--json: {"jobId", "state"}).
${CLIENT_HELP}`;

export async function cancelCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand("cancel", argv, { ...CLIENT_OPTIONS, json: { type: "boolean" } }, true);
  if (values.help) return help(CANCEL_HELP);
  const jobId = onePositional(positionals, "cancel", "JOB");
  const client = clientFrom(values);
  try {
    const { state } = await client.unary<{ state: string }>("cancelJob", { jobId });
    const final = state === "cancelling" ? (await followJob(client, jobId, () => false, () => undefined)).state : state;
    if (values.json) writeJson({ jobId, state: final });
    else process.stdout.write(`${jobId} ${final}\n`);
    return 0;
  } finally {
    client.close();
  }
}

export const RESULT_HELP = `delift result JOB --out DIR [--json]

Downloads a finished job's result (selected.jsonl, report.json, report.html; or the kernel files)
into DIR, all or nothing, streamed to disk. Reconnects (and starts over) if the coordinator restarts.
--json: {"jobId", "out", "files": [{"name", "bytes"}]} on stdout.
${CLIENT_HELP}`;

export async function resultCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand("result", argv, { ...CLIENT_OPTIONS, out: { type: "string" }, json: { type: "boolean" } }, true);
  if (values.help) return help(RESULT_HELP);
  const jobId = onePositional(positionals, "result", "JOB");
  const out = requireString(values.out, "out", "result");
  const client = clientFrom(values);
  const interrupt = abortOnSignals();
  try {
    const names = await withReconnect("downloading the result", () => downloadResult(client, jobId, out, interrupt.signal));
    if (values.json) writeJson({ jobId, out: resolve(out), files: names.map((name) => ({ name, bytes: statSync(join(out, name)).size })) });
    else process.stderr.write(`wrote ${names.length} file(s) to ${out}: ${names.join(", ")}\n`);
    return 0;
  } catch (err) {
    // Ctrl-C: writeOutputDir has removed its temporary directory; nothing of the result is kept.
    if (interrupt.signal.aborted) return 130;
    throw err;
  } finally {
    interrupt.dispose();
    client.close();
  }
}

/** Streams the result files into a temporary directory, then moves it into place (all or nothing). */
async function downloadResult(client: CoordinatorClient, jobId: string, out: string, signal: AbortSignal): Promise<string[]> {
  const names: string[] = [];
  await writeOutputDir(out, [...SELECTION_FILES, "kernel", ...KERNEL_FILES], async (tmp) => {
    signal.throwIfAborted();
    const files = new Map<string, WriteStream>();
    await new Promise<void>((resolve, reject) => {
      const stream = (client.raw.getResult as (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<ResultFileChunk>).call(client.raw, { jobId }, client.metadata());
      const fail = (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        stream.cancel();
        reject(err);
      };
      const onAbort = () => fail(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      stream.on("data", (chunk: ResultFileChunk) => {
        const name = normalize(chunk.name);
        if (name.startsWith("..") || name.startsWith("/")) return fail(new ProtocolError(`result file name ${chunk.name} escapes the output directory`));
        let file = files.get(name);
        if (!file) {
          stream.pause();
          void mkdir(dirname(join(tmp, name)), { recursive: true }).then(() => {
            file = createWriteStream(join(tmp, name));
            files.set(name, file);
            names.push(name);
            write(file, chunk);
            stream.resume();
          }, fail);
          return;
        }
        write(file, chunk);
      });
      const write = (file: WriteStream, chunk: ResultFileChunk) => {
        if (chunk.data.byteLength > 0 && !file.write(Buffer.from(chunk.data))) {
          stream.pause();
          file.once("drain", () => stream.resume());
        }
        if (chunk.last) file.end();
      };
      stream.on("error", fail);
      stream.on("end", () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
    for (const f of files.values()) {
      if (!f.writableEnded) f.end();
      await finished(f);
    }
    await holdAt("writing", jobId, signal);
    signal.throwIfAborted();
  });
  return names;
}

/**
 * Follows a job to its end (or until `stop` says so) through coordinator restarts; returns the
 * last status. `update` gets every status, `say` the reconnect notices.
 */
async function followJob(
  client: CoordinatorClient,
  jobId: string,
  stop: (s: JobStatusMessage) => boolean,
  update: (s: JobStatusMessage) => void,
  say?: (line: string) => void,
): Promise<JobStatusMessage> {
  return withReconnect(
    `following job ${jobId}`,
    async (reconnected) => {
      let first = true;
      for await (const s of watchStream(client, jobId)) {
        if (first && reconnected) (say ?? ((l: string) => void process.stderr.write(l + "\n")))(`delift: reconnected to the coordinator; job ${jobId} is ${s.state}`);
        first = false;
        update(s);
        if (TERMINAL.has(s.state) || stop(s)) return s;
      }
      throw new StreamEndedEarly("the coordinator closed the stream before the job ended");
    },
    say ? { say } : {},
  );
}

const TERMINAL = new Set(["done", "failed", "cancelled"]);

async function* watchStream(client: CoordinatorClient, jobId: string): AsyncGenerator<JobStatusMessage> {
  const stream = (client.raw.watchJob as (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<JobStatusMessage>).call(client.raw, { jobId }, client.metadata());
  try {
    for await (const s of stream as AsyncIterable<JobStatusMessage>) yield s;
  } finally {
    stream.cancel();
  }
}

/** One JSON object on one line of stdout (--json). */
function writeJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

/** An error in --json mode: one object on stderr, as main.ts writes the others. */
function writeJsonError(code: string, message: string, exitCode: number): void {
  process.stderr.write(JSON.stringify({ error: { code, message, exitCode } }) + "\n");
}

/** A reconnect notice in --json mode: one object on stderr. */
function jsonNotice(line: string): void {
  process.stderr.write(JSON.stringify({ notice: line.replace(/^delift: /, "") }) + "\n");
}

async function jobStatusOf(client: CoordinatorClient, jobId: string): Promise<JobStatusMessage> {
  const { jobs } = await withReconnect("listing jobs", () => client.unary<{ jobs: JobStatusMessage[] }>("listJobs", {}));
  const s = jobs.find((j) => j.jobId === jobId);
  if (!s) throw new ProtocolError(`the coordinator accepted job ${jobId} but does not list it`);
  return s;
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
