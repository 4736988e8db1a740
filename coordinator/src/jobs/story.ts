import { newJob, type Change, type JobEvent, type JobRecord, type Stimulus } from "./job-state.js";
import { handleStimulus } from "./machine.js";

/**
 * A job's story: every stimulus the machine was given and every change it made, in order, with
 * ids and times. The coordinator appends it to DATA_DIR/jobs/<id>/story.jsonl, `delift story`
 * prints it, and onStory listeners (metrics) receive each entry as it happens.
 *
 * - stimulus: an event, as fed (with its id); replaying these rebuilds the record.
 * - job / tile: a state change (tile changes carry worker, attempt, pairs, duration, bytes).
 * - task: a task started, finished, failed or was aborted.
 * - rejected: an event the machine did not accept, and why.
 * - note: something worth telling (a duplicate within tolerance, a tile published again).
 */
export type StoryHead = { job: string; seq: number; t: number; stimulus: string };
export type StoryStimulus = StoryHead & { kind: "stimulus"; event: JobEvent };
export type StoryChange = StoryHead & Change;
export type StoryEntry = StoryStimulus | StoryChange;

/** Builds the story entries of one handled stimulus (seq numbers from `nextSeq`). */
export function storyEntries(job: string, s: Stimulus, changes: Change[], nextSeq: () => number): StoryEntry[] {
  const head = (): StoryHead => ({ job, seq: nextSeq(), t: s.t, stimulus: s.id });
  return [{ ...head(), kind: "stimulus", event: s.event }, ...changes.map((c) => ({ ...head(), ...c }) as StoryChange)];
}

/**
 * Rebuilds a job's record by feeding the story's stimuli to a fresh machine: the same record the
 * coordinator held, since the machine is deterministic in its stimuli.
 */
export function replayStory(entries: Iterable<StoryEntry>): JobRecord | null {
  let job: JobRecord | null = null;
  for (const e of entries) {
    if (e.kind !== "stimulus") continue;
    if (e.event.type === "submitted") job = newJob(e.job, e.t, e.event.settings);
    if (!job) continue;
    handleStimulus(job, { id: e.stimulus, t: e.t, event: e.event });
  }
  return job;
}

/** Parses story.jsonl text; a torn last line (a crash mid-append) is skipped, anything else torn is an error. */
export function parseStory(text: string, label: string): StoryEntry[] {
  const lines = text.split("\n");
  const out: StoryEntry[] = [];
  for (let k = 0; k < lines.length; k++) {
    const line = lines[k];
    if (line.trim() === "") continue;
    try {
      out.push(JSON.parse(line) as StoryEntry);
    } catch (err) {
      if (k >= lines.length - 2) break;
      throw new Error(`${label}:${k + 1}: not a story entry: ${(err as Error).message}`);
    }
  }
  return out;
}

/** One human line per entry, for `delift story`. */
export function formatStoryEntry(e: StoryEntry, start: number): string {
  const at = `+${((e.t - start) / 1000).toFixed(3).padStart(9)}s`;
  const tag = e.stimulus.padEnd(6);
  switch (e.kind) {
    case "stimulus":
      return `${at} ${tag} <- ${describeEvent(e.event)}`;
    case "job":
      return `${at} ${tag}    job ${e.from} -> ${e.to}${e.error && (e.to === "failed" || e.to === "cancelled" || e.to === "cancelling") ? ` (${e.error})` : ""}`;
    case "tile":
      return `${at} ${tag}    tile ${e.tile.slice(0, 12)} ${e.from} -> ${e.to}${e.worker ? ` worker ${e.worker}` : ""}${e.attempt ? ` delivery ${e.attempt}` : ""}${e.durationMs !== null ? ` ${(e.durationMs / 1000).toFixed(2)} s` : ""}`;
    case "task":
      return `${at} ${tag}    task ${e.task} ${e.phase}`;
    case "rejected":
      return `${at} ${tag}    rejected ${e.event}: ${e.reason}`;
    case "note":
      return `${at} ${tag}    ${e.level === "warn" ? "warning: " : ""}${e.message}`;
  }
}

function describeEvent(e: JobEvent): string {
  switch (e.type) {
    case "submitted":
      return `submitted (${e.settings.kind}; ack wait ${e.settings.ackWaitMs / 1000} s, ${e.settings.maxDeliver} deliveries, ${e.settings.maxQueued} queued, conflict tolerance ${e.settings.conflictTolerance})`;
    case "resumed":
      return `resumed after a coordinator restart (was ${e.was}; session ${e.session})`;
    case "plan-done":
      return `${e.task}: planned ${e.samples} samples, ${e.search ? "a candidate search, " : ""}${e.tiles.length} ${e.embed ? "embed " : ""}tiles (${e.tiles.filter((t) => t.stored).length} already stored)`;
    case "publish-done":
      return `${e.task}: published ${e.tileIds.length} tiles (${e.bytes} bytes)`;
    case "store-done":
      return `${e.task}: tile ${e.tileId.slice(0, 12)} from ${e.worker} ${e.outcome === "stored" ? `stored (${e.bytes} bytes)` : `already stored (max difference ${e.maxDiff})`}`;
    case "reconcile-done":
      return `${e.task}: queue ${e.queue ? `${e.queue.exists ? "" : "gone, "}${e.queue.messages} messages, ${e.queue.pending} pending, ${e.queue.ackPending} being worked on, ${e.queue.redelivered} redelivered` : "not readable"}; ${e.stored.length} in flight found stored`;
    case "search-done":
      return `${e.task}: candidate search done, kernel built`;
    case "select-done":
      return `${e.task}: selection done`;
    case "write-done":
      return `${e.task}: written: ${e.summary}`;
    case "release-done":
      return `${e.task}: queue and records released`;
    case "task-failed":
      return `${e.task}: ${e.aborted ? "aborted" : `failed (${e.errorName}): ${e.error}`}`;
    case "tile-started":
      return `tile ${e.tileId.slice(0, 12)} started on ${e.worker} (delivery ${e.attempt})`;
    case "tile-progress":
      return `tile ${e.tileId.slice(0, 12)} still running on ${e.worker}`;
    case "result-received":
      return `result of tile ${e.tileId.slice(0, 12)} from ${e.worker} (delivery ${e.attempt})${e.problem ? `: ${e.problem}` : ""}`;
    case "tile-failed":
      return `tile ${e.tileId.slice(0, 12)} failed on ${e.worker} (delivery ${e.attempt}, ${e.kind}): ${e.error}`;
    case "tile-max-deliveries":
      return `tile ${e.tileId.slice(0, 12)} reached its delivery limit (advisory)`;
    case "reconcile-due":
      return "reconcile due";
    case "cancel":
      return `cancel: ${e.reason}`;
    case "fail":
      return `fail: ${e.reason}`;
  }
}
