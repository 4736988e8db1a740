/**
 * Selection benchmark: stochastic greedy vs lazy greedy, FL objective, on a seeded random sparse
 * kernel (default 1,000,000 columns x 32 stored rows each, budget 30%).
 *
 * Each optimiser runs in its own child process, pinned with taskset (where available) to the
 * allowed CPU that was idlest over a short sample of /proc/stat.
 * Times are printed in seconds and as multiples of a baseline measured in the same child (one
 * pass of singleton gains over every column); memory is the child's peak RSS (getrusage
 * ru_maxrss, which includes the Node runtime) as a multiple of the kernel's own bytes.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../../common/src/errors.js";
import { childArgs, parseBenchFlags, usage } from "./flags.js";
import type { BenchFlags } from "./flags.js";
import { measureChild } from "./measure-child.js";
import { runAssemblyBench } from "./assembly.js";
import type { ChildReport } from "./measure-child.js";

const targets = { stochasticSeconds: 3, lazySeconds: 30, valueRatio: 0.99, peakRssOverKernel: 2 };

function main(): void {
  let flags: BenchFlags;
  try {
    flags = parseBenchFlags(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`${(err as Error).message}\n${usage}`);
      process.exit(2);
    }
    throw err;
  }
  if (flags.child !== null) {
    process.stdout.write(JSON.stringify(measureChild(flags, flags.child)) + "\n");
    return;
  }

  const pin = pinCommand();
  console.log(
    `selection bench: n = ${flags.n}, ${flags.perColumn} stored entries per column, budget ${flags.budgetText} ` +
      `(k = ${flags.k}), seed ${flags.seed}, stochastic epsilon ${flags.epsilon}, FL objective; ` +
      (pin ? `each optimiser in a child pinned to CPU ${pin.cpu}` : "taskset not found: children not pinned") +
      `; load average ${loadavg()[0].toFixed(2)}`,
  );
  const stochastic = runChild(flags, "stochastic", pin);
  printChild(stochastic);
  const lazy = runChild(flags, "lazy", pin);
  printChild(lazy);

  const valueRatio = stochastic.value / lazy.value;
  const summary = {
    bench: "select",
    n: flags.n,
    perColumn: flags.perColumn,
    k: flags.k,
    seed: flags.seed,
    epsilon: flags.epsilon,
    pinnedCpu: pin?.cpu ?? null,
    loadAverage: loadavg()[0],
    kernelBytes: lazy.kernelBytes,
    stochastic: figures(stochastic),
    lazy: figures(lazy),
    valueRatio,
    lazyOverStochasticSeconds: lazy.seconds / stochastic.seconds,
    targetsMet: {
      stochasticSeconds: stochastic.seconds <= targets.stochasticSeconds,
      lazySeconds: lazy.seconds <= targets.lazySeconds,
      valueRatio: valueRatio >= targets.valueRatio,
      memory:
        stochastic.peakRssBytes <= targets.peakRssOverKernel * stochastic.kernelBytes &&
        lazy.peakRssBytes <= targets.peakRssOverKernel * lazy.kernelBytes,
    },
  };
  console.log(
    `f(stochastic) / f(lazy) = ${valueRatio.toFixed(5)} (target >= ${targets.valueRatio}); ` +
      `lazy took ${summary.lazyOverStochasticSeconds.toFixed(1)}x as long as stochastic`,
  );
  console.log(
    `targets (set for the default size): stochastic <= ${targets.stochasticSeconds} s ${mark(summary.targetsMet.stochasticSeconds)}, ` +
      `lazy <= ${targets.lazySeconds} s ${mark(summary.targetsMet.lazySeconds)}, ` +
      `ratio >= ${targets.valueRatio} ${mark(summary.targetsMet.valueRatio)}, ` +
      `peak RSS <= ${targets.peakRssOverKernel}x kernel ${mark(summary.targetsMet.memory)}`,
  );
  console.log(JSON.stringify(summary));
}

function mark(met: boolean): string {
  return met ? "met" : "MISSED";
}

function figures(report: ChildReport) {
  return {
    seconds: report.seconds,
    cpuSeconds: report.cpuSeconds,
    baselineSeconds: report.baselineSeconds,
    baselineMultiple: report.seconds / report.baselineSeconds,
    evaluations: report.evaluations,
    value: report.value,
    peakRssBytes: report.peakRssBytes,
    peakRssOverKernel: report.peakRssBytes / report.kernelBytes,
    runtimeRssBytes: report.rssBeforeKernelBytes,
    selectionExtraOverKernel: (report.peakRssBytes - report.rssAfterKernelBytes) / report.kernelBytes,
    buildSeconds: report.buildSeconds,
    orderChecksum: report.checksum,
  };
}

function printChild(report: ChildReport): void {
  const f = figures(report);
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  console.log(
    `${report.optimiser.padEnd(10)} ${report.seconds.toFixed(2)} s (cpu ${report.cpuSeconds.toFixed(2)} s) = ` +
      `${f.baselineMultiple.toFixed(1)} x baseline ` +
      `(baseline pass ${(report.baselineSeconds * 1000).toFixed(0)} ms), ${report.evaluations} gain evaluations, ` +
      `f(A) = ${report.value.toFixed(2)}; peak RSS ${mib(report.peakRssBytes)} = ${f.peakRssOverKernel.toFixed(2)} x kernel ` +
      `(${mib(report.kernelBytes)}; Node runtime ${mib(report.rssBeforeKernelBytes)}, selection's own peak ` +
      `${f.selectionExtraOverKernel.toFixed(3)} x kernel); kernel built in ${report.buildSeconds.toFixed(1)} s`,
  );
}

function runChild(flags: BenchFlags, optimiser: "lazy" | "stochastic", pin: { cpu: number } | null): ChildReport {
  const script = fileURLToPath(import.meta.url);
  const nodeArgs = [script, ...childArgs(flags, optimiser)];
  const [command, args] = pin
    ? ["taskset", ["-c", String(pin.cpu), process.execPath, ...nodeArgs]]
    : [process.execPath, nodeArgs];
  const child = spawnSync(command, args, { encoding: "utf8", maxBuffer: 1 << 20, stdio: ["ignore", "pipe", "inherit"] });
  if (child.status !== 0) throw new Error(`${optimiser} child failed (status ${child.status}, signal ${child.signal})`);
  const lines = child.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as ChildReport;
}

/** The allowed CPU with the most idle time over 300 ms, if taskset is there to pin children to it. */
function pinCommand(): { cpu: number } | null {
  let allowed: number[];
  try {
    const out = execFileSync("taskset", ["-cp", String(process.pid)], { encoding: "utf8" });
    allowed = expandCpuList(/:\s*([\d,-]+)/.exec(out)?.[1] ?? "");
  } catch {
    return null;
  }
  if (allowed.length === 0) return null;
  const before = idleTicks();
  const until = Date.now() + 300;
  while (Date.now() < until) execFileSync("sleep", ["0.05"]);
  const after = idleTicks();
  let best = allowed[0];
  for (const cpu of allowed) {
    const idle = (after.get(cpu) ?? 0) - (before.get(cpu) ?? 0);
    if (idle > (after.get(best) ?? 0) - (before.get(best) ?? 0)) best = cpu;
  }
  return { cpu: best };
}

/** Idle jiffies per CPU from /proc/stat (empty where there is none). */
function idleTicks(): Map<number, number> {
  const ticks = new Map<number, number>();
  try {
    for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
      const m = /^cpu(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
      if (m) ticks.set(Number(m[1]), Number(m[5]) + Number(m[6]));
    }
  } catch {
    // Not Linux: every CPU looks equally idle and the first allowed one is used.
  }
  return ticks;
}

function expandCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.split(",")) {
    const [lo, hi] = part.split("-").map(Number);
    if (!Number.isInteger(lo)) continue;
    for (let c = lo; c <= (Number.isInteger(hi) ? hi : lo); c++) cpus.push(c);
  }
  return cpus;
}

// --assembly: the kernel assembly + selection memory bench (assembly.ts) instead.
if (process.argv.includes("--assembly")) {
  runAssemblyBench(process.argv.slice(2)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main();
}
