/**
 * A job's selection prepared from its kernels in the chunked format (as assembly wrote them,
 * unscaled): the same scaling, objective and report facts as prepareSelection over in-memory
 * kernels, bit for bit, without holding more than the main kernel once.
 *
 * - The main kernel is read whole only where the selection runs here (readAll reads the chunks
 *   straight into its arrays: no copy besides it) and scaled in place with the index's value range,
 *   which is what scaling it whole does. For a selection on shard hosts it is never read whole:
 *   its histogram and f(V) are computed chunk by chunk, and the hosts scale their own chunks.
 * - The second kernel (FLMI's V x Q, FLCG's V x E) is only ever streamed: one chunk at a time is
 *   scaled and folded into the row or column maxima and the histogram.
 */
import { ChunkedKernel, CoverageState, scaleValuesInPlace, type ChunkedIndex, type CscKernel, type KernelScaling, type Objective, type ScalingReport } from "../../../common/src/mod.js";
import { columnMaxima, valueHistogram, type PreparedSelection, type SelectionSettings } from "./run-selection.js";

export type Histogram = { edges: number[]; counts: number[] };

/** A kernel staged on disk: its directory and index. */
export type StagedKernel = { dir: string; index: ChunkedIndex };

export type ChunkedPrepared = {
  /** The main kernel, scaled, when it was loaded (central selection, or lazy greedy's comparison). */
  main: CscKernel | null;
  prepared: PreparedSelection;
  shapes: { main: KernelShape; second: KernelShape | null };
  histograms: { main: Histogram; second: Histogram | null };
};

export type KernelShape = { nRows: number; nCols: number; nnz: number };

export async function prepareChunkedSelection(staged: { main: StagedKernel; second: StagedKernel | null }, s: SelectionSettings, loadMain: boolean): Promise<ChunkedPrepared> {
  const mainScaling = scalingReport(s.scaling, staged.main.index);
  let second: ScalingReport | null = null;
  let secondHistogram: Histogram | null = null;
  let objective: Objective = { kind: "fl" };
  if (s.stage !== "instruction") {
    if (!staged.second) throw new Error(`stage "${s.stage}" needs its second kernel`);
    const kernel = await ChunkedKernel.open(staged.second.dir);
    second = scalingReport(s.scaling, kernel.index);
    const maxima = new Float32Array(s.stage === "task" ? kernel.nCols : kernel.nRows);
    secondHistogram = await foldChunks(kernel, s.scaling, (chunk, colStart) => {
      if (s.stage === "task") maxima.set(columnMaxima(chunk), colStart);
      else for (let p = 0; p < chunk.rowIdx.length; p++) if (chunk.values[p] > maxima[chunk.rowIdx[p]]) maxima[chunk.rowIdx[p]] = chunk.values[p];
    });
    objective = s.stage === "task" ? { kind: "flmi", targetMax: maxima, eta: s.eta } : { kind: "flcg", existingMax: maxima, nu: s.nu };
  }
  let main: CscKernel | null = null;
  let mainHistogram: Histogram;
  if (loadMain) {
    main = await (await ChunkedKernel.open(staged.main.dir)).readAll();
    scaleValuesInPlace(main.values, s.scaling, staged.main.index.valueRange);
    mainHistogram = valueHistogram(main.values);
  } else {
    mainHistogram = await foldChunks(await ChunkedKernel.open(staged.main.dir), s.scaling, () => undefined);
  }
  const shape = (i: ChunkedIndex): KernelShape => ({ nRows: i.nRows, nCols: i.nCols, nnz: i.nnz });
  return {
    main,
    prepared: { objective, scaling: { main: mainScaling, second } },
    shapes: { main: shape(staged.main.index), second: staged.second ? shape(staged.second.index) : null },
    histograms: { main: mainHistogram, second: secondHistogram },
  };
}

/**
 * f(V) of the scaled main kernel read chunk by chunk: coverage carried from chunk to chunk, so the
 * per-row maxima and their sum are objectiveValue's over the whole kernel, bit for bit.
 */
export async function objectiveValueOfAllChunked(dir: string, scaling: KernelScaling, objective: Objective): Promise<number> {
  const kernel = await ChunkedKernel.open(dir);
  let state: CoverageState | null = null;
  for (let k = 0; k < kernel.index.chunks.length; k++) {
    const { kernel: chunk } = await kernel.readChunk(k);
    scaleValuesInPlace(chunk.values, scaling, kernel.index.valueRange);
    const next: CoverageState = new CoverageState(chunk, objective);
    if (state) next.cur.set(state.cur);
    for (let j = 0; j < chunk.nCols; j++) next.add(j);
    state = next;
  }
  return state!.value();
}

/** The ScalingReport scaling the whole kernel gives (its range is the index's). */
function scalingReport(scaling: KernelScaling, index: ChunkedIndex): ScalingReport {
  if (scaling !== "min-max" && scaling !== "clip-at-zero") throw new Error(`unknown kernel scaling "${String(scaling)}"`);
  return { scaling, min: index.valueRange.min, max: index.valueRange.max };
}

/** Reads every chunk, scales it, hands it on, and sums the histograms of the scaled values. */
async function foldChunks(kernel: ChunkedKernel, scaling: KernelScaling, each: (chunk: CscKernel, colStart: number) => void): Promise<Histogram> {
  let histogram: Histogram | null = null;
  for (let k = 0; k < kernel.index.chunks.length; k++) {
    const { colStart, kernel: chunk } = await kernel.readChunk(k);
    scaleValuesInPlace(chunk.values, scaling, kernel.index.valueRange);
    each(chunk, colStart);
    const h = valueHistogram(chunk.values);
    if (!histogram) histogram = h;
    else for (let b = 0; b < h.counts.length; b++) histogram.counts[b] += h.counts[b];
  }
  return histogram!;
}
