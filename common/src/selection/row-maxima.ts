import type { CscKernel } from "./types.js";

/**
 * m[i] = max over the stored entries of row i, floored at 0 because unstored entries count
 * as 0. Used for FLMI (kernel V x Q gives m_Q) and FLCG (kernel V x E gives m_E).
 */
export function rowMaxima(kernel: CscKernel): Float32Array {
  const maxima = new Float32Array(kernel.nRows);
  const { rowIdx, values } = kernel;
  for (let p = 0; p < rowIdx.length; p++) {
    const v = values[p];
    if (v > maxima[rowIdx[p]]) maxima[rowIdx[p]] = v;
  }
  return maxima;
}
