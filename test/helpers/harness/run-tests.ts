/**
 * The test runner behind `npm test`: runs every built test file of a directory in its own node
 * process, one after the other, with uvu's `test`/`suite` replaced by a timed wrapper (register.ts)
 * so every test has a deadline. A file that blocks its event loop past a test's deadline is killed
 * and the test it was in is named; a file that does not exit after its last test is killed too.
 *
 *   node dist/test/helpers/harness/run-tests.js DIR [--timeout S] [--filter REGEX] [--list] [--report FILE] [--jobs N]
 *
 * --report FILE writes the outcome of every file (failed tests by name) as JSON.
 * --jobs N runs N files at once (default 1). Much of an integration file's time is spent waiting
 * on other processes (servers starting, jobs being computed), so two at a time use 2 cores better.
 * With N > 1 each file's output is held back and printed whole when the file ends.
 *
 * Prints uvu's own report of each file, then a line per file (tests, time) and a closing
 * "name: N passed, N failed" line; the exit code is 1 when anything failed.
 */
import { spawn } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { EVENTS_FD_ENV, TIMEOUT_ENV, type TestEvent } from "./events.js";

type FileOutcome = { file: string; passed: number; failed: number; skipped: number; failedTests: string[]; seconds: number; problem: string | null; tests: { name: string; seconds: number }[] };

/** How long a blocked file gets past its test's own deadline before it is killed. */
const KILL_GRACE_MS = Number(process.env.DELIFT_TEST_KILL_GRACE_S ?? 15) * 1000;
/** How long a file may take to exit after its last test (open handles keep it alive). */
const EXIT_GRACE_MS = Number(process.env.DELIFT_TEST_EXIT_GRACE_S ?? 30) * 1000;
/** How long a file may run outside any test (module top level, between tests) without an event. */
const IDLE_LIMIT_MS = 180_000;

/** Tests at least this long are listed after the run (the suite's time budget is watched). */
const SLOW_S = 5;

const REGISTER = join(fileURLToPath(new URL(".", import.meta.url)), "register.js");

function parseArgs(argv: string[]): { dir: string; timeoutS: number; filter: RegExp | null; list: boolean; report: string | null; jobs: number } {
  let dir: string | null = null;
  let jobs = 1;
  let report: string | null = null;
  let timeoutS = 120;
  let filter: RegExp | null = null;
  let list = false;
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    if (a === "--timeout") timeoutS = Number(argv[++k]);
    else if (a === "--filter") filter = new RegExp(argv[++k]);
    else if (a === "--list") list = true;
    else if (a === "--report") report = argv[++k];
    else if (a === "--jobs") jobs = Number(argv[++k]);
    else if (!dir) dir = a;
    else throw new Error(`run-tests: unexpected argument ${a}`);
  }
  if (!dir) throw new Error("run-tests: give a directory of built test files");
  if (!(timeoutS > 0)) throw new Error("run-tests: --timeout needs a positive number of seconds");
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error("run-tests: --jobs needs a whole number of files, 1 or more");
  return { dir: resolve(dir), timeoutS, filter, list, report, jobs };
}

function runFile(file: string, timeoutS: number, out: { write(text: string | Buffer): void }, holdBack: boolean): Promise<FileOutcome> {
  const started = performance.now();
  return new Promise((resolveOutcome) => {
    const child = spawn(process.execPath, ["--import", REGISTER, file], {
      stdio: ["ignore", "pipe", holdBack ? "pipe" : "inherit", "pipe"],
      env: { ...process.env, [EVENTS_FD_ENV]: "3", [TIMEOUT_ENV]: String(timeoutS), FORCE_COLOR: process.env.FORCE_COLOR ?? (process.stdout.isTTY ? "1" : "0") },
    });
    let passed = 0;
    let failed = 0;
    const failedTests: string[] = [];
    const tests: { name: string; seconds: number }[] = [];
    let problem: string | null = null;
    let current: { name: string; killAt: number; timeoutMs: number } | null = null;
    let sawTests = false;
    let lastEventAt = Date.now();
    let reportedAt: number | null = null;
    // uvu prints "Duration:" once every test of the file has run: the file should exit now.
    let tail = "";
    let skipped = 0;
    child.stderr?.on("data", (chunk: Buffer) => out.write(chunk));
    child.stdout!.on("data", (chunk: Buffer) => {
      out.write(chunk);
      tail = (tail + chunk.toString()).slice(-400);
      if (reportedAt === null && /Duration:/.test(tail)) {
        reportedAt = Date.now();
        skipped = Number(/Skipped:\D*(\d+)/.exec(tail.replace(/\x1b\[[0-9;]*m/g, ""))?.[1] ?? 0);
      }
    });
    const kill = (why: string) => {
      if (problem) return;
      problem = why;
      child.kill("SIGKILL");
    };
    const watchdog = setInterval(() => {
      const now = Date.now();
      if (current && now > current.killAt) {
        kill(`${current.name} hung: no result ${((current.timeoutMs + KILL_GRACE_MS) / 1000).toFixed(0)} s after it started (deadline ${(current.timeoutMs / 1000).toFixed(0)} s; its event loop is blocked); killed`);
      } else if (!current && reportedAt !== null && now - reportedAt > EXIT_GRACE_MS) {
        kill(`did not exit ${EXIT_GRACE_MS / 1000} s after its last test (something it started is still open); killed`);
      } else if (!current && reportedAt === null && now - lastEventAt > IDLE_LIMIT_MS) {
        kill(`no test started or ended for ${IDLE_LIMIT_MS / 1000} s (a hang outside any test); killed`);
      }
    }, 250);
    let buffered = "";
    child.stdio[3]!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let e: TestEvent;
        try {
          e = JSON.parse(line) as TestEvent;
        } catch {
          continue;
        }
        lastEventAt = Date.now();
        if (e.type === "start") {
          sawTests = true;
          current = { name: describe(e.suite, e.test), killAt: Date.now() + e.timeoutMs + KILL_GRACE_MS, timeoutMs: e.timeoutMs };
        } else {
          current = null;
          tests.push({ name: describe(e.suite, e.test), seconds: e.ms / 1000 });
          const hook = /^\(.*hook\)$/.test(e.test);
          if (e.ok && !hook) passed++;
          else if (!e.ok) {
            failed++;
            failedTests.push(describe(e.suite, e.test));
          }
        }
      }
    });
    child.once("exit", (code, signal) => {
      clearInterval(watchdog);
      if (current) failedTests.push(current.name);
      if (!problem && current) problem = `${current.name} was running when the file exited (${signal ?? `exit ${code}`})`;
      if (!problem && code !== 0) problem = `exit ${signal ?? code}`;
      if (!problem && !sawTests) problem = "ran no test";
      resolveOutcome({ file, passed, failed, skipped, failedTests, tests, seconds: (performance.now() - started) / 1000, problem });
    });
  });
}

function describe(suite: string, test: string): string {
  return suite ? `test "${test}" of suite "${suite}"` : `test "${test}"`;
}

async function main(): Promise<number> {
  const { dir, timeoutS, filter, list, report, jobs } = parseArgs(process.argv.slice(2));
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".test.js") && (!filter || filter.test(f)))
    .sort()
    .map((f) => join(dir, f));
  if (list) {
    for (const f of files) console.log(f);
    return 0;
  }
  if (files.length === 0) {
    console.log(`${basename(dir)}: no test file${filter ? ` matches ${filter}` : ""} in ${dir}`);
    return 1;
  }
  const outcomes: FileOutcome[] = new Array(files.length);
  const started = performance.now();
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < files.length; i = next++) {
      const file = files[i];
      if (jobs === 1) {
        console.log(`\n--- ${basename(file)}`);
        outcomes[i] = await runFile(file, timeoutS, process.stdout, false);
        if (outcomes[i].problem) console.log(`\n  ${basename(file)}: ${outcomes[i].problem}`);
        continue;
      }
      const held: Buffer[] = [];
      outcomes[i] = await runFile(file, timeoutS, { write: (t) => void held.push(Buffer.from(t)) }, true);
      process.stdout.write(`\n--- ${basename(file)}\n`);
      process.stdout.write(Buffer.concat(held));
      if (outcomes[i].problem) console.log(`\n  ${basename(file)}: ${outcomes[i].problem}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, lane));
  const total = (performance.now() - started) / 1000;
  console.log(`\n${basename(dir)} tests, per file:`);
  for (const o of outcomes) {
    const mark = o.failed > 0 || o.problem ? "FAIL" : "ok  ";
    console.log(`  ${mark} ${basename(o.file).padEnd(40)} ${String(o.passed).padStart(3)} passed ${String(o.failed).padStart(2)} failed${o.skipped ? ` ${o.skipped} skipped` : ""} ${o.seconds.toFixed(1).padStart(7)} s${o.problem ? `  (${o.problem})` : ""}`);
  }
  const slow = outcomes.flatMap((o) => o.tests.map((t) => ({ ...t, file: basename(o.file) }))).filter((t) => t.seconds >= SLOW_S).sort((a, b) => b.seconds - a.seconds);
  if (slow.length > 0) {
    console.log(`  tests of ${SLOW_S} s or more:`);
    for (const t of slow) console.log(`    ${t.seconds.toFixed(1).padStart(6)} s  ${t.file}: ${t.name}`);
  }
  const passed = outcomes.reduce((s, o) => s + o.passed, 0);
  // A killed or broken file counts as one failure even when none of its tests reported one.
  const failed = outcomes.reduce((s, o) => s + o.failed + (o.problem && o.failed === 0 ? 1 : 0), 0);
  const skipped = outcomes.reduce((s, o) => s + o.skipped, 0);
  console.log(`  ${outcomes.length} files in ${total.toFixed(1)} s`);
  if (report) writeFileSync(report, JSON.stringify({ dir, seconds: total, passed, failed, skipped, files: outcomes }, null, 1) + "\n");
  console.log(`${basename(dir)}: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => (process.exitCode = code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 2;
  },
);
