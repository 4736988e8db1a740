/**
 * What a test file tells the runner while it runs (one JSON line per event on the file
 * descriptor the runner names in DELIFT_TEST_EVENTS_FD). Written synchronously, so the runner
 * knows which test started even when that test then blocks the event loop forever.
 */
import { writeSync } from "node:fs";

export type TestEvent =
  | { type: "start"; suite: string; test: string; timeoutMs: number }
  | { type: "end"; suite: string; test: string; ok: boolean; timedOut: boolean; ms: number };

export const EVENTS_FD_ENV = "DELIFT_TEST_EVENTS_FD";
export const TIMEOUT_ENV = "DELIFT_TEST_TIMEOUT_S";

const fd = Number(process.env[EVENTS_FD_ENV] ?? NaN);

export function emit(event: TestEvent): void {
  if (!Number.isInteger(fd)) return;
  try {
    writeSync(fd, JSON.stringify(event) + "\n");
  } catch {
    // the runner went away; the test result still goes to stdout
  }
}
