/**
 * What one child process measures: build the seeded kernel straight into CSC arrays, time the
 * baseline pass, run one optimiser, and report times, values and memory. Running each optimiser
 * in its own process keeps one optimiser's garbage and peak out of the other's figures.
 */
import { performance } from "node:perf_hooks";
import {
  kernelBytes,
  lazyGreedy,
  randomSparseKernel,
  scaleKernelInPlace,
  stochasticGreedy,
} from "../../common/src/selection/mod.js";
import type { CscKernel } from "../../common/src/selection/mod.js";
import type { BenchFlags } from "./flags.js";

export type ChildReport = {
  optimiser: "lazy" | "stochastic";
  kernelBytes: number;
  buildSeconds: number;
  /** Median of baseline passes run before and after the optimiser, so they see the same machine load. */
  baselineSeconds: number;
  seconds: number;
  /** User + system CPU time of the optimiser; below seconds when other work shares the core. */
  cpuSeconds: number;
  value: number;
  evaluations: number;
  /** Resident set size before the kernel was built (the Node runtime itself). */
  rssBeforeKernelBytes: number;
  rssAfterKernelBytes: number;
  /** Peak resident set size of the whole process up to the optimiser's return, from getrusage (ru_maxrss). */
  peakRssBytes: number;
  checksum: number;
};

export function measureChild(flags: BenchFlags, optimiser: "lazy" | "stochastic"): ChildReport {
  const rssBeforeKernelBytes = process.memoryUsage.rss();
  let start = performance.now();
  const kernel = randomSparseKernel({ nRows: flags.n, nCols: flags.n, perColumn: flags.perColumn, seed: flags.seed });
  scaleKernelInPlace(kernel, "min-max");
  const buildSeconds = (performance.now() - start) / 1000;
  const rssAfterKernelBytes = process.memoryUsage.rss();

  const baselineState = new Float32Array(kernel.nRows);
  const baselines = [0, 1, 2].map(() => singletonPassSeconds(kernel, baselineState));

  const cpuStart = process.cpuUsage();
  start = performance.now();
  const result =
    optimiser === "lazy"
      ? lazyGreedy(kernel, { k: flags.k })
      : stochasticGreedy(kernel, { k: flags.k, epsilon: flags.epsilon, seed: flags.seed });
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  baselines.push(singletonPassSeconds(kernel, baselineState), singletonPassSeconds(kernel, baselineState));

  let checksum = 0;
  for (let t = 0; t < result.order.length; t++) checksum = (checksum * 31 + result.order[t]) % 2147483647;
  return {
    optimiser,
    kernelBytes: kernelBytes(kernel),
    buildSeconds,
    baselineSeconds: medianOf(baselines),
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    value: result.value,
    evaluations: result.evaluations,
    rssBeforeKernelBytes,
    rssAfterKernelBytes,
    peakRssBytes,
    checksum,
  };
}

/**
 * The time unit: one pass computing every column's singleton FL gain, i.e. n gain evaluations
 * against an all-zero per-row state, the same loop and memory access pattern as an optimiser's
 * gain evaluation.
 */
function singletonPassSeconds(kernel: CscKernel, cur: Float32Array): number {
  const { colPtr, rowIdx, values, nCols } = kernel;
  const start = performance.now();
  let total = 0;
  for (let j = 0; j < nCols; j++) {
    const end = colPtr[j + 1];
    let sum = 0;
    for (let p = colPtr[j]; p < end; p++) {
      const d = values[p] - cur[rowIdx[p]];
      if (d > 0) sum += d;
    }
    total += sum;
  }
  const seconds = (performance.now() - start) / 1000;
  if (!(total >= 0)) throw new Error("baseline pass produced a negative total");
  return seconds;
}

function medianOf(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}
