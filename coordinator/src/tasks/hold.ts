import { EventEmitter } from "node:events";
import { AbortedError } from "../../../common/src/mod.js";

/**
 * Hold points, a test hook (DELIFT_HOLD_AT=planning|scoring|selecting|writing): the process that
 * reaches the point prints "delift: holding at <point>" on stderr and waits there until the
 * waiting task is aborted (a cancel, a failure, the process stopping on a signal).
 *   planning   the planning task, once the job's queue and work spec exist
 *   scoring    the store task of the job's first stored tile (after it is on disk)
 *   selecting  the selection, in the job's worker thread, before it starts
 *   writing    the writing task, in the job's worker thread, once the output is staged
 */
export type HoldPoint = "planning" | "scoring" | "selecting" | "writing";
export const HOLD_POINTS: readonly HoldPoint[] = ["planning", "scoring", "selecting", "writing"];

/** In-process observers (tests): called with the point and job each time a hold begins. */
export const holds = new EventEmitter<{ hold: [point: HoldPoint, jobId: string] }>();

export function holdRequested(point: HoldPoint, env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DELIFT_HOLD_AT === point;
}

/** Says the hold happened (stderr, observers). The worker thread's holds are announced through this too. */
export function announceHold(point: HoldPoint, jobId: string): void {
  process.stderr.write(`delift: holding at ${point}\n`);
  holds.emit("hold", point, jobId);
}

/** Waits at `point` when DELIFT_HOLD_AT names it: resolves at once otherwise, rejects when `signal` aborts. */
export async function holdAt(point: HoldPoint, jobId: string, signal: AbortSignal): Promise<void> {
  if (!holdRequested(point)) return;
  announceHold(point, jobId);
  // The hold itself keeps the process alive (a command with nothing else pending would just exit).
  const alive = setInterval(() => undefined, 1 << 30);
  try {
    await new Promise<never>((_, reject) => {
      const stop = () => reject(signal.reason instanceof Error ? signal.reason : new AbortedError(`held at ${point}, then aborted`));
      if (signal.aborted) stop();
      else signal.addEventListener("abort", stop, { once: true });
    });
  } finally {
    clearInterval(alive);
  }
}
