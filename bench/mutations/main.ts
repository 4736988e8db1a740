/**
 * Mutation check: does the test suite catch the bugs it claims to? Copies the repository to a
 * temporary directory, applies one hand-made mutation at a time to the source, rebuilds, runs the
 * part of the suite that covers it, and prints which tests failed. A control run of the same tests
 * on the unmutated copy comes first: a mutation counts as caught only if tests that pass without
 * it fail with it.
 *
 *   node dist/bench/mutations/main.js [NAME ...] [--whole-suite] [--keep]
 *
 * --whole-suite runs all unit and integration tests for every mutation (slow); by default each
 * runs the files named with it. Exit code 1 when a mutation survives or the control run fails.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ROOT } from "../common/paths.js";

type TestPart = { dir: "unit" | "integration"; filter: string };

type Mutation = {
  name: string;
  about: string;
  file: string;
  find: string;
  replace: string;
  /** Replace every occurrence (default: the text must occur exactly once). */
  all?: boolean;
  tests: TestPart[];
};

const SELECTION_TESTS: TestPart[] = [{ dir: "unit", filter: "^selection-" }];

export const MUTATIONS: Mutation[] = [
  {
    name: "gain-threshold",
    about: "a marginal gain ignores per-row improvements below 0.01",
    file: "common/src/selection/coverage-state.ts",
    find: "if (d > 0) sum += d;",
    replace: "if (d > 0.01) sum += d;",
    all: true,
    tests: SELECTION_TESTS,
  },
  {
    name: "stale-bound",
    about: "lazy greedy takes a bound computed one pick ago as fresh",
    file: "common/src/selection/lazy-greedy.ts",
    find: "while (evaluatedAt[j] !== t && heap.topBound() > 0)",
    replace: "while (evaluatedAt[j] + 1 < t && heap.topBound() > 0)",
    tests: SELECTION_TESTS,
  },
  {
    name: "endless-loop",
    about: "lazy greedy never marks a re-evaluated bound fresh, so a step loops forever (the per-test deadline must fail it)",
    file: "common/src/selection/lazy-greedy.ts",
    find: "      evaluatedAt[j] = t;\n",
    replace: "",
    tests: SELECTION_TESTS,
  },
  {
    name: "tie-break-lazy",
    about: "the bound heap breaks ties to the higher column index",
    file: "common/src/selection/bound-heap.ts",
    find: "(bound[a] === bound[b] && column[a] < column[b])",
    replace: "(bound[a] === bound[b] && column[a] > column[b])",
    tests: SELECTION_TESTS,
  },
  {
    name: "tie-break-stochastic",
    about: "stochastic greedy breaks ties to the higher column index",
    file: "common/src/selection/stochastic-greedy.ts",
    find: "(g === bestGain && j < bestColumn)",
    replace: "(g === bestGain && j > bestColumn)",
    tests: SELECTION_TESTS,
  },
  {
    name: "kernel-entry-off",
    about: "one kernel entry (row 1, column 2) is off by 1e-5",
    file: "coordinator/src/kernel/assemble-kernel.ts",
    find: "values[fill[col]++] = baseline[row] - out.distances[k++];",
    replace: "values[fill[col]++] = baseline[row] - out.distances[k++] + (row === 1 && col === 2 ? 1e-5 : 0);",
    tests: [{ dir: "unit", filter: "^kernel-reference" }],
  },
  {
    name: "tile-recomputed",
    about: "the coordinator plans every tile as not stored, so stored tiles are computed again",
    file: "coordinator/src/runtime/coordinator.ts",
    find: "stored: this.deps.store.has(t.id)",
    replace: "stored: false",
    tests: [{ dir: "integration", filter: "^cli-embedded" }],
  },
  {
    name: "redelivery-dropped",
    about: "a worker acks a redelivered tile without computing it",
    file: "worker/src/runtime/worker-loop.ts",
    find: "    const running: Running = { jobId, tileId: msg.tileId, abort: new AbortController() };",
    replace:
      "    if (d.deliveryCount > 1) {\n      await d.ack().catch(() => undefined);\n      return;\n    }\n    const running: Running = { jobId, tileId: msg.tileId, abort: new AbortController() };",
    tests: [{ dir: "integration", filter: "^cluster-faults" }],
  },
];

type Report = { passed: number; failed: number; files: { file: string; failedTests: string[]; problem: string | null }[] };
type PartOutcome = { part: TestPart; report: Report | null; seconds: number };

function copyRepository(): string {
  const dir = mkdtempSync(join(tmpdir(), "delift-mutations-"));
  const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "-z"], { cwd: ROOT, encoding: "utf8" }).split("\0").filter(Boolean);
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(ROOT, f), join(dir, f));
  }
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

function build(dir: string): void {
  const r = spawnSync(process.execPath, [join(dir, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`build failed in ${dir}:\n${r.stdout}${r.stderr}`);
}

function runPart(dir: string, part: TestPart, tag: string): PartOutcome {
  const report = join(dir, `report-${tag}-${part.dir}.json`);
  const started = performance.now();
  const timeout = part.dir === "unit" ? "60" : "240";
  const r = spawnSync(process.execPath, [join(dir, "dist", "test", "helpers", "harness", "run-tests.js"), join(dir, "dist", "test", part.dir), "--timeout", timeout, "--filter", part.filter, "--report", report], {
    cwd: dir,
    encoding: "utf8",
    env: { ...process.env, FORCE_COLOR: "0" },
    maxBuffer: 256 * 1024 * 1024,
  });
  const seconds = (performance.now() - started) / 1000;
  let parsed: Report | null = null;
  try {
    parsed = JSON.parse(readFileSync(report, "utf8")) as Report;
  } catch {
    process.stdout.write(`    (no report from the runner; its output ends:\n${(r.stdout + r.stderr).slice(-2000)})\n`);
  }
  return { part, report: parsed, seconds };
}

function failures(o: PartOutcome): string[] {
  if (!o.report) return [`${o.part.dir}/${o.part.filter}: the runner gave no report`];
  return o.report.files.flatMap((f) => {
    const name = f.file.split("/").pop()!;
    const tests = f.failedTests.map((t) => `${name}: ${t}`);
    return tests.length > 0 ? tests : f.problem ? [`${name}: ${f.problem}`] : [];
  });
}

function applyMutation(dir: string, m: Mutation): () => void {
  const path = join(dir, m.file);
  const original = readFileSync(path, "utf8");
  const count = original.split(m.find).length - 1;
  if (count === 0 || (!m.all && count !== 1)) {
    throw new Error(`mutation ${m.name}: expected ${m.all ? "at least one" : "exactly one"} occurrence of ${JSON.stringify(m.find)} in ${m.file}, found ${count}; the code moved: update bench/mutations/main.ts`);
  }
  writeFileSync(path, original.split(m.find).join(m.replace));
  return () => writeFileSync(path, original);
}

function main(): number {
  const args = process.argv.slice(2);
  const whole = args.includes("--whole-suite");
  const keep = args.includes("--keep");
  const names = args.filter((a) => !a.startsWith("--"));
  for (const n of names) if (!MUTATIONS.some((m) => m.name === n)) throw new Error(`unknown mutation ${n} (known: ${MUTATIONS.map((m) => m.name).join(", ")})`);
  const chosen = MUTATIONS.filter((m) => names.length === 0 || names.includes(m.name));
  const partsOf = (m: Mutation): TestPart[] => (whole ? [{ dir: "unit", filter: "." }, { dir: "integration", filter: "." }] : m.tests);

  const dir = copyRepository();
  process.stdout.write(`copy of the repository in ${dir}\n`);
  let survived = 0;
  const rows: { m: Mutation; caughtBy: string[]; seconds: number }[] = [];
  try {
    // The control: every part used below must pass on the unmutated copy.
    build(dir);
    const parts = new Map<string, TestPart>();
    for (const m of chosen) for (const p of partsOf(m)) parts.set(`${p.dir}:${p.filter}`, p);
    for (const p of parts.values()) {
      const o = runPart(dir, p, "control");
      const failed = failures(o);
      process.stdout.write(`control ${p.dir} /${p.filter}/: ${o.report?.passed ?? "?"} passed, ${failed.length} failed (${o.seconds.toFixed(0)} s)\n`);
      if (failed.length > 0) {
        process.stdout.write(`the unmutated suite fails, so no mutation can be judged:\n  ${failed.join("\n  ")}\n`);
        return 1;
      }
    }
    for (const m of chosen) {
      process.stdout.write(`\nmutation ${m.name}: ${m.about} (${m.file})\n`);
      const restore = applyMutation(dir, m);
      const started = performance.now();
      try {
        build(dir);
        const caughtBy = partsOf(m).flatMap((p) => failures(runPart(dir, p, m.name)));
        const seconds = (performance.now() - started) / 1000;
        rows.push({ m, caughtBy, seconds });
        if (caughtBy.length === 0) survived++;
        process.stdout.write(caughtBy.length > 0 ? `  caught (${seconds.toFixed(0)} s) by:\n    ${caughtBy.join("\n    ")}\n` : `  SURVIVED: no test failed (${seconds.toFixed(0)} s)\n`);
      } finally {
        restore();
      }
    }
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`\n| mutation | caught | by |\n|---|---|---|\n`);
  for (const r of rows) process.stdout.write(`| ${r.m.name}: ${r.m.about} | ${r.caughtBy.length > 0 ? "yes" : "NO"} | ${r.caughtBy.join("; ") || "-"} |\n`);
  process.stdout.write(`mutations: ${rows.length - survived} caught, ${survived} survived\n`);
  return survived > 0 ? 1 : 0;
}

process.exitCode = main();
