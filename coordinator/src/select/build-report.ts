import type { KernelSection, SelectionReport } from "../report/types.js";
import { type SelectionOutcome, type SelectionSettings } from "./run-selection.js";

export type SelectedSample = { id: string; source: string | undefined; x: string };

export type ReportContext = {
  settings: SelectionSettings;
  kernelType: "utility" | "se";
  budget: string;
  maxLength: number | null;
  model: { dir: string; name: string | null; hash: string };
  data: SelectionReport["data"];
  samples: SelectedSample[];
  kernel: Omit<KernelSection, "histogram" | "rawMin" | "rawMax">;
  secondKernel: Omit<KernelSection, "histogram" | "rawMin" | "rawMax"> | null;
  /** Histograms of the scaled kernels' values (valueHistogram, whole or summed chunk by chunk). */
  histograms: { main: { edges: number[]; counts: number[] }; second: { edges: number[]; counts: number[] } | null };
  timings: { loadSeconds: number; kernelSeconds: number; totalSeconds: number };
};

const CURVE_POINTS = 500;
const PREVIEW = 15;

export function buildReport(outcome: SelectionOutcome, c: ReportContext): SelectionReport {
  const { order, gains } = outcome.result;
  const cumulative = new Float64Array(order.length);
  let f = 0;
  for (let k = 0; k < order.length; k++) cumulative[k] = f += gains[k];
  const step = Math.max(1, Math.ceil(order.length / CURVE_POINTS));
  const curve: [number, number][] = [[0, 0]];
  const gainPoints: [number, number][] = [];
  for (let k = 0; k < order.length; k += step) {
    curve.push([k + 1, cumulative[k]]);
    gainPoints.push([k + 1, gains[k]]);
  }
  if ((order.length - 1) % step !== 0) {
    curve.push([order.length, cumulative[order.length - 1]]);
    gainPoints.push([order.length, gains[order.length - 1]]);
  }
  const bySource = new Map<string, { total: number; selected: number }>();
  for (const s of c.samples) {
    const key = s.source ?? "(none)";
    const e = bySource.get(key) ?? { total: 0, selected: 0 };
    e.total++;
    bySource.set(key, e);
  }
  for (const j of order) bySource.get(c.samples[j].source ?? "(none)")!.selected++;
  const s = c.settings;
  const lazyValue = outcome.lazy?.value ?? null;
  return {
    format: "delift-report/1",
    createdAt: new Date().toISOString(),
    settings: {
      stage: s.stage,
      objective: outcome.objective.kind,
      kernel: c.kernelType,
      budget: c.budget,
      k: s.k,
      optimizer: outcome.distributed ? outcome.distributed.algorithm : s.optimizer,
      epsilon: s.optimizer === "stochastic" && !outcome.distributed ? s.epsilon : null,
      seed: s.seed,
      scaling: s.scaling,
      eta: s.stage === "task" ? s.eta : null,
      nu: s.stage === "continual" ? s.nu : null,
      maxLength: c.maxLength,
      model: c.model,
    },
    data: c.data,
    kernel: { ...c.kernel, rawMin: outcome.scaling.main.min, rawMax: outcome.scaling.main.max, histogram: c.histograms.main },
    secondKernel:
      c.secondKernel && c.histograms.second && outcome.scaling.second
        ? {
            ...c.secondKernel,
            rawMin: outcome.scaling.second.min,
            rawMax: outcome.scaling.second.max,
            histogram: c.histograms.second,
          }
        : null,
    result: {
      selected: order.length,
      value: outcome.result.value,
      valueOfAll: outcome.valueOfAll,
      lazyValue,
      ratioToLazy: lazyValue === null ? null : lazyValue > 0 ? outcome.result.value / lazyValue : 1,
      evaluations: outcome.result.evaluations,
      distributed: outcome.distributed ?? null,
      curve,
      gains: gainPoints,
    },
    composition: [...bySource.entries()].map(([source, e]) => ({ source, ...e })).sort((a, b) => b.total - a.total),
    timings: { ...c.timings, selectionSeconds: outcome.seconds },
    preview: Array.from(order.slice(0, PREVIEW), (j, k) => ({
      rank: k + 1,
      id: c.samples[j].id,
      source: c.samples[j].source ?? null,
      gain: gains[k],
      x: c.samples[j].x.length > 160 ? c.samples[j].x.slice(0, 157) + "..." : c.samples[j].x,
    })),
  };
}
