/**
 * Software prefetch for kernels bigger than the caches. Reading the first and last entry of a
 * column pulls its cache lines in; because these loads do not depend on each other, the
 * processor fetches several columns from memory at once instead of one after another, which
 * matters once the kernel is far larger than the caches (a random column costs several times
 * a sequential one at n = 1e6).
 */
import type { CscKernel } from "./types.js";

/** Written only so that the compiler keeps the loads. */
let sink = 0;

export function touchColumnList(kernel: CscKernel, columns: Uint32Array, count: number): void {
  const { colPtr, rowIdx, values } = kernel;
  let sum = 0;
  for (let s = 0; s < count; s++) {
    const j = columns[s];
    const first = colPtr[j];
    const last = colPtr[j + 1] - 1;
    if (last >= first) sum += rowIdx[first] + rowIdx[last] + values[first] + values[last];
  }
  sink += sum;
}

export function touchColumn(kernel: CscKernel, j: number): void {
  const first = kernel.colPtr[j];
  const last = kernel.colPtr[j + 1] - 1;
  if (last >= first) sink += kernel.rowIdx[first] + kernel.rowIdx[last] + kernel.values[first] + kernel.values[last];
}

/** touchColumnList for the columns columns[positions[0..count)]. */
export function touchColumnsAt(kernel: CscKernel, columns: Uint32Array, positions: Uint32Array, count: number): void {
  const { colPtr, rowIdx, values } = kernel;
  let sum = 0;
  for (let s = 0; s < count; s++) {
    const j = columns[positions[s]];
    const first = colPtr[j];
    const last = colPtr[j + 1] - 1;
    if (last >= first) sum += rowIdx[first] + rowIdx[last] + values[first] + values[last];
  }
  sink += sum;
}
