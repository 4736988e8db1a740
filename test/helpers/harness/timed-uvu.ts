/**
 * uvu with a deadline on every test and hook. uvu itself has none, so a test that never settles
 * would hang the whole suite; here it fails with a clear message and the file goes on. A test
 * that blocks the event loop (a synchronous endless loop) cannot be stopped from inside: the
 * runner (run-tests.ts) kills the file and names the test, from the events below.
 *
 * Default deadline: DELIFT_TEST_TIMEOUT_S (the runner sets it per directory). A test that needs
 * longer says so with withTimeout() from ./timeout.ts.
 */
import * as uvu from "uvu";
import type { Callback, Test } from "uvu";
import { emit, TIMEOUT_ENV } from "./events.js";
import { TIMEOUT_PROPERTY } from "./timeout.js";
import { liveDiagnostics } from "./diagnostics.js";

export { exec } from "uvu";

const DEFAULT_MS = Number(process.env[TIMEOUT_ENV] ?? 120) * 1000;

export class TestTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not finish within ${(ms / 1000).toFixed(0)} s (per-test timeout; a hang, or a wait whose state never came)`);
    this.name = "TestTimeoutError";
  }
}

function timed<T>(suiteName: string, name: string, handler: Callback<T>): Callback<T> {
  const ms = (handler as unknown as Record<string, number>)[TIMEOUT_PROPERTY] ?? DEFAULT_MS;
  return async (context) => {
    emit({ type: "start", suite: suiteName, test: name, timeoutMs: ms });
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    let ok = false;
    try {
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          timedOut = true;
          const err = new TestTimeoutError(`"${name}"`, ms);
          const live = liveDiagnostics();
          if (live) {
            err.message += `\nstill running at the deadline:\n${live}`;
            err.stack = `${err.name}: ${err.message.split("\n")[0]}`; // the logs once, not again in the stack
          }
          reject(err);
        }, ms);
      });
      await Promise.race([Promise.resolve().then(() => handler(context)), deadline]);
      ok = true;
    } finally {
      clearTimeout(timer);
      emit({ type: "end", suite: suiteName, test: name, ok, timedOut, ms: performance.now() - started });
    }
  };
}

function wrap<T>(real: Test<T>, suiteName: string): Test<T> {
  const t = ((name: string, handler: Callback<T>) => real(name, timed(suiteName, name, handler))) as Test<T>;
  t.only = (name, handler) => real.only(name, timed(suiteName, name, handler));
  t.skip = (name, handler) => real.skip(name, handler);
  const before = ((h: Callback<T>) => real.before(timed(suiteName, "(before hook)", h))) as Test<T>["before"];
  before.each = (h) => real.before.each(timed(suiteName, "(before-each hook)", h));
  const after = ((h: Callback<T>) => real.after(timed(suiteName, "(after hook)", h))) as Test<T>["after"];
  after.each = (h) => real.after.each(timed(suiteName, "(after-each hook)", h));
  t.before = before;
  t.after = after;
  t.run = () => real.run();
  return t;
}

export function suite<T = Record<string, unknown>>(title?: string, context?: T): Test<T> {
  return wrap(uvu.suite<T>(title, context), title ?? "");
}

export const test = wrap(uvu.test, "");
